"""The replay cache: the newest presentation accepted per credential, kept across reboots.

A gate refuses a presentation it already accepted, and any presentation whose counter is not
above the newest it accepted for that credential. Entries live as long as a presentation they
would stop can still pass the time window: `retain_s` (window + skew) after the later of the
presentation's time and the gate's time when it was accepted. Older presentations are refused
as stale anyway.

On disk (`replay.log`, layout in protocol/replaylog.py), one 24-byte record per accepted
passage, synced before `commit` returns. Opening the log replays it: a torn tail from a power
cut is cut (truncated: no new space needed), a bad record with good ones after it is skipped
and counted (`damaged_records`, the `replay_damaged` alarm), never taken for the end of the
log; a write that fails half way is cut back off at once, so later records stay aligned. When
the log holds many more records than live entries it is rewritten with write_atomic. Every file
operation goes through the storage object `fs` (firmware/storage/fs.py).

Whatever the clock does, no presentation is accepted twice: pruning goes by the gate's time,
which can jump forward (a wrong time set, an RTC believed after a reboot) and then back, so
every entry pruned (or left out by `rebuild`) raises the `horizon`, the newest presentation
time among the forgotten. A presentation of a credential the cache has no entry for, whose time
is not after the horizon, is refused as a replay (it may be a forgotten one). In normal running
the horizon lies more than `retain_s` back, so such a presentation is stale anyway; only after a
jump back does it refuse something. The horizon is kept in replay.log as an entry with the
reserved credential id 2^64-1 (account 2^40-1, credential number 2^24-1).

The journal is the source of truth: the gate journals a passage before it commits the code
here, so a power cut between the two syncs (or a damaged or lost replay.log) would forget an
accepted code. At boot `rebuild(raws, now)` commits every passage of the journal's
unacknowledged records still inside the retention (docs/sync-protocol.md, "Replay, deny and
anchor stores"), so no code is accepted twice across a cut.
"""

from firmware import settings
from firmware.storage.fs import DISK
from protocol import records, replaylog, ridecode

REC_LEN = replaylog.ENTRY_LEN
HORIZON_ID = 0xFFFFFFFFFFFFFFFF  # the reserved credential id of the horizon's entry
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
        self.damaged_records = 0  # bad records skipped at load (not a torn tail)
        self.rebuilt = 0  # entries the journal restored at boot that replay.log lacked
        self.horizon = 0  # newest presentation time of an entry forgotten (see above)
        self.write_errors = 0
        self._file = None
        self._size = 0  # replay.log's length after the last good write
        self._cut = False  # bytes after _size to cut before the next append
        if path:
            self._load(readonly)
            if readonly:
                self.path = None

    def newest(self, cred_id):
        """The newest accepted counter for this credential, or None."""
        e = self.entries.get(cred_id)
        return None if e is None else e[0]

    def is_replay(self, cred_id, counter, ptime=None) -> bool:
        """ptime: the presentation's time; one not after the horizon is refused when the
        credential has no entry (it may have been forgotten)."""
        e = self.entries.get(cred_id)
        if e is not None:
            return counter <= e[0]
        return ptime is not None and ptime <= self.horizon

    def commit(self, cred_id, counter, ptime, gtime) -> None:
        """Record an accepted presentation durably (call after the passage is journaled)."""
        e = self.entries.get(cred_id)
        if e is not None and counter <= e[0]:
            return
        self.entries[cred_id] = (counter, ptime, gtime)
        self._append(replaylog.entry(cred_id, counter, ptime, gtime))

    def _raise_horizon(self, t: int) -> None:
        if t > self.horizon:
            self.horizon = t
            self._append(replaylog.entry(HORIZON_ID, 0, t, t))

    def _append(self, rec: bytes) -> None:
        if self.path:
            try:
                if self._cut:  # a half record left by a failed write: cut it first
                    self._cut_back()
                    if self._cut:
                        raise OSError(28, "replay.log: the half record cannot be cut yet")
                f = self._file
                created = False
                if f is None:
                    created = not self.fs.path_exists(self.path)
                    f = self._file = self.fs.open_file(self.path, "ab")
                f.write(rec)
                self.fs.sync_file(f)
                if created:  # a new file's directory entry must be durable too
                    self.fs.sync_dir(self.path)
                self.log_records += 1
                self._size += REC_LEN
            except OSError:
                # The entry still protects until a reboot (and the journal rebuilds it at the
                # next boot); status() reports the failure. A half-written record is cut off
                # so the next one lands at its place.
                self.write_errors += 1
                self.close()
                self._cut_back()

    def _cut_back(self) -> None:
        """Cut replay.log back to its last good record (no new space on CPython; MicroPython
        cuts by rewriting, which may need room: then `_cut` stays set and the next append
        tries again first)."""
        try:
            if self.fs.path_exists(self.path):
                self.fs.truncate_file(self.path, self._size)
            self._cut = False
        except OSError:
            self._cut = True

    def rebuild(self, raws, now: int) -> int:
        """Commit the passages among `raws` (raw journal records, oldest first: the journal's
        unacknowledged ones) that replay.log lacks and that can still matter at `now`.
        Returns how many entries it added."""
        n = 0
        for raw in raws:
            rec = records.decode(raw)
            if rec.kind != records.KIND_PASSAGE:
                continue
            if rec.time + self.retain_s < now:
                self._raise_horizon(rec.time)  # left out: forgotten, as if pruned
                continue
            cid = ridecode.cred_id(rec.account_id, rec.cred_no)
            if not self.is_replay(cid, rec.counter):
                self.commit(cid, rec.counter, rec.time, rec.time)
                n += 1
        self.rebuilt += n
        return n

    def prune(self, now: int) -> int:
        """Forget entries no presentation could use any more; compact the log if worth it."""
        old = [
            cid for cid, (_c, pt, gt) in self.entries.items() if max(pt, gt) + self.retain_s < now
        ]
        newest = 0
        for cid in old:
            _c, pt, gt = self.entries.pop(cid)
            newest = max(newest, pt, gt)
        self._raise_horizon(newest)
        if self.path and self.log_records > 2 * len(self.entries) + 256:
            try:
                self._rewrite()
            except OSError:
                self.write_errors += 1  # a full disk: the log stays as it was, longer
        return len(old)

    def _rewrite(self):
        data = b"".join(replaylog.entry(cid, *e) for cid, e in self.entries.items())
        if self.horizon:
            data += replaylog.entry(HORIZON_ID, 0, self.horizon, self.horizon)
        self.close()
        self.fs.write_atomic(self.path, data)
        self.log_records = len(data) // REC_LEN
        self._size = len(data)
        self._cut = False
        self.damaged_records = 0

    def _load(self, readonly):
        data = self.fs.read_file(self.path, b"")
        found, good, self.damaged_records = replaylog.parse(data)
        for cid, counter, ptime, gtime in found:
            if cid == HORIZON_ID:
                self.horizon = max(self.horizon, ptime)
                continue
            e = self.entries.get(cid)
            if e is None or counter > e[0]:
                self.entries[cid] = (counter, ptime, gtime)
        self.log_records = len(found) + self.damaged_records
        self._size = good
        if good != len(data):
            self.torn_bytes_cut = len(data) - good
            if not readonly:
                self._cut_back()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def status(self) -> dict:
        return {
            "entries": len(self.entries),
            "log_records": self.log_records,
            "write_errors": self.write_errors,
            "torn_bytes_cut": self.torn_bytes_cut,
            "damaged_records": self.damaged_records,
            "rebuilt": self.rebuilt,
            "horizon": self.horizon,
        }
