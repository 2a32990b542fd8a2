"""Clearing's bus rules (host_sim/backoffice/clearing_bus.py): flat fares per boarding, fares
by stops travelled with tap-on / tap-off, stale and unknown stops, transfer discounts bus to
bus and bus to metro within a window; on SQLite and PostgreSQL, through the real ingest path
and the published, explained charges."""

import json
import os

import pytest

from host_sim.backoffice import clearing, clearing_bus
from host_sim.backoffice.store import Store
from protocol.records import DIR_ENTRY, DIR_EXIT, FLAG_EMERGENCY, MODE_METRO
from tests.test_clearing import DAY0, Gate

BUS = clearing_bus.MODE_BUS
STALE = clearing_bus.FLAG_STOP_STALE
TARIFF_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "host_sim",
    "scenarios",
    "tariffs",
    "bus.toml",
)
T = clearing.load_tariff(TARIFF_FILE)  # fare by stops
FLAT = clearing.load_tariff(None)  # the default [bus]: flat 200


@pytest.fixture
def store(store_target):
    s = Store(store_target)
    s.add_device(1, b"\x02" + bytes(32), DAY0)
    yield s
    s.close()


def _js(store, tariff, as_of=DAY0 + 86400 * 2):
    js = clearing.clear(store, tariff, as_of)
    keys = [tuple(k) for j in js for k in j["records"]]
    assert len(keys) == len(set(keys)), "a tap was charged twice"
    return js


def _rows(js):
    return [(j["account_id"], j["status"], j["fare"], j["rule"], j["flags"]) for j in js]


def test_flat_fare_per_boarding_and_tap_offs_cost_nothing(store):
    g = Gate(store)
    g.tap(7, DAY0, 101, DIR_ENTRY, mode=BUS)
    g.tap(7, DAY0 + 600, 104, DIR_EXIT, mode=BUS)  # attached to its boarding
    g.tap(7, DAY0 + 3 * 3600, 104, DIR_ENTRY, mode=BUS)  # out of the transfer window
    g.tap(8, DAY0 + 100, 105, DIR_EXIT, mode=BUS)  # a tap-off alone
    g.tap(9, DAY0 + 200, 101, DIR_ENTRY, mode=BUS, flags=FLAG_EMERGENCY)
    js = _js(store, FLAT)
    assert _rows(js) == [
        (7, "complete", 200, "bus.flat_fare", []),
        (8, "tap_off_only", 0, "bus.flat_fare", []),
        (9, "emergency", 0, "emergency", []),
        (7, "complete", 200, "bus.flat_fare", []),
    ]
    assert js[0]["exit"]["station"] == 104 and len(js[0]["records"]) == 2


def test_fares_by_stops_travelled_on_the_route(store):
    g = Gate(store)
    trips = [(101, 103), (101, 108), (110, 101), (201, 204), (105, 105)]
    for i, (on, off) in enumerate(trips):
        account = 10 + i
        g.tap(account, DAY0 + i, on, DIR_ENTRY, mode=BUS)
        g.tap(account, DAY0 + i + 900, off, DIR_EXIT, mode=BUS)
    got = [(j["account_id"], j["fare"], j["rule"]) for j in _js(store, T)]
    assert got == [
        (10, 150, "bus.band_fares[0]"),  # 2 stops
        (11, 220, "bus.band_fares[1]"),  # 7
        (12, 300, "bus.band_fares[2]"),  # 9, the other way
        (13, 220, "bus.band_fares[1]"),  # 4 on route 32
        (14, 150, "bus.band_fares[0]"),  # 0: off where boarded
    ]
    assert clearing_bus.stops_travelled(101, 203, T["bus"]["routes"]) is None  # no common route


def test_missing_taps_stale_and_unknown_stops(store):
    g = Gate(store)
    g.tap(20, DAY0, 101, DIR_ENTRY, mode=BUS)
    g.tap(20, DAY0 + 600, 102, DIR_ENTRY, mode=BUS)  # boarded again with no tap-off
    g.tap(20, DAY0 + 1200, 104, DIR_EXIT, mode=BUS)
    g.tap(21, DAY0 + 10, 103, DIR_EXIT, mode=BUS)  # tap-off without tap-on
    g.tap(22, DAY0 + 20, 101, DIR_ENTRY, mode=BUS, flags=STALE)  # no GNSS fix at boarding
    g.tap(22, DAY0 + 900, 106, DIR_EXIT, mode=BUS)
    g.tap(23, DAY0 + 30, 101, DIR_ENTRY, mode=BUS)
    g.tap(23, DAY0 + 900, 999, DIR_EXIT, mode=BUS)  # a stop on no route
    g.tap(24, DAY0 + 40, 101, DIR_ENTRY, mode=BUS)  # still on board at as_of
    g.tap(25, DAY0 + 50, 101, DIR_ENTRY, mode=BUS)  # never tapped off
    js = _js(store, T, as_of=DAY0 + 1800)
    assert sorted(_rows(js))[:6] == [
        (20, "complete", 150, "bus.band_fares[0]", []),  # a penalty begins no transfer chain
        (20, "missing_exit", 300, "bus.max_fare", []),
        (21, "missing_entry", 300, "bus.max_fare", []),
        (22, "complete", 200, "bus.flat_fare", ["stop_unknown"]),
        (23, "complete", 200, "bus.flat_fare", ["stop_unknown"]),
        (24, "open", 0, "open", []),
    ]
    later = {j["account_id"]: j["status"] for j in _js(store, T, as_of=DAY0 + 3 * 3600)}
    assert later[24] == later[25] == "missing_exit"


def test_transfers_bus_to_bus_and_bus_to_metro_within_the_window(store):
    g = Gate(store)
    g.tap(30, DAY0, 101, DIR_ENTRY, mode=BUS)  # begins the chain
    g.tap(30, DAY0 + 600, 105, DIR_EXIT, mode=BUS)  # 4 stops: 220
    g.tap(30, DAY0 + 900, 105, DIR_ENTRY, mode=BUS)  # route 32: transfer, 150 off
    g.tap(30, DAY0 + 1500, 204, DIR_EXIT, mode=BUS)  # 2 stops: 150 - 150 = 0
    g.tap(30, DAY0 + 2000, 1, DIR_ENTRY, mode=MODE_METRO)  # the metro: 100 off
    g.tap(30, DAY0 + 2600, 5, DIR_EXIT, mode=MODE_METRO)  # 1 zone: 320 - 100
    g.tap(30, DAY0 + 3000, 5, DIR_ENTRY, mode=MODE_METRO)  # a third: past max_transfers
    g.tap(30, DAY0 + 3300, 7, DIR_EXIT, mode=MODE_METRO)
    g.tap(30, DAY0 + 5000, 1, DIR_ENTRY, mode=MODE_METRO)  # a metro trip alone begins no chain
    g.tap(30, DAY0 + 5600, 3, DIR_EXIT, mode=MODE_METRO)
    g.tap(30, DAY0 + 6000, 101, DIR_ENTRY, mode=BUS)  # out of the first window: a new chain
    g.tap(30, DAY0 + 6600, 103, DIR_EXIT, mode=BUS)
    js = _js(store, T)
    assert [(j["mode"], j["fare"], j["rule"], j["flags"]) for j in js] == [
        ("bus", 220, "bus.band_fares[1]", []),
        ("bus", 0, "bus.band_fares[0]+bus.transfer_bus", ["transfer"]),
        ("metro", 220, "metro.fares[1]+bus.transfer_metro", ["transfer"]),
        ("metro", 250, "metro.fares[0]", []),
        ("metro", 250, "metro.fares[0]", []),
        ("bus", 150, "bus.band_fares[0]", []),
    ]
    # the published charge of the day, explained journey by journey
    clearing.run(store, T, DAY0 + 86400)
    [c] = store.clearing_charges()
    assert c["amount"] == 220 + 0 + 220 + 250 + 250 + 150
    explained = json.loads(store.clearing_revisions(c["account_id"], c["day"])[-1]["explanation"])
    assert [e["rule"] for e in explained] == [j["rule"] for j in js]
    assert explained[1]["entry"]["station"] == 105 and explained[1]["exit"]["station"] == 204


def test_a_late_tap_off_revises_the_charge_and_incremental_agrees_with_full(store):
    g = Gate(store)
    g.tap(40, DAY0, 101, DIR_ENTRY, mode=BUS)
    clearing.run(store, T, DAY0 + 600)
    [c] = store.clearing_charges()
    assert (c["amount"], c["open_journeys"]) == (0, 1)  # on board: nothing owed yet
    g.tap(40, DAY0 + 900, 109, DIR_EXIT, mode=BUS)  # the tap-off arrives at the next sync
    g.tap(40, DAY0 + 1000, 1, DIR_ENTRY, mode=MODE_METRO)
    g.tap(40, DAY0 + 1500, 3, DIR_EXIT, mode=MODE_METRO)
    s = clearing.run(store, T, DAY0 + 2000)
    assert s["revised"] == 1
    [c] = store.clearing_charges()
    assert c["amount"] == 220 + 150 and c["revision"] == 2
    before = store.clearing_charges()
    clearing.run(store, T, DAY0 + 2000, full=True)
    assert store.clearing_charges() == before


def test_bad_bus_tariffs_are_refused(tmp_path):
    for body, problem in (
        ('[bus]\nfare = "zones"\n', "flat"),
        ("[bus]\nstop_bands = [5, 3]\n", "rising"),
        ("[bus]\nband_fares = [1, 2]\n", "one amount more"),
        ("[bus]\nflat_fare = -1\n", "amount"),
        ('[bus]\nroutes = { "x" = [1] }\n', "route number"),
        ("[bus]\nwindow = 5\n", "unknown key"),
    ):
        p = tmp_path / "t.toml"
        p.write_text(body)
        with pytest.raises(clearing.TariffError, match=problem):
            clearing.load_tariff(str(p))
