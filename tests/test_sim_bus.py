"""The bus route simulator (host_sim/station/busroute.py) on host_sim/scenarios/bus.toml: real bus
validators on vehicles, riders boarding and alighting, coverage gaps and tunnels; every
invariant holds, the money invariant prices every rider's true journeys (transfers included),
and one seed gives one report. Then the money invariant's own bus pricing, on journeys
written out by hand, so a wrong clearing could not pass it unseen."""

import json
import os

import pytest

from host_sim.backoffice import clearing
from host_sim.station import busroute, invariants
from host_sim.station.scenario import ScenarioError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "host_sim", "scenarios", "bus.toml")
TARIFF = clearing.load_tariff(os.path.join(ROOT, "host_sim", "scenarios", "tariffs", "bus.toml"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bus")
    rc = busroute.run_file(busroute.load(SCENARIO), 1, str(out), False)
    with open(out / "report.json") as f:
        rep = json.load(f)
    rep["rc"] = rc
    return rep


def test_the_bus_route_runs_and_every_invariant_holds(report):
    assert report["rc"] == 0 and report["ok"]
    assert [i["name"] for i in report["invariants"] if not i["ok"]] == []
    assert report["money"]["riders_checked"] == report["riders"] > 300
    assert report["money"]["riders_charged_wrong"] == 0
    assert report["backoffice"]["missing"] == report["backoffice"]["unexpected"] == 0


def test_what_the_route_exercised(report):
    c = report["counts"]
    assert c["boarded"] == c["alighted"] and c["transfers"] > 10 and c["forgot_tap_off"] > 5
    ev = report["events"]
    assert ev["stop_reached"] > 100 and ev["gnss_fix"] >= ev["gnss_lost"] > 10
    assert report["stale_stop_passages"] > 0  # stop 109 is underground
    for name, s in report["sync"].items():  # the coverage gap breaks some sessions
        assert s["ok"] > 10 and s["failed"] > 0, name
    rules = report["clearing"]["rules"]
    for rule in (
        "bus.band_fares[0]",
        "bus.band_fares[1]",
        "bus.band_fares[0]+bus.transfer_bus",
        "bus.max_fare",
        "bus.flat_fare",
    ):
        assert rules.get(rule), rule


def test_one_seed_one_report(report, tmp_path):
    busroute.run_file(busroute.load(SCENARIO), 1, str(tmp_path), False)
    with open(tmp_path / "report.json") as f:
        again = json.load(f)
    again["rc"] = report["rc"]
    assert again == report


def test_a_bad_scenario_names_its_key(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text('[route]\nstops = "101:48.1:11.5"\n')
    with pytest.raises(ScenarioError, match="at least two"):
        busroute.load(str(p))
    p.write_text('[vehicles]\ncount = 1\nspeed = 3\n[route]\nstops = "1:1:1;2:1.1:1"\n')
    with pytest.raises(ScenarioError, match="speed"):
        busroute.load(str(p))


def _j(frm, to, t_on, t_off, on=True, off=True, mode="bus", stale=False):
    return {
        "mode": mode,
        "from": frm,
        "to": to,
        "entry_t": t_on,
        "exit_t": t_off,
        "entry_tapped": on,
        "exit_tapped": off,
        "stale": stale,
    }


def test_the_money_invariant_prices_bus_journeys_on_its_own():
    t = 1_767_254_400
    js = [
        _j(101, 105, t, t + 600),  # 4 stops: 220
        _j(105, 204, t + 900, t + 1500),  # transfer: 150 - 150
        _j(1, 5, t + 2000, t + 2600, mode="metro"),  # transfer to the metro: 320 - 100
        _j(5, 7, t + 3000, t + 3300, mode="metro"),  # past max_transfers: 250
        _j(101, 109, t + 8000, None, off=False),  # a tap-off forgotten, not the last: 300
        _j(109, 110, t + 9000, t + 9100, stale=True),  # a stale stop: the flat fare, 200
        _j(101, 103, t + 9500, None, off=False),  # the last, still on board: 0 for now
    ]
    got = invariants.expected_charges(js, TARIFF, t + 10000)
    assert got == {"bus": 220 + 0 + 300 + 200 + 0, "metro": 220 + 250}
    flat = clearing.load_tariff(None)
    assert invariants.expected_charges(js[:2], flat, t + 10000) == {"bus": 200 + 0}


def _doc_block():
    import re

    with open(os.path.join(ROOT, "docs", "scenarios.md")) as f:
        text = f.read()
    m = re.search(r"<!-- busroute:keys -->\n(.*?)<!-- /busroute:keys -->", text, re.S)
    assert m, "docs/scenarios.md has no busroute:keys block"
    return text, m


def test_docs_list_every_bus_route_key():
    _text, m = _doc_block()
    assert m.group(1) == busroute.doc_table() + "\n", (
        "docs/scenarios.md: the bus route keys are stale; run python -m tests.test_sim_bus"
    )


if __name__ == "__main__":  # rewrite the block
    text, m = _doc_block()
    with open(os.path.join(ROOT, "docs", "scenarios.md"), "w") as f:
        f.write(text[: m.start(1)] + busroute.doc_table() + "\n" + text[m.end(1) :])
