"""`faregate flash --port PORT IMAGE`: send a signed image to a gate over its service port.

The transfer (protocol/flash.py) goes in chunks of up to 4 KiB, each in a CRC-checked link
frame, with up to 8 in flight; the gate acknowledges each once it is durable. A lost or
corrupt chunk is sent again from the offset the gate asks for; a transfer cut by an unplugged
cable, a closed laptop or a reboot resumes where it stopped when the same command runs again
(the gate proves it holds the same bytes with a CRC). After the last chunk the gate reads the
whole image back and returns its SHA-256, which must match the file ("Hash of data verified",
as esptool says). Then the gate boots the new slot on trial, runs its self-test and confirms
it, or reverts by itself; this command waits and reports which.

The rate printed is esptool's "effective" rate: image bytes x 8 / seconds of writing.
"""

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from protocol import flash, frames
from provisioning.cli import EXIT_AUTH, EXIT_DEVICE, EXIT_FAILED, EXIT_USAGE, CliError
from provisioning.image_cli import AUTH_REASONS


class FlashError(Exception):
    def __init__(self, message: str, reason: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.exit_code = exit_code


class Refused(FlashError):
    """The gate refused: `reason` is a name from protocol/reasons.py."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason, EXIT_AUTH if reason in AUTH_REASONS else EXIT_FAILED)


class FrameLink:
    """Link frames over a pyserial port (or anything with read/write/in_waiting/timeout)."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.dec = frames.FrameDecoder()
        self.queue: list[frames.Frame] = []

    def send(self, ftype: int, payload: bytes = b"") -> None:
        self.port.write(frames.encode(ftype, payload))

    def recv(self, timeout_s: float) -> frames.Frame | None:
        deadline = time.monotonic() + timeout_s
        while not self.queue:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.port.timeout = min(left, 0.05)
            data = self.port.read(max(1, self.port.in_waiting))
            if data:
                self.queue.extend(self.dec.feed(data))
        return self.queue.pop(0)

    def poll(self) -> list[frames.Frame]:
        """Frames that have already arrived, without waiting."""
        n = self.port.in_waiting
        if n:
            self.queue.extend(self.dec.feed(self.port.read(n)))
        out, self.queue = self.queue, []
        return out


def _expect(fr: frames.Frame | None, ftype: int, what: str) -> bytes:
    if fr is None:
        raise FlashError("the gate did not answer %s" % what, "no_answer", EXIT_DEVICE)
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
    """The host's side of flashing. `progress(done, total, seconds)` is called as ACKs come."""

    def __init__(self, link: FrameLink, timeout_s: float = 5.0, retries: int = 5) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries

    def _request(self, ftype: int, payload: bytes, want: int, what: str) -> bytes:
        for _ in range(2):
            self.link.send(ftype, payload)
            while True:
                fr = self.link.recv(self.timeout_s)
                if fr is None or fr.type in (want, flash.REFUSED):
                    break
                # a stale ACK or STATUS from before: skip it
            if fr is not None:
                return _expect(fr, want, what)
        return _expect(None, want, what)

    def query(self) -> dict[str, Any]:
        return flash.parse_status(self._request(flash.QUERY, b"", flash.STATUS, "a status query"))

    def begin(self, data: bytes, head_len: int, restart: bool = False) -> tuple[int, int, int]:
        sha = hashlib.sha256(data).digest()
        msg = flash.begin(len(data), sha, data[:head_len], restart)
        p = self._request(flash.BEGIN, msg, flash.READY, "BEGIN")
        offset, crc, max_chunk, window = flash.parse_ready(p)
        if offset:
            import binascii

            if offset > len(data) or binascii.crc32(data[:offset]) != crc:
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
                    if rewinds > self.retries:
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
        p = self._request(flash.END, b"", flash.DONE, "END")
        return flash.parse_done(p)

    def activate(self) -> dict[str, Any]:
        return flash.parse_status(self._request(flash.ACTIVATE, b"", flash.STATUS, "ACTIVATE"))

    def wait_outcome(self, slot: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """After ACTIVATE: query until the gate runs `slot` confirmed, or reports a revert."""
        deadline = time.monotonic() + timeout_s
        time.sleep(0.2)
        while time.monotonic() < deadline:
            self.link.poll()  # drop anything left from before the reboot
            self.link.send(flash.QUERY)
            fr = self.link.recv(1.0)
            if fr is None or fr.type != flash.STATUS:
                continue
            try:
                st = flash.parse_status(fr.payload)
            except Exception:
                continue
            last = st.get("last") or {}
            if st.get("slot") == slot and not st.get("trial"):
                return st
            if last.get("event") == "reverted" and last.get("slot") == slot:
                return st
        raise FlashError(
            "the gate did not come back from its trial boot within %d s" % timeout_s,
            "no_answer",
            EXIT_DEVICE,
        )


# -- command line ---------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = sub.add_parser(
        "flash",
        help="send a signed image to a gate over serial; trial boot, confirm or revert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 confirmed (or staged with --no-activate), 1 refused or reverted, "
        "2 bad image file, 3 port or gate not answering, 4 signature or key refused. "
        "Example: faregate flash --port /dev/ttyUSB0 build/gate-linux.fgi",
    )
    p.add_argument("image", help="signed image file (faregate image build --key ...)")
    p.add_argument("--port", required=True, help="serial port or pyserial URL of the gate")
    p.add_argument("--baud", type=int, default=115200, help="line rate (default 115200)")
    p.add_argument("--no-activate", action="store_true", help="stage only; do not reboot")
    p.add_argument("--restart", action="store_true", help="send from the start, do not resume")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    p.add_argument(
        "--boot-timeout", type=float, default=60.0, help="seconds to wait for the trial boot"
    )
    p.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    p.set_defaults(func=cmd_flash)


class Reporter:
    """esptool-style lines (a bar on a terminal) or JSON events."""

    def __init__(self, as_json: bool, stream: Any = None) -> None:
        self.as_json = as_json
        self.out = stream or sys.stdout
        self.tty = not as_json and hasattr(self.out, "isatty") and self.out.isatty()
        self._last_decile = -1
        self._base = 0

    def event(self, name: str, text: str, **fields: Any) -> None:
        if self.as_json:
            fields["event"] = name
            print(json.dumps(fields, sort_keys=True), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def progress(self, done: int, total: int, secs: float) -> None:
        pct = done * 100 // total
        rate = (done - self._base) * 8 / secs / 1000 if secs > 0 else 0.0
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

    try:
        with open(args.image, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CliError(
            "cannot read %s: %s" % (args.image, e.strerror), "check the path", EXIT_USAGE
        ) from None
    try:
        _h, m, _off = image.parse(data)
    except Exception as e:
        raise CliError(
            "%s is not a whole faregate image: %s" % (args.image, e),
            "rebuild it with `faregate image build`",
            EXIT_USAGE,
        ) from None
    rep = Reporter(args.json)
    port = open_port(args.port, args.baud)
    try:
        return _flash(args, port, data, m, rep)
    except FlashError as e:
        if args.json:
            rep.event("error", "", reason=e.reason, message=e.message)
        remedy = {
            "image_unsigned": "sign it: faregate image sign IMAGE --key release.pem",
            "image_unknown_key": "sign with a release key the gate trusts",
            "image_bad_signature": "the file was altered after signing; rebuild and sign",
            "image_wrong_target": "build for the gate's profile (faregate image build --profile)",
            "image_rollback": "build with --counter at or above the gate's",
            "image_hash_mismatch": "run the same command again; if it repeats, rebuild",
            "image_truncated": "run the same command again to resume",
            "update_busy": "wait for the trial boot to finish, then flash again",
            "no_answer": "check the cable and that the gate is powered, then run it again",
        }.get(e.reason, "")
        reason = " (%s)" % e.reason if e.reason and e.reason != "no_answer" else ""
        raise CliError(
            "gate refused: %s%s" % (e.message, reason) if isinstance(e, Refused) else e.message,
            remedy,
            e.exit_code,
        ) from None
    finally:
        port.close()


def open_port(url: str, baud: int) -> Any:
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=30)
    except (serial.SerialException, OSError, ValueError) as e:
        raise CliError(
            "cannot open port %s: %s" % (url, e),
            "check --port (ls /dev/ttyUSB* /dev/ttyACM*) and that no other program holds it",
            EXIT_DEVICE,
        ) from None


def _flash(args: argparse.Namespace, port: Any, data: bytes, m: Any, rep: Reporter) -> int:
    from protocol import image

    client = FlashClient(FrameLink(port), timeout_s=args.timeout)
    rep.event("connect", "Connecting to %s ..." % args.port, port=args.port)
    before = client.query()
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
    offset, max_chunk, window = client.begin(data, h.head_len, args.restart)
    if offset:
        rep.event(
            "resume",
            "Resuming at 0x%08x: the gate already holds %s bytes" % (offset, "{:,}".format(offset)),
            offset=offset,
        )
    rep._base = offset
    secs = client.send(data, offset, max_chunk, window, rep.progress)
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
    digest, summary = client.end()
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
    client.activate()
    rep.event(
        "activate", "Activating slot %s for a trial boot; the gate reboots ..." % slot, slot=slot
    )
    st = client.wait_outcome(slot, args.boot_timeout)
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
