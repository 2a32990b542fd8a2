"""`faregate sim device`: one simulated gate, the real firmware, its service console on a pty.

The gate boots its firmware image from A/B slots (a bootloader picks the slot; the image runs
in a child process with nothing else on its import path) and serves the real service console
on a pseudo-terminal, which the laptop's tools open through pyserial exactly as they open
/dev/ttyUSB0. Flashing (`faregate flash`) goes through the console's authenticated session;
the new image boots on trial, confirms itself after its self-test or reverts by itself, and a
crash or reboot restarts the gate as a watchdog would. The state directory is the gate's flash:
stop it, start it again with the same --state, and it is the same gate (device id, key,
config, journal, slots). It puts a symlink to its pty in the simulator directory
($FAREGATE_SIM_DIR, default /tmp/faregate-sim-UID), where `--port` auto-detection finds it.

Once provisioned it is a gate in service: hold a phone up to its reader by writing a code to
STATE/board/phone (`faregate wallet mint --state demo --account 42 > STATE/board/phone`), watch
the barrier in STATE/board/barrier-relay, walk through the beams by writing 1 and 0 to
STATE/board/beam-a and beam-b; its decisions and syncs are printed. With a [sync] table in the
site file it syncs with `faregate backoffice serve` over TCP and TLS (docs/sync-protocol.md).

A new --state is programmed first, as at the factory: this checkout built as firmware 0.1.0
(security counter 1) and signed with a one-off factory key, or --image FILE; the gate trusts
the factory key and every --release-key (the operator's release.pub) for later images.

Faults for rehearsal and tests (--fault, repeatable):
    mute             the gate never hears the laptop (a dead gate, or the wrong port)
    unplug-after=N   the cable is pulled right after the gate ran the N-th command, before it
                     answered; the simulator stops
    barrier-jam      the barrier does not move
    beam-blocked     passage beam A reads blocked
    no-test-card     nobody holds the test card up to the reader
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

READY_TIMEOUT_S = 60


def register(sub: Any) -> None:
    from provisioning.ports import SIM_DIR_ENV

    d = sub.add_parser(
        "device",
        help="run one simulated gate (A/B slots, real firmware) with its service console on a pty",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument(
        "--state",
        default="run/sim-gate",
        help="the gate's flash: a directory kept between runs (default run/sim-gate)",
    )
    d.add_argument("--device-id", type=int, default=None, help="device id of a new gate")
    d.add_argument("--image", help="factory image of a new gate (default: build this checkout)")
    d.add_argument(
        "--release-key",
        action="append",
        default=[],
        help="release key a new gate trusts for updates: operator/release.pub or a PEM key; "
        "repeatable",
    )
    d.add_argument(
        "--baud",
        type=int,
        default=0,
        help="pace the service line like a UART at this rate, 8N1 (default 0: unpaced)",
    )
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
    d.add_argument(
        "--json",
        action="store_true",
        help="print events as JSON lines, ending with the result event when the gate stops",
    )
    from provisioning.cli.events import with_events

    d.set_defaults(func=with_events(cmd_device))


def _program(args: argparse.Namespace) -> str:
    """Program a new gate in args.state, or check the options against a programmed one.
    Returns a line saying what was done ("" for a programmed gate)."""
    from host_sim.hardware.sim_device import SimDevice, factory_image
    from protocol import image
    from provisioning.cli.image import load_release_key
    from provisioning.cli.main import EXIT_USAGE, CliError

    keys = [load_release_key(k) for k in args.release_key]
    device_json = os.path.join(args.state, "device.json")
    if os.path.exists(device_json):
        with open(device_json) as f:
            trusted = json.load(f).get("release_keys", [])
        if args.image:
            raise CliError(
                "%s is already a programmed gate" % args.state,
                "--image programs a new gate only: flash it with `faregate flash`",
                EXIT_USAGE,
            )
        if any(k.hex() not in trusted for k in keys):
            raise CliError(
                "gate %s does not trust that --release-key" % args.state,
                "release keys are set at the factory: use a new --state",
                EXIT_USAGE,
            )
        return ""
    if args.image:
        try:
            with open(args.image, "rb") as f:
                data = f.read()
            image.parse_head(data)
        except (OSError, image.FormatError) as e:
            raise CliError(
                "cannot program the gate with %s: %s" % (args.image, e),
                "give a signed image from `faregate image build`",
                EXIT_USAGE,
            ) from None
        what = args.image
    else:
        data, factory_pub = factory_image()
        keys.append(factory_pub)
        what = "this checkout"
    from firmware.maintenance.update_agent import ImageRefused

    try:
        device_id = SimDevice.program(args.state, data, keys, args.device_id)
    except ImageRefused as e:
        raise CliError(
            "cannot program the gate: %s (%s)" % (e, e.reason),
            "sign the factory image with one of the --release-key keys",
            EXIT_USAGE,
        ) from None
    _h, m = image.parse_head(data)
    return "programmed gate %d with firmware %s (%s) in slot a" % (
        device_id,
        image.version_str(m.version),
        what,
    )


def cmd_device(args: argparse.Namespace, events: Any) -> int:
    from host_sim.hardware.sim_device import SimDevice, parse_faults
    from provisioning.cli.main import EXIT_DEVICE, EXIT_USAGE, CliError
    from provisioning.ports import sim_dir

    try:
        faults = parse_faults(args.fault)
        programmed = _program(args)
        out = Printer(events)
        dev = SimDevice(args.state, args.baud or None, faults, on_log=out.console)
        if args.device_id is not None and args.device_id != dev.device_id:
            raise ValueError(
                "%s is already gate %d (not %d): use another --state"
                % (args.state, dev.device_id, args.device_id)
            )
    except ValueError as e:
        raise CliError(str(e), "see `faregate sim device --help`", EXIT_USAGE) from None
    if programmed:
        out.say(programmed, event="programmed", device_id=dev.device_id)
    if args.passages:
        dev.add_passages(args.passages)

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    link = ""
    how = "unplugged"  # the loop below ends when the gate is unplugged, halts or is stopped
    dev.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not dev.ready.wait(0.1) and not dev.halted.is_set() and time.monotonic() < deadline:
            pass
        if not dev.ready.is_set():
            raise CliError(
                "gate %d did not come up" % dev.device_id,
                "see %s/console.log" % args.state,
                EXIT_DEVICE,
            )
        link = _link(args.link_dir or sim_dir(), dev.device_id, dev.path)
        out.ready(dev, dev.info, link, args.fault)
        out.follow(dev)
        while not dev.halted.is_set() and not dev.unplugged.is_set():
            dev.halted.wait(0.2)
            out.service_log()
        if dev.halted.is_set():
            how = "halted"
    except KeyboardInterrupt:
        how = "interrupted"
    except SystemExit:  # SIGTERM (stop above)
        how = "terminated"
    finally:
        dev.stop()
        out.close()
        if link:
            try:
                os.remove(link)
            except OSError:
                pass
        print("faregate sim device: stopped", file=sys.stderr, flush=True)
    if dev.halted.is_set():
        raise CliError(
            "gate %d stopped: it cannot boot" % dev.device_id,
            "see %s/console.log" % args.state,
            EXIT_DEVICE,
        )
    if events.as_json:  # the text says it on stderr, above
        events.result(
            True,
            "gate %d stopped (%s)" % (dev.device_id, how),
            device_id=dev.device_id,
            stopped=how,
        )
    return 0


def _link(directory: str, device_id: int, path: str) -> str:
    os.makedirs(directory, exist_ok=True)
    link = os.path.join(directory, "gate-%d-%d" % (device_id, os.getpid()))
    os.symlink(path, link)
    return link


class Printer:
    """Lines for a technician, or JSON events (--json). Once `follow` is called, it prints the
    gate's service log and console log as they grow, in the order things happened: the gate
    writes a service-log entry before it goes on, so new entries are printed before each
    console line (both from the main loop and from the simulator's console-log thread)."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.as_json = events.as_json
        self.dev: Any = None
        self.shown = 1  # the next service-log entry to print
        self.lock = threading.Lock()

    def follow(self, dev: Any) -> None:
        entries = dev.service_log(0)
        with self.lock:
            self.shown = entries[-1]["i"] + 1 if entries else 1
            self.dev = dev  # the boot so far is in console.log; from now on it is shown

    def service_log(self) -> None:
        with self.lock:
            self._service_log()

    def _service_log(self) -> None:
        if self.dev is None:
            return
        for entry in self.dev.service_log(self.shown):
            self.shown = entry["i"] + 1
            self.log_entry(entry)

    def close(self) -> None:
        """Stop following the gate (nothing is printed after the result)."""
        with self.lock:
            self.dev = None

    def emit(self, obj: dict[str, Any]) -> None:
        self.events.emit(obj)

    def say(self, text: str, event: str, **fields: Any) -> None:
        if self.as_json:
            self.emit(dict(fields, event=event, message=text))
        else:
            print("faregate sim device: " + text, flush=True)

    def ready(self, dev: Any, info: dict[str, Any], link: str, faults: list[str]) -> None:
        if self.as_json:
            self.emit(
                {
                    "event": "ready",
                    "device_id": dev.device_id,
                    "state": info.get("state"),
                    "slot": info.get("slot"),
                    "version": info.get("version"),
                    "port": dev.path,
                    "link": link,
                    "faults": sorted(faults),
                }
            )
            return
        print(
            "faregate sim device: gate %d (%s), firmware %s in slot %s, service console on %s"
            % (dev.device_id, info.get("state"), info.get("version"), info.get("slot"), dev.path),
            flush=True,
        )
        print("  found by --port auto-detection as %s; Ctrl-C stops it" % link, flush=True)

    def log_entry(self, entry: dict[str, Any]) -> None:
        if self.as_json:
            self.emit(dict(entry, event="log"))
        else:
            extra = " ".join("%s=%s" % (k, entry[k]) for k in entry if k not in ("i", "t", "ev"))
            print("  [%d] %s %s" % (entry["i"], entry["ev"], extra), flush=True)

    def console(self, line: str) -> None:
        with self.lock:
            if self.dev is None:
                return
            self._service_log()
            if self.as_json:
                self.emit({"event": "console", "line": line})
            else:
                print("  | " + line, flush=True)
