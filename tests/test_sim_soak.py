"""`make soak`: the station simulator over many seeds. Every shipped scenario with faults must
hold every invariant whatever the seed; a failure names the seed and the command to replay it."""

import os

import pytest

from host_sim.station import report as reports
from host_sim.station import scenario
from host_sim.station.simulation import Simulation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [("default", seed) for seed in range(1, 31)] + [
    ("hostile_day", seed) for seed in range(1, 11)
]


@pytest.mark.soak
@pytest.mark.parametrize("name, seed", CASES)
def test_invariants_hold_for_every_seed(tmp_path, name, seed):
    path = os.path.join("host_sim", "scenarios", name + ".toml")
    sc = scenario.load(os.path.join(ROOT, path))
    if name == "hostile_day":
        sc["duration_s"] = 3600
    report = Simulation(sc, seed, str(tmp_path / "work")).run()
    assert report["ok"], "\n".join(reports.failure_lines(report, path))
