"""The passage journal: append-only, CRC-framed, hash-chained, durable before the barrier opens.

Files in the journal directory (byte layouts in docs/sync-protocol.md, "Journal on disk"):

    seg-<first seq, 16 hex digits>.jnl   segments of up to `segment_records` entries
    journal.meta                         the acknowledged position (written atomically)

An entry is `0xA5 | record (64 bytes, protocol.records) | crc32(record) u32` (69 bytes). A full
segment is sealed with a footer `0x5A | count u32 | crc32(all entries) u32 | last hash (16) |
crc32(footer so far) u32`, so reopening checks a sealed segment with one CRC over the file.

- `(device_id, seq)` is minted here; `seq` continues from the newest segment or, when every
  segment was trimmed, from journal.meta, so it never repeats across reboots.
- `append(rec)` is durable on return (one write, one `platform.sync_file`). For bursts,
  `stage(rec)` several and `commit()` once: one write and one sync for the group.
- Opening cuts a torn tail (a partial or corrupt run of entries at the end of the newest
  segment, as a power cut leaves) and loses nothing before it. A bad entry followed by a good
  one is corruption, not a torn write: `JournalError`, never papered over.
- `ack(seq)` records that the back office durably holds everything up to `seq`: journal.meta
  is replaced first, then segments whose every record is acknowledged are deleted.
- Capacity: at most `capacity` unacknowledged records. At the bound passages are refused
  (`JournalFull`, the gate stays shut) and nothing unsynced is ever overwritten; rejects (the
  audit trail) stop being journaled `reject_reserve` records earlier, so they never crowd out
  passages. A full disk (ENOSPC) is `JournalFull` too; the failed write is cut back off.
"""

import struct
from binascii import crc32

from firmware import platform
from protocol import records
from protocol.errors import FaregateError

ENTRY_MARK = 0xA5
FOOTER_MARK = 0x5A
RLEN = records.RECORD_LEN
ENTRY_LEN = 1 + RLEN + 4
FOOTER_LEN = 1 + 4 + 4 + records.HASH_LEN + 4
META = "journal.meta"
_ENOSPC = (28, 27)  # ENOSPC, EFBIG


class JournalError(FaregateError):
    reason = "journal_error"


class JournalFull(JournalError):
    reason = "journal_full"


def entry(raw: bytes) -> bytes:
    return b"\xa5" + raw + struct.pack(">I", crc32(raw) & 0xFFFFFFFF)


def footer(count: int, crc: int, last_hash: bytes) -> bytes:
    f = struct.pack(">BII", FOOTER_MARK, count, crc & 0xFFFFFFFF) + last_hash
    return f + struct.pack(">I", crc32(f) & 0xFFFFFFFF)


def _seg_name(first_seq: int) -> str:
    return "seg-%016x.jnl" % first_seq


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
        fs=platform,
        sync=None,
    ):
        if segment_records < 1 or capacity < 1 or not 0 <= reject_reserve < capacity:
            raise JournalError("bad journal limits")
        self.dir = directory
        self.device_id = device_id
        self.capacity = capacity
        self.segment_records = segment_records
        self.reject_reserve = reject_reserve
        self.fs = fs
        self._sync = sync or fs.sync_file
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
            if (
                len(meta) != 28
                or struct.unpack(">I", meta[24:])[0] != crc32(meta[:24]) & 0xFFFFFFFF
            ):
                raise JournalError("%s is corrupt" % self._path(META))
            self.acked_seq = struct.unpack(">Q", meta[:8])[0]
            self.acked_hash = bytes(meta[8:24])
        names = sorted(n for n in fs.listdir(self.dir) if n.startswith("seg-"))
        segs = []
        for name in names:
            if not (len(name) == 24 and name.endswith(".jnl")):
                continue
            first = int(name[4:20], 16)
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
            data = fs.read_file(self._path(seg.name), b"")
            if i < len(segs) - 1 or self._is_sealed(data):
                self._check_sealed(seg, data)
            else:
                self._scan_active(seg, data)
            if seg.count:
                off = (seg.count - 1) * ENTRY_LEN
                self.last_seq = seg.first + seg.count - 1
                self.last_hash = records.record_hash(bytes(data[off + 1 : off + 1 + RLEN]))
            if seg.sealed and seg.first + seg.count - 1 <= self.acked_seq:
                fs.remove_if_exists(self._path(seg.name))  # acknowledged just before a crash
                continue
            kept.append(seg)
        self._segs = kept

    @staticmethod
    def _is_sealed(data) -> bool:
        n = len(data)
        return n >= FOOTER_LEN and (n - FOOTER_LEN) % ENTRY_LEN == 0 and data[-FOOTER_LEN] == 0x5A

    def _check_sealed(self, seg, data):
        where = self._path(seg.name)
        if not self._is_sealed(data):
            raise JournalError("%s is not sealed but is not the newest segment" % where)
        f = data[-FOOTER_LEN:]
        mark, count, crc = struct.unpack(">BII", f[:9])
        body = memoryview(data)[: len(data) - FOOTER_LEN]
        if (
            struct.unpack(">I", f[-4:])[0] != crc32(f[:-4]) & 0xFFFFFFFF
            or count * ENTRY_LEN != len(body)
            or crc32(body) & 0xFFFFFFFF != crc
        ):
            raise JournalError("%s is corrupt (sealed segment check failed)" % where)
        seg.count = count
        seg.sealed = True
        self._check_link(seg, data)

    def _check_link(self, seg, data):
        """The segment continues the chain where the previous one (or the trim) ended."""
        if not seg.count:
            return
        first = records.decode(bytes(data[1 : 1 + RLEN]))
        if first.seq != seg.first:
            raise JournalError("%s starts at seq %d, not %d" % (seg.name, first.seq, seg.first))
        if seg.first == self.last_seq + 1 and first.prev_hash != self.last_hash:
            raise JournalError("%s does not continue the hash chain" % seg.name)

    def _scan_active(self, seg, data):
        """Check the newest, unsealed segment entry by entry; cut a torn tail."""
        n = len(data)
        pos = 0
        seq = seg.first
        prev = None
        while pos + ENTRY_LEN <= n:
            if not self._good_entry(data, pos, seq, prev):
                break
            prev = records.record_hash(bytes(data[pos + 1 : pos + 1 + RLEN]))
            pos += ENTRY_LEN
            seq += 1
        count = pos // ENTRY_LEN
        if pos < n:
            # a good entry after the bad one means corruption in the middle, not a torn write
            p = pos + ENTRY_LEN
            while p + ENTRY_LEN <= n:
                if self._good_entry(data, p, None, None):
                    raise JournalError(
                        "%s is corrupt at byte %d (not at the tail)" % (self._path(seg.name), pos)
                    )
                p += ENTRY_LEN
            self.torn_bytes_cut += n - pos
            self.fs.truncate_file(self._path(seg.name), pos)
        seg.count = count
        self._crc = crc32(memoryview(data)[:pos])
        self._check_link(seg, data)

    @staticmethod
    def _good_entry(data, pos, seq, prev) -> bool:
        if data[pos] != ENTRY_MARK:
            return False
        raw = bytes(data[pos + 1 : pos + 1 + RLEN])
        (c,) = struct.unpack_from(">I", data, pos + 1 + RLEN)
        if c != crc32(raw) & 0xFFFFFFFF:
            return False
        if seq is not None:
            (rs,) = struct.unpack_from(">Q", raw, 8)
            if rs != seq or (prev is not None and raw[48:64] != prev):
                return False
        return True

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
            seg = _Segment(self.last_seq + 1, 0, False, _seg_name(self.last_seq + 1))
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
                    cls = JournalFull if e.args and e.args[0] in _ENOSPC else JournalError
                    raise cls("journal write failed: %r" % e) from None
                take = min(len(staged) - done, self.segment_records - seg.count)
                part = staged[done : done + take]
                data = b"".join(entry(raw) for _r, raw, _h in part)
                size = seg.count * ENTRY_LEN
                try:
                    f.write(data)
                    self._sync(f)
                except OSError as e:
                    self._undo(seg, size)
                    cls = JournalFull if e.args and e.args[0] in _ENOSPC else JournalError
                    raise cls("journal write failed: %r" % e) from None
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

    def unsynced(self, chunk: int = 4096):
        """Every unacknowledged raw record, oldest first, read `chunk` records at a time."""
        after = -1
        while True:
            raws = self.pending(chunk, after)
            if not raws:
                return
            yield from raws
            after = records.decode(raws[-1]).seq

    def _read(self, seg, start: int, n: int) -> list:
        f = self.fs.open_file(self._path(seg.name), "rb")
        try:
            f.seek((start - seg.first) * ENTRY_LEN)
            data = f.read(n * ENTRY_LEN)
        finally:
            f.close()
        out = []
        for pos in range(0, n * ENTRY_LEN, ENTRY_LEN):
            raw = data[pos + 1 : pos + 1 + RLEN]
            (c,) = struct.unpack_from(">I", data, pos + 1 + RLEN)
            if data[pos] != ENTRY_MARK or c != crc32(raw) & 0xFFFFFFFF:
                raise JournalError("%s: entry at seq %d is damaged" % (seg.name, start))
            out.append(raw)
        if len(out) != n:
            raise JournalError("%s is shorter than its index" % seg.name)
        return out

    def ack(self, up_to_seq: int) -> int:
        """The back office durably holds every record with seq <= up_to_seq: drop them.

        Returns how many records left the queue."""
        up_to = min(up_to_seq, self.last_seq)
        if up_to <= self.acked_seq:
            return 0
        [raw] = self.pending(1, up_to - 1)
        h = records.record_hash(raw)
        meta = struct.pack(">Q", up_to) + h
        try:
            self.fs.write_atomic(
                self._path(META), meta + struct.pack(">I", crc32(meta) & 0xFFFFFFFF)
            )
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
