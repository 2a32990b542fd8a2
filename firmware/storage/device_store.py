"""What provisioning leaves on the gate: identity, operator root, device key, certificate,
config, lists and flags, in one state directory. Every write is atomic (platform.write_atomic),
so a power cut or an unplugged cable mid-provisioning leaves the old content or the new.

    factory.json        {"device_id", "model", "firmware"}: written at the factory, kept by reset
    anchor.pub          the operator root's public key (33 bytes): set once by the first claim
    device.key          the device's private key; read only to sign, never sent anywhere
    cert.bin            the device certificate (protocol.certs)
    config.json, trust_list.bin, deny_list.bin, fare_table.bin, tls_cert.bin   installed blobs
    <name>.part         an upload in progress, with <name>.part.json {"total", "sha256"}
    state.json          flags: {"clock_set": bool, "selftest": {...}}

`keys` is the platform's key backend (handed in): .generate() -> secret bytes and
.signer(secret) -> an object with .public_key (33-byte SEC1 compressed) and .sign(msg).
`Keys(backend, rng)` is that backend for any signature backend of firmware.platform.crypto()
(OpenSSL on a Linux gate, protocol/p256.py on an MCU gate).
"""

import binascii
import hashlib
import json
import os

from firmware import platform
from protocol import certs, service
from protocol.errors import FormatError

# the operator root goes last: a reset cut short leaves a gate its operator can still reset
_WIPED = ("device.key", "state.json", "anchor.pub")


def _hex(b: bytes) -> str:
    return binascii.hexlify(b).decode()


def _sha256_file(path: str):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return n, h.digest()


def blob_name(kind: int) -> str:
    return service.BLOBS[kind][0]


def blob_file(kind: int) -> str:
    return blob_name(kind) + (".json" if kind == service.BLOB_CONFIG else ".bin")


class Keys:
    """The device key backend over a signature backend with `signer(secret32)`: the secret is
    32 random bytes from `rng(n)` (redrawn in the rare case it is not a valid P-256 scalar)."""

    def __init__(self, backend, rng):
        self.backend = backend
        self.rng = rng

    def generate(self) -> bytes:
        while True:
            secret = bytes(self.rng(32))
            try:
                self.backend.signer(secret)
                return secret
            except ValueError:
                continue

    def signer(self, secret: bytes):
        return self.backend.signer(secret)


class DeviceStore:
    def __init__(self, directory: str, keys):
        self.dir = directory
        self.keys = keys
        factory = platform.read_file(self._p("factory.json"))
        if factory is None:
            raise OSError("no factory.json in %s: not a gate state directory" % directory)
        info = json.loads(factory)
        self.device_id = int(info["device_id"])
        self.model = str(info.get("model", "gate"))
        self.firmware = str(info.get("firmware", "0"))
        self._signer = None
        self.flags: dict = {}
        raw = platform.read_file(self._p("state.json"))
        if raw:
            try:
                self.flags = json.loads(raw)
            except ValueError:
                self.flags = {}

    def _p(self, name: str) -> str:
        return self.dir + "/" + name

    # -- operator root -------------------------------------------------------------------
    def anchor(self):
        data = platform.read_file(self._p("anchor.pub"))
        return data if data and len(data) == certs.PUB_LEN else None

    def set_anchor(self, pub: bytes) -> None:
        platform.write_atomic(self._p("anchor.pub"), bytes(pub))

    # -- device key ----------------------------------------------------------------------
    def signer(self):
        """The device key's signer, or None before GEN_KEY."""
        if self._signer is None:
            secret = platform.read_file(self._p("device.key"))
            if secret:
                self._signer = self.keys.signer(secret)
        return self._signer

    def generate_key(self) -> bool:
        """Create the device key unless there is one. True if it was created now."""
        if self.signer() is not None:
            return False
        platform.write_atomic(self._p("device.key"), self.keys.generate())
        self._signer = None
        return self.signer() is not None

    # -- installed blobs -----------------------------------------------------------------
    def read_blob(self, kind: int):
        return platform.read_file(self._p(blob_file(kind)))

    def cert(self):
        raw = self.read_blob(service.BLOB_CERT)
        if not raw:
            return None
        try:
            return certs.parse(raw)
        except Exception:
            return None

    def blob_info(self, kind: int) -> dict:
        out: dict = {"kind": blob_name(kind), "installed": None, "partial": None}
        path = self._p(blob_file(kind))
        if platform.path_exists(path):
            n, digest = _sha256_file(path)
            out["installed"] = {"bytes": n, "sha256": _hex(digest)}
        part = self._partial(kind)
        if part:
            out["partial"] = part
        return out

    def _partial(self, kind: int):
        meta = platform.read_file(self._p(blob_file(kind) + ".part.json"))
        if not meta:
            return None
        try:
            info = json.loads(meta)
            size = os.stat(self._p(blob_file(kind) + ".part"))[6]
        except (ValueError, OSError):
            return None
        return {"total": info["total"], "sha256": info["sha256"], "received": size}

    def put_chunk(self, kind: int, total: int, offset: int, digest: bytes, chunk: bytes):
        """Append one chunk of an upload. Returns (received, data) where data is the whole
        upload once complete and its SHA-256 matches (not yet installed: see `install`).
        A chunk that does not continue the partial upload restarts it if its offset is 0."""
        part = self._p(blob_file(kind) + ".part")
        want = {"total": total, "sha256": _hex(digest)}
        cur = self._partial(kind)
        same = cur is not None and cur["total"] == total and cur["sha256"] == want["sha256"]
        if offset == 0:
            platform.write_atomic(part, b"")
            platform.write_atomic(part + ".json", json.dumps(want).encode())
        elif not same or cur["received"] != offset:
            have = cur["received"] if same else 0
            raise FormatError(
                "upload continues at byte %d, not %d" % (have, offset), "svc_bad_request"
            )
        with open(part, "ab") as f:
            f.write(chunk)
            platform.sync_file(f)
        received = offset + len(chunk)
        if received < total:
            return received, None
        n, got = _sha256_file(part)
        if n != total or got != bytes(digest):
            self.drop_partial(kind)
            raise FormatError("upload's SHA-256 does not match; send it again", "svc_bad_blob")
        return received, platform.read_file(part)

    def install(self, kind: int) -> None:
        """Make the completed upload of `kind` the installed one (atomic rename)."""
        path = self._p(blob_file(kind))
        os.rename(path + ".part", path)
        platform.sync_dir(path)
        platform.remove_if_exists(path + ".part.json")

    def write_blob(self, kind: int, data: bytes) -> None:
        """Install a whole blob at once (one that came by sync rather than the console)."""
        platform.write_atomic(self._p(blob_file(kind)), bytes(data))

    def drop_partial(self, kind: int) -> None:
        name = self._p(blob_file(kind))
        platform.remove_if_exists(name + ".part")
        platform.remove_if_exists(name + ".part.json")

    # -- flags ---------------------------------------------------------------------------
    def set_flag(self, name: str, value) -> None:
        self.flags[name] = value
        platform.write_atomic(self._p("state.json"), json.dumps(self.flags).encode())

    # -- factory reset -------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget everything provisioning wrote; keep factory.json, the journal and the log."""
        for kind in service.BLOBS:
            self.drop_partial(kind)
            platform.remove_if_exists(self._p(blob_file(kind)))
        for name in _WIPED:
            platform.remove_if_exists(self._p(name))
        self._signer = None
        self.flags = {}
