"""The passage journal: append-only, CRC-framed, hash-chained, durable before the barrier opens.

Files in the journal directory (byte layouts in protocol/journalfile.py and docs/sync-protocol.md,
"Journal on disk"):

    seg-<first seq, 16 hex digits>.jnl   segments of up to `segment_records` entries
    journal.meta                         the acknowledged position (written atomically)

Entries use the one append-log framing (protocol/applog.py). A full segment is sealed with a
footer, so reopening checks a sealed segment with one CRC over the file. Every file operation
goes through the storage object `fs` (firmware/storage/fs.py), so a fault injected there
reaches the journal.

- `(device_id, seq)` is minted here; `seq` continues from the newest segment or, when every
  segment was trimmed, from journal.meta, so it never repeats across reboots.
- `append(rec)` is durable on return (one write, one `fs.sync_file`). For bursts,
  `stage(rec)` several and `commit()` once: one write and one sync for the group.
- Opening cuts a torn tail (a partial or corrupt run of entries at the end of the newest
  segment, as a power cut leaves) and loses nothing before it. A bad entry followed by a good
  one is corruption, not a torn write: `JournalError`, never papered over.
- `ack(seq)` records that the back office durably holds everything up to `seq`: journal.meta
  is replaced first, then segments whose every record is acknowledged are deleted. The
  replacement needs no free space (`fs.write_reserved`: a spare kept at journal.meta.spare),
  so a full disk frees itself as acknowledgements arrive.
- Capacity: at most `capacity` unacknowledged records. At the bound passages are refused
  (`JournalFull`, the gate stays shut) and nothing unsynced is ever overwritten; rejects (the
  audit trail) stop being journaled `reject_reserve` records earlier, so they never crowd out
  passages. A full disk (ENOSPC) is `JournalFull` too; the failed write is cut back off.
"""

from binascii import crc32

from firmware import settings
from firmware.storage.fs import DISK, is_full
from protocol import journalfile, records
from protocol.errors import FaregateError, FormatError
from protocol.journalfile import ENTRY, ENTRY_LEN, META, entry, footer, record_at

READ_RECORDS = settings.default("buffers.journal_read")


class JournalError(FaregateError):
    reason = "journal_error"


class JournalFull(JournalError):
    reason = "journal_full"


def _write_error(e: OSError):
    cls = JournalFull if is_full(e) else JournalError
    return cls("journal write failed: %r" % e)


class _Segment:
    __slots__ = ("first", "count", "sealed", "name")

    def __init__(self, first, count, sealed, name):
        self.first = first
        self.count = count
        self.sealed = sealed
        self.name = name


class Journal:
    def __init__(
        self,
        directory: str,
        device_id: int,
        capacity: int = 100000,
        segment_records: int = 16384,
        reject_reserve: int = 0,
        fs=DISK,
        read_records: int = READ_RECORDS,
    ):
        if segment_records < 1 or capacity < 1 or not 0 <= reject_reserve < capacity:
            raise JournalError("bad journal limits")
        self.dir = directory
        self.device_id = device_id
        self.capacity = capacity
        self.segment_records = segment_records
        self.reject_reserve = reject_reserve
        self.fs = fs
        self.read_records = read_records  # entries per file read: the largest read buffer
        self._sync = fs.sync_file
        self.torn_bytes_cut = 0
        self.rejects_not_journaled = 0
        self.listeners: list = []  # objects with .committed(rec) and .acked(up_to_seq)
        self._staged: list = []
        self._f = None  # the newest segment, open for appending
        self._open()

    # -- opening -------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return self.dir + "/" + name

    def _open(self):
        fs = self.fs
        meta = fs.read_file(self._path(META))
        self.acked_seq = 0
        self.acked_hash = records.ZERO_HASH
        if meta:
            try:
                self.acked_seq, self.acked_hash = journalfile.parse_meta(meta)
            except FormatError:
                raise JournalError("%s is corrupt" % self._path(META)) from None
        segs = []
        for name in sorted(fs.listdir(self.dir)):
            first = journalfile.segment_first(name)
            if first is not None:
                segs.append(_Segment(first, 0, False, name))
        self.last_seq = self.acked_seq
        self.last_hash = self.acked_hash
        self._crc = 0
        self._broken = False
        kept = []
        for i, seg in enumerate(segs):
            if seg.first > self.last_seq + 1:
                raise JournalError(
                    "%s: records %d..%d are missing" % (seg.name, self.last_seq + 1, seg.first - 1)
                )
            last = self._check_segment(seg, i == len(segs) - 1)
            if seg.count:
                self.last_seq = seg.first + seg.count - 1
                self.last_hash = records.record_hash(last)
            if seg.sealed and seg.first + seg.count - 1 <= self.acked_seq:
                fs.remove_if_exists(self._path(seg.name))  # acknowledged just before a crash
                continue
            kept.append(seg)
        self._segs = kept
        if hasattr(fs, "reserve"):
            fs.reserve(self._path(META), journalfile.META_LEN)  # so a full disk can still ack

    def _check_segment(self, seg, newest: bool):
        """Check one segment, streamed `read_records` entries at a time (a full segment is
        about 1.1 MB; an MCU gate has 512 KB of heap). Returns its last record (None if it
        has none); cuts the torn tail of the newest, unsealed segment."""
        path = self._path(seg.name)
        f = self.fs.open_file(path, "rb")
        try:
            size = self.fs.file_size(path)
            tail = b""
            if size >= journalfile.FOOTER_LEN:
                f.seek(size - journalfile.FOOTER_LEN)
                tail = f.read(journalfile.FOOTER_LEN)
                f.seek(0)
            if not newest or journalfile.sealed_shape(size, tail):
                return self._check_sealed(seg, f, size, tail)
            last, good = self._scan_active(seg, f, size)
        finally:
            f.close()
        if good < size:
            self.torn_bytes_cut += size - good
            self.fs.truncate_file(path, good)
        return last

    def _chunks(self, f, size: int, where: str):
        """(buffer, bytes in it) for each piece of the first `size` bytes of `f`, read into
        one buffer of `read_records` entries (the only allocation that grows with the read)."""
        buf = bytearray(self.read_records * ENTRY_LEN)
        mv = memoryview(buf)
        left = size
        while left > 0:
            want = min(left, len(buf))
            n = 0
            while n < want:
                got = f.readinto(mv[n:want])
                if not got:
                    raise JournalError("%s ended while being read" % where)
                n += got
            left -= n
            yield buf, n

    def _check_sealed(self, seg, f, size, tail):
        where = self._path(seg.name)
        if not journalfile.sealed_shape(size, tail):
            raise JournalError("%s is not sealed but is not the newest segment" % where)
        body_len = size - journalfile.FOOTER_LEN
        parsed = journalfile.parse_footer(tail, body_len)
        if parsed is None:
            raise JournalError("%s is corrupt (sealed segment check failed)" % where)
        count, want_crc = parsed
        crc = 0
        first = last = None
        for buf, n in self._chunks(f, body_len, where):
            crc = crc32(memoryview(buf)[:n], crc)
            if first is None:
                first = record_at(buf, 0)
            last = record_at(buf, n // ENTRY_LEN - 1)
        if crc & 0xFFFFFFFF != want_crc:
            raise JournalError("%s is corrupt (sealed segment check failed)" % where)
        seg.count = count
        seg.sealed = True
        self._check_link(seg, first)
        return last

    def _check_link(self, seg, first_raw):
        """The segment continues the chain where the previous one (or the trim) ended."""
        if not seg.count:
            return
        first = records.decode(first_raw)
        if first.seq != seg.first:
            raise JournalError("%s starts at seq %d, not %d" % (seg.name, first.seq, seg.first))
        if seg.first == self.last_seq + 1 and first.prev_hash != self.last_hash:
            raise JournalError("%s does not continue the hash chain" % seg.name)

    def _scan_active(self, seg, f, size):
        """Check the newest, unsealed segment entry by entry. -> (last good record, length of
        the good run). The good run is every entry from the start that is framed (its CRC
        checks) and chained (seq and prev_hash follow the one before); whatever follows it is
        a torn tail, unless a framed entry lies beyond it: corruption, `JournalError`."""
        at = ENTRY.body_at
        seq_of = records.seq_of
        prev_hash_of = records.prev_hash_of
        record_hash = records.record_hash
        count = 0
        prev = first = last = None
        crc = 0
        ended = False  # the good run has ended
        for buf, n in self._chunks(f, size, self._path(seg.name)):
            whole = n - n % ENTRY_LEN
            good_here = 0
            off = 0
            while off < whole:
                raw = at(buf, off)
                if not ended:
                    if (
                        raw is None
                        or seq_of(raw) != seg.first + count
                        or (prev is not None and prev_hash_of(raw) != prev)
                    ):
                        ended = True
                    else:
                        if first is None:
                            first = raw
                        last = raw
                        prev = record_hash(raw)
                        count += 1
                        good_here += ENTRY_LEN
                elif raw is not None:
                    # a good entry after the bad one: corruption in the middle, not a torn write
                    raise JournalError(
                        "%s is corrupt at byte %d (not at the tail)"
                        % (self._path(seg.name), count * ENTRY_LEN)
                    )
                off += ENTRY_LEN
            if good_here:
                crc = crc32(memoryview(buf)[:good_here], crc)
            if whole < n:
                ended = True  # a partial entry: the file's last bytes
        seg.count = count
        self._crc = crc
        self._check_link(seg, first)
        return last, count * ENTRY_LEN

    # -- writing -------------------------------------------------------------------------
    def _active(self):
        """The open segment to append to, creating (and sealing the full one) as needed.
        Returns (segment, open file)."""
        if self._broken:
            raise JournalError("a failed write could not be undone; reopen the journal")
        segs = self._segs
        if segs and not segs[-1].sealed and segs[-1].count >= self.segment_records:
            self._seal(segs[-1])
        if not segs or segs[-1].sealed:
            first = self.last_seq + 1
            seg = _Segment(first, 0, False, journalfile.segment_name(first))
            f = self.fs.open_file(self._path(seg.name), "ab")
            self._sync(f)
            f.close()
            self.fs.sync_dir(self._path(seg.name))
            self._crc = 0
            segs.append(seg)
            self._close_file()
        if self._f is None:
            self._f = self.fs.open_file(self._path(segs[-1].name), "ab")
        return segs[-1], self._f

    def _seal(self, seg):
        self._close_file()
        f = self.fs.open_file(self._path(seg.name), "ab")
        try:
            f.write(footer(seg.count, self._crc, self.last_hash))
            self._sync(f)
        except OSError:
            f.close()
            self._undo(seg, seg.count * ENTRY_LEN)  # no half footer stays behind
            raise
        f.close()
        seg.sealed = True

    def _close_file(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None

    def _room(self, kind: int, n: int) -> None:
        pending = self.last_seq - self.acked_seq + len(self._staged)
        bound = self.capacity
        if kind != records.KIND_PASSAGE:
            bound -= self.reject_reserve
        if pending + n > bound:
            raise JournalFull(
                "journal holds %d unacknowledged records (capacity %d)" % (pending, self.capacity)
            )

    def stage(self, rec: records.Record) -> records.Record:
        """Mint seq and prev_hash for `rec` and queue it for the next `commit()` (not durable)."""
        self._room(rec.kind, 1)
        if self._staged:
            seq, prev = self._staged[-1][0].seq + 1, self._staged[-1][2]
        else:
            seq, prev = self.last_seq + 1, self.last_hash
        rec.device_id = self.device_id
        rec.seq = seq
        rec.prev_hash = prev
        raw = rec.to_bytes()
        self._staged.append((rec, raw, records.record_hash(raw)))
        return rec

    def commit(self) -> int:
        """Write every staged record and make them durable together. Returns how many."""
        staged = self._staged
        done = 0
        try:
            while done < len(staged):
                try:
                    seg, f = self._active()  # may seal a full segment or start a new one
                except OSError as e:
                    raise _write_error(e) from None
                take = min(len(staged) - done, self.segment_records - seg.count)
                part = staged[done : done + take]
                data = b"".join(entry(raw) for _r, raw, _h in part)
                size = seg.count * ENTRY_LEN
                try:
                    f.write(data)
                    self._sync(f)
                except OSError as e:
                    self._undo(seg, size)
                    raise _write_error(e) from None
                seg.count += take
                self._crc = crc32(data, self._crc)
                self.last_seq = part[-1][0].seq
                self.last_hash = part[-1][2]
                done += take
        finally:
            self._staged = []
            for rec, _raw, _h in staged[:done]:
                for listener in self.listeners:
                    listener.committed(rec)
        return done

    def _undo(self, seg, size):
        """A write or sync failed: cut the segment back to what was committed before it."""
        self._close_file()
        try:
            self.fs.truncate_file(self._path(seg.name), size)
        except OSError:
            self._broken = True  # reopening cuts the torn tail; until then, no appends

    def append(self, rec: records.Record) -> records.Record:
        """Mint seq and prev_hash for `rec`, write it and make it durable. Returns it."""
        if rec.kind != records.KIND_PASSAGE:
            try:
                self._room(rec.kind, 1)
            except JournalFull:
                self.rejects_not_journaled += 1
                raise
        self.stage(rec)
        self.commit()
        return rec

    def append_many(self, recs) -> int:
        """Group commit: every record in `recs` durable with one write and one sync."""
        self._room(records.KIND_PASSAGE, len(recs))
        before = len(self._staged)
        try:
            for rec in recs:
                self.stage(rec)
        except JournalFull:
            del self._staged[before:]  # all or nothing: no half batch left for a later commit
            raise
        return self.commit()

    # -- sync ----------------------------------------------------------------------------
    def pending_count(self) -> int:
        return self.last_seq - self.acked_seq

    def pending(self, limit: int = 1000, after_seq: int = -1) -> list:
        """Raw records not yet acknowledged (seq > max(acked, after_seq)), oldest first."""
        out: list = []
        seq = max(self.acked_seq, after_seq) + 1
        for seg in self._segs:
            if len(out) >= limit:
                break
            end = seg.first + seg.count
            if seq >= end or seg.count == 0:
                continue
            start = max(seq, seg.first)
            n = min(end - start, limit - len(out))
            out.extend(self._read(seg, start, n))
            seq = start + n
        return out

    def unsynced(self, chunk: int = 0):
        """Every unacknowledged raw record, oldest first, read `chunk` records (by default
        `read_records`) at a time: at most that many are in memory at once."""
        chunk = chunk or self.read_records
        after = -1
        while True:
            raws = self.pending(chunk, after)
            if not raws:
                return
            yield from raws
            after = records.seq_of(raws[-1])

    def _read(self, seg, start: int, n: int) -> list:
        """The n raw records from `start`, read `read_records` entries at a time."""
        out: list = []
        f = self.fs.open_file(self._path(seg.name), "rb")
        try:
            f.seek((start - seg.first) * ENTRY_LEN)
            while len(out) < n:
                want = min(n - len(out), self.read_records)
                data = f.read(want * ENTRY_LEN)
                bodies, good, _corrupt = ENTRY.scan(data)
                if good != len(data):
                    raise JournalError(
                        "%s: entry at seq %d is damaged" % (seg.name, start + len(out))
                    )
                if len(bodies) != want:
                    raise JournalError("%s is shorter than its index" % seg.name)
                out.extend(bodies)
        finally:
            f.close()
        return out

    def ack(self, up_to_seq: int) -> int:
        """The back office durably holds every record with seq <= up_to_seq: drop them.

        Returns how many records left the queue."""
        up_to = min(up_to_seq, self.last_seq)
        if up_to <= self.acked_seq:
            return 0
        [raw] = self.pending(1, up_to - 1)
        h = records.record_hash(raw)
        try:
            write = getattr(self.fs, "write_reserved", self.fs.write_atomic)  # no spare: atomic
            write(self._path(META), journalfile.meta(up_to, h))
        except OSError as e:  # nothing trimmed: the records are simply uploaded again later
            raise JournalError("could not record the acknowledgement: %r" % e) from None
        dropped = up_to - self.acked_seq
        self.acked_seq = up_to
        self.acked_hash = h
        keep = []
        for seg in self._segs:
            if seg.sealed and seg.first + seg.count - 1 <= up_to:
                self.fs.remove_if_exists(self._path(seg.name))  # a leftover goes at next open
            else:
                keep.append(seg)
        self._segs = keep
        for listener in self.listeners:
            listener.acked(up_to)
        return dropped

    def close(self):
        self._close_file()
