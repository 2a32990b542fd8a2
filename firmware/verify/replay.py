"""The replay cache: the newest presentation accepted per credential, kept across reboots.

A gate refuses a presentation it already accepted, and any presentation whose counter is not
above the newest it accepted for that credential. Entries live as long as a presentation they
would stop can still pass the time window: `retain_s` (window + skew) after the later of the
presentation's time and the gate's time when it was accepted. Older presentations are refused
as stale anyway.

On disk (`replay.log`), one 24-byte record per accepted passage, synced before `commit`
returns:
    u64 cred_id | u32 counter | u32 presentation time | u32 gate time | u32 crc32(first 20)
Opening the log replays it (a torn last record from a power cut is cut); when the log holds
many more records than live entries it is rewritten with write_atomic.
"""

import struct
from binascii import crc32

from firmware import platform, settings

_REC = ">QIII"
_REC_BODY_LEN = 20
REC_LEN = 24
# window + skew at their defaults (a Validator passes its own)
RETAIN_S = settings.default("validation.window_s") + settings.default("validation.skew_s")


def _record(cred_id, counter, ptime, gtime) -> bytes:
    body = struct.pack(_REC, cred_id, counter, ptime, gtime)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


class ReplayCache:
    def __init__(self, path=None, retain_s=RETAIN_S, sync=platform.sync_file, readonly=False):
        """readonly: load `path` but never write it (a technician's copy of a gate's state)."""
        self.path = path
        self.retain_s = retain_s
        self._sync = sync
        self.entries: dict = {}  # cred_id -> (counter, presentation time, gate time)
        self.log_records = 0
        self.torn_bytes_cut = 0
        self.write_errors = 0
        self._file = None
        if path:
            self._load(readonly)
            if readonly:
                self.path = None

    def newest(self, cred_id):
        """The newest accepted counter for this credential, or None."""
        e = self.entries.get(cred_id)
        return None if e is None else e[0]

    def is_replay(self, cred_id, counter) -> bool:
        e = self.entries.get(cred_id)
        return e is not None and counter <= e[0]

    def commit(self, cred_id, counter, ptime, gtime) -> None:
        """Record an accepted presentation durably (call after the passage is journaled)."""
        e = self.entries.get(cred_id)
        if e is not None and counter <= e[0]:
            return
        self.entries[cred_id] = (counter, ptime, gtime)
        if self.path:
            try:
                f = self._file
                if f is None:
                    f = self._file = open(self.path, "ab")
                f.write(_record(cred_id, counter, ptime, gtime))
                self._sync(f)
                self.log_records += 1
            except OSError:
                # The entry still protects until a reboot; status() reports the failure.
                self.write_errors += 1
                self.close()

    def prune(self, now: int) -> int:
        """Forget entries no presentation could use any more; compact the log if worth it."""
        old = [
            cid for cid, (_c, pt, gt) in self.entries.items() if max(pt, gt) + self.retain_s < now
        ]
        for cid in old:
            del self.entries[cid]
        if self.path and self.log_records > 2 * len(self.entries) + 256:
            self._rewrite()
        return len(old)

    def _rewrite(self):
        data = b"".join(_record(cid, *e) for cid, e in self.entries.items())
        self.close()
        platform.write_atomic(self.path, data)
        self.log_records = len(self.entries)

    def _load(self, readonly):
        data = platform.read_file(self.path, b"")
        pos = 0
        while pos + REC_LEN <= len(data):
            body = data[pos : pos + _REC_BODY_LEN]
            (crc,) = struct.unpack(">I", data[pos + _REC_BODY_LEN : pos + REC_LEN])
            if crc32(body) & 0xFFFFFFFF != crc:
                break
            cid, counter, ptime, gtime = struct.unpack(_REC, body)
            e = self.entries.get(cid)
            if e is None or counter > e[0]:
                self.entries[cid] = (counter, ptime, gtime)
            pos += REC_LEN
            self.log_records += 1
        if pos != len(data):
            self.torn_bytes_cut = len(data) - pos
            if not readonly:
                platform.write_atomic(self.path, data[:pos])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def status(self) -> dict:
        return {
            "entries": len(self.entries),
            "log_records": self.log_records,
            "write_errors": self.write_errors,
        }
