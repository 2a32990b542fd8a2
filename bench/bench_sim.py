"""P8 of TARGETS.md: one simulated rush hour of a 10-gate station (scenarios/rush_hour.toml),
and a working day on a line of six stations (scenarios/line.toml: commuters' round trips,
cleared at the end with the money invariant checked).

The scenario runs twice with the same seed, headless (no plots), on the repository's disk: the
rows give the wall time of the first run, its accepted passages per wall second, and whether
the two runs wrote byte-identical report.json and junit.xml. The reference for the rate is
measured in the same process: the same firmware accepting pre-minted codes one after another
with nothing around it (validator, journal with fsync, replay cache, time anchor), so the
ratio says how much of the bare firmware's speed the whole simulation keeps.
"""

import os
import shutil
import time

from bench.util import row, scratch
from host_sim.station import scenario
from provisioning.cli.sim import run_scenario

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUSH = os.path.join(ROOT, "host_sim", "scenarios", "rush_hour.toml")
LINE = os.path.join(ROOT, "host_sim", "scenarios", "line.toml")
SEED = 1


def bare_rate(n: int = 2000) -> float:
    """Accepted codes per second through one gate's firmware alone."""
    from host_sim.station.simulation import Simulation

    d = scratch("bench-sim-")
    try:
        sc = scenario.from_dict(
            {"lanes": [{"kind": "metro"}], "riders": {"population": n}, "denylist": {"initial": 0}},
            "bare",
        )
        sim = Simulation(sc, SEED, d)
        gate = sim.slots[0].dev.gate
        pop = sim.population
        now = sim.clock.now()
        codes = [pop.code(pop.person("rider", i), "valid", now) for i in range(n)]
        on_scan = type(gate).on_scan  # the firmware's own, without the simulator's probes
        t0 = time.perf_counter()
        for text in codes:
            decision = on_scan(gate, text)
            if not decision.accept:
                raise AssertionError("a good code was refused: %s" % decision.reason)
            gate.on_event("passage_fwd")  # the rider walked through: ready for the next
        return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _read(out: str) -> tuple[bytes, bytes]:
    with open(os.path.join(out, "report.json"), "rb") as f:
        a = f.read()
    with open(os.path.join(out, "junit.xml"), "rb") as f:
        b = f.read()
    return a, b


def p8() -> list[dict]:
    import json

    ref = bare_rate()
    d = scratch("bench-sim-")
    try:
        walls, files, report = [], [], {}
        for i in range(2):
            out = os.path.join(d, "run%d" % i)
            t0 = time.perf_counter()
            code = run_scenario(RUSH, SEED, out, plots=False)
            walls.append(time.perf_counter() - t0)
            if code != 0:
                raise AssertionError("the rush hour broke an invariant: see %s" % out)
            files.append(_read(out))
            if i == 0:
                report = json.loads(files[0][0])
        same = files[0] == files[1]
        accepted = report["totals"]["accepted"]
        wall = walls[0]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [
        row(
            "P8",
            "rush hour, 10 gates, %d passages: wall time (runs: %s s)"
            % (accepted, ", ".join("%.1f" % w for w in walls)),
            wall,
            "s",
            None,
            "<= 60 s, >= 20,000 passages",
        ),
        row(
            "P8",
            "passages per wall second (ref: bare firmware, one gate)",
            accepted / wall,
            "passages/s",
            ref,
            ">= 333/s (20,000 in 60 s)",
        ),
        row(
            "P8",
            "same seed -> byte-identical report.json and junit.xml",
            1.0 if same else 0.0,
            "yes=1",
            None,
            "1",
        ),
    ]


def p8_line() -> list[dict]:
    """The line scenario once, headless: wall time, passages, stations, and the money check."""
    import json

    d = scratch("bench-line-")
    try:
        out = os.path.join(d, "run")
        t0 = time.perf_counter()
        code = run_scenario(LINE, SEED, out, plots=False)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    accepted = report["totals"]["accepted"]
    stations = len({lane["station"] for lane in report["config"]["lanes"]})
    broken = [i["name"] for i in report["invariants"] if not i["ok"]]
    check = report["money"]["check"]
    return [
        row(
            "P8",
            "line of %d stations, %d gates, %d passages, %d riders cleared: wall time%s"
            % (
                stations,
                report["totals"]["gates"],
                accepted,
                check.get("riders_checked", 0),
                "" if code == 0 else " (BROKEN: %s)" % ", ".join(broken),
            ),
            wall,
            "s",
            None,
            "<= 60 s, >= 5 stations, >= 50,000 passages",
        ),
        row(
            "P8",
            "line: riders charged other than the tariff of their true journeys "
            "(%d of them with no copy of their codes in circulation)"
            % check.get("riders_charged_wrong_not_copied", -1),
            check.get("riders_charged_wrong", -1),
            "riders",
            None,
            "0",
        ),
    ]


def p8_all() -> list[dict]:
    return p8() + p8_line()


BENCHES = {"P8": p8_all}
