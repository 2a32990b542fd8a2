"""The passage journal: append-only, framed twice, hash-chained, durable before the barrier opens.

Files in the journal directory (byte layouts in protocol/journalfile.py and docs/sync-protocol.md,
"Journal on disk"):

    seg-<first seq, 16 hex digits>.jn3   segments of up to `segment_records` entries
    seg-<first seq, 16 hex digits>.jn2   segments written before version 3 (version 1 records,
                                         each twice; read, not appended)
    seg-<first seq, 16 hex digits>.jnl   segments written before version 2 (read, not appended)
    journal.meta, journal.meta.b         the acknowledged position, two copies

Every file operation goes through the storage object `fs` (firmware/storage/fs.py), so a fault
injected there reaches the journal.

- `(device_id, seq)` is minted here; seq is positional (slot i of segment `first` is seq
  first + i) and continues after the newest slot on disk, the newest segment's name (a new,
  empty segment marks the high-water) and the acknowledged position, whichever is highest: a
  slot that ever held bytes is never given to another record.
- `append(rec)` is durable on return (one write, one `fs.sync_file`). For bursts,
  `stage(rec)` several and `commit()` once: one write and one sync for the group. Every entry
  carries its place `k` in its group.
- A version 3 entry holds its record (version 2: the rider's ride code kept) once, with its
  CRC: a damaged entry is lost (the hash chain shows it; two copies would not fit P4's 256
  bytes a record). Version 2 entries (segments of before) hold each record twice: damage to
  one copy is mended from the other. Opening tells a torn write from damage: only the last
  commit group (found from the last good entry's `k`) can be torn, so a bad entry before it,
  or at or below the acknowledged seq, is damage to a committed record, never cut. A torn
  tail is cut.
- Damage does not stop the journal (`report()` says what was found; `repair()` rewrites the
  damaged segments, lost slots as holes): acknowledged records are not needed, unacknowledged
  ones are salvaged (uploaded around the lost ones). Only when both copies of journal.meta are
  unreadable can the journal not vouch for its seq: it refuses appends (`JournalUnverified`)
  until a repair is given the back office's high seq.
- `ack(seq)` records that the back office durably holds everything up to `seq`: both copies of
  journal.meta are replaced first, then segments whose every record is acknowledged go. The
  replacement needs no free space (`fs.write_reserved`: a spare kept beside each copy), so a
  full disk frees itself as acknowledgements arrive.
- Capacity: at most `capacity` unacknowledged records. At the bound passages are refused
  (`JournalFull`, the gate stays shut) and nothing unsynced is ever overwritten; rejects (the
  audit trail) stop being journaled `reject_reserve` records earlier, so they never crowd out
  passages. A full disk (ENOSPC) is `JournalFull` too; the failed write is cut back off.
"""

from binascii import crc32

from firmware import settings
from firmware.storage.fs import DISK, is_full
from protocol import journalfile as jf
from protocol import records
from protocol.errors import FaregateError, FormatError

READ_RECORDS = settings.default("buffers.journal_read")
MAX_RANGES = 32  # damaged ranges remembered per segment (more merge into the last)


class JournalError(FaregateError):
    reason = "journal_error"


class JournalFull(JournalError):
    reason = "journal_full"


class JournalUnverified(JournalError):
    reason = "journal_unverified"


def _write_error(e: OSError):
    cls = JournalFull if is_full(e) else JournalError
    return cls("journal write failed: %r" % e)


def _add_range(ranges: list, lo: int, hi: int) -> None:
    """Add seqs lo..hi to a sorted list of [lo, hi] ranges appended in order."""
    if ranges and ranges[-1][1] + 1 >= lo:
        ranges[-1][1] = max(ranges[-1][1], hi)
    elif len(ranges) >= MAX_RANGES:
        ranges[-1][1] = hi
    else:
        ranges.append([lo, hi])


class _Segment:
    __slots__ = ("first", "count", "sealed", "closed", "name", "bad", "dirty")

    def __init__(self, first, name):
        self.first = first
        self.count = 0  # slots kept (records, holes and damaged slots)
        self.sealed = False
        self.closed = False  # no more appends (a version 1 or short segment)
        self.name = name
        self.bad = []  # [lo, hi] seqs of slots with no readable record (damaged or holes)
        self.dirty = False  # a repair would rewrite it

    @property
    def fmt(self) -> int:
        return jf.fmt_of(self.name)

    @property
    def end(self) -> int:
        return self.first + self.count  # the seq after its last slot


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

    def _read_meta(self, name: str):
        """-> (seq, hash) of one copy of the meta, None if absent, False if damaged."""
        data = self.fs.read_file(self._path(name))
        if data is None:
            return None
        try:
            return jf.parse_meta(data)
        except FormatError:
            return False

    def _open(self):
        fs = self.fs
        self._close_file()
        damage = {
            "torn_bytes_cut": 0,
            "mended": 0,
            "lost_acked": 0,
            "lost_unacked": 0,
            "lost_seqs": [],
            "holes": 0,
            "bad_footers": 0,
            "meta": "ok",
        }
        self.damage = damage
        copies = [self._read_meta(jf.META), self._read_meta(jf.META_B)]
        good = [c for c in copies if c]
        if False in copies:
            damage["meta"] = "one_copy_bad" if good else "unreadable"
        self.vouched = bool(good) or False not in copies
        self.acked_seq, self.acked_hash = 0, records.ZERO_HASH
        for seq, h in good:
            if seq >= self.acked_seq:
                self.acked_seq, self.acked_hash = seq, h
        byfirst = {}
        for name in fs.listdir(self.dir):
            first = jf.segment_first(name)
            if first is None:
                continue
            if first in byfirst:  # two formats: a repair converted it, the newest is whole
                old, name = sorted((name, byfirst[first]), key=jf.fmt_of)
                fs.remove_if_exists(self._path(old))
            byfirst[first] = name
        segments = [_Segment(first, byfirst[first]) for first in sorted(byfirst)]
        if not good and segments and not self.vouched:
            # meta unreadable: what was trimmed had been acknowledged; the rest is re-uploaded
            self.acked_seq, self.acked_hash = segments[0].first - 1, records.ZERO_HASH
        self._chain = (self.acked_seq, self.acked_hash)
        self.last_seq = self.acked_seq
        self._crc = 0
        self._cut = None  # (path, size) a failed cut left to make before the next append
        keep = []
        expect = None  # the first seq the next segment should hold
        for i, seg in enumerate(segments):
            newest = i == len(segments) - 1
            if expect is not None and seg.first < expect:
                raise JournalError("%s overlaps the segment before it" % seg.name)
            lo = max(expect or 0, self.acked_seq + 1)  # trimmed ones are not missing
            if seg.first > lo:  # whole segments are missing
                self._lost(lo, seg.first - 1)
                self._chain = (seg.first - 1, records.ZERO_HASH)
            self._check_segment(seg, newest)
            expect = seg.end
            self.last_seq = max(self.last_seq, seg.end - 1)
            if not seg.sealed and not (newest and seg.fmt == 3):
                seg.closed = True  # appends go to a new segment
            if (seg.sealed or seg.closed) and not newest and seg.end - 1 <= self.acked_seq:
                fs.remove_if_exists(self._path(seg.name))  # acknowledged just before a crash
                continue
            keep.append(seg)
        if keep and keep[-1].end - 1 < self.last_seq:
            keep[-1].closed = True  # shorter than the acknowledged position: start anew
        self._segs = keep
        if hasattr(fs, "reserve"):
            fs.reserve(self._path(jf.META), jf.META_LEN)
            fs.reserve(self._path(jf.META_B), jf.META_LEN)  # so a full disk can still ack
        seq, h = self._chain
        self.last_hash = h if seq == self.last_seq else records.ZERO_HASH

    def _lost(self, lo: int, hi: int) -> None:
        """Seqs lo..hi have no readable record: not needed if acknowledged, else lost."""
        damage = self.damage
        a = self.acked_seq
        if lo <= a:
            damage["lost_acked"] += min(hi, a) - lo + 1
        if hi > a:
            lo = max(lo, a + 1)
            damage["lost_unacked"] += hi - lo + 1
            _add_range(damage["lost_seqs"], lo, hi)

    def _check_segment(self, seg, newest: bool):
        """Check one segment, streamed `read_records` entries at a time (a full segment is
        about 2.4 MB; an MCU gate has 512 KB of heap): as sealed (the footer and one CRC over
        the entries), else entry by entry. Cuts the torn tail of the newest segment."""
        path = self._path(seg.name)
        elen = jf.entry_len(seg.name)
        f = self.fs.open_file(path, "rb")
        try:
            size = self.fs.file_size(path)
            tail = b""
            if size >= jf.FOOTER_LEN:
                f.seek(size - jf.FOOTER_LEN)
                tail = f.read(jf.FOOTER_LEN)
            shaped = jf.sealed_shape(size, tail, elen)
            footer = jf.parse_footer(tail, size - jf.FOOTER_LEN, elen) if shaped else None
            f.seek(0)
            if footer and self._check_sealed(seg, f, size, footer[0], footer[1]):
                return
            f.seek(0)
            if footer:  # a whole footer over damaged entries: the segment was complete
                self._scan(seg, f, size - jf.FOOTER_LEN, False)
                seg.sealed = True
                seg.dirty = True
                return
            keep = self._scan(seg, f, size, newest)
        finally:
            f.close()
        if newest:
            if keep < size:
                self.torn_bytes_cut += size - keep
                self.damage["torn_bytes_cut"] += size - keep
                self._cut_back(path, keep)
        elif size % elen:  # a damaged footer (or bytes after the entries)
            self.damage["bad_footers"] += 1
            seg.dirty = True

    def _buffer(self, elen: int):
        return bytearray(self.read_records * elen)

    def _chunks(self, f, size: int, where: str, elen: int):
        """(buffer, bytes in it) for each piece of the first `size` bytes of `f`, read into
        one buffer of `read_records` entries (the only allocation that grows with the read)."""
        buf = self._buffer(elen)
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

    def _crc_prefix(self, f, size: int, where: str, elen: int) -> int:
        """CRC-32 of the first `size` bytes of `f` (the kept part of a cut segment)."""
        f.seek(0)
        crc = 0
        for buf, n in self._chunks(f, size, where, elen):
            crc = crc32(memoryview(buf)[:n], crc)
        return crc

    def _check_sealed(self, seg, f, size, count, want_crc) -> bool:
        """The fast path: one CRC over the entries checks, and the segment continues the
        chain (True). A sealed segment holds no holes (`_seal` seals only clean ones)."""
        elen = jf.entry_len(seg.name)
        fmt = seg.fmt
        crc = 0
        first = last = None
        for buf, n in self._chunks(f, size - jf.FOOTER_LEN, seg.name, elen):
            crc = crc32(memoryview(buf)[:n], crc)
            if first is None:
                first = jf.first_record(buf, fmt)
            last = jf.first_record(memoryview(buf)[n - elen : n], fmt)
        if crc & 0xFFFFFFFF != want_crc:
            return False
        if count and (first is None or last is None):
            return False
        if count:
            if records.seq_of(first) != seg.first:
                return False
            seq, h = self._chain
            if seq == seg.first - 1 and h != records.ZERO_HASH:
                if records.prev_hash_of(first) != h:
                    return False
            self._chain = (seg.first + count - 1, records.record_hash(last))
        seg.count = count
        seg.sealed = True
        return True

    def _scan(self, seg, f, size: int, newest: bool) -> int:
        """Check `size` bytes of a segment entry by entry. Sets seg.count and seg.bad;
        returns the length to keep (the newest segment's torn tail is cut off)."""
        elen = jf.entry_len(seg.name)
        fmt = seg.fmt
        slot = jf.slot
        prev_hash_of = records.prev_hash_of
        record_hash = records.record_hash
        zero = records.ZERO_HASH
        chain_seq, chain_hash = self._chain
        bad: list = []  # slot ranges [lo, hi] with no record
        holes: list = []
        last_good = -1
        last_k = 0
        mended = 0
        i = 0
        state_at_good = None  # the chain after the last good slot
        crc = 0
        for buf, n in self._chunks(f, size - size % elen, seg.name, elen):
            crc = crc32(memoryview(buf)[:n], crc)
            off = 0
            while off < n:
                seq = seg.first + i
                state, raw, k = slot(buf, off, fmt, seq)
                if raw is not None and chain_seq == seq - 1 and chain_hash != zero:
                    if prev_hash_of(raw) != chain_hash:
                        state, raw = jf.BAD, None  # framed but not chained: stale or misplaced
                if raw is None:
                    _add_range(holes if state == jf.HOLED else bad, i, i)
                    chain_seq, chain_hash = seq, zero
                else:
                    if state == jf.MENDED:
                        mended += 1
                    chain_seq, chain_hash = seq, record_hash(raw)
                    last_good, last_k = i, k
                    state_at_good = (chain_seq, chain_hash)
                off += elen
                i += 1
        slots = i
        cut = slots
        if newest:
            group = last_good - last_k if last_good >= 0 else 0
            for lo, hi in bad:
                if hi >= group:
                    cut = max(lo, group)
                    break
            must = self.acked_seq - seg.first + 1  # acknowledged slots are never cut
            cut = max(cut, min(must, slots))
        seg.count = cut
        # the chain continues from the last kept slot
        if cut and last_good == cut - 1 and state_at_good is not None:
            self._chain = state_at_good
        elif cut:
            self._chain = (seg.first + cut - 1, zero)
        if newest and fmt == 3 and cut == slots:
            self._crc = crc  # to seal it once full
        merged: list = []
        for lo, hi in sorted(bad + holes):
            if lo >= cut:
                continue
            hi = min(hi, cut - 1)
            _add_range(merged, seg.first + lo, seg.first + hi)
        for lo, hi in bad:
            if lo < cut:
                self._lost(seg.first + lo, seg.first + min(hi, cut - 1))
        for lo, hi in holes:
            if lo < cut:
                self.damage["holes"] += min(hi, cut - 1) - lo + 1
        seg.bad = merged
        self.damage["mended"] += mended
        seg.dirty = bool(mended) or any(lo < cut for lo, _hi in bad)
        if newest and fmt == 3 and cut < slots and cut:
            self._crc = self._crc_prefix(f, cut * elen, seg.name, elen)
        return cut * elen

    # -- what was found --------------------------------------------------------------------
    def report(self) -> dict:
        """What opening found: the damage, and whether the journal can vouch for its seq."""
        d = dict(self.damage)
        d["lost_seqs"] = [list(r) for r in d["lost_seqs"]]
        d["vouched"] = self.vouched
        damaged = (
            d["mended"]
            or d["lost_acked"]
            or d["lost_unacked"]
            or d["bad_footers"]
            or d["meta"] != "ok"
        )
        d["state"] = "unverified" if not self.vouched else ("damaged" if damaged else "ok")
        d["acked_seq"] = self.acked_seq
        d["last_seq"] = self.last_seq
        d["segments"] = len(self._segs)
        d["old_format_segments"] = sum(1 for s in self._segs if s.fmt != 3)
        return d

    # -- writing -------------------------------------------------------------------------
    def _active(self):
        """The open segment to append to, creating (and sealing the full one) as needed.
        Returns (segment, open file)."""
        if self._cut is not None:
            self._cut_back(*self._cut)
            if self._cut is not None:
                raise JournalError("a torn tail or failed write could not be cut back yet")
        segments = self._segs
        if segments and not segments[-1].sealed and not segments[-1].closed:
            if segments[-1].count >= self.segment_records:
                self._seal(segments[-1])
        if not segments or segments[-1].sealed or segments[-1].closed:
            self._new_segment(self.last_seq + 1)
        if self._f is None:
            self._f = self.fs.open_file(self._path(segments[-1].name), "ab")
        return segments[-1], self._f

    def _new_segment(self, first: int):
        """An empty segment starting at `first`: its name alone is a durable high-water."""
        seg = _Segment(first, jf.segment_name(first))
        f = self.fs.open_file(self._path(seg.name), "ab")
        self._sync(f)
        f.close()
        self.fs.sync_dir(self._path(seg.name))
        self._crc = 0
        self._close_file()
        self._segs.append(seg)
        return seg

    def _seal(self, seg):
        """Footer a full segment; one with damage or holes is closed instead (a sealed segment
        is checked by one CRC, which would not find them)."""
        self._close_file()
        if seg.dirty or seg.bad:
            seg.closed = True
            return
        f = self.fs.open_file(self._path(seg.name), "ab")
        try:
            f.write(jf.footer(seg.count, self._crc, self.last_hash))
            self._sync(f)
        except OSError:
            f.close()
            self._undo(seg, seg.count * jf.ENTRY3_LEN)  # no half footer stays behind
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
        if not self.vouched:
            raise JournalUnverified(
                "the journal cannot vouch for its seq (journal.meta unreadable): repair it"
            )
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
        entry3 = jf.entry3
        try:
            while done < len(staged):
                try:
                    seg, f = self._active()  # may seal a full segment or start a new one
                except OSError as e:
                    raise _write_error(e) from None
                take = min(len(staged) - done, self.segment_records - seg.count)
                part = staged[done : done + take]
                data = b"".join([entry3(raw, k) for k, (_r, raw, _h) in enumerate(part)])
                size = seg.count * jf.ENTRY3_LEN
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
        self._cut_back(self._path(seg.name), size)

    def _cut_back(self, path: str, size: int) -> None:
        """Cut `path` to `size` bytes; if the disk refuses (EIO), remember it: the next append
        tries again first and is refused until the cut is made (the journal still opens and
        uploads, so a gate whose disk failed once still boots)."""
        try:
            self.fs.truncate_file(path, size)
            self._cut = None
        except OSError:
            self._cut = (path, size)

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
        """Raw records not yet acknowledged (seq > max(acked, after_seq)), oldest first, with
        consecutive seqs: a lost record ends the run (the next call, after it, goes on)."""
        out: list = []
        seq = max(self.acked_seq, after_seq) + 1
        for seg in self._segs:
            if len(out) >= limit:
                break
            if seq >= seg.end:
                continue
            if seq < seg.first:
                if out:
                    break  # a missing segment ends the run
                seq = seg.first
            start, stop = seq, seg.end
            for lo, hi in seg.bad:
                if hi < start:
                    continue
                if lo <= start:
                    start = hi + 1
                    continue
                stop = lo
                break
            if start != seq and out:
                break  # a lost record ends the run
            if start >= seg.end:
                seq = start
                continue
            n = min(stop - start, limit - len(out))
            got = self._read(seg, start, n) if n > 0 else []
            out.extend(got)
            seq = start + len(got)
            if len(got) < n or (stop < seg.end and len(out) < limit):
                break
        return out

    def _lost_ranges(self):
        """[lo, hi] seqs above the acknowledged one with no readable record, in order: lost
        slots and holes, and seqs of segments that are missing."""
        prev = self.acked_seq + 1
        for seg in self._segs:
            if seg.first > prev:
                yield prev, seg.first - 1
            for lo, hi in seg.bad:
                if hi >= prev:
                    yield max(lo, prev), hi
            prev = max(prev, seg.end)

    def readable_count(self) -> int:
        """Unacknowledged records that can still be read (pending_count less the lost)."""
        return self.pending_count() - sum(hi - lo + 1 for lo, hi in self._lost_ranges())

    def after_index(self, index: int) -> int:
        """The `after_seq` for `pending` that starts at the index-th readable unacknowledged
        record (0 the first), stepping over lost ones: an export counts records, not seqs."""
        pos = self.acked_seq + 1
        for lo, hi in self._lost_ranges():
            if index < lo - pos:
                break
            index -= lo - pos
            pos = hi + 1
        return pos + index - 1

    def unsynced(self, chunk: int = 0):
        """Every readable unacknowledged raw record, oldest first (lost ones stepped over),
        read `chunk` entries (at most, and by default, `read_records`) at a time: at most that
        many are in memory at once, and each segment is opened once."""
        chunk = min(chunk or self.read_records, self.read_records)
        record_of = jf.record_of
        seq = self.acked_seq + 1
        for seg in list(self._segs):
            if seq >= seg.end:
                continue
            seq = max(seq, seg.first)
            elen = jf.entry_len(seg.name)
            fmt = seg.fmt
            f = self.fs.open_file(self._path(seg.name), "rb")
            try:
                f.seek((seq - seg.first) * elen)
                while seq < seg.end:
                    want = min(chunk, seg.end - seq)
                    data = f.read(want * elen)
                    if len(data) != want * elen:
                        raise JournalError("%s is shorter than its index" % seg.name)
                    off = 0
                    for _ in range(want):
                        raw = record_of(data, off, fmt, seq)
                        if raw is not None:
                            yield raw
                        elif not any(lo <= seq <= hi for lo, hi in seg.bad):
                            self._found_lost(seg, seq)
                        off += elen
                        seq += 1
            finally:
                f.close()

    def _found_lost(self, seg, seq: int) -> None:
        """A slot found damaged since the journal opened: remember it as lost."""
        _add_range(seg.bad, seq, seq)
        seg.bad.sort()
        seg.dirty = True
        self._lost(seq, seq)

    def _read(self, seg, start: int, n: int) -> list:
        """Up to n raw records from `start`, read `read_records` entries at a time; stops at a
        slot found damaged since opening (remembered as lost)."""
        out: list = []
        elen = jf.entry_len(seg.name)
        fmt = seg.fmt
        record_of = jf.record_of
        f = self.fs.open_file(self._path(seg.name), "rb")
        try:
            f.seek((start - seg.first) * elen)
            while len(out) < n:
                want = min(n - len(out), self.read_records)
                data = f.read(want * elen)
                if len(data) != want * elen:
                    raise JournalError("%s is shorter than its index" % seg.name)
                off = 0
                while off < len(data):
                    seq = start + len(out)
                    raw = record_of(data, off, fmt, seq)
                    if raw is None:
                        self._found_lost(seg, seq)
                        return out
                    out.append(raw)
                    off += elen
        finally:
            f.close()
        return out

    def _hash_at(self, seq: int) -> bytes:
        """The hash of the record `seq` (ZERO_HASH: unknown, its slot is lost)."""
        raws = self.pending(1, seq - 1)
        if raws and records.seq_of(raws[0]) == seq:
            return records.record_hash(raws[0])
        return records.ZERO_HASH

    def _write_meta(self, seq: int, h: bytes) -> None:
        data = jf.meta(seq, h)
        write = getattr(self.fs, "write_reserved", self.fs.write_atomic)  # no spare: atomic
        write(self._path(jf.META), data)
        write(self._path(jf.META_B), data)

    def ack(self, up_to_seq: int) -> int:
        """The back office durably holds every record with seq <= up_to_seq: drop them.

        Returns how many records left the queue."""
        up_to = min(up_to_seq, self.last_seq)
        if up_to <= self.acked_seq:
            return 0
        h = self.last_hash if up_to == self.last_seq else self._hash_at(up_to)
        try:
            self._write_meta(up_to, h)
        except OSError as e:  # nothing trimmed: the records are simply uploaded again later
            raise JournalError("could not record the acknowledgement: %r" % e) from None
        dropped = up_to - self.acked_seq
        self.acked_seq = up_to
        self.acked_hash = h
        keep = []
        last = self._segs[-1] if self._segs else None
        for seg in self._segs:
            done = seg.end - 1 <= up_to and (seg.sealed or (seg.closed and seg is not last))
            if done:
                self.fs.remove_if_exists(self._path(seg.name))  # a leftover goes at next open
            else:
                keep.append(seg)
        self._segs = keep
        for listener in self.listeners:
            listener.acked(up_to)
        return dropped

    # -- repair (firmware/storage/journalrepair.py: imported only when a technician asks) --
    def repair(self, seq_floor: int = 0) -> dict:
        """Rewrite the damaged segments and reopen (journalrepair.repair says how)."""
        from firmware.storage import journalrepair

        return journalrepair.repair(self, seq_floor)

    def close(self):
        self._close_file()
