"""The laptop's side of the service console: one authenticated session with a gate.

    client = ServiceClient(Transport(port))
    ident = client.hello()                       # who is there (no credential needed)
    client.authenticate(credential, claim=True)  # claim only matters on a blank gate
    client.status(); client.put_blob(kind, data, progress); ...

Each request is signed with the technician key over the gate's session nonce and numbered;
a silent gate gets the same bytes again (the gate answers a retransmission from its cache, so
nothing runs twice). What the gate says about itself is checked: the identity signature with
its key, the proof of possession of a new key, and every upload is read back by SHA-256.
"""

import hashlib
import json
import os
import struct
from collections.abc import Callable
from typing import Any

from drivers.linux.crypto_openssl import OpenSSLVerifier
from protocol import certs, reasons, records, service
from protocol.errors import EXIT_AUTH, EXIT_FAILED, FormatError
from protocol.frames import Frame
from provisioning.errors import ProvisioningError
from provisioning.transport import Transport

# refusals that mean "who you are" rather than "what you asked": exit code 4
AUTH_REASONS = (
    "svc_unauthenticated",
    "svc_replayed",
    "svc_bad_signature",
    "svc_bad_credential",
    "svc_credential_expired",
    "svc_revoked",
    "svc_forbidden",
    "svc_not_provisioned",
    "svc_claimed",
)

# refusal reason -> what the technician should do
REMEDIES = {
    "svc_not_provisioned": "provision it first: faregate provision --site SITE.toml",
    "svc_claimed": "this gate belongs to another operator: only that operator can reset it",
    "svc_bad_credential": "use a credential issued by this gate's operator (faregate keys "
    "technician)",
    "svc_credential_expired": "ask the operator for a new credential (`faregate device "
    "identify` shows the gate's clock)",
    "svc_revoked": "this credential is revoked: ask the operator for a new one",
    "svc_forbidden": "this credential's role does not allow it: use one with role full",
    "svc_bad_signature": "technician.key does not match the credential, or the line is noisy: "
    "run the command again",
    "svc_unauthenticated": "run the command again (it opens a new session)",
    "svc_replayed": "run the command again (it opens a new session)",
    "svc_unsynced": "sync the gate first, or export the passages: "
    "faregate device reset --export FILE --force",
    "svc_export_mismatch": "run the reset again: it exports the passages anew",
    "svc_storage": "the gate's storage failed: run `faregate device selftest`, then replace it",
}


class DeviceRefused(ProvisioningError):
    """The gate answered `command` with a refusal `reason` (protocol.reasons svc_*) and its
    own words (`detail`). Exit code 4 when the refusal is about who we are (AUTH_REASONS)."""

    reason = "svc_refused"

    def __init__(self, command: str, reason: str, detail: str) -> None:
        super().__init__(
            "gate refused %s: %s: %s" % (command, reason, detail),
            reason,
            REMEDIES.get(reason) or reasons.REASONS.get(reason, ("", "", ""))[2],
            EXIT_AUTH if reason in AUTH_REASONS else EXIT_FAILED,
        )
        self.command = command
        self.detail = detail

    @property
    def is_auth(self) -> bool:
        return self.reason in AUTH_REASONS


class DeviceMisbehaves(ProvisioningError):
    """The gate's answer does not check out: bad signature, wrong read-back, bad format."""

    reason = "device_misbehaves"
    exit_code = EXIT_AUTH
    remedy = "this is not a genuine gate of ours, or it is damaged"


class Identity:
    def __init__(self, raw: service.Identity) -> None:
        self.raw = raw
        self.device_id = raw.device_id
        self.state = service.STATE_NAMES[raw.state]
        self.anchor_id = raw.anchor_id
        self.device_pub = raw.device_pub
        try:
            self.info: dict[str, Any] = json.loads(raw.info) if raw.info else {}
        except ValueError:
            self.info = {}
        if not isinstance(self.info, dict):
            self.info = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "state": self.state,
            "model": self.info.get("model", ""),
            "firmware": self.info.get("firmware", ""),
            "name": self.info.get("name", ""),
            "time": self.info.get("time"),
            "operator_root": "%08x" % self.anchor_id if self.anchor_id else None,
            "device_key": self.device_pub.hex() if self.device_pub else None,
        }


class ServiceClient:
    def __init__(
        self,
        link: Transport,
        rng: Callable[[int], bytes] = os.urandom,
        verifier: Any = None,
    ) -> None:
        self.link = link
        self.rng = rng
        self.verifier = verifier or OpenSSLVerifier()
        self.ident: Identity | None = None
        self.host_nonce = b""
        self.signer: Any = None
        self.seq = 0

    # -- session -------------------------------------------------------------------------
    def hello(self) -> Identity:
        self.host_nonce = self.rng(service.NONCE_LEN)
        fr = self.link.exchange(
            service.HELLO,
            service.hello(self.host_nonce),
            lambda f: f.type == service.IDENTITY,
        )
        try:
            raw = service.parse_identity(fr.payload)
        except service.FormatError as e:
            raise DeviceMisbehaves("the gate's IDENTITY does not parse: %s" % e) from None
        if raw.device_pub:
            msg = service.identity_signing_input(self.host_nonce, raw.head)
            if not self.verifier.verify(raw.device_pub, msg, raw.sig):
                raise DeviceMisbehaves(
                    "gate %d's identity signature does not verify with its own key" % raw.device_id
                )
        self.ident = Identity(raw)
        self.seq = 0
        return self.ident

    def authenticate(self, signer: Any, cred_raw: bytes, anchor: bytes, claim: bool) -> dict:
        assert self.ident is not None, "hello() first"
        body = service.auth_body(service.AUTH_CLAIM if claim else 0, anchor, cred_raw)
        msg = service.auth_signing_input(
            self.ident.raw.device_nonce, self.host_nonce, self.ident.device_id, body
        )
        payload = body + signer.sign(msg)
        fr = self.link.exchange(service.AUTH, payload, self._want(0))
        out = self._result("auth", fr)
        self.signer = signer
        return json.loads(out)

    def _want(self, seq: int) -> Callable[[Frame], bool]:
        def want(fr: Frame) -> bool:
            if fr.type != service.RESPONSE or len(fr.payload) < 7:
                return False
            got_seq, _cmd, status = struct.unpack(">IBH", fr.payload[:7])
            return got_seq == seq or (got_seq == 0 and status != 0)

        return want

    def _result(self, name: str, fr: Frame) -> bytes:
        _seq, _cmd, status, body = service.parse_response(fr.payload)
        if status == 0:
            return body
        reason = reasons.by_number(status)
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = ""
        raise DeviceRefused(name, reason, message)

    def call(self, cmd: int, body: bytes = b"", timeout: float | None = None) -> bytes:
        assert self.ident is not None and self.signer is not None, "authenticate() first"
        self.seq += 1
        head = service.request_head(self.seq, cmd, body)
        msg = service.request_signing_input(self.ident.raw.device_nonce, head)
        fr = self.link.exchange(
            service.REQUEST, head + self.signer.sign(msg), self._want(self.seq), timeout
        )
        return self._result(service.COMMANDS[cmd][0], fr)

    def call_json(self, cmd: int, body: bytes = b"", timeout: float | None = None) -> Any:
        out = self.call(cmd, body, timeout)
        try:
            return json.loads(out)
        except ValueError:
            raise DeviceMisbehaves(
                "the gate's answer to %s is not JSON" % service.COMMANDS[cmd][0]
            ) from None

    # -- commands ------------------------------------------------------------------------
    def status(self) -> dict:
        return self.call_json(service.STATUS)

    def logs(self, first: int = 1, limit: int = 40) -> dict:
        return self.call_json(service.LOGS, struct.pack(">IH", first, limit))

    def all_logs(self, first: int = 1) -> list[dict]:
        out: list[dict] = []
        while True:
            page = self.logs(first)
            out += page["entries"]
            if not page["entries"] or page["next"] > page["last"]:
                return out
            first = page["next"]

    def journal_inspect(self) -> dict:
        return self.call_json(service.JOURNAL_INSPECT)

    def journal_repair(self, seq_floor: int = 0) -> dict:
        return self.call_json(service.JOURNAL_REPAIR, struct.pack(">Q", seq_floor))

    def blob_info(self, kind: int) -> dict:
        return self.call_json(service.BLOB_INFO, bytes((kind,)))

    def set_time(self, t: int, root: Any = None) -> dict:
        """root: the operator root's signer (.sign(msg) -> 64 bytes), for a change beyond the
        gate's clock.set_bound_s: it signs (device id, t, this session's nonce)."""
        sig = b""
        if root is not None:
            assert self.ident is not None, "hello() first"
            sig = root.sign(
                service.time_signing_input(self.ident.device_id, t, self.ident.raw.device_nonce)
            )
        return self.call_json(service.SET_TIME, service.set_time_body(t, sig))

    def selftest(self, host_time: int, timeout: float) -> dict:
        return self.call_json(service.SELFTEST, struct.pack(">I", host_time), timeout)

    def gen_key(self) -> tuple[bool, bytes]:
        """The gate's public key (created now if it had none), its proof of possession checked."""
        assert self.ident is not None
        out = self.call(service.GEN_KEY)
        if len(out) != 1 + service.PUB_LEN + service.SIG_LEN:
            raise DeviceMisbehaves("GEN_KEY answer is %d bytes" % len(out))
        pub = out[1 : 1 + service.PUB_LEN]
        msg = service.key_signing_input(
            self.ident.device_id, pub, self.host_nonce, self.ident.raw.device_nonce
        )
        if not self.verifier.verify(pub, msg, out[1 + service.PUB_LEN :]):
            raise DeviceMisbehaves("the gate's proof of possession of its key does not verify")
        return bool(out[0]), pub

    def put_blob(
        self,
        kind: int,
        data: bytes,
        progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Install `data` as `kind`, resuming a partial upload of the same bytes, then read
        it back. Returns "unchanged", "installed" or "resumed"."""
        digest = hashlib.sha256(data).digest()
        info = self.blob_info(kind)
        if info["installed"] and info["installed"]["sha256"] == digest.hex():
            return "unchanged"
        start = 0
        part = info.get("partial")
        if part and part["sha256"] == digest.hex() and part["total"] == len(data):
            start = part["received"]
        action = "resumed" if start else "installed"
        total = len(data)
        for off in range(start, max(total, 1), service.CHUNK):
            chunk = data[off : off + service.CHUNK]
            self.call(service.PUT_BLOB, service.put_blob_body(kind, total, off, digest, chunk))
            if progress:
                progress(off + len(chunk), total)
        back = self.blob_info(kind)
        if not back["installed"] or back["installed"]["sha256"] != digest.hex():
            raise DeviceMisbehaves(
                "read-back of %s does not match what was sent" % service.BLOBS[kind][0]
            )
        return action

    def export_unsynced(self, progress: Callable[[int, int], None] | None = None) -> list[bytes]:
        size = records.MAX_RECORD_LEN
        out: list[bytes] = []
        while True:
            body = self.call(service.EXPORT, struct.pack(">IH", len(out), service.CHUNK // size))
            total, index = struct.unpack(">II", body[:8])
            try:
                got = records.split(body[8:])  # records of either version, self-delimiting
            except FormatError as e:
                raise DeviceMisbehaves("EXPORT answered %s" % e) from None
            if index != len(out):
                raise DeviceMisbehaves("EXPORT answered from record %d" % index)
            out += got
            if progress:
                progress(len(out), total)
            if len(out) >= total or not got:
                return out

    def reset(self, force: bool, export_digest: bytes) -> dict:
        return self.call_json(service.RESET, service.reset_body(force, export_digest))


def check_device_cert(raw_hex: str, anchor: bytes, device_id: int, pub: bytes, now: int) -> str:
    """'' if the gate's installed certificate is ours, for it and its key, and valid a while
    longer; else why not."""
    try:
        cert = certs.parse(bytes.fromhex(raw_hex))
    except (ValueError, certs.FormatError) as e:
        return "does not parse: %s" % e
    if not certs.verify(cert, anchor, OpenSSLVerifier()):
        return "not signed by this operator root"
    if cert.kind != certs.KIND_DEVICE or cert.subject_id != device_id or cert.public_key != pub:
        return "for another device or key"
    if not cert.check_time(now + 30 * 86400):
        return "expires within 30 days"
    return ""
