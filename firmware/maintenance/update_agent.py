"""The update agent: stage an image into the inactive slot, check it, switch, confirm or revert.

    agent = UpdateAgent(state_dir, verifier, device, running_slot="a")
    offset, crc = agent.begin(total_len, image_sha256, head)   # refuses before any payload
    offset = agent.write(offset, chunk)                        # durable before it returns
    summary = agent.finish()        # read back, hash, signature, files; slot -> staged
    agent.request_test()            # slot -> pending: the next boot tries it (boot.py)
    agent.request_rollback()        # the previous image (other slot) -> pending, the same way
    agent.confirm() / agent.revert(reason)                     # from the app, after self-test
    agent.status()                  # running version and slot, for sync and device status

Checks, in this order, each refusal an `ImageRefused` with its reason (protocol/reasons.py):
structure (image_malformed) -> signed at all (image_unsigned) -> key id among the gate's
release keys (image_unknown_key) -> a verifier present (no_verifier) -> ES256 signature over
header and manifest (image_bad_signature) -> target profile and mpy ABI (image_wrong_target) ->
security counter >= the highest confirmed (image_rollback) -> size fits the slot
(image_too_large); at the end of the transfer: complete (image_truncated), the stored bytes hash
to what the sender announced and every file to its manifest entry (image_hash_mismatch), and
the signature once more over the bytes as stored. Nothing of the running slot is touched.

`device` is the gate's device.json: {"profile": "linux"|"mcu", "mpy": "6.3" (mcu),
"release_keys": [hex SEC1 public keys], "slot_capacity": bytes, "max_trial_boots": 1}.
Staging keeps `staging.part` (the bytes so far, each chunk durable before it is acknowledged)
and `staging.json` (which image), so a transfer cut at any point resumes where it stopped.
Its files go through the storage object `fs` (firmware/storage/fs.py; default the real one).
"""

import hashlib
import json
from binascii import crc32

from firmware.maintenance import boot
from firmware.storage.fs import DISK, IO_CHUNK
from protocol import image
from protocol.errors import FaregateError, FormatError

PART = "staging.part"
PART_INFO = "staging.json"
DEFAULT_CAPACITY = 4 * 1024 * 1024
_BUF = IO_CHUNK


class ImageRefused(FaregateError):
    """The gate will not install this image; `reason` says why (protocol/reasons.py)."""

    reason = "image_malformed"


def _hex(b: bytes) -> str:
    return "".join("%02x" % x for x in b)


def _rmtree(fs, path: str) -> None:
    if not fs.is_dir(path):
        return
    for name in fs.listdir(path):
        p = path + "/" + name
        if fs.is_dir(p):
            _rmtree(fs, p)
        else:
            fs.remove_if_exists(p)
    fs.rmdir(path)


def _makedirs(fs, path: str) -> None:
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur in ("", "/") else cur + "/" + part
        if not fs.is_dir(cur):
            fs.mkdir(cur)


def _size(fs, path: str) -> int:
    try:
        return fs.file_size(path)
    except OSError:
        return -1


def parse_mpy(text):
    if not text:
        return (0, 0)
    a, b = str(text).split(".")
    return (int(a), int(b))


class UpdateAgent:
    def __init__(self, state_dir: str, verifier, device: dict, running_slot=None, fs=DISK):
        self.dir = state_dir
        self.fs = fs
        self.verifier = verifier
        self.device = device
        self.running = running_slot
        self.keys = {}
        for h in device.get("release_keys", []):
            pub = bytes.fromhex(h)
            self.keys[image.key_id(pub)] = pub
        self.capacity = int(device.get("slot_capacity", DEFAULT_CAPACITY))
        self._out = None  # open staging.part while a transfer runs
        self._info = None

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict:
        return boot.load_state(self.dir)

    def _save(self, st: dict) -> None:
        boot.save_state(self.dir, st)

    def target_slot(self, st=None) -> str:
        st = st or self.state()
        return boot.other(st["active"]) if st.get("active") else "a"

    # -- checks ----------------------------------------------------------------------------

    def check_head(self, head: bytes, floor=None):
        """Every acceptance check that needs only header and manifest. Returns (Header,
        Manifest) or raises ImageRefused."""
        try:
            h, m = image.parse_head(head)
        except FormatError as e:
            raise ImageRefused(str(e), e.reason if e.reason.startswith("image_") else "") from None
        if h.alg == image.ALG_NONE:
            raise ImageRefused("the image is not signed", "image_unsigned")
        pub = self.keys.get(h.key_id)
        if pub is None:
            raise ImageRefused(
                "signed by key %s, which this gate does not trust" % _hex(h.key_id),
                "image_unknown_key",
            )
        if self.verifier is None:
            raise ImageRefused("no signature verifier on this gate", "no_verifier")
        if not self.verifier.verify(pub, image.signing_input(head), h.signature):
            raise ImageRefused("the release signature does not verify", "image_bad_signature")
        want = self.device.get("profile", "linux")
        if m.profile_name != want:
            raise ImageRefused(
                "image is for %s gates, this gate is %s" % (m.profile_name, want),
                "image_wrong_target",
            )
        if m.profile == image.PROFILE_MCU:
            mpy = parse_mpy(self.device.get("mpy"))
            if m.mpy != mpy:
                raise ImageRefused(
                    "image needs mpy %d.%d, this gate runs mpy %d.%d" % (m.mpy + mpy),
                    "image_wrong_target",
                )
        if floor is None:
            floor = self.state().get("floor", 0)
        if m.counter < floor:
            raise ImageRefused(
                "security counter %d is below %d, the gate's confirmed counter"
                % (m.counter, floor),
                "image_rollback",
            )
        if h.total_len > self.capacity:
            raise ImageRefused(
                "image of %d bytes exceeds the slot's %d" % (h.total_len, self.capacity),
                "image_too_large",
            )
        return h, m

    # -- staging ---------------------------------------------------------------------------

    def begin(self, total_len: int, sha256: bytes, head: bytes, restart: bool = False):
        """Start or resume a transfer. Returns (offset to send from, crc32 of the bytes held)."""
        st = self.state()
        if st.get("trial"):
            raise ImageRefused(
                "slot %s is on trial and not yet confirmed" % st["trial"], "update_busy"
            )
        h, _m = self.check_head(head, st.get("floor", 0))
        if total_len != h.total_len:
            raise ImageRefused("announced length does not match the image header")
        self._close()
        slot = self.target_slot(st)
        part = self.dir + "/" + PART
        info = self._load_info()
        same = (
            info is not None
            and info.get("sha256") == _hex(sha256)
            and info.get("len") == total_len
            and info.get("slot") == slot
            and st["slots"][slot]["state"] == "staging"
        )
        if not same or restart:
            if st.get("pending") == slot:
                boot.step(st, slot, "cancel")
            boot.step(st, slot, "stage")
            self._save(st)
            self.fs.remove_if_exists(part)
            info = {"sha256": _hex(sha256), "len": total_len, "slot": slot}
            self.fs.write_atomic(self.dir + "/" + PART_INFO, json.dumps(info).encode())
            with self.fs.open_file(part, "wb") as f:
                self.fs.sync_file(f)
        self._info = info
        held = _size(self.fs, part)
        if held > total_len:  # cannot happen unless the file was tampered with: start over
            return self.begin(total_len, sha256, head, restart=True)
        crc = 0
        with self.fs.open_file(part, "rb") as f:
            buf = bytearray(_BUF)
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                crc = crc32(buf[:k] if k < _BUF else buf, crc)
        self._out = self.fs.open_file(part, "ab")  # type: ignore[assignment]
        return held, crc & 0xFFFFFFFF

    def write(self, offset: int, data: bytes) -> int:
        """Append a chunk that starts at `offset`; returns the next offset wanted (durable).
        A chunk at any other offset is ignored and the offset wanted is returned."""
        if self._out is None or self._info is None:
            raise ImageRefused("no transfer in progress; begin first", "image_truncated")
        held = _size(self.fs, self.dir + "/" + PART)
        if offset != held or held + len(data) > self._info["len"]:
            return held
        self._out.write(data)
        self.fs.sync_file(self._out)
        return held + len(data)

    def finish(self) -> dict:
        """The transfer is complete: verify what was stored and unpack it into the slot."""
        self._close()
        info = self._load_info()
        part = self.dir + "/" + PART
        if info is None:
            raise ImageRefused("no transfer in progress", "image_truncated")
        held = _size(self.fs, part)
        if held < info["len"]:
            raise ImageRefused(
                "transfer stopped at %d of %d bytes; run the same flash again to resume"
                % (held, info["len"]),
                "image_truncated",
            )
        try:
            return self._unpack(info, part)
        except ImageRefused:
            self.abort()
            raise

    def _unpack(self, info: dict, part: str) -> dict:
        digest = self._hash_file(part)
        if _hex(digest) != info["sha256"]:
            raise ImageRefused(
                "stored image does not hash to the announced SHA-256", "image_hash_mismatch"
            )
        with self.fs.open_file(part, "rb") as f:
            head = f.read(image.HEADER_LEN)
            try:
                h0 = image.parse_header(head)
            except FormatError as e:
                raise ImageRefused(str(e)) from None
            head += f.read(h0.head_len - image.HEADER_LEN)
            st = self.state()
            h, m = self.check_head(head, st.get("floor", 0))  # again, over the stored bytes
            if h.total_len != info["len"]:
                raise ImageRefused("image length changed during the transfer")
            slot = info["slot"]
            d = boot.slot_dir(self.dir, slot)
            _rmtree(self.fs, d)
            _makedirs(self.fs, d)
            index = []
            for entry in m.files:
                path = d + "/" + entry.path
                _makedirs(self.fs, path.rsplit("/", 1)[0])
                hh = hashlib.sha256()
                left = entry.size
                with self.fs.open_file(path, "wb") as out:
                    while left:
                        chunk = f.read(min(left, _BUF))
                        if not chunk:
                            raise ImageRefused("image ends inside " + entry.path, "image_truncated")
                        hh.update(chunk)
                        out.write(chunk)
                        left -= len(chunk)
                    self.fs.sync_file(out)
                if hh.digest() != entry.sha256:
                    raise ImageRefused(
                        "%s does not match its manifest hash" % entry.path, "image_hash_mismatch"
                    )
                index.append([entry.path, entry.size, _hex(entry.sha256)])
        summary = m.summary()
        summary["image"] = info["sha256"]
        summary["slot"] = slot
        idx = dict(summary)
        idx["files"] = index
        self.fs.write_atomic(d + boot.HEAD_SUFFIX, bytes(head))  # what the boot shim verifies
        self.fs.write_atomic(d + ".json", json.dumps(idx).encode())
        st = self.state()
        boot.step(st, slot, "staged")
        st["slots"][slot].update(
            {"version": summary["version"], "counter": m.counter, "image": info["sha256"]}
        )
        st["last"] = {"event": "staged", "slot": slot, "version": summary["version"]}
        self._save(st)
        self.fs.remove_if_exists(part)
        self.fs.remove_if_exists(self.dir + "/" + PART_INFO)
        self._info = None
        return summary

    def abort(self, reason: str = "") -> None:
        """Discard a transfer in progress; the slot goes back to empty."""
        self._close()
        info = self._load_info()
        self.fs.remove_if_exists(self.dir + "/" + PART)
        self.fs.remove_if_exists(self.dir + "/" + PART_INFO)
        st = self.state()
        slot = info["slot"] if info else self.target_slot(st)
        if st["slots"][slot]["state"] == "staging":
            boot.step(st, slot, "abort")
            if reason:
                st["last"] = {"event": "refused", "slot": slot, "reason": reason}
            self._save(st)
        self._info = None

    def stage(self, data: bytes) -> dict:
        """Stage a whole image held in memory: the entry point for the sync link's firmware
        offer (issue 4) and for factory programming."""
        try:
            h = image.parse_header(data)
        except FormatError as e:
            raise ImageRefused(str(e)) from None
        offset, _crc = self.begin(
            len(data), hashlib.sha256(data).digest(), data[: h.head_len], restart=True
        )
        view = memoryview(data)  # chunks without copies: the image is already in RAM
        while offset < len(data):
            nxt = self.write(offset, view[offset : offset + 65536])
            if nxt == offset:
                break
            offset = nxt
        try:
            return self.finish()
        except ImageRefused as e:
            self.abort(e.reason)
            raise

    # -- switching -------------------------------------------------------------------------

    def request_test(self) -> str:
        """Mark the staged slot for a trial at the next boot. Returns the slot."""
        st = self.state()
        slot = self.target_slot(st)
        if st["slots"][slot]["state"] != "staged":
            raise ImageRefused(
                "no staged image to activate: slot %s is %s" % (slot, st["slots"][slot]["state"]),
                "image_truncated",
            )
        boot.step(st, slot, "test")
        st["last"] = {"event": "pending", "slot": slot, "version": st["slots"][slot].get("version")}
        self._save(st)
        return slot

    def request_rollback(self) -> str:
        """Mark the previous image (the other slot, superseded by the last confirmed update)
        for a trial at the next boot: it must pass the self-test and confirm like any update,
        and its security counter must not be below the gate's floor. Returns the slot."""
        st = self.state()
        if st.get("trial"):
            raise ImageRefused(
                "slot %s is on trial and not yet confirmed" % st["trial"], "update_busy"
            )
        slot = self.target_slot(st)
        rec = st["slots"][slot]
        if rec["state"] != "previous":
            raise ImageRefused(
                "no previous image to go back to: slot %s is %s" % (slot, rec["state"]),
                "update_no_previous",
            )
        if rec.get("counter", 0) < st.get("floor", 0):
            raise ImageRefused(
                "the previous image %s has security counter %d, below %d, the gate's confirmed "
                "counter" % (rec.get("version"), rec.get("counter", 0), st.get("floor", 0)),
                "image_rollback",
            )
        boot.step(st, slot, "test")
        st["last"] = {"event": "pending", "slot": slot, "version": rec.get("version")}
        st["last"]["rollback"] = True
        self._save(st)
        return slot

    def confirm(self) -> bool:
        """The running trial passed its self-test: make it the active slot. False when the
        gate is not on trial (nothing to do)."""
        st = self.state()
        slot = st.get("trial")
        if not slot or (self.running and slot != self.running):
            return False
        rec = st["slots"][slot]
        old = st.get("active")
        boot.step(st, slot, "confirm")
        if old and old != slot and st["slots"][old]["state"] == "confirmed":
            boot.step(st, old, "superseded")
        st["floor"] = max(st.get("floor", 0), rec.get("counter", 0))
        st["last"] = {"event": "confirmed", "slot": slot, "version": rec.get("version")}
        self._save(st)
        return True

    def revert(self, reason: str) -> bool:
        """The running trial failed its self-test: go back to the active slot at the next boot."""
        st = self.state()
        slot = st.get("trial")
        if not slot:
            return False
        boot.step(st, slot, "revert")
        st["last"] = {
            "event": "reverted",
            "slot": slot,
            "reason": reason,
            "version": st["slots"][slot].get("version"),
        }
        self._save(st)
        return True

    def note_refusal(self, reason: str, message: str) -> None:
        """Remember a refused image for status and sync (the running slot is untouched)."""
        st = self.state()
        st["last"] = {"event": "refused", "reason": reason, "message": message[:200]}
        self._save(st)

    # -- reporting -------------------------------------------------------------------------

    def status(self) -> dict:
        """What sync and `faregate device status` report: the running image and the update."""
        st = self.state()
        running = self.running or st.get("trial") or st.get("active")
        rec = st["slots"].get(running, {}) if running else {}
        other = boot.other(running) if running else "b"
        orec = st["slots"].get(other, {})
        out = {
            "profile": self.device.get("profile", "linux"),
            "slot": running,
            "version": rec.get("version"),
            "counter": rec.get("counter"),
            "trial": bool(running and st.get("trial") == running),
            "floor": st.get("floor", 0),
            "other_slot": {
                "slot": other,
                "state": orec.get("state", "empty"),
                "version": orec.get("version"),
            },
            "last": st.get("last"),
            "boots": st.get("boots", 0),
        }
        info = self._load_info()
        if info is not None:
            out["staging"] = {
                "held": max(0, _size(self.fs, self.dir + "/" + PART)),
                "len": info["len"],
            }
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _load_info(self):
        raw = self.fs.read_file(self.dir + "/" + PART_INFO)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _hash_file(self, path: str) -> bytes:
        h = hashlib.sha256()
        buf = bytearray(_BUF)
        with self.fs.open_file(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(buf[:k] if k < _BUF else buf)
        return h.digest()
