"""What the boot shim (firmware/maintenance/boot.py) verifies before a slot runs, as MCUboot does.

1. The release signature. The update agent keeps each slot's signed head (the image's header and
   manifest, `slot_X.head`) next to its files. The shim verifies it with the gate's
   `release_keys` (device.json), with its own P-256 verifier: `boot_p256.py` next to it (a copy
   of protocol/p256.py, never one from a slot). Missing, unknown key, or not verifying:
   `boot_bad_signature`.
2. The files, against the hashes of that signed manifest (not `slot_X.json`, the agent's index,
   which is as writable as the files). A file that differs from the signed manifest while the
   index agrees with it was changed on purpose: `boot_bad_signature`; one that differs from
   both is damage, `trial_corrupt` / `active_corrupt` as before.
3. The anti-rollback counter. The signed manifest's security counter must be at least the
   gate's rollback counter, kept in a counter store outside the slots and outside boot.json that
   only goes up: below it, `boot_rollback`. The shim raises it to the counter of the confirmed
   image it boots (and to boot.json's `floor`, only ever upwards), so lowering boot.json's
   `floor` or putting an older signed image back in a slot boots nothing older (and each boot
   sets boot.json's `floor` back up, so the update agent refuses it at staging). A store that
   cannot be read is `boot_counter_damaged` and nothing boots.

Counter stores (device.json `"rollback_counter"`):
    "file" (default)  FileCounter, STATE/rollback_counter.json, written only by raise_to
    "file:PATH"       the same at another path (a partition the gate's app cannot write)
    "otp:PATH"        OtpCounter over SimOtp: a simulated one-time-programmable memory (an MCU's
                      OTP or eFuse words: bits only ever set), in a file for tests and the
                      simulator; a real board hands in its own object with read()/program()
docs/firmware-images.md ("Boot verification and the rollback counter") says what real boards
use: ESP32 eFuse secure version, STM32 OTP words, a TPM NV counter.

A module of its own so that a running gate, which imports boot.py for its state table, does not
carry this code in an MCU's small heap: only the shim loads it (boot.boot_check). It imports
nothing but the interpreter's modules; boot.py hands in what it needs of its own.
"""

import hashlib
import json
import struct
import sys

COUNTER_FILE = "rollback_counter.json"
OTP_WORDS = 64  # counter raises an OTP store holds (one 32-bit word each)
DOMAIN = b"faregate-image-v1\x00"  # protocol/image.py SIGNING_DOMAIN
HEADER_LEN = 88
MAX_MANIFEST = 64 * 1024


class CounterDamaged(Exception):
    """The rollback counter store cannot be read, or is full."""


class FileCounter:
    """The rollback counter in a file outside the slots, written only by `raise_to` (atomically,
    never lower). On Linux as safe as the file's permissions: see docs/firmware-images.md."""

    def __init__(self, save, path: str):
        self.save = save  # boot.save_state: the shim's one atomic write
        self.path = path

    def read(self) -> int:
        try:
            with open(self.path) as f:
                raw = f.read()
        except OSError:
            return 0  # no store yet: a gate that never confirmed an image
        try:
            rec = json.loads(raw)
            n = int(rec["counter"])
        except (ValueError, KeyError, TypeError):
            raise CounterDamaged("%s is damaged" % self.path) from None
        if rec.get("v") != 1 or n < 0:
            raise CounterDamaged("%s has an unknown format" % self.path)
        return n

    def raise_to(self, n: int) -> None:
        if n > self.read():
            d, _, name = self.path.rpartition("/")
            self.save(d or ".", {"v": 1, "counter": n}, name)


class SimOtp:
    """A simulated one-time-programmable memory in a file: `words` words of 32 bits, 0 when
    blank; programming ORs bits in (a fuse blows), nothing clears one."""

    def __init__(self, path: str, words: int = OTP_WORDS):
        self.path = path
        self.words = words

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(4 * self.words)
        except OSError:
            raw = b""
        return raw + bytes(4 * self.words - len(raw))

    def program(self, index: int, word: int) -> None:
        raw = bytearray(self.read())
        old = struct.unpack(">I", raw[4 * index : 4 * index + 4])[0]
        raw[4 * index : 4 * index + 4] = struct.pack(">I", old | word)
        with open(self.path, "wb") as f:
            f.write(raw)
            f.flush()


class OtpCounter:
    """The rollback counter in OTP words: a raise programs the next blank word with the new
    value; the counter is the highest word. Programming only sets bits, and a word with more
    bits set is never smaller, so no write of any kind lowers it; `otp.words` raises in all."""

    def __init__(self, otp):
        self.otp = otp

    def _words(self) -> list:
        raw = self.otp.read()
        return [struct.unpack(">I", raw[i : i + 4])[0] for i in range(0, 4 * self.otp.words, 4)]

    def read(self) -> int:
        return max(self._words())

    def raise_to(self, n: int) -> None:
        words = self._words()
        if n <= max(words):
            return
        for i, w in enumerate(words):
            if w == 0:
                self.otp.program(i, n)
                return
        raise CounterDamaged("the OTP counter store is full (%d raises)" % self.otp.words)


def counter_store(save, state_dir: str, device: dict):
    """The counter store device.json's "rollback_counter" names (an object is used as is)."""
    spec = (device or {}).get("rollback_counter", "file")
    if not isinstance(spec, str):
        return spec
    kind, _, path = spec.partition(":")
    if path and not path.startswith("/"):
        path = state_dir + "/" + path
    if kind == "file":
        return FileCounter(save, path or state_dir + "/" + COUNTER_FILE)
    if kind == "otp" and path:
        return OtpCounter(SimOtp(path))
    raise CounterDamaged("unknown rollback_counter %r" % spec)


def release_keys(device: dict) -> dict:
    """{key id (8 bytes): SEC1 public key} from device.json's release_keys (hex)."""
    out = {}
    for h in (device or {}).get("release_keys", ()):
        pub = bytes(int(h[i : i + 2], 16) for i in range(0, len(h), 2))
        out[hashlib.sha256(pub).digest()[:8]] = pub
    return out


def boot_verifier():
    """The bootloader's own P-256 verify: boot_p256.py next to this file; protocol.p256 when
    run from the source tree. No precomputed tables: one signature per slot, in a small heap."""
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, here)
    try:
        import boot_p256 as p256  # type: ignore[import-not-found]
    except ImportError:
        try:
            from protocol import p256  # type: ignore[no-redef]
        except ImportError:
            return None
    finally:
        sys.path.remove(here)
    return p256.verify_plain


def _hex(b: bytes) -> str:
    return "".join("%02x" % x for x in b)


def signed_head(path: str, keys: dict, verify):
    """The signed manifest in the head file `path`, verified (see parse_head)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_LEN + MAX_MANIFEST + 1)
    except OSError:
        return "no signed head (%s)" % path
    return parse_head(head, keys, verify)


def parse_head(head: bytes, keys: dict, verify):
    """A slot's head (image header and manifest, protocol/image.py's layout), its signature
    verified with `keys` {key id: SEC1 public key}: (counter, [(path, size, sha256 hex)]), or a
    string saying why not. Never raises: the shim must decide, whatever the bytes."""
    if len(head) < HEADER_LEN or head[:4] != b"FGIM" or head[5] != 1:
        return "the head is not a signed image header"
    mlen = struct.unpack(">I", head[8:12])[0]
    if len(head) != HEADER_LEN + mlen or mlen < 24:
        return "the head is %d bytes, its header says %d" % (len(head), HEADER_LEN + mlen)
    pub = keys.get(bytes(head[16:24]))
    if pub is None:
        return "signed by key %s, not one of the gate's release keys" % _hex(head[16:24])
    if verify is None:
        return "the bootloader has no signature verifier (boot_p256.py)"
    manifest = head[HEADER_LEN:]
    if not verify(pub, DOMAIN + head[:24] + manifest, head[24:HEADER_LEN]):
        return "the release signature does not verify"
    try:
        counter = struct.unpack(">I", manifest[10:14])[0]
        n = struct.unpack(">H", manifest[22:24])[0]
        pos, files = 24, []
        for _ in range(n):
            plen = manifest[pos]
            name = manifest[pos + 1 : pos + 1 + plen].decode()
            size = struct.unpack(">I", manifest[pos + 1 + plen : pos + 5 + plen])[0]
            digest = manifest[pos + 5 + plen : pos + 37 + plen]
            if len(digest) != 32 or not name or "\x00" in name:
                return "the signed manifest does not parse"
            files.append((name, size, _hex(digest)))
            pos += 37 + plen
    except (IndexError, ValueError, UnicodeError, struct.error):
        return "the signed manifest does not parse"
    return counter, files


def _hash_file(path: str):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return n, _hex(h.digest())


def _index(path: str) -> dict:
    try:
        with open(path) as f:
            return {str(p): (int(n), str(h)) for p, n, h in json.load(f)["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class BootCheck:
    """The checks `boot.choose` runs through: `start(st)` reads the counter (False, with
    `st["last"]` saying why, when it cannot), `slot(s)` is None or why slot s may not boot,
    `booted(s)` raises the counter to the confirmed slot s's signed counter."""

    def __init__(self, state_dir: str, device: dict, slot_dir, save, verify=None):
        self.slot_dir = slot_dir  # boot.slot_dir and boot.save_state, handed in
        self.save = save
        self.dir = state_dir
        self.keys = release_keys(device)
        self.verify = verify or boot_verifier()
        self.device = device
        self.floor = 0

    def _head(self, slot: str):
        return signed_head(self.slot_dir(self.dir, slot) + ".head", self.keys, self.verify)

    def start(self, st: dict) -> bool:
        try:
            self.counter = counter_store(self.save, self.dir, self.device)
            self.counter.raise_to(st.get("floor", 0))  # a gate from before the store
            self.floor = self.counter.read()
            st["floor"] = max(st.get("floor", 0), self.floor)  # the agent's copy, restored
            return True
        except (CounterDamaged, OSError) as e:
            st["last"] = {"event": "refused", "reason": "boot_counter_damaged", "detail": str(e)}
            return False

    def slot(self, slot: str):
        got = self._head(slot)
        if isinstance(got, str):
            return "boot_bad_signature: " + got
        counter, files = got
        if counter < self.floor:
            return "boot_rollback: security counter %d is below the gate's %d" % (
                counter,
                self.floor,
            )
        d = self.slot_dir(self.dir, slot)
        index = _index(d + ".json")
        for name, size, digest in files:
            try:
                found = _hash_file(d + "/" + name)
            except OSError:
                return "missing " + name
            if found != (size, digest):
                if index.get(name) == found:  # the index was edited to match: not decay
                    return "boot_bad_signature: %s differs from the signed manifest" % name
                return "hash mismatch in " + name
        return None

    def booted(self, slot: str) -> None:
        got = self._head(slot)
        if isinstance(got, str):
            return
        try:
            self.counter.raise_to(got[0])
        except (CounterDamaged, OSError):
            pass  # raised again at the next boot
