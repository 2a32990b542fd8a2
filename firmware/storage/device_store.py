"""What provisioning leaves on the gate: identity, operator root, device key, certificate,
config, lists and flags, in one state directory. Every write is atomic (`fs.write_atomic`, the
storage object of firmware/storage/fs.py, through which every file operation goes), so a power
cut or an unplugged cable mid-provisioning leaves the old content or the new.

    factory.json        {"device_id", "model", "firmware"}: written at the factory, kept by reset
    anchor.pub          the operator root's public key (33 bytes): set once by the first claim
    device.key          the device's private key; read only to sign, never sent anywhere
    cert.bin            the device certificate (protocol.certs)
    config.json, trust_list.bin, deny_list.bin, fare_table.bin, tls_cert.bin   installed blobs
    root_meta.bin       the root metadata (protocol/rootmeta.py): the claim binding, kept by a
                        reset unless a root-signed release was installed (release.bin)
    <name>.part         an upload in progress, with <name>.part.json {"total", "sha256"}
    state.json          flags: {"clock_set": bool, "selftest": {...}}

`keys` is the platform's key backend (handed in): .generate() -> secret bytes and
.signer(secret) -> an object with .public_key (33-byte SEC1 compressed) and .sign(msg).
`Keys(backend, rng)` is that backend for any signature backend of firmware.platform.crypto()
(OpenSSL on a Linux gate, protocol/p256.py on an MCU gate).

The device key lives in `device.key` (owner-only, written through `fs.write_secret`), unless
the entry point hands in a key holder opened from the gate's `device_key` URL
(drivers/linux/key_pkcs11.TokenKey: a PKCS#11 token; the key never leaves it). A holder has
    .signer() -> the signer, or None before GEN_KEY     .generate()     .forget() (factory reset)
and `.kind` ("pkcs11"; "unusable": key_pkcs11.UnusableKey, a URL that could not be opened).
"""

import binascii
import hashlib
import json

from firmware.storage.fs import DISK, IO_CHUNK
from protocol import certs, service
from protocol.errors import FaregateError, FormatError

# after the device key (first: device.key, or a token's key that cannot be destroyed
# stops the reset before anything is wiped), the operator root goes last: a reset cut short
# leaves a gate its operator can still reset
_WIPED = ("state.json", "anchor.pub")
ROOT_META = "root_meta.bin"  # service.BLOB_ROOT's file


def _hex(b: bytes) -> str:
    return binascii.hexlify(b).decode()


def _sha256_file(fs, path: str):
    h = hashlib.sha256()
    n = 0
    f = fs.open_file(path, "rb")
    try:
        while True:
            chunk = f.read(IO_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    finally:
        f.close()
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
    def __init__(self, directory: str, keys, fs=DISK, key=None):
        self.dir = directory
        self.keys = keys
        self.fs = fs
        factory = fs.read_file(self._p("factory.json"))
        if factory is None:
            raise OSError("no factory.json in %s: not a gate state directory" % directory)
        info = json.loads(factory)
        self.device_id = int(info["device_id"])
        self.model = str(info.get("model", "gate"))
        self.firmware = str(info.get("firmware", "0"))
        self.key = key  # None: the file device.key
        self._signer = None
        self._root = False  # the root metadata: False until read
        self.key_error = None
        self.flags: dict = {}
        raw = fs.read_file(self._p("state.json"))
        if raw:
            try:
                self.flags = json.loads(raw)
            except ValueError:
                self.flags = {}

    def _p(self, name: str) -> str:
        return self.dir + "/" + name

    # -- operator root -------------------------------------------------------------------
    def anchor(self):
        data = self.fs.read_file(self._p("anchor.pub"))
        return data if data and len(data) == certs.PUB_LEN else None

    def set_anchor(self, pub: bytes) -> None:
        self.fs.write_atomic(self._p("anchor.pub"), bytes(pub))

    # -- root metadata (protocol/rootmeta.py; docs/security.md "Roles") ------------------
    def root(self):
        """The root metadata held (a protocol.rootmeta.Root), or None. One that does not parse
        (a damaged flash) is trusted as nothing: the gate then trusts its implicit root (the
        anchor), as before the binding. protocol.rootmeta is loaded only when there is one (an
        MCU gate without one does not carry it)."""
        if self._root is False:
            self._root = None
            raw = self.fs.read_file(self._p(ROOT_META))
            if raw:
                from protocol import rootmeta

                try:
                    self._root = rootmeta.parse(raw)
                except FormatError:
                    pass
        return self._root

    def root_version(self) -> int:
        root = self.root()
        return root.version if root is not None else 0

    def set_root(self, data: bytes, root) -> None:
        """Keep checked root metadata (firmware/compose/roles.py checks it first)."""
        self.fs.write_atomic(self._p(ROOT_META), bytes(data))
        self._root = root

    def lists_signers(self):
        """Who signs deny and plate lists here (firmware/verify/truststore.ListKeys): the root
        metadata's lists role (its keys, its threshold, and the other roles' key ids, to name a
        list one of them signed), else the anchor alone, threshold 1 (docs/security.md,
        "Lists")."""
        from firmware.verify.truststore import ListKeys

        root = self.root()
        if root is None:
            anchor = self.anchor()
            return ListKeys([anchor] if anchor is not None else [])
        from protocol import rootmeta  # (a gate without root metadata does not load it)

        return ListKeys(*rootmeta.lists_keys(root))

    def role_keys(self, name: str) -> list:
        """The keys of role `name` (protocol.rootmeta.ROLE_IDS) this gate trusts: the root
        metadata's, else the implicit root's: the anchor for every role but sync (whose key is
        then the config's sync.host_key)."""
        root = self.root()
        if root is None:
            anchor = self.anchor()
            return [anchor] if anchor is not None and name != "sync" else []
        from protocol import rootmeta

        return [bytes(k) for k in root.keys(rootmeta.ROLE_IDS[name])]

    # -- device key ----------------------------------------------------------------------
    def signer(self):
        """The device key's signer, or None before GEN_KEY, or when its holder cannot be used
        (a token missing or refusing its PIN): then `key_error` says why (else None)."""
        if self._signer is None:
            try:
                if self.key is None:
                    secret = self.fs.read_file(self._p("device.key"))
                    self._signer = self.keys.signer(secret) if secret else None
                else:
                    self._signer = self.key.signer()
                self.key_error = None
            except FaregateError as e:
                self.key_error = e
        return self._signer

    def generate_key(self) -> bool:
        """Create the device key unless there is one. True if it was created now."""
        if self.signer() is not None:
            return False
        if self.key is None:
            self.fs.write_secret(self._p("device.key"), self.keys.generate())
        else:
            self.key.generate()
        self._signer = None
        return self.signer() is not None

    # -- installed blobs -----------------------------------------------------------------
    def read_blob(self, kind: int):
        return self.fs.read_file(self._p(blob_file(kind)))

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
        if self.fs.path_exists(path):
            n, digest = _sha256_file(self.fs, path)
            out["installed"] = {"bytes": n, "sha256": _hex(digest)}
        part = self._partial(kind)
        if part:
            out["partial"] = part
        return out

    def _partial(self, kind: int):
        meta = self.fs.read_file(self._p(blob_file(kind) + ".part.json"))
        if not meta:
            return None
        try:
            info = json.loads(meta)
            size = self.fs.file_size(self._p(blob_file(kind) + ".part"))
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
            self.fs.write_atomic(part, b"")
            self.fs.write_atomic(part + ".json", json.dumps(want).encode())
        elif not same or cur["received"] != offset:
            have = cur["received"] if same else 0
            raise FormatError(
                "upload continues at byte %d, not %d" % (have, offset), "svc_bad_request"
            )
        self.fs.append(part, chunk)
        received = offset + len(chunk)
        if received < total:
            return received, None
        n, got = _sha256_file(self.fs, part)
        if n != total or got != bytes(digest):
            self.drop_partial(kind)
            raise FormatError("upload's SHA-256 does not match; send it again", "svc_bad_blob")
        return received, self.fs.read_file(part)

    def install(self, kind: int) -> None:
        """Make the completed upload of `kind` the installed one (atomic rename)."""
        path = self._p(blob_file(kind))
        self.fs.rename(path + ".part", path)
        self.fs.sync_dir(path)
        self.fs.remove_if_exists(path + ".part.json")

    def write_blob(self, kind: int, data: bytes) -> None:
        """Install a whole blob at once (one that came by sync rather than the console)."""
        self.fs.write_atomic(self._p(blob_file(kind)), bytes(data))

    def drop_partial(self, kind: int) -> None:
        name = self._p(blob_file(kind))
        self.fs.remove_if_exists(name + ".part")
        self.fs.remove_if_exists(name + ".part.json")

    # -- flags ---------------------------------------------------------------------------
    def set_flag(self, name: str, value) -> None:
        self.flags[name] = value
        self.fs.write_atomic(self._p("state.json"), json.dumps(self.flags).encode())

    # -- factory reset -------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget everything provisioning wrote; keep factory.json, the journal and the log,
        and the root metadata (the claim binding) unless the root released the gate."""
        released = self.flags.get("released")
        if self.key is None:
            self.fs.remove_if_exists(self._p("device.key"))
        else:
            self.key.forget()
        self._signer = None
        for kind in service.BLOBS:
            self.drop_partial(kind)
            if kind != service.BLOB_ROOT or released:
                self.fs.remove_if_exists(self._p(blob_file(kind)))
        for name in _WIPED:
            self.fs.remove_if_exists(self._p(name))
        self._signer = None
        self._root = False  # kept or gone: read again
        self.flags = {}
