"""`faregate sim device`: one simulated gate whose service console is on a pseudo-terminal.

The gate runs the real firmware console (firmware.service) over the real framing; the laptop's
tools open the pty's path through pyserial exactly as they open /dev/ttyUSB0. Its state
directory persists like a real gate's flash: stop it, start it again with the same --state,
and it is the same gate (same device id, key, config, journal). It also puts a symlink to its
pty in the simulator directory ($FAREGATE_SIM_DIR, default /tmp/faregate-sim-UID), where
`--port` auto-detection finds it.

Faults for rehearsal and tests (--fault, repeatable):
    mute             never answer (a dead gate, or the wrong port)
    unplug-after=N   vanish right after running the N-th command, before answering
    barrier-jam      the barrier does not move
    beam-blocked     the entry beam reads blocked
    no-test-card     nobody holds the test card up to the reader
"""

import argparse
import json
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    from provisioning.ports import SIM_DIR_ENV

    d = sub.add_parser(
        "device",
        help="run one simulated gate with its service console on a pty",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument(
        "--state",
        default="run/sim-gate",
        help="the gate's flash: a directory kept between runs (default run/sim-gate)",
    )
    d.add_argument("--device-id", type=int, default=None, help="device id of a new gate")
    d.add_argument(
        "--passages",
        type=int,
        default=0,
        help="journal this many unsynced passages at start (to rehearse a reset)",
    )
    d.add_argument("--fault", action="append", default=[], help="inject a fault (see above)")
    d.add_argument(
        "--link-dir",
        default=None,
        help="where to put the symlink that --port auto-detection finds "
        "(default $%s or /tmp/faregate-sim-UID)" % SIM_DIR_ENV,
    )
    d.add_argument("--json", action="store_true", help="print events as JSON lines")
    d.set_defaults(func=cmd_device)


def cmd_device(args: argparse.Namespace) -> int:
    from host_sim.sim_device import SimDevice, parse_faults
    from protocol import service
    from provisioning.cli import EXIT_USAGE, CliError
    from provisioning.ports import sim_dir

    try:
        faults = parse_faults(args.fault)
        dev = SimDevice(args.state, args.device_id, faults, args.link_dir or sim_dir())
    except ValueError as e:
        raise CliError(str(e), "see `faregate sim device --help`", EXIT_USAGE) from None
    if args.passages:
        dev.add_passages(args.passages)

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    state = service.STATE_NAMES[dev.console.lifecycle()]
    ready = {
        "event": "ready",
        "device_id": dev.device_id,
        "state": state,
        "port": dev.path,
        "link": dev.link,
        "pending_passages": dev.journal.pending_count(),
        "faults": sorted(args.fault),
    }
    if args.json:
        print(json.dumps(ready), flush=True)
    else:
        print(
            "faregate sim device: gate %d (%s) service console on %s"
            % (dev.device_id, state, dev.path),
            flush=True,
        )
        print("  found by --port auto-detection as %s; Ctrl-C stops it" % dev.link, flush=True)
    shown = dev.log.next_index
    try:
        while True:
            dev.step(0.5)
            for entry in dev.log.since(shown, 1000):
                shown = entry["i"] + 1
                if args.json:
                    print(json.dumps(dict(entry, event="log")), flush=True)
                else:
                    extra = " ".join(
                        "%s=%s" % (k, entry[k]) for k in entry if k not in ("i", "t", "ev")
                    )
                    print("  [%d] %s %s" % (entry["i"], entry["ev"], extra), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        dev.close()
        print("faregate sim device: stopped", file=sys.stderr, flush=True)
    return 0
