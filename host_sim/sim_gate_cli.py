"""`faregate sim gate`: a simulated gate with A/B slots and its service port on a pty."""

import argparse
import os
import sys
import time
from typing import Any

from provisioning.cli import EXIT_DEVICE, EXIT_USAGE, CliError


def register_gate(s: Any) -> None:
    g = s.add_parser(
        "gate",
        help="run a simulated gate that boots from A/B slots; service port on a pty",
        description="Run one simulated gate: a bootloader picks slot a or b, the image in it "
        "runs (CPython for linux images, the MicroPython unix port for mcu images) and serves "
        "its service port on a pty whose path is printed; `faregate flash --port PATH` updates "
        "it. The first run programs a blank gate with --image and --release-key; later runs "
        "boot what STATE holds. Ctrl-C powers it off.",
    )
    g.add_argument("--state", required=True, help="the gate's storage directory")
    g.add_argument("--image", help="factory image for a blank gate (signed)")
    g.add_argument(
        "--release-key",
        action="append",
        help="release key the gate trusts (PEM, public or private); repeatable; blank gate only",
    )
    g.add_argument(
        "--baud",
        type=int,
        default=115200,
        help="pace the line like a UART at this rate, 8N1 (default 115200; 0 = unpaced)",
    )
    g.set_defaults(func=cmd_gate)


def cmd_gate(args: argparse.Namespace) -> int:
    from host_sim.sim_gate import SimGate
    from protocol import image

    if not os.path.exists(os.path.join(args.state, "device.json")):
        if not args.image or not args.release_key:
            raise CliError(
                "%s is a blank gate" % args.state,
                "give --image FACTORY.fgi and --release-key release.pem to program it",
                EXIT_USAGE,
            )
        from firmware.update_agent import ImageRefused
        from provisioning.image_build import load_public

        with open(args.image, "rb") as f:
            data = f.read()
        try:
            _h, m = image.parse_head(data)
            keys = [load_public(k) for k in args.release_key]
            SimGate.create(args.state, data, keys, m.profile_name)
        except (ImageRefused, ValueError, OSError) as e:
            raise CliError(
                "cannot program the gate: %s" % e, "give a signed image and its key", EXIT_USAGE
            ) from None
        print("gate: programmed %s with %s" % (args.state, args.image), flush=True)
    gate = SimGate(args.state, args.baud or None, on_log=lambda t: print(t, flush=True))
    path = gate.start()
    rate = "%d baud" % args.baud if args.baud else "unpaced"
    print("gate: service port on %s (%s); Ctrl-C to power off" % (path, rate), flush=True)
    try:
        while not gate.halted.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("gate: powered off", file=sys.stderr)
    finally:
        gate.stop()
    if gate.halted.is_set() and gate.boots and gate.boots[-1] != 0:
        raise CliError("the gate cannot boot", "see %s/console.log" % args.state, EXIT_DEVICE)
    return 0
