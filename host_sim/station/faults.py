"""Which faults strike a simulated station, when, where and for how long.

    for fault in plan(scenario, rng, gate_names):   # sorted by time
        ...  # {"t_s", "kind", "gate" | "gates", "duration_s", "jump_s", "tear"}

The counts in [faults] are spread uniformly over 5%..90% of the run at times drawn from `rng`
(the run's "faults" stream), each on a gate drawn from it too; [[fault]] entries come at their
fixed times, on their named gate (or a drawn one; a fixed partition without a gate cuts off
every gate). What each kind does to the station is the simulator's part
(host_sim/station/simulation.py `_fault`); docs/scenarios.md describes them.
"""

import random
from typing import Any

from host_sim.station.scenario import ScenarioError

# kind -> (count key, range key of its length or size, what the range gives)
SEEDED = {
    "power_cut": ("power_cuts", "power_off_s", "duration_s"),
    "backoffice_outage": ("backoffice_outages", "outage_s", "duration_s"),
    "partition": ("partitions", "partition_s", "duration_s"),
    "clock_jump": ("clock_jumps", "clock_jump_s", "jump_s"),
    "disk_full": ("disk_full", "disk_full_s", "duration_s"),
    "barrier_jam": ("barrier_jams", "jam_clear_s", "duration_s"),
}


def plan(scenario: dict[str, Any], rng: random.Random, names: list[str]) -> list[dict[str, Any]]:
    f = scenario["faults"]
    span = int(scenario["duration_s"])
    lo, hi = int(span * 0.05), max(int(span * 0.9), 1)
    out: list[dict[str, Any]] = []
    for kind, (count, size, field) in SEEDED.items():
        times = sorted(rng.randint(lo, hi) for _ in range(int(f[count])))
        for t in times:
            r = f[size]
            out.append({"t_s": t, "kind": kind, field: int(rng.uniform(r[0], r[1]))})
    for fixed in scenario["fault"]:
        entry = {"t_s": int(fixed["at_s"]), "kind": fixed["kind"]}
        entry["jump_s" if fixed["kind"] == "clock_jump" else "duration_s"] = int(
            fixed["jump_s"] if fixed["kind"] == "clock_jump" else fixed["duration_s"]
        )
        if fixed["gate"]:
            if fixed["gate"] not in names:
                raise ScenarioError(
                    "fault %s names gate %r; gates are %s"
                    % (fixed["kind"], fixed["gate"], ", ".join(names))
                )
            entry["gate"] = fixed["gate"]
        elif fixed["kind"] == "partition":
            entry["gates"] = list(names)
        out.append(entry)
    for entry in out:
        kind = entry["kind"]
        if kind == "partition":
            if "gate" in entry:
                entry["gates"] = [entry.pop("gate")]
            elif "gates" not in entry:
                k = min(int(f["partition_gates"]), len(names))
                entry["gates"] = sorted(rng.sample(names, k))
        elif kind != "backoffice_outage" and "gate" not in entry:
            entry["gate"] = rng.choice(names)
        if kind == "power_cut":
            entry["tear"] = rng.random() < float(f["torn_write_rate"])
    out.sort(key=lambda e: e["t_s"])  # stable: equal times keep their order
    return out
