"""The replay cache: the newest presentation accepted per credential, kept across reboots.

A gate refuses a presentation it already accepted, and any presentation whose counter is not
above the newest it accepted for that credential. Entries live as long as a presentation they
would stop can still pass the time window: `retain_s` (window + skew) after the later of the
presentation's time and the gate's time when it was accepted. Older presentations are refused
as stale anyway.

On disk (`replay.log`, layout in protocol/replaylog.py), one 24-byte record per accepted
passage, synced before `commit` returns. Opening the log replays it (a torn last record from a
power cut is cut); when the log holds many more records than live entries it is rewritten with
write_atomic. Every file operation goes through the storage object `fs` (firmware/storage/fs.py).
"""

from firmware import settings
from firmware.storage.fs import DISK
from protocol import replaylog

REC_LEN = replaylog.ENTRY_LEN
# window + skew at their defaults (a Validator passes its own)
RETAIN_S = settings.default("validation.window_s") + settings.default("validation.skew_s")


class ReplayCache:
    def __init__(self, path=None, retain_s=RETAIN_S, fs=DISK, readonly=False):
        """readonly: load `path` but never write it (a technician's copy of a gate's state)."""
        self.path = path
        self.retain_s = retain_s
        self.fs = fs
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
                    f = self._file = self.fs.open_file(self.path, "ab")
                f.write(replaylog.entry(cred_id, counter, ptime, gtime))
                self.fs.sync_file(f)
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
        data = b"".join(replaylog.entry(cid, *e) for cid, e in self.entries.items())
        self.close()
        self.fs.write_atomic(self.path, data)
        self.log_records = len(self.entries)

    def _load(self, readonly):
        data = self.fs.read_file(self.path, b"")
        found, good = replaylog.parse(data)
        for cid, counter, ptime, gtime in found:
            e = self.entries.get(cid)
            if e is None or counter > e[0]:
                self.entries[cid] = (counter, ptime, gtime)
        self.log_records = len(found)
        if good != len(data):
            self.torn_bytes_cut = len(data) - good
            if not readonly:
                self.fs.write_atomic(self.path, data[:good])

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
