"""`faregate sim ...`: run a simulated station."""

import argparse
import json
import os
import tomllib
from typing import Any

from provisioning.cli import EXIT_FAILED, EXIT_USAGE, CliError


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="run simulated stations", description=__doc__)
    s = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    s.required = True
    r = s.add_parser(
        "run",
        help="run a scenario: gates, riders, back office; print a summary",
        description="Run a simulated station from a scenario file on a virtual clock. "
        "The same --seed gives the same report. Exit 1 if an invariant is broken.",
    )
    r.add_argument("scenario", help="scenario TOML file (see host_sim/scenarios/)")
    r.add_argument("--seed", type=int, default=1, help="seed for riders and faults (default 1)")
    r.add_argument(
        "--out", default=None, help="work and report directory (default run/<scenario>-<seed>)"
    )
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(func=cmd_run)
    from host_sim import sim_device_cli

    sim_device_cli.register(s)


def load_scenario(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CliError(
            "scenario file %s not found" % path,
            "give a path such as host_sim/scenarios/default.toml",
            EXIT_USAGE,
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise CliError("%s: %s" % (path, e), "correct the TOML syntax", EXIT_USAGE) from None


def cmd_run(args: argparse.Namespace) -> int:
    import shutil

    from host_sim import station

    scenario = load_scenario(args.scenario)
    name = str(scenario.get("name", os.path.splitext(os.path.basename(args.scenario))[0]))
    out = args.out or os.path.join("run", "%s-%d" % (name, args.seed))
    shutil.rmtree(out, ignore_errors=True)
    report = station.run(scenario, args.seed, out)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(
            "station %s, seed %d: %d gates, %d passages attempted"
            % (report["scenario"], args.seed, report["gates"], report["passages_attempted"])
        )
        print("  admitted:                %d" % report["admitted"])
        print("  rejected:                %d" % sum(report["rejects"].values()))
        for reason, n in report["rejects"].items():
            print("    %-22s %d" % (reason, n))
        print(
            "  records synced and acknowledged: %d (back office holds %d, %d pending on gates)"
            % (
                report["records_synced_acknowledged"],
                report["backoffice_records"],
                report["pending_on_gates"],
            )
        )
        print("  report: %s" % os.path.join(out, "report.json"))
    if report["opened_without_valid_code"] or report["pending_on_gates"]:
        print(
            "INVARIANT BROKEN; reproduce with: faregate sim run %s --seed %d"
            % (args.scenario, args.seed)
        )
        return EXIT_FAILED
    return 0
