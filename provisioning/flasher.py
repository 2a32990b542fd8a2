"""The host's side of flashing a gate (protocol/flash.py) over a provisioning.transport.Transport
whose service-console session is open: `FlashClient` streams an image in chunks, go-back-N on
loss, resumes a cut transfer, and `wait_outcome` follows the trial boot after ACTIVATE.
`faregate flash` (provisioning/cli/flash.py) is its command line.
"""

import binascii
import hashlib
import time
from collections.abc import Callable
from typing import Any

from protocol import flash, frames
from protocol.errors import EXIT_AUTH, EXIT_DEVICE, EXIT_FAILED
from provisioning.console import AUTH_REASONS as SESSION_REASONS
from provisioning.console import REMEDIES as SESSION_REMEDIES
from provisioning.errors import ProvisioningError
from provisioning.image_build import AUTH_REASONS as IMAGE_REASONS
from provisioning.transport import Transport

# refusal reason -> what to do (console refusals: provisioning.console.REMEDIES)
REMEDIES = {
    "image_unsigned": "sign it: faregate image sign IMAGE --key operator/release.key",
    "image_unknown_key": "sign with a release key the gate trusts",
    "image_bad_signature": "the file was altered after signing; rebuild and sign",
    "image_wrong_target": "build for the gate's profile (faregate image build --profile)",
    "image_rollback": "build with --counter at or above the gate's",
    "image_hash_mismatch": "run the same command again; if it repeats, rebuild",
    "image_truncated": "run the same command again to resume",
    "update_busy": "wait for the trial boot to finish, then flash again",
    "update_no_previous": "nothing to go back to: flash the image you want (faregate flash IMAGE)",
    "no_verifier": "this gate cannot check signatures: it needs an image with a verifier",
    "image_head_too_large": "fewer files in the image, or raise the gate's buffers.console_frame",
}


def _remedy(reason: str) -> str:
    if reason == "no_answer":
        return "check the cable and that the gate is powered, then run it again"
    return REMEDIES.get(reason) or SESSION_REMEDIES.get(reason, "")


class FlashError(ProvisioningError):
    """Flashing failed: `reason` names why (protocol/reasons.py, or no_answer, bad_message)."""

    reason = "flash_failed"

    def __init__(self, message: str, reason: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message, reason, _remedy(reason), exit_code)


class Refused(FlashError):
    """The gate refused: `reason` is a name from protocol/reasons.py, `detail` its words."""

    def __init__(self, reason: str, detail: str) -> None:
        auth = reason in IMAGE_REASONS or reason in SESSION_REASONS
        code = EXIT_AUTH if auth else EXIT_FAILED
        super().__init__("gate refused: %s (%s)" % (detail, reason), reason, code)
        self.detail = detail


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

    def rollback(self) -> dict[str, Any]:
        return flash.parse_status(self._request(flash.ROLLBACK, b"", flash.STATUS, "ROLLBACK"))


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
