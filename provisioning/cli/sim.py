"""`faregate sim ...`: run a simulated station (and the single-gate simulators)."""

import argparse
import json
import os
import sys
from typing import Any

from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import Group
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError

RUN_HELP = """\
Run a whole station from a scenario file, headless, on a virtual clock (a simulated hour takes
seconds): metro entry and exit gates, parking lanes and store doors running the real firmware on
simulated hardware, riders arriving through the day with a mix of good and bad codes, the back
office on a real SQLite file, and faults drawn from the seed (power cuts, back-office outages,
partitions, clock jumps, full disks, barrier jams). The scenario format is in docs/scenarios.md;
examples are in host_sim/scenarios/.

Invariants are checked during the run and after recovery; if one breaks, the command prints it,
the seed and the exact command that reproduces it, and exits 1.

Writes to --out: report.json and junit.xml (byte-identical for the same scenario and seed),
summary.txt, wall.json (wall-clock figures, not reproducible), PNG plots, and work/ (each gate's
state directory and the back office's backoffice.sqlite, kept for inspection).
"""


def register(sub: Any) -> None:
    g = Group(sub, "sim", "run simulated stations", __doc__)
    r = g.add(
        "run",
        "run a scenario: gates, riders, back office; print a summary",
        with_events(cmd_run),
        RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("scenario", help="scenario TOML file (e.g. host_sim/scenarios/default.toml)")
    r.add_argument(
        "--seed", type=int, default=1, help="seed for riders, faults and the network (default 1)"
    )
    r.add_argument(
        "--out",
        default=None,
        help="report and work directory (default run/<scenario>-<seed>); emptied first",
    )
    r.add_argument(
        "--json",
        action="store_true",
        help="print report.json's content (one line) and then the result event, instead of the "
        "summary",
    )
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots (faster)")
    r.add_argument(
        "--mesh",
        action="store_true",
        help="turn the station mesh on for this run ([mesh] enabled = true: gates announce "
        "accepted passages to their station's other gates, which refuse copies as replayed; "
        "docs/mesh.md); the report gains a mesh line",
    )
    from provisioning.cli import sim_device as sim_device_cli

    sim_device_cli.register(g.subparsers)


def cmd_run(args: argparse.Namespace, events: Events) -> int:
    return run_scenario(
        args.scenario,
        args.seed,
        args.out,
        as_json=args.json,
        plots=not args.no_plots,
        events=events,
        mesh=args.mesh,
    )


def run_scenario(
    path: str,
    seed: int,
    out: str | None = None,
    as_json: bool = False,
    plots: bool = True,
    tamper: Any = None,
    events: Events | None = None,
    mesh: bool = False,
) -> int:
    """Run one scenario and write its reports; the exit code (0, or 1 if an invariant broke).
    `tamper` (tests only) swaps a deliberately buggy component in:
    host_sim.station.simulation.Tamper."""
    import shutil
    import time

    from host_sim.station import busroute
    from host_sim.station import report as reports
    from host_sim.station.scenario import load
    from host_sim.station.simulation import Simulation

    if busroute.is_route_file(path):  # a bus route: vehicles, not a station (its own runner)
        return busroute.run_file(busroute.load(path), seed, out, as_json)
    from host_sim.station import unattended

    if unattended.site_kind(path):  # a car park by plate or a store with baskets
        return unattended.run_file(unattended.load(path), seed, out, as_json)

    try:
        scenario = load(path)
    except FileNotFoundError:
        raise CliError(
            "scenario file %s not found" % path,
            "give a path such as host_sim/scenarios/default.toml",
            EXIT_USAGE,
        ) from None
    if mesh:
        scenario["mesh"]["enabled"] = True
    out = out or os.path.join("run", "%s-%d" % (scenario["name"], seed))
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, "report.json")) and not os.path.isdir(
            os.path.join(out, "work")
        ):
            raise CliError(
                "%s is not empty and holds no earlier simulation (no report.json)" % out,
                "give --out a new or empty directory; a simulator's own output is replaced",
                EXIT_USAGE,
            )
        shutil.rmtree(out)
    t0 = time.perf_counter()
    sim = Simulation(scenario, seed, os.path.join(out, "work"), tamper=tamper)
    report = sim.run()  # a ScenarioError is a usage error (exit 2) with its remedy
    wall_s = time.perf_counter() - t0
    report["reproduce"] = reports.command(path, seed) + (" --mesh" if mesh else "")
    wall = {
        "wall_s": round(wall_s, 3),
        "simulated_s": report["ended_s"],
        "speedup": round(report["ended_s"] / wall_s, 1) if wall_s else None,
        "scans_per_wall_s": round(report["totals"]["scans"] / wall_s, 1) if wall_s else None,
        "accepted_per_wall_s": round(report["totals"]["accepted"] / wall_s, 1) if wall_s else None,
    }
    paths = reports.write(report, out, path, wall=wall, plots=plots and scenario["plots"])
    if as_json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(reports.summary(report, out, path))
        if paths["plots"]:
            print("  plots: %s" % ", ".join(paths["plots"]))
        print(
            "  wall time %.1f s for %.1f simulated hours (%d accepted per wall second)"
            % (wall_s, report["ended_s"] / 3600.0, wall["accepted_per_wall_s"] or 0)
        )
    if as_json:
        if not report["ok"]:
            for line in reports.failure_lines(report, path):
                print(line, file=sys.stderr)
        (events or Events(True, command="sim run")).result(
            report["ok"],
            "%s seed %d: %s" % (path, seed, "invariants hold" if report["ok"] else "FAILED"),
            exit_code=0 if report["ok"] else EXIT_FAILED,
            scenario=path,
            seed=seed,
            out=out,
            report=os.path.join(out, "report.json"),
            wall_s=wall["wall_s"],
        )
    return 0 if report["ok"] else EXIT_FAILED
