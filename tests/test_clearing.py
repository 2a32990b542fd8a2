"""Clearing: journeys and charges from stored passages (host_sim/backoffice/clearing.py)."""

import pytest

from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from protocol import records
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_METRO, MODE_PARKING, MODE_STORE

DAY0 = 1_767_254_400  # 2026-01-01 08:00 UTC; the service day starts at 04:00
T = clearing.load_tariff(None)


@pytest.fixture
def store(store_target):  # each test on SQLite and on PostgreSQL
    s = Store(store_target)
    s.add_device(1, b"\x02" + bytes(32), DAY0)
    yield s
    s.close()


class Gate:
    """Stores passages as device 1, in seq order, through the real ingest path."""

    def __init__(self, store):
        self.store = store
        self.seq = 0
        self.prev = records.ZERO_HASH

    def tap(self, account, t, station, direction, mode=MODE_METRO, value=0, flags=0):
        self.seq += 1
        raw = records.Record(
            records.KIND_PASSAGE,
            0,
            1,
            self.seq,
            t,
            mode,
            direction,
            station,
            account,
            1,
            self.seq,
            value,
            flags,
            self.prev,
        ).to_bytes()
        self.prev = records.record_hash(raw)
        self.store.store_batch(1, [raw], t)


def _clear(store, as_of=DAY0 + 86400 * 3):
    js = clearing.clear(store, T, as_of)
    keys = [tuple(k) for j in js for k in j["records"]]
    assert len(keys) == len(set(keys)), "a passage was charged twice"
    return js


def test_metro_pairs_entry_and_exit_by_zone(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)  # zone 1
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)  # zone 3: two zones crossed
    g.tap(7, DAY0 + 3600, 8, DIR_ENTRY)
    g.tap(7, DAY0 + 4000, 9, DIR_EXIT)  # same zone
    js = _clear(store)
    assert [(j["status"], j["fare"]) for j in js] == [("complete", 400), ("complete", 250)]
    assert js[0]["entry"]["station"] == 1 and js[0]["exit"]["station"] == 8


def test_metro_missing_exit_is_the_maximum_fare_and_retap_is_one_journey(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 30, 1, DIR_ENTRY)  # tapped again at the same gate line: same journey
    g.tap(7, DAY0 + 3600, 4, DIR_ENTRY)  # a new entry without an exit before it
    g.tap(7, DAY0 + 4000, 5, DIR_EXIT)
    g.tap(8, DAY0 + 100, 2, DIR_EXIT)  # exit without entry
    g.tap(9, DAY0 + 200, 2, DIR_ENTRY)  # still travelling
    js = _clear(store, as_of=DAY0 + 1000)
    got = sorted((j["account_id"], j["status"], j["fare"], len(j["records"])) for j in js)
    assert got == [
        (7, "complete", 250, 2),
        (7, "missing_exit", 600, 2),
        (8, "missing_entry", 600, 1),
        (9, "open", 0, 1),
    ]
    later = {j["account_id"]: j["status"] for j in _clear(store, as_of=DAY0 + 5 * 3600)}
    assert later[9] == "missing_exit"


def test_metro_daily_cap_resets_with_the_service_day(store):
    g = Gate(store)
    t = DAY0
    for _ in range(5):  # five 400-fare journeys: capped at 1500
        g.tap(7, t, 1, DIR_ENTRY)
        g.tap(7, t + 600, 8, DIR_EXIT)
        t += 3600
    g.tap(7, DAY0 + 86400, 1, DIR_ENTRY)  # next service day
    g.tap(7, DAY0 + 86400 + 600, 8, DIR_EXIT)
    cs = clearing.charges(_clear(store))
    assert [(c["journeys"], c["fares"], c["charged"]) for c in cs] == [
        (5, 2000, 1500),
        (1, 400, 400),
    ]
    assert cs[1]["day"] == cs[0]["day"] + 1


def test_service_day_starts_at_four_in_the_morning():
    midnight = DAY0 - 8 * 3600  # 2026-01-01 00:00 UTC
    assert clearing.service_day(midnight + 3 * 3600, T) == clearing.service_day(midnight - 1, T)
    assert clearing.service_day(midnight + 5 * 3600, T) == clearing.service_day(midnight - 1, T) + 1


@pytest.mark.parametrize(
    "seconds, fee",
    [(0, 0), (900, 0), (901, 200), (3600, 200), (3601, 400), (86400, 2000), (86400 + 60, 2200)],
)
def test_parking_fee(seconds, fee):
    assert clearing.parking_fee(seconds, T["parking"]) == fee


def test_parking_stays_and_lost_tickets(store):
    g = Gate(store)
    g.tap(5, DAY0, 50, DIR_ENTRY, MODE_PARKING)
    g.tap(5, DAY0 + 2 * 3600 + 1, 50, DIR_EXIT, MODE_PARKING)  # three started hours
    g.tap(6, DAY0, 50, DIR_EXIT, MODE_PARKING)
    js = _clear(store)
    assert sorted((j["account_id"], j["status"], j["fare"]) for j in js) == [
        (5, "complete", 600),
        (6, "missing_entry", 2000),
    ]


def test_store_sessions_charge_the_basket(store):
    g = Gate(store)
    g.tap(3, DAY0, 70, DIR_ENTRY, MODE_STORE)
    g.tap(3, DAY0 + 300, 70, DIR_EXIT, MODE_STORE, value=1234)
    g.tap(4, DAY0, 70, DIR_ENTRY, MODE_STORE)
    js = _clear(store, as_of=DAY0 + 10 * 3600)
    assert sorted((j["account_id"], j["status"], j["charged"]) for j in js) == [
        (3, "complete", 1234),
        (4, "open_session", 0),
    ]


def test_emergency_passages_are_not_charged(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY, flags=records.FLAG_EMERGENCY)
    g.tap(7, DAY0 + 60, 1, DIR_EXIT, flags=records.FLAG_EMERGENCY)
    assert [(j["status"], j["charged"]) for j in _clear(store)] == [("emergency", 0)] * 2


def test_reuploaded_batches_charge_nothing_twice(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    before = _clear(store)
    raws = [raw for _dev, _seq, raw in store.records()]
    store.store_batch(1, raws, DAY0 + 700)  # the gate's ACK was lost: same batch again
    assert _clear(store) == before and store.count() == 2


def test_tariff_file_overrides_and_typos_are_errors(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[metro]\nmax_fare = 900\nstations = {"1" = 1, "2" = 5}\n')
    t = clearing.load_tariff(str(p))
    assert t["metro"]["max_fare"] == 900 and t["metro"]["daily_cap"] == 1500
    p.write_text("[metro]\nmax_fair = 900\n")
    with pytest.raises(clearing.TariffError, match="max_fair"):
        clearing.load_tariff(str(p))
