"""Scenario files: docs/scenarios.md documents every key the schema has (and nothing else), the
shipped scenarios load and run clean, and bad files are refused with the key that is wrong.

Regenerate the key tables in docs/scenarios.md with

    PYTHONPATH=. .venv/bin/python -m tests.test_sim_scenarios
"""

import glob
import os
import re

import pytest

from host_sim.station import busroute, scenario, unattended
from host_sim.station import report as report_mod
from host_sim.station.simulation import Simulation
from provisioning.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "scenarios.md")
# the stations (bus routes, with a [route] table, have their own runner: tests/test_sim_bus.py)
SHIPPED = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "host_sim", "scenarios", "*.toml"))
    if not busroute.is_route_file(p) and not unattended.site_kind(p)
)
PATTERN = re.compile(r"<!-- keys:(\w+) -->\n(.*?)\n<!-- /keys -->", re.S)


def test_docs_list_every_key_with_its_default():
    with open(DOC) as f:
        blocks = {m.group(1): m.group(2) for m in PATTERN.finditer(f.read())}
    assert sorted(blocks) == sorted(scenario.DOC_SECTIONS)
    for section in scenario.DOC_SECTIONS:
        assert blocks[section] == scenario.doc_table(section), (
            "docs/scenarios.md is out of date for [%s]: run python -m tests.test_sim_scenarios"
            % section
        )


def test_every_shipped_scenario_loads_and_is_documented():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {
        "default.toml",
        "rush_hour.toml",
        "quiet_day.toml",
        "backoffice_outage.toml",
        "hostile_day.toml",
    } <= names
    with open(DOC) as f:
        doc = f.read()
    for path in SHIPPED:
        sc = scenario.load(path)
        assert sc["name"] == os.path.basename(path)[:-5]
        assert "`%s`" % os.path.basename(path) in doc


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: os.path.basename(p)[:-5])
def test_the_first_minutes_of_each_shipped_scenario_hold_every_invariant(tmp_path, path):
    sc = scenario.load(path)
    sc["duration_s"] = 420
    sc["drain_s"] = 60
    sc["riders"]["away_s"] = [60, 300]  # walk-ins come back within these minutes
    sim = Simulation(sc, 3, str(tmp_path / "work"))
    report = sim.run()
    assert report["ok"], [i for i in report["invariants"] if not i["ok"]]  # the money ones too
    assert report["totals"]["scans"] > 0
    # riders travel: their charges were checked against their true journeys, and what the back
    # office charged is mostly fares, not penalties for taps that never happened. (Left out:
    # the riders with a journey held for an untrusted gate clock, who are not compared.)
    mo = report["money"]
    assert mo["check"]["riders_checked"] > 0
    journeys = sim.clearing["journeys"]
    held = {j["account_id"] for j in journeys if j["status"] == "held_clock"}
    penalties = sum(
        j["charged"]
        for j in journeys
        if j["status"] in report_mod.PENALTY_STATUSES and j["account_id"] not in held
    )
    assert mo["revenue"] > 0 and penalties * 5 <= mo["revenue"], mo["by_kind"]


def test_defaults_fill_in_and_times_parse():
    sc = scenario.from_dict({"lanes": [{"kind": "parking"}]}, "x")
    assert sc["name"] == "x"
    assert sc["start"] == scenario.parse_time("2026-01-12T06:30:00Z") == 1768199400
    lane = sc["lanes"][0]
    assert lane["name"] == "parking-entry" and lane["barrier_open_ms"] == 1500
    assert sc["faults"]["power_cuts"] == 0 and sc["gate"]["window_s"] == 60
    assert scenario.gate_names(sc) == ["parking-entry-1"]


@pytest.mark.parametrize(
    "toml, problem",
    [
        ("", "[[lanes]]: a scenario needs at least one lane group"),
        ("durations = 3\n[[lanes]]\n", "durations: unknown key"),
        ("[[lanes]]\nkind = 'tram'\n", "lanes[0].kind: 'tram' is not one of"),
        ("[[lanes]]\ngates = 0\n", "lanes[0].gates: must be at least 1"),
        ("[[lanes]]\nprofile = 'rush'\n", "lanes[0].profile: 'rush' is not defined"),
        ("[[lanes]]\n[riders]\nwalk_speed = [2, 1]\n", "riders.walk_speed: must be [low, high]"),
        ("[[lanes]]\n[faults]\npower_cuts = -1\n", "faults.power_cuts: must not be negative"),
        ("[[lanes]]\n[faults]\npower_cut = 1\n", "faults.power_cut: unknown key"),
        ("start = '2026-01-12 07:00'\n[[lanes]]\n", "start: give the time zone"),
        ("[[lanes]]\n[profiles]\nx = [[0, 1], [12, 1]]\n", "profiles.x: hours must rise from 0"),
        ("[[lanes]]\n[[fault]]\nkind = 'meteor'\n", "fault[0].kind: 'meteor' is not one of"),
        (
            "[[lanes]]\n[mix]\nvalid = 0\nexpired = 0\nforged = 0\nscreenshot = 0\ndenied = 0\n"
            "tailgating = 0\nclock_off = 0\n",
            "mix: at least one share must be above 0",
        ),
        ("step_ms = 500\n[[lanes]]\n", "step_ms: must be between 10 and 200"),
        ("[[lanes]\n", "Expected ']]'"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_key(tmp_path, capsys, toml, problem):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["sim", "run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("faregate: error: %s: " % path), err
    assert problem in err[0] and "(fix: " in err[0]


def test_a_fixed_fault_naming_an_unknown_gate_is_refused(tmp_path, capsys):
    path = tmp_path / "f.toml"
    path.write_text("[[lanes]]\n[[fault]]\nkind = 'power_cut'\ngate = 'metro-entry-9'\n")
    assert main(["sim", "run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "names gate 'metro-entry-9'; gates are metro-entry-1" in err


def test_out_never_empties_a_directory_that_is_not_a_simulation(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text("duration_s = 60\n[[lanes]]\n")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["sim", "run", str(path), "--out", str(precious), "--no-plots"]) == 2
    assert "holds no earlier simulation" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "out"
    assert main(["sim", "run", str(path), "--out", str(out), "--no-plots"]) == 0
    (out / "stale.txt").write_text("from an earlier run")
    assert main(["sim", "run", str(path), "--out", str(out), "--no-plots"]) == 0
    assert not (out / "stale.txt").exists() and (out / "report.json").exists()


def test_a_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["sim", "run", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


if __name__ == "__main__":
    with open(DOC) as f:
        text = f.read()
    text = PATTERN.sub(
        lambda m: (
            "<!-- keys:%s -->\n%s\n<!-- /keys -->" % (m.group(1), scenario.doc_table(m.group(1)))
        ),
        text,
    )
    with open(DOC, "w") as f:
        f.write(text)
    print("updated", DOC)


def test_fault_plan_spreads_seeded_faults_and_keeps_fixed_ones():
    import random

    from host_sim.station import faults

    sc = scenario.from_dict(
        {
            "duration_s": 10000,
            "lanes": [{"kind": "metro", "gates": 3}],
            "faults": {"power_cuts": 4, "partitions": 2, "partition_gates": 2, "clock_jumps": 1},
            "fault": [
                {"kind": "partition", "at_s": 50, "duration_s": 60},
                {"kind": "clock_jump", "at_s": 9999, "jump_s": -120, "gate": "metro-entry-2"},
            ],
        },
        "f",
    )
    names = scenario.gate_names(sc)
    plan = faults.plan(sc, random.Random(1), names)
    assert plan == faults.plan(sc, random.Random(1), names)  # one seed, one plan
    assert plan != faults.plan(sc, random.Random(2), names)
    kinds = [f["kind"] for f in plan]
    assert kinds.count("power_cut") == 4 and kinds.count("partition") == 3
    assert [f["t_s"] for f in plan] == sorted(f["t_s"] for f in plan)
    seeded = [f for f in plan if f["t_s"] not in (50, 9999)]
    assert all(500 <= f["t_s"] <= 9000 for f in seeded)
    assert all(f["gate"] in names and "tear" in f for f in plan if f["kind"] == "power_cut")
    assert all(20 <= f["duration_s"] <= 120 for f in plan if f["kind"] == "power_cut")
    assert plan[0] == {"t_s": 50, "kind": "partition", "duration_s": 60, "gates": names}
    assert plan[-1] == {"t_s": 9999, "kind": "clock_jump", "jump_s": -120, "gate": names[1]}
    assert all(len(f["gates"]) == 2 for f in seeded if f["kind"] == "partition")
