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
it, or reverts by itself; this command opens a new session after the reboot and reports which.

The rate printed is esptool's "effective" rate: image bytes x 8 / seconds of writing.
"""

import argparse
import binascii
import hashlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from protocol import flash, frames
from provisioning.cli.image import AUTH_REASONS as IMAGE_REASONS
from provisioning.cli.kit import read_file
from provisioning.cli.main import EXIT_AUTH, EXIT_DEVICE, EXIT_FAILED, EXIT_USAGE, CliError
from provisioning.console import AUTH_REASONS as SESSION_REASONS
from provisioning.transport import Transport

EXIT_HELP = (
    "Exit codes: 0 confirmed (or staged with --no-activate), 1 refused or reverted, 2 bad "
    "image file or credential files, 3 port or gate not answering, 4 credential, signature or "
    "key refused, 5 a bug (report it). Example: faregate flash --port /dev/ttyUSB0 "
    "build/gate-linux.fgi"
)

# refusal reason -> what to do (console refusals: provisioning.cli.connect.REMEDIES)
REMEDIES = {
    "image_unsigned": "sign it: faregate image sign IMAGE --key operator/release.key",
    "image_unknown_key": "sign with a release key the gate trusts",
    "image_bad_signature": "the file was altered after signing; rebuild and sign",
    "image_wrong_target": "build for the gate's profile (faregate image build --profile)",
    "image_rollback": "build with --counter at or above the gate's",
    "image_hash_mismatch": "run the same command again; if it repeats, rebuild",
    "image_truncated": "run the same command again to resume",
    "update_busy": "wait for the trial boot to finish, then flash again",
    "no_verifier": "this gate cannot check signatures: it needs an image with a verifier",
}


class FlashError(Exception):
    def __init__(self, message: str, reason: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.exit_code = exit_code


class Refused(FlashError):
    """The gate refused: `reason` is a name from protocol/reasons.py."""

    def __init__(self, reason: str, message: str) -> None:
        auth = reason in IMAGE_REASONS or reason in SESSION_REASONS
        super().__init__(message, reason, EXIT_AUTH if auth else EXIT_FAILED)


def _expect(fr: frames.Frame, ftype: int, what: str) -> bytes:
    if fr.type == flash.REFUSED:
        reason, message = flash.parse_refused(fr.payload)
        raise Refused(reason, message)
    if fr.type != ftype:
        raise FlashError(
            "unexpected %s frame while waiting for %s" % (flash.NAMES.get(fr.type, fr.type), what),
            "bad_message",
            EXIT_DEVICE,
        )
    return fr.payload


class FlashClient:
    """The host's side of flashing over a provisioning.transport.Transport whose session is
    open. A request unanswered for `timeout_s` is sent again up to `retries` times (then
    NotAnswering); a transfer with no ACK for `timeout_s` goes back to the last acknowledged
    offset up to `rewinds` times. `progress(done, total, seconds)` is called as ACKs come."""

    def __init__(
        self, link: Transport, timeout_s: float = 5.0, retries: int = 2, rewinds: int = 5
    ) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries
        self.rewinds = rewinds

    def _request(self, ftype: int, payload: bytes, want: int, what: str) -> bytes:
        """Send; return the answer's payload (stale ACKs or STATUS from before are skipped)."""
        fr = self.link.exchange(
            ftype, payload, lambda f: f.type in (want, flash.REFUSED), self.timeout_s, self.retries
        )
        return _expect(fr, want, what)

    def query(self) -> dict[str, Any]:
        return flash.parse_status(self._request(flash.QUERY, b"", flash.STATUS, "a status query"))

    def begin(self, data: bytes, head_len: int, restart: bool = False) -> tuple[int, int, int]:
        sha = hashlib.sha256(data).digest()
        p = self._request(
            flash.BEGIN, flash.begin(len(data), sha, data[:head_len], restart), flash.READY, "BEGIN"
        )
        offset, crc, max_chunk, window = flash.parse_ready(p)
        if offset and (offset > len(data) or binascii.crc32(data[:offset]) != crc):
            # the gate holds other bytes (a power cut mid-chunk, another image): start over
            p = self._request(
                flash.BEGIN,
                flash.begin(len(data), sha, data[:head_len], True),
                flash.READY,
                "BEGIN",
            )
            offset, crc, max_chunk, window = flash.parse_ready(p)
        return offset, max_chunk, window

    def send(
        self,
        data: bytes,
        start: int,
        max_chunk: int,
        window: int,
        progress: Callable[[int, int, float], None] | None = None,
        stop_at: int | None = None,
    ) -> float:
        """Stream data[start:] in chunks, go-back-N on loss. Returns seconds spent.
        `stop_at` cuts the transfer there (tests and the resume benchmark)."""
        total = len(data) if stop_at is None else min(stop_at, len(data))
        acked = nxt = start
        t0 = time.monotonic()
        last_progress = t0
        rewinds = 0
        last_rewind = -1
        while acked < total:
            while nxt < total and nxt - acked < window * max_chunk:
                end = min(nxt + max_chunk, total)
                self.link.send(flash.DATA, flash.data(nxt, data[nxt:end]))
                nxt = end
            fr = self.link.recv(0.2)
            now = time.monotonic()
            if fr is None:
                if now - last_progress > self.timeout_s:
                    rewinds += 1
                    if rewinds > self.rewinds:
                        raise FlashError(
                            "the gate stopped acknowledging at offset %d" % acked,
                            "no_answer",
                            EXIT_DEVICE,
                        )
                    nxt = acked
                    last_progress = now
                continue
            if fr.type == flash.REFUSED:
                reason, message = flash.parse_refused(fr.payload)
                raise Refused(reason, message)
            if fr.type != flash.ACK:
                continue
            n = flash.parse_ack(fr.payload)
            if n > acked:
                acked = n
                last_progress = now
                if progress:
                    progress(acked, len(data), now - t0)
            elif n == acked and nxt > acked and n != last_rewind:
                nxt = acked  # the gate wants an earlier offset: a chunk was lost on the line
                last_rewind = n
        return time.monotonic() - t0

    def end(self) -> tuple[bytes, dict[str, Any]]:
        return flash.parse_done(self._request(flash.END, b"", flash.DONE, "END"))

    def activate(self) -> dict[str, Any]:
        return flash.parse_status(self._request(flash.ACTIVATE, b"", flash.STATUS, "ACTIVATE"))


def wait_outcome(
    client: Any, cred: Any, flasher: FlashClient, slot: str, timeout_s: float
) -> dict[str, Any]:
    """After ACTIVATE the gate reboots and the session is gone: open a new one (HELLO, AUTH)
    and query until the gate runs `slot` confirmed, or reports that it reverted."""
    from provisioning.console import DeviceRefused
    from provisioning.transport import NotAnswering

    link = client.link
    saved = link.timeout, link.retries
    link.timeout, link.retries = min(1.0, link.timeout), 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                link.discard_input()
                client.hello()
                client.authenticate(cred.signer, cred.raw, cred.anchor, claim=False)
                st = flasher.query()
            except (NotAnswering, DeviceRefused, Refused):
                continue  # still rebooting, or answering from before the reboot
            last = st.get("last") or {}
            if st.get("slot") == slot and not st.get("trial"):
                return st
            if last.get("event") == "reverted" and last.get("slot") == slot:
                return st
    finally:
        link.timeout, link.retries = saved
    raise FlashError(
        "the gate did not come back from its trial boot within %d s" % timeout_s,
        "no_answer",
        EXIT_DEVICE,
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
    p.add_argument("image", help="signed image file (faregate image build --key ...)")
    add_port_args(p)
    p.add_argument("--no-activate", action="store_true", help="stage only; do not reboot")
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
    events = Events(args.json)  # the error event, as every command that talks to a gate

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
            try:
                return _flash(args, client, cred, data, m, rep)
            except FlashError as e:
                raise _cli_error(e) from None

    return connect.run(events, go)


def _cli_error(e: FlashError) -> CliError:
    from provisioning.cli.connect import REMEDIES as SESSION_REMEDIES

    remedy = REMEDIES.get(e.reason) or SESSION_REMEDIES.get(e.reason, "")
    if e.reason == "no_answer":
        remedy = "check the cable and that the gate is powered, then run it again"
    if isinstance(e, Refused):
        return CliError("gate refused: %s (%s)" % (e.message, e.reason), remedy, e.exit_code)
    return CliError(e.message, remedy, e.exit_code)


def _flash(
    args: argparse.Namespace, client: Any, cred: Any, data: bytes, m: Any, rep: Reporter
) -> int:
    from protocol import image

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
        rep.event(
            "staged",
            "Not activated (--no-activate): the gate keeps running %s." % before.get("version"),
        )
        return 0
    slot = summary["slot"]
    flasher.activate()
    rep.event(
        "activate", "Activating slot %s for a trial boot; the gate reboots ..." % slot, slot=slot
    )
    st = wait_outcome(client, cred, flasher, slot, args.boot_timeout)
    last = st.get("last") or {}
    if st.get("slot") == slot and not st.get("trial"):
        rep.event(
            "confirmed",
            "Gate confirmed %s in slot %s after its self-test." % (st.get("version"), slot),
            status=st,
        )
        return 0
    rep.event(
        "reverted",
        "Gate REVERTED to %s: %s" % (_describe(st), last.get("reason")),
        status=st,
    )
    return EXIT_FAILED
