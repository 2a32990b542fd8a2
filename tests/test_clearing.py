"""Clearing: journeys and charges from stored passages (host_sim/backoffice/clearing.py)."""

import pytest

from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from protocol import reasons, records
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

    def tap(
        self,
        account,
        t,
        station,
        direction,
        mode=MODE_METRO,
        value=0,
        flags=0,
        counter=None,
        kind=records.KIND_PASSAGE,
        reason=0,
        device=1,
        issuer=0,
    ):
        self.seq += 1
        raw = records.Record(
            kind,
            reason,
            device,
            self.seq,
            t,
            mode,
            direction,
            station,
            account,
            1,
            self.seq if counter is None else counter,
            value,
            flags,
            self.prev,
            issuer=issuer,
        ).to_bytes()
        self.prev = records.record_hash(raw)
        self.store.store_batch(device, [raw], t)
        return self.seq


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


def test_an_exit_made_again_at_the_same_station_is_that_journey_not_a_missing_entry(store):
    """A power cut in the pass window (or a jam) fails an exit the gate recorded: the rider
    exits again at the same station. That is the journey they made, not a second one with a
    missing entry (the maximum fare); later, or at another station, it is a missing entry."""
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    g.tap(7, DAY0 + 672, 8, DIR_EXIT)  # the same exit again, 72 s later
    g.tap(8, DAY0, 1, DIR_ENTRY)
    g.tap(8, DAY0 + 600, 8, DIR_EXIT)
    g.tap(8, DAY0 + 600 + T["metro"]["retap_s"] + 1, 8, DIR_EXIT)  # too late: a new tap
    g.tap(9, DAY0, 1, DIR_ENTRY)
    g.tap(9, DAY0 + 600, 8, DIR_EXIT)
    g.tap(9, DAY0 + 630, 9, DIR_EXIT)  # another station
    js = _clear(store)
    got = sorted((j["account_id"], j["status"], j["fare"], len(j["records"])) for j in js)
    assert got == [
        (7, "complete", 400, 3),
        (8, "complete", 400, 2),
        (8, "missing_entry", 600, 1),
        (9, "complete", 400, 2),
        (9, "missing_entry", 600, 1),
    ]


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


# -- policies (each test fails if its policy is removed) --------------------------------------
def test_emergency_exit_completes_the_journey_at_its_normal_fare(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT, flags=records.FLAG_EMERGENCY)
    g.tap(8, DAY0 + 60, 1, DIR_EXIT, flags=records.FLAG_EMERGENCY)  # no entry: no charge
    got = sorted((j["account_id"], j["status"], j["charged"], j["flags"]) for j in _clear(store))
    assert got == [
        (7, "complete", 400, ["emergency_exit"]),
        (8, "emergency_exit", 0, ["review_emergency"]),
    ]


def test_a_voided_passage_is_not_charged(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_EXIT, counter=50)  # accepted, nobody passed: the gate voids it
    g.tap(
        7,
        DAY0 + 5,
        1,
        DIR_EXIT,
        counter=50,
        kind=records.KIND_EVENT,
        reason=reasons.number("passage_not_taken"),
    )
    js = _clear(store)
    assert [(j["status"], j["charged"]) for j in js] == [("voided", 0)]


def test_a_copied_presentation_charges_its_account_once_and_flags_the_copy(store):
    store.add_device(2, b"\x02" + bytes(32), DAY0)
    g, g2 = Gate(store), Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY, counter=9)
    g2.tap(7, DAY0 + 30, 4, DIR_ENTRY, counter=9, device=2)  # the screenshot, elsewhere
    g.tap(7, DAY0 + 600, 2, DIR_EXIT, counter=10)
    js = _clear(store)
    got = [(j["status"], j["charged"], j["flags"]) for j in js]
    assert got == [("complete", 250, []), ("fraud_copy", 0, ["fraud_review"])]


def test_untrusted_clock_holds_the_passage_for_review(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY, flags=records.FLAG_CLOCK_UNTRUSTED)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    js = _clear(store)
    got = [(j["status"], j["charged"], j["flags"], len(j["records"])) for j in js]
    # the whole journey is held, its trusted exit with it: not a missing entry at 600
    assert got == [("held_clock", 0, ["review_clock"], 2)]


def test_a_trusted_entry_whose_exit_had_an_untrusted_clock_is_held_not_a_missing_exit(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT, flags=records.FLAG_CLOCK_UNTRUSTED)
    g.tap(7, DAY0 + 4000, 8, DIR_ENTRY)  # a later, trusted journey is priced as usual
    g.tap(7, DAY0 + 4600, 1, DIR_EXIT)
    got = [(j["status"], j["charged"], len(j["records"])) for j in _clear(store)]
    assert got == [("held_clock", 0, 2), ("complete", 400, 2)]  # zone 3 to 1, as above


def test_over_limit_is_charged_and_flagged(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY, flags=records.FLAG_OVER_LIMIT)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    assert [(j["charged"], j["flags"]) for j in _clear(store)] == [(400, ["over_limit"])]


def _t(**metro):
    t = {k: (dict(v) if isinstance(v, dict) else v) for k, v in T.items()}
    t["metro"].update(metro)
    return t


def test_maximum_fares_stay_out_of_the_daily_cap(store):
    g = Gate(store)
    for i in range(3):  # three missing exits: 3 x 600, beyond the 1500 cap
        g.tap(7, DAY0 + i * 3600, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 4 * 3600, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 4 * 3600 + 600, 8, DIR_EXIT)  # 400, and the cap still has room for it
    as_of = DAY0 + 3 * 86400
    js = [
        j
        for a, taps in clearing._group(store.clearing_taps()).items()
        for j in clearing.journeys(a, taps, T, as_of)
    ]
    assert [j["charged"] for j in js] == [600, 600, 600, 400]
    counted = [
        j
        for a, taps in clearing._group(store.clearing_taps()).items()
        for j in clearing.journeys(a, taps, _t(max_fare_counts_to_cap=True), as_of)
    ]
    assert [j["charged"] for j in counted] == [600, 600, 300, 0]


def test_weekly_cap_and_week_start(store):
    g = Gate(store)
    for d in range(7):  # one 400 journey a day, 2026-01-01 (a Thursday) onwards
        g.tap(7, DAY0 + d * 86400, 1, DIR_ENTRY)
        g.tap(7, DAY0 + d * 86400 + 600, 8, DIR_EXIT)
    taps = clearing._group(store.clearing_taps())[7]
    monday = [j["charged"] for j in clearing.journeys(7, taps, _t(weekly_cap=1000), DAY0)]
    assert monday == [400, 400, 200, 0, 400, 400, 200]  # Thu..Sun, then a new week on Monday
    t = _t(weekly_cap=1000)
    t["week_start"] = 3  # weeks start on Thursday
    assert [j["charged"] for j in clearing.journeys(7, taps, t, DAY0)] == [400, 400, 200] + [0] * 4


# -- publishing: revisions, adjustments, idempotence, the audit trail -------------------------
def test_run_publishes_once_and_a_second_run_changes_nothing(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    s1 = clearing.run(store, T, DAY0 + 86400)
    assert (s1["new"], s1["revised"]) == (1, 0)
    before = store.clearing_charges()
    s2 = clearing.run(store, T, DAY0 + 86400)
    assert (s2["new"], s2["revised"], s2["days"]) == (0, 0, 0)
    assert store.clearing_charges() == before
    assert [c["amount"] for c in before] == [400] and before[0]["revision"] == 1


def test_a_late_tap_is_an_adjustment_of_the_published_charge(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_EXIT)  # exit with no entry: maximum fare, published
    g.tap(9, DAY0, 1, DIR_ENTRY)
    g.tap(9, DAY0 + 600, 2, DIR_EXIT)
    clearing.run(store, T, DAY0 + 86400)
    other = store.clearing_charges(9)
    store.add_device(2, b"\x02" + bytes(32), DAY0)
    Gate(store).tap(
        7, DAY0 - 900, 8, DIR_ENTRY, device=2, counter=99
    )  # the entry arrives a day late
    s = clearing.run(store, T, DAY0 + 2 * 86400)
    assert (s["accounts"], s["new"], s["revised"]) == (1, 0, 1)  # only account 7 re-cleared
    (c,) = store.clearing_charges(7)
    assert (c["revision"], c["amount"]) == (2, 400)
    revs = store.clearing_revisions(7, c["day"])
    assert [(r["kind"], r["delta"], r["amount"]) for r in revs] == [
        ("charge", 600, 600),
        ("adjustment", -200, 400),
    ]
    assert '"rule":"metro.fares[2]"' in revs[-1]["explanation"]
    assert store.clearing_charges(9) == other
    assert clearing.run(store, T, DAY0 + 2 * 86400)["revised"] == 0


def test_an_open_journey_is_revised_when_it_becomes_a_missing_exit(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    clearing.run(store, T, DAY0 + 60)
    assert store.clearing_charges(7)[0]["amount"] == 0
    clearing.run(store, T, DAY0 + 86400)
    assert store.clearing_charges(7)[0]["amount"] == 600


def test_refund_adjust_and_dispute_are_audited_and_survive_reclearing(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    clearing.run(store, T, DAY0 + 86400)
    day = store.clearing_charges(7)[0]["day"]
    clearing.dispute(store, 7, day, "open", "ana", "rider says she never travelled", 100)
    clearing.refund(store, 7, day, 150, "ana", "goodwill", 101)
    clearing.adjust(store, 7, day, 50, "bo", "refunded too much", 102)
    clearing.dispute(store, 7, day, "resolve", "bo", "settled", 103)
    clearing.run(store, T, DAY0 + 86400, full=True)  # re-clearing keeps the corrections
    (c,) = store.clearing_charges(7)
    assert (c["amount"], c["cleared"], c["adjusted"], c["revision"]) == (300, 400, -100, 3)
    assert c["dispute"] == "resolved"
    log = store.clearing_audit_log(7)
    assert [(a["operator"], a["action"], a["time"]) for a in log] == [
        ("ana", "dispute_open", 100),
        ("ana", "refund", 101),
        ("bo", "adjust", 102),
        ("bo", "dispute_resolve", 103),
    ]
    assert (log[1]["before"]["amount"], log[1]["after"]["amount"]) == (400, 250)
    assert log[1]["reason"] == "goodwill" and log[0]["after"]["status"] == "open"
    with pytest.raises(clearing.ChargeError):
        clearing.refund(store, 7, day, 1000, "ana", "too much", 104)
    with pytest.raises(clearing.ChargeError):
        clearing.refund(store, 7, day + 1, 1, "ana", "no such charge", 104)
    with pytest.raises(clearing.ChargeError):
        clearing.dispute(store, 7, day, "resolve", "ana", "not open", 104)
    assert len(store.clearing_audit_log()) == 4


def test_import_of_a_reset_export_is_idempotent_and_clears_like_a_sync(store):
    from host_sim.backoffice.importing import import_export

    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)  # synced
    clearing.run(store, T, DAY0 + 60)
    export = []  # the gate's unsynced records, as `device reset --export` writes them
    for i, (t, st, d) in enumerate([(DAY0 + 600, 8, DIR_EXIT), (DAY0 + 900, 8, DIR_ENTRY)]):
        raw = records.Record(
            records.KIND_PASSAGE, 0, 1, 2 + i, t, MODE_METRO, d, st, 7, 1, 100 + i, 0, 0, g.prev
        ).to_bytes()
        g.prev = records.record_hash(raw)
        export.append(raw)
    data = b"".join(export)
    assert import_export(store, data, DAY0 + 1000) == {"records": 2, "new": 2, "devices": [1]}
    assert import_export(store, data, DAY0 + 1001) == {"records": 2, "new": 0, "devices": [1]}
    assert store.anomalies() == []
    s = clearing.run(store, T, DAY0 + 1000)
    assert (s["taps"], s["revised"]) == (2, 1)
    (c,) = store.clearing_charges(7)
    assert (c["amount"], c["revision"], c["open_journeys"]) == (400, 2, 1)
    with pytest.raises(records.FormatError):
        import_export(store, data[:-1], DAY0)
    bad = records.Record(records.KIND_PASSAGE, 0, 99, 1, DAY0).to_bytes()
    with pytest.raises(records.FormatError, match="not registered"):
        import_export(store, bad, DAY0)


def test_cli_corrections_and_the_audit_trail(store, tmp_path, capsys):
    import json

    from provisioning.cli.main import main

    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT)
    db = ("--db", store.path)
    at = ("--as-of", str(DAY0 + 86400))

    def run(*args):
        capsys.readouterr()
        code = main([*args, "--json"])
        return code, [json.loads(x) for x in capsys.readouterr().out.splitlines()]

    code, out = run("backoffice", "charges", *db, *at, "--revisions")
    assert code == 0 and out[0]["charged"] == 400 and out[0]["day"] == "2026-01-01"
    assert out[0]["revisions"][0]["explanation"][0]["rule"] == "metro.fares[2]"
    who = ("--operator", "ana", "--reason", "barrier was stuck")
    code, out = run("backoffice", "refund", *db, "7", "2026-01-01", "--amount", "1.50", *who)
    assert code == 0 and out[-1]["charge"]["amount"] == 250
    code, out = run("backoffice", "refund", *db, "7", "2026-01-01", "--amount", "9", *who)
    assert code == 2 and out[-1]["ok"] is False
    code, out = run("backoffice", "charges", *db, *at)
    assert (out[0]["charged"], out[0]["revision"], out[0]["adjusted"]) == (250, 2, -150)
    code, out = run("backoffice", "audit", *db)
    assert [(a["operator"], a["action"], a["reason"]) for a in out[:-1]] == [
        ("ana", "refund", "barrier was stuck")
    ]
    assert (out[0]["before"]["amount"], out[0]["after"]["amount"]) == (400, 250)


def test_a_refund_then_a_lower_reclear_never_owes_below_zero(store):
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_EXIT)  # exit with no entry: the maximum fare, 600
    clearing.run(store, T, DAY0 + 86400)
    day = store.clearing_charges(7)[0]["day"]
    clearing.refund(store, 7, day, 600, "ana", "goodwill: the whole day", 100)
    store.add_device(2, b"\x02" + bytes(32), DAY0)
    late = Gate(store)
    late.tap(7, DAY0 - 900, 8, DIR_ENTRY, device=2, counter=99)  # the entry, late: 400
    clearing.run(store, T, DAY0 + 2 * 86400)
    (c,) = store.clearing_charges(7)
    # 400 cleared - 600 refunded: owes 0, and the 200 refunded beyond the fare is kept apart
    assert (c["cleared"], c["adjusted"], c["amount"], c["excess"]) == (400, -600, 0, 200)
    revs = store.clearing_revisions(7, day)
    assert [(r["kind"], r["delta"], r["amount"]) for r in revs] == [
        ("charge", 600, 600),
        ("refund", -600, 0),
        ("adjustment", 0, 0),
    ]
    assert sum(r["delta"] for r in revs) == c["amount"]  # the deltas explain the amount
    with pytest.raises(clearing.ChargeError):  # nothing left to refund
        clearing.refund(store, 7, day, 1, "ana", "again", 101)
    late.tap(7, DAY0 + 4000, 1, DIR_ENTRY, device=2, counter=100)  # a second trip: +600
    clearing.run(store, T, DAY0 + 3 * 86400)
    (c,) = store.clearing_charges(7)
    assert (c["cleared"], c["amount"], c["excess"]) == (1000, 400, 0)  # the excess came back
    assert sum(r["delta"] for r in store.clearing_revisions(7, day)) == 400


def test_owed_is_exact_and_never_negative():
    assert clearing.owed(300, -300) == (0, 0)
    assert clearing.owed(250, -300) == (0, 50)
    assert clearing.owed(250, 0) == (250, 0)
    assert clearing.owed(400, -150) == (250, 0)


def test_the_explanation_is_the_json_of_the_journeys():
    import json

    g_taps = [  # every kind of journey's fields: complete, flagged, capped, missing parts
        (1, 0, 5, 1, 1, 0, DAY0, 1, DIR_ENTRY, 1, 1, 0, records.FLAG_OVER_LIMIT),
        (1, 0, 5, 2, 1, 0, DAY0 + 600, 8, DIR_EXIT, 1, 2, 0, records.FLAG_EMERGENCY),
        (1, 0, 5, 3, 1, 0, DAY0 + 900, 2, DIR_EXIT, 1, 3, 0, 0),
        (1, 0, 5, 4, 1, 0, DAY0 + 950, 2, DIR_EXIT, 1, 3, 0, 0),
        (1, 0, 5, 5, 1, 0, DAY0 + 990, 2, DIR_ENTRY, 1, 5, 0, records.FLAG_CLOCK_UNTRUSTED),
    ]
    rows = [(9, MODE_METRO) + t[2:] for t in g_taps]
    js = clearing.journeys(9, [clearing.tap(r) for r in rows], _t(daily_cap=500), DAY0 + 86400)
    assert {j["status"] for j in js} >= {"complete", "missing_entry", "fraud_copy", "held_clock"}
    want = json.dumps(
        [{k: j[k] for k in clearing._EXPLAIN} for j in js], sort_keys=True, separators=(",", ":")
    )
    assert clearing.day_charge(js)["explanation"] == want


def test_an_incremental_run_agrees_with_a_full_reclear(store):
    g = Gate(store)
    for account, day in ((7, 0), (7, 20), (9, 0), (9, 20), (11, 3)):
        g.tap(account, DAY0 + day * 86400, 1, DIR_ENTRY)
        g.tap(account, DAY0 + day * 86400 + 600, 8, DIR_EXIT)
    clearing.run(store, T, DAY0 + 30 * 86400)
    # late taps far apart in time, read in one chunk: 7's early, 9's recent
    g.tap(7, DAY0 + 86400, 4, DIR_EXIT)
    g.tap(9, DAY0 + 21 * 86400, 2, DIR_ENTRY)
    s = clearing.run(store, T, DAY0 + 30 * 86400)
    assert (s["accounts"], s["taps"]) == (2, 2) and s["new"] == 2
    before = store.clearing_charges()
    again = clearing.run(store, T, DAY0 + 30 * 86400, full=True)
    assert (again["new"], again["revised"]) == (0, 0), again
    assert store.clearing_charges() == before


def test_two_issuers_account_7_are_two_riders(store):
    # issuer 1's account 7 enters, issuer 5's account 7 leaves: not one journey, and the same
    # (account, credential, counter) at both issuers is no copy
    g = Gate(store)
    g.tap(7, DAY0, 1, DIR_ENTRY, counter=1, issuer=1)
    g.tap(7, DAY0 + 600, 8, DIR_EXIT, counter=1, issuer=5)
    g.tap(7, DAY0 + 900, 1, DIR_ENTRY, counter=2, issuer=1)
    g.tap(7, DAY0 + 1500, 8, DIR_EXIT, counter=3, issuer=1)
    js = _clear(store)
    keys = {records.account_key(1, 7), records.account_key(5, 7)}
    assert {j["account_id"] for j in js} == keys
    by = {k: [(j["status"], j["fare"]) for j in js if j["account_id"] == k] for k in keys}
    assert by[records.account_key(1, 7)][-1] == ("complete", 400)
    assert all(st != "complete" for st, _f in by[records.account_key(5, 7)])
    assert "replay" not in store.anomaly_counts()
    assert records.split_account_key(records.account_key(5, 7)) == (5, 7)
    assert records.account_key(0, 7) == 7  # records of before several issuers: as they were
