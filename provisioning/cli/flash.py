"""`faregate flash [--port PORT] IMAGE`: send a signed image to a gate over its service port.

Flashing happens inside an authenticated service-console session, like every `faregate device`
command: the port is found the same way (--port, $FAREGATE_PORT, or the one gate detected) and
the technician credential (--cred, $FAREGATE_CRED) needs role full or provision. A gate
refuses image frames outside such a session.

The transfer (protocol/flash.py) goes in chunks of up to 4 KiB, each in a CRC-checked link
frame, with up to 8 in flight; the gate acknowledges each once it is durable. A lost or
corrupt chunk is sent again from the offset the gate asks for; a transfer cut by an unplugged
cable, a closed laptop or a reboot resumes where it stopped when the same command runs again
(the gate proves it holds the same bytes with a CRC). After the last chunk the gate reads the
whole image back and returns its SHA-256, which must match the file ("Hash of data verified",
as esptool says). Then the gate boots the new slot on trial, runs its self-test and confirms
it, or reverts by itself; this command opens a new session after the reboot and reports which,
and, for a revert, why: the failing self-test check, or the exception a crashed trial raised
(its type, message, file and line), or that it never confirmed (hung, reset, lost power).

Without sending anything:
    --activate-only   boot the image staged earlier (`--no-activate`) on trial
    --rollback        boot the previous image (the one the last confirmed update replaced,
                      still in the other slot) on trial; refused (image_rollback) when its
                      security counter is below the gate's confirmed one
Both go through the same trial: self-test, then confirmed or reverted.

The rate printed is esptool's "effective" rate: image bytes x 8 / seconds of writing.
"""

import argparse
import hashlib
import json
import sys
from typing import Any

from provisioning.cli.kit import read_file
from provisioning.cli.main import EXIT_FAILED, EXIT_TAIL, EXIT_USAGE, CliError

EXIT_HELP = (
    "Exit codes: 0 confirmed (or staged with --no-activate), 1 refused or reverted, 2 bad "
    "image file or credential files, 3 port or gate not answering, 4 credential, signature or "
    "key refused, 5 a bug (report it), %s. Example: faregate flash --port /dev/ttyUSB0 "
    "build/gate-linux.fgi" % EXIT_TAIL
)

# -- command line ---------------------------------------------------------------------------


def register(sub: Any) -> None:
    from provisioning.cli.connect import add_port_args

    p = sub.add_parser(
        "flash",
        help="send a signed image to a gate over serial; trial boot, confirm or revert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_HELP,
    )
    p.add_argument("image", nargs="?", help="signed image file (faregate image build --key ...)")
    add_port_args(p)
    p.add_argument("--no-activate", action="store_true", help="stage only; do not reboot")
    slot = p.add_mutually_exclusive_group()
    slot.add_argument(
        "--activate-only",
        action="store_true",
        help="no IMAGE: boot the image already staged (by --no-activate) on trial",
    )
    slot.add_argument(
        "--rollback",
        action="store_true",
        help="no IMAGE: boot the previous image, still in the other slot, on trial",
    )
    p.add_argument("--restart", action="store_true", help="send from the start, do not resume")
    p.add_argument(
        "--boot-timeout", type=float, default=60.0, help="seconds to wait for the trial boot"
    )
    p.set_defaults(func=cmd_flash)


class Reporter:
    """esptool-style lines (a bar on a terminal) or JSON events."""

    def __init__(self, as_json: bool, stream: Any = None) -> None:
        self.as_json = as_json
        self.out = stream or sys.stdout
        self.tty = not as_json and hasattr(self.out, "isatty") and self.out.isatty()
        self._last_decile = -1
        self.base = 0  # the offset the transfer resumed from: the rate counts what was sent

    def event(self, name: str, text: str, **fields: Any) -> None:
        if self.as_json:
            fields["event"] = name
            print(json.dumps(fields, sort_keys=True), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def progress(self, done: int, total: int, secs: float) -> None:
        pct = done * 100 // total
        rate = (done - self.base) * 8 / secs / 1000 if secs > 0 else 0.0
        if self.as_json:
            self.event("progress", "", offset=done, total=total, kbit_s=round(rate, 1))
        elif self.tty:
            bar = "#" * (pct * 30 // 100)
            self.out.write(
                "\rWriting at 0x%08x [%-30s] %3d %% %7.1f kbit/s" % (done, bar, pct, rate)
            )
            if done >= total:
                self.out.write("\n")
            self.out.flush()
        elif pct // 10 != self._last_decile:
            self._last_decile = pct // 10
            print("Writing at 0x%08x... (%d %%)" % (done, pct), file=self.out, flush=True)


def _describe(st: dict[str, Any]) -> str:
    return "slot %s running %s (security counter %s)%s" % (
        st.get("slot"),
        st.get("version"),
        st.get("counter"),
        ", on trial" if st.get("trial") else "",
    )


def cmd_flash(args: argparse.Namespace) -> int:
    from protocol import image
    from provisioning.cli import connect
    from provisioning.cli.events import Events

    switch = args.activate_only or args.rollback
    name = "--activate-only" if args.activate_only else "--rollback"
    if switch and (args.image or args.no_activate or args.restart):
        raise CliError(
            "%s sends nothing: no IMAGE, --no-activate or --restart with it" % name,
            "faregate flash %s (the gate's slots already hold the image)" % name,
            EXIT_USAGE,
        )
    if not switch and not args.image:
        raise CliError(
            "no IMAGE to flash",
            "faregate flash IMAGE, or --activate-only / --rollback for what the gate holds",
            EXIT_USAGE,
        )
    data, m = b"", None
    if args.image:
        data = read_file(args.image)
        try:
            _h, m, _off = image.parse(data)
        except Exception as e:
            raise CliError(
                "%s is not a whole faregate image: %s" % (args.image, e),
                "rebuild it with `faregate image build`",
                EXIT_USAGE,
            ) from None
    rep = Reporter(args.json)
    events = Events.for_args(args)  # the error event and the result, as every command

    def connected(ident: Any, port: str) -> None:
        rep.event(
            "connect",
            "Connected to gate %d (%s) on %s" % (ident.device_id, ident.state, port),
            device_id=ident.device_id,
            port=port,
        )

    def go() -> int:
        cred = connect.load_credential(args, connect.now())
        with connect.session(args, cred, on_hello=connected) as client:
            if switch:
                return _switch(args, client, cred, rep, events)
            return _flash(args, client, cred, data, m, rep, events)

    return connect.run(events, go)


def _switch(args: argparse.Namespace, client: Any, cred: Any, rep: Reporter, events: Any) -> int:
    """--activate-only or --rollback: boot what the other slot holds, on trial."""
    from provisioning.flasher import FlashClient

    flasher = FlashClient(client.link, timeout_s=args.timeout, retries=args.retries)
    before = flasher.query()
    rep.event(
        "device",
        "Gate: %s profile, %s" % (before.get("profile"), _describe(before)),
        status=before,
    )
    other = before.get("other_slot") or {}
    want = "staged" if args.activate_only else "previous"
    if other.get("state") != want:
        raise CliError(
            "slot %s holds no %s image (it is %s)"
            % (other.get("slot"), want, other.get("state") or "unknown"),
            "send one: faregate flash IMAGE (--no-activate stages it only)"
            if args.activate_only
            else "nothing to go back to: flash the image you want",
            EXIT_FAILED,
        )
    slot = other["slot"]
    if args.activate_only:
        flasher.activate()
        text = "Activating the staged %s in slot %s for a trial boot; the gate reboots ..."
    else:
        flasher.rollback()
        text = "Rolling back to %s in slot %s for a trial boot; the gate reboots ..."
    rep.event("activate", text % (other.get("version"), slot), slot=slot)
    return _outcome(args, client, cred, flasher, slot, rep, events)


def _flash(
    args: argparse.Namespace,
    client: Any,
    cred: Any,
    data: bytes,
    m: Any,
    rep: Reporter,
    events: Any,
) -> int:
    from protocol import image
    from provisioning.flasher import FlashClient, FlashError

    flasher = FlashClient(client.link, timeout_s=args.timeout, retries=args.retries)
    before = flasher.query()
    rep.event(
        "device",
        "Gate: %s profile, %s" % (before.get("profile"), _describe(before)),
        status=before,
    )
    rep.event(
        "image",
        "Image: %s %s, security counter %d, %s bytes, sha256 %s"
        % (
            m.profile_name,
            image.version_str(m.version),
            m.counter,
            "{:,}".format(len(data)),
            hashlib.sha256(data).hexdigest()[:16],
        ),
        version=image.version_str(m.version),
        counter=m.counter,
        bytes=len(data),
    )
    h = image.parse_header(data)
    offset, max_chunk, window = flasher.begin(data, h.head_len, args.restart)
    if offset:
        rep.event(
            "resume",
            "Resuming at 0x%08x: the gate already holds %s bytes" % (offset, "{:,}".format(offset)),
            offset=offset,
        )
    rep.base = offset
    secs = flasher.send(data, offset, max_chunk, window, rep.progress)
    sent = len(data) - offset
    rate = sent * 8 / secs / 1000 if secs > 0 else 0.0
    rep.event(
        "written",
        "Wrote %d bytes at 0x%08x in %.1f seconds (effective %.1f kbit/s)..."
        % (sent, offset, secs, rate),
        bytes=sent,
        offset=offset,
        seconds=round(secs, 3),
        kbit_s=round(rate, 1),
    )
    digest, summary = flasher.end()
    if digest != hashlib.sha256(data).digest():
        raise FlashError(
            "the gate read back a different image (sha256 %s)" % digest.hex()[:16],
            "image_hash_mismatch",
        )
    rep.event(
        "verified",
        "Hash of data verified. Staged %s in slot %s."
        % (summary.get("version"), summary.get("slot")),
        slot=summary.get("slot"),
        sha256=digest.hex(),
    )
    if args.no_activate:
        text = "Not activated (--no-activate): the gate keeps running %s." % before.get("version")
        rep.event("staged", text)
        events.result(
            True,
            text if events.as_json else "",
            outcome="staged",
            slot=summary.get("slot"),
            version=summary.get("version"),
            sha256=digest.hex(),
        )
        return 0
    slot = summary["slot"]
    flasher.activate()
    rep.event(
        "activate", "Activating slot %s for a trial boot; the gate reboots ..." % slot, slot=slot
    )
    return _outcome(args, client, cred, flasher, slot, rep, events)


def _outcome(
    args: argparse.Namespace,
    client: Any,
    cred: Any,
    flasher: Any,
    slot: str,
    rep: Reporter,
    events: Any,
) -> int:
    """Follow the trial boot of `slot`, then report: confirmed (0) or reverted and why (1)."""
    from provisioning.cli.device import why_reverted
    from provisioning.flasher import wait_outcome

    st = wait_outcome(client, cred, flasher, slot, args.boot_timeout)
    last = st.get("last") or {}
    if st.get("slot") == slot and not st.get("trial"):
        text = "Gate confirmed %s in slot %s after its self-test." % (st.get("version"), slot)
        rep.event("confirmed", text, status=st)
        events.result(
            True,
            text if events.as_json else "",
            outcome="confirmed",
            slot=slot,
            version=st.get("version"),
            status=st,
        )
        return 0
    text = "Gate REVERTED to %s: %s" % (_describe(st), why_reverted(last))
    rep.event("reverted", text, status=st)
    events.result(
        False,
        text if events.as_json else "",
        exit_code=EXIT_FAILED,
        outcome="reverted",
        slot=st.get("slot"),
        version=st.get("version"),
        reason=last.get("reason"),
        detail=last.get("detail"),
        status=st,
    )
    return EXIT_FAILED
