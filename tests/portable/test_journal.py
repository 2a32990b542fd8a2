import os
from binascii import crc32

from firmware import platform
from firmware.storage.fs import FileProxy, Storage
from firmware.storage.journal import Journal, JournalFull, JournalUnverified
from protocol import journalfile, journalold, records
from protocol.journalfile import ENTRY2_LEN, ENTRY3_LEN, FOOTER_LEN
from tests.portable.harness import mkdtemp, raises, rmtree


def _passage(account=1):
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, 1767254400, account_id=account)


def _reject(account=1):
    return records.Record(records.KIND_REJECT, 43, 0, 0, 1767254400, account_id=account)


def _seqs(raws):
    return [records.decode(r).seq for r in raws]


def _legacy(d, n, segment_records=16384, acked=0):
    """A journal as a gate wrote it before version 3: segments `.jn2` of version 1 records,
    each entry the record twice (protocol/journalfile.py), sealed when full. -> the raws."""
    raws = []
    prev = records.ZERO_HASH
    for seq in range(1, n + 1):
        r = records.Record(
            records.KIND_PASSAGE,
            0,
            7,
            seq,
            1767254400,
            account_id=seq,
            prev_hash=prev,
            version=records.VERSION_1,
        )
        raws.append(r.to_bytes())
        prev = records.record_hash(raws[-1])
    for first in range(1, n + 1, segment_records):
        part = raws[first - 1 : first - 1 + segment_records]
        body = b"".join(journalold.entry2(r, 0) for r in part)
        if len(part) == segment_records:
            body += journalfile.footer(len(part), crc32(body), records.record_hash(part[-1]))
        with open(d + "/" + journalfile.segment_name(first, journalfile.V2), "wb") as f:
            f.write(body)
    if acked:
        with open(d + "/" + journalfile.META, "wb") as f:
            f.write(journalfile.meta(acked, records.record_hash(raws[acked - 1])))
    return raws


def _segfiles(d):
    return sorted(n for n in os.listdir(d) if n.startswith("seg-"))


class FaultyDisk:
    """The platform's file layer, but writes fail with ENOSPC once `room` bytes are used."""

    def __init__(self, room):
        self.room = room
        for name in ("read_file", "listdir", "write_atomic", "remove_if_exists", "sync_dir"):
            setattr(self, name, getattr(platform, name))

    def open_file(self, path, mode):
        f = platform.open_file(path, mode)
        return f if "r" in mode else _FullFile(f, self)

    def sync_file(self, f):
        platform.sync_file(f.f if isinstance(f, _FullFile) else f)

    def truncate_file(self, path, size):
        platform.truncate_file(path, size)


class _FullFile(FileProxy):
    def __init__(self, f, disk):
        super().__init__(f)
        self.disk = disk

    def write(self, data):
        if len(data) > self.disk.room:
            self.f.write(data[: self.disk.room])  # a partial write, as a full disk leaves
            self.disk.room = 0
            raise OSError(28, "No space left on device")
        self.disk.room -= len(data)
        return self.f.write(data)


def test_append_reopen_keeps_everything_and_the_chain():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(5):
            j.append(_passage(i))
        j.close()
        j = Journal(d, device_id=7)
        raws = j.pending()
        assert _seqs(raws) == [1, 2, 3, 4, 5]
        assert records.verify_chain(raws) == -1
        assert j.append(_passage()).seq == 6
        j.close()
    finally:
        rmtree(d)


def test_segments_roll_over_seal_and_reopen():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=4)
        for i in range(10):
            j.append(_passage(i))
        j.close()
        names = _segfiles(d)
        assert names == ["seg-%016x.jn3" % s for s in (1, 5, 9)]
        assert os.stat(d + "/" + names[0])[6] == 4 * ENTRY3_LEN + FOOTER_LEN  # sealed
        j = Journal(d, device_id=7, segment_records=4)
        raws = j.pending(100)
        assert _seqs(raws) == list(range(1, 11))
        assert records.verify_chain(raws) == -1
        assert _seqs(j.pending(3, after_seq=4)) == [5, 6, 7]
        j.close()
    finally:
        rmtree(d)


def _flip(path, offset, mask=1):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= mask
    with open(path, "wb") as f:
        f.write(data)


def _slot_len(path, count):
    """Bytes per entry of an unsealed segment holding `count` entries (any format)."""
    return os.stat(path)[6] // count


def test_damage_in_a_sealed_segment_is_mended_from_the_second_copy():
    # a journal written before version 3: each record twice
    d = mkdtemp()
    try:
        _legacy(d, 6, segment_records=4)
        _flip(d + "/" + _segfiles(d)[0], 100)
        j = Journal(d, device_id=7, segment_records=4)
        rep = j.report()
        assert rep["state"] == "damaged" and rep["mended"] == 1 and rep["lost_unacked"] == 0
        raws = j.pending()
        assert _seqs(raws) == [1, 2, 3, 4, 5, 6] and records.verify_chain(raws) == -1
        rec = j.append(_passage())
        assert rec.seq == 7 and rec.prev_hash == records.record_hash(raws[-1])
        assert _segfiles(d)[-1] == "seg-%016x.jn3" % 7
        assert records.verify_chain(j.pending()) == -1  # the chain runs across versions
        j.close()
    finally:
        rmtree(d)


def test_damage_in_a_sealed_version_3_segment_loses_that_record_only():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=4)
        for i in range(6):
            j.append(_passage(i))
        j.close()
        _flip(d + "/" + _segfiles(d)[0], ENTRY3_LEN + 100)  # seq 2: one copy, lost
        j = Journal(d, device_id=7, segment_records=4)
        rep = j.report()
        assert rep["state"] == "damaged" and rep["mended"] == 0
        assert rep["lost_unacked"] == 1 and rep["lost_seqs"] == [[2, 2]]
        assert _seqs(list(j.unsynced())) == [1, 3, 4, 5, 6]
        assert j.append(_passage()).seq == 7
        j.close()
    finally:
        rmtree(d)


def test_torn_tail_is_cut_and_nothing_before_it_lost():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(3):
            j.append(_passage(i))
        j.close()
        path = d + "/" + _segfiles(d)[0]
        size = os.stat(path)[6]
        with open(path, "ab") as f:
            f.write(b"\xa5" + bytes(20))  # a power cut mid-write
        j = Journal(d, device_id=7)
        assert j.torn_bytes_cut == 21
        assert j.pending_count() == 3
        assert os.stat(path)[6] == size
        assert j.append(_passage()).seq == 4
        j.close()
    finally:
        rmtree(d)


def test_torn_group_commit_of_several_entries_is_cut():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        j.append(_passage())
        j.close()
        path = d + "/" + _segfiles(d)[0]
        with open(path, "ab") as f:
            f.write(bytes(ENTRY3_LEN * 3 + 10))  # blocks allocated, data never written
        j = Journal(d, device_id=7)
        assert j.torn_bytes_cut == ENTRY3_LEN * 3 + 10 and j.pending_count() == 1
        j.close()
    finally:
        rmtree(d)


def test_torn_footer_is_cut_and_the_segment_resealed():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=2)
        j.append(_passage())
        j.append(_passage())
        j.append(_passage())  # seals the first segment
        j.close()
        first = d + "/" + _segfiles(d)[0]
        os.remove(d + "/" + _segfiles(d)[1])
        with open(first, "rb") as f:
            data = f.read()
        with open(first, "wb") as f:
            f.write(data[:-5])  # the footer was being written when the power went
        j = Journal(d, device_id=7, segment_records=2)
        assert j.pending_count() == 2 and j.torn_bytes_cut == FOOTER_LEN - 5
        assert j.append(_passage()).seq == 3
        j.close()
        j = Journal(d, device_id=7, segment_records=2)
        assert _seqs(j.pending()) == [1, 2, 3]
        j.close()
    finally:
        rmtree(d)


def test_a_flipped_byte_in_the_last_acknowledged_record_is_not_a_torn_write():
    # issue 19: it was cut as a torn tail, and the next passage reused its seq (the back
    # office kept the old row and took the new passage as acknowledged: lost)
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(5):
            j.append(_passage(i))
        j.ack(5)
        j.close()
        path = d + "/" + _segfiles(d)[0]
        _flip(path, 4 * _slot_len(path, 5) + 30)
        j = Journal(d, device_id=7)
        assert j.last_seq == 5 and j.torn_bytes_cut == 0
        assert j.append(_passage()).seq == 6
        j.close()
    finally:
        rmtree(d)


def test_a_flipped_byte_in_the_last_record_whose_ack_was_lost_keeps_it():
    # with two copies (journals before version 3); one copy of version 3 is cut as torn
    d = mkdtemp()
    try:
        want = _legacy(d, 5, acked=4)[-1]  # the back office stored seq 5 too, no ACK came
        path = d + "/" + _segfiles(d)[0]
        _flip(path, 4 * _slot_len(path, 5) + 30)
        j = Journal(d, device_id=7)
        assert j.pending() == [want]  # uploaded again, byte for byte
        assert j.append(_passage()).seq == 6
        j.close()
    finally:
        rmtree(d)


def test_a_flipped_byte_in_the_middle_opens_with_the_damage_reported():
    # issue 19: the gate halted at boot (JournalError), every record already acknowledged
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(6):
            j.append(_passage(i))
        j.ack(6)
        j.close()
        path = d + "/" + _segfiles(d)[0]
        _flip(path, 2 * _slot_len(path, 6) + 10, 0xFF)
        j = Journal(d, device_id=7)
        assert j.report()["state"] == "damaged" and j.report()["vouched"]
        assert j.append(_passage()).seq == 7
        j.close()
    finally:
        rmtree(d)


def _destroy(path, i):
    """Entry i garbled (both copies of an old one): the record is gone."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    elen = journalfile.entry_len(path)
    for p in range(i * elen, (i + 1) * elen):
        data[p] ^= 0x5C
    with open(path, "wb") as f:
        f.write(data)


def test_a_lost_record_is_reported_the_rest_salvaged_and_repair_leaves_a_hole():
    d = mkdtemp()
    try:
        _legacy(d, 6, acked=1)
        path = d + "/" + _segfiles(d)[0]
        _destroy(path, 0)  # acknowledged: not needed
        _destroy(path, 2)  # seq 3, not acknowledged: lost
        _flip(path, 3 * ENTRY2_LEN + 5)  # seq 4: one copy damaged, mended
        j = Journal(d, device_id=7)
        rep = j.report()
        assert rep["lost_acked"] == 1 and rep["lost_unacked"] == 1 and rep["mended"] == 1
        assert rep["lost_seqs"] == [[3, 3]] and rep["state"] == "damaged"
        assert _seqs(j.pending()) == [2]  # a run of consecutive seqs ends at the lost one
        assert _seqs(j.pending(10, 2)) == [4, 5, 6]
        assert _seqs(list(j.unsynced())) == [2, 4, 5, 6]
        # an export counts records: the index-th readable one, over the lost seq 3
        assert j.readable_count() == 4 and j.pending_count() == 5
        assert [_seqs(j.pending(2, j.after_index(i))) for i in range(5)] == [
            [2],
            [4, 5],
            [5, 6],
            [6],
            [],
        ]
        out = j.repair()
        assert out["before"]["lost_unacked"] == 1
        assert out["after"]["state"] == "ok" and out["after"]["holes"] == 2
        assert j.append(_passage()).seq == 7
        j.close()
        j = Journal(d, device_id=7)
        assert j.report()["state"] == "ok" and j.report()["holes"] == 2
        assert _seqs(list(j.unsynced())) == [2, 4, 5, 6, 7]
        j.ack(7)
        assert j.pending_count() == 0
        j.close()
    finally:
        rmtree(d)


def test_a_torn_group_commit_with_a_hole_in_it_is_still_a_torn_write():
    # the sectors of the last write reached the disk out of order: a hole, then good entries
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        j.append(_passage())
        j.append(_passage())
        j.append_many([_passage(i) for i in range(5)])  # seqs 3..7, one write
        j.close()
        path = d + "/" + _segfiles(d)[0]
        _destroy(path, 3)  # seq 4, second of the group
        j = Journal(d, device_id=7)
        rep = j.report()
        assert rep["state"] == "ok" and rep["torn_bytes_cut"] == 4 * ENTRY3_LEN
        assert j.last_seq == 3 and _seqs(j.pending()) == [1, 2, 3]
        j.close()
    finally:
        rmtree(d)


def test_both_meta_copies_unreadable_refuses_appends_until_repaired_with_a_floor():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(4):
            j.append(_passage(i))
        j.ack(4)
        j.close()
        for name in (journalfile.META, journalfile.META_B):
            _flip(d + "/" + name, 3)
        j = Journal(d, device_id=7)
        assert j.report()["state"] == "unverified" and not j.report()["vouched"]
        e = raises(JournalUnverified, j.append, _passage())
        assert e.reason == "journal_unverified"
        raises(JournalUnverified, j.repair)
        j.repair(seq_floor=9)  # the back office's high seq for this gate
        assert j.report()["state"] == "ok"
        assert j.append(_passage()).seq == 10
        j.close()
        j = Journal(d, device_id=7)
        assert j.append(_passage()).seq == 11
        j.close()
    finally:
        rmtree(d)


def test_one_meta_copy_bad_is_reported_and_rewritten_by_repair():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        j.append(_passage())
        j.append(_passage())
        j.ack(1)
        j.close()
        _flip(d + "/" + journalfile.META, 2)
        j = Journal(d, device_id=7)
        assert j.report()["meta"] == "one_copy_bad" and j.acked_seq == 1
        assert j.repair()["after"]["meta"] == "ok"
        j.close()
    finally:
        rmtree(d)


def test_a_journal_written_before_version_2_is_read_and_continued():
    d = mkdtemp()
    try:
        raws = []
        prev = records.ZERO_HASH
        for seq in range(1, 7):
            r = records.Record(
                records.KIND_PASSAGE,
                0,
                7,
                seq,
                1767254400,
                prev_hash=prev,
                version=records.VERSION_1,
            )
            raws.append(r.to_bytes())
            prev = records.record_hash(raws[-1])
        body = b"".join(journalold.entry(r) for r in raws[:4])
        crc = crc32(body)
        with open(d + "/" + journalfile.segment_name(1, journalfile.V1), "wb") as f:
            f.write(body + journalfile.footer(4, crc, records.record_hash(raws[3])))
        with open(d + "/" + journalfile.segment_name(5, journalfile.V1), "wb") as f:
            f.write(b"".join(journalold.entry(r) for r in raws[4:]) + b"\xa5\x01")  # torn
        with open(d + "/" + journalfile.META, "wb") as f:
            f.write(journalfile.meta(2, records.record_hash(raws[1])))
        j = Journal(d, device_id=7, segment_records=4)
        assert j.report()["state"] == "ok" and j.torn_bytes_cut == 2
        assert j.pending() == raws[2:]
        assert j.append(_passage()).seq == 7
        assert _segfiles(d)[-1] == "seg-%016x.jn3" % 7  # appends go to a version 3 segment
        j.close()
        j = Journal(d, device_id=7, segment_records=4)
        got = j.pending()
        assert _seqs(got) == [3, 4, 5, 6, 7]
        assert records.verify_chain(got, records.record_hash(raws[1])) == -1
        j.ack(6)
        assert _segfiles(d) == ["seg-%016x.jn3" % 7]
        j.close()
    finally:
        rmtree(d)


def test_ack_trims_whole_segments_and_seq_never_repeats():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=2)
        for i in range(5):
            j.append(_passage(i))
        assert j.ack(3) == 3
        assert _seqs(j.pending()) == [4, 5]
        assert _segfiles(d) == ["seg-%016x.jn3" % s for s in (3, 5)]  # 1-2 gone, 3-4 half
        assert j.ack(3) == 0 and j.ack(99) == 2
        assert j.pending_count() == 0
        h5 = j.last_hash
        j.close()
        j = Journal(d, device_id=7, segment_records=2)  # reboot
        assert j.pending_count() == 0
        rec = j.append(_passage())
        assert rec.seq == 6
        assert rec.prev_hash == h5  # the chain continues across the trim
        j.close()
    finally:
        rmtree(d)


def test_crash_between_meta_and_segment_delete_is_finished_on_open():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=2)
        for i in range(5):
            j.append(_passage(i))
        j.close()
        keep = {}
        for n in _segfiles(d):
            with open(d + "/" + n, "rb") as f:
                keep[n] = f.read()
        j = Journal(d, device_id=7, segment_records=2)
        j.ack(4)
        j.close()
        for n, data in keep.items():  # the deletes never reached the disk
            with open(d + "/" + n, "wb") as f:
                f.write(data)
        j = Journal(d, device_id=7, segment_records=2)
        assert _seqs(j.pending()) == [5]
        assert _segfiles(d) == ["seg-%016x.jn3" % 5]
        j.close()
    finally:
        rmtree(d)


def test_empty_journal_after_full_trim_continues_the_chain():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=2)
        for i in range(4):
            j.append(_passage(i))
        last_hash = j.last_hash
        j.append(_passage())  # opens segment 5
        j.ack(5)
        j.close()
        for n in _segfiles(d):
            os.remove(d + "/" + n)  # all trimmed, as after a factory move of the data
        j = Journal(d, device_id=7, segment_records=2)
        assert j.last_seq == 5 and j.last_hash != last_hash
        assert j.append(_passage()).seq == 6
        j.close()
    finally:
        rmtree(d)


def test_group_commit():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=3)
        assert j.append_many([_passage(i) for i in range(7)]) == 7
        j.stage(_passage())
        j.stage(_passage())
        assert j.pending_count() == 7  # staged is not committed
        assert j.commit() == 2
        j.close()
        j = Journal(d, device_id=7, segment_records=3)
        raws = j.pending()
        assert _seqs(raws) == list(range(1, 10)) and records.verify_chain(raws) == -1
        j.close()
    finally:
        rmtree(d)


def test_a_refused_batch_leaves_nothing_queued():
    # A reject late in a batch hits the reject reserve: the whole batch is refused, and the
    # passages before it must not be written by the next commit.
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, capacity=4, reject_reserve=2)
        j.append(_reject())
        raises(JournalFull, j.append_many, [_passage(), _reject()])
        assert j.append(_passage(9)).seq == 2
        assert [records.decode(r).account_id for r in j.pending()] == [1, 9]
        j.close()
    finally:
        rmtree(d)


def test_capacity_refuses_and_keeps_a_reserve_for_passages():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, capacity=4, reject_reserve=2)
        j.append(_reject())
        j.append(_reject())
        assert raises(JournalFull, j.append, _reject()).reason == "journal_full"
        assert j.rejects_not_journaled == 1
        j.append(_passage())
        j.append(_passage())
        raises(JournalFull, j.append, _passage())
        raises(JournalFull, j.append_many, [_passage()])
        assert j.pending_count() == 4
        j.ack(2)
        assert j.append(_passage()).seq == 5
        j.close()
    finally:
        rmtree(d)


def test_disk_full_loses_nothing_and_recovers():
    d = mkdtemp()
    try:
        disk = FaultyDisk(room=ENTRY3_LEN * 3 + 30)
        j = Journal(d, device_id=7, fs=disk)
        for i in range(3):
            j.append(_passage(i))
        e = raises(JournalFull, j.append, _passage())
        assert e.reason == "journal_full"
        assert j.pending_count() == 3 and j.last_seq == 3
        disk.room = 10**6  # the technician freed some space
        assert j.append(_passage()).seq == 4
        j.close()
        j = Journal(d, device_id=7)
        raws = j.pending()
        assert _seqs(raws) == [1, 2, 3, 4] and records.verify_chain(raws) == -1
        assert j.torn_bytes_cut == 0  # the partial write was cut back at once
        j.close()
    finally:
        rmtree(d)


class _SyncFails:
    """The platform's file layer, but every durable write fails with ENOSPC while `full`
    (as fsync reports a full volume), even for a new, empty segment file."""

    def __init__(self):
        self.full = False
        for name in (
            "read_file",
            "listdir",
            "open_file",
            "truncate_file",
            "remove_if_exists",
            "sync_dir",
        ):
            setattr(self, name, getattr(platform, name))

    def sync_file(self, f):
        if self.full:
            raise OSError(28, "No space left on device")
        platform.sync_file(f)

    def write_atomic(self, path, data):
        if self.full:
            raise OSError(28, "No space left on device")
        platform.write_atomic(path, data)


def test_disk_full_when_a_segment_must_be_sealed_or_started_is_journal_full():
    d = mkdtemp()
    try:
        disk = _SyncFails()
        j = Journal(d, device_id=7, segment_records=2, fs=disk)
        j.append(_passage())
        j.append(_passage())
        disk.full = True
        raises(JournalFull, j.append, _passage())  # the full segment cannot be sealed
        disk.full = False
        j.append(_passage())  # sealed now, third record in a new segment
        j.ack(3)  # every segment trimmed: the next append starts a new one
        disk.full = True
        raises(JournalFull, j.append, _passage())
        disk.full = False
        assert j.append(_passage()).seq == 4
        j.close()
        j = Journal(d, device_id=7, segment_records=2)
        raws = j.pending()
        assert _seqs(raws) == [4] and j.torn_bytes_cut == 0
        j.close()
        j = Journal(d, device_id=7, segment_records=2)
        assert j.last_seq == 4
        j.close()
    finally:
        rmtree(d)


class _Tally:
    def __init__(self):
        self.seen = []
        self.acked_to = 0

    def committed(self, rec):
        self.seen.append(rec.seq)

    def acked(self, seq):
        self.acked_to = seq


def test_listeners_hear_commits_and_acks():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        t = _Tally()
        j.listeners.append(t)
        j.append(_passage())
        j.append_many([_passage(), _passage()])
        j.ack(2)
        assert t.seen == [1, 2, 3] and t.acked_to == 2
        j.close()
    finally:
        rmtree(d)


class TalliedReads(Storage):
    """The real storage, recording in `sizes` how many bytes each file read asks for (the
    service console's tests use it too)."""

    def __init__(self):
        self.sizes = []

    def open_file(self, path, mode):
        f = Storage.open_file(self, path, mode)
        return _TalliedFile(f, self.sizes) if "r" in mode else f


class _TalliedFile(FileProxy):
    def __init__(self, f, sizes):
        super().__init__(f)
        self.sizes = sizes

    def read(self, n=-1):
        self.sizes.append(n)
        return self.f.read(n)

    def readinto(self, buf):
        self.sizes.append(len(buf))
        return self.f.readinto(buf)


def test_uploads_and_exports_read_in_bounded_pieces_with_the_same_records():
    d = mkdtemp()
    try:
        j = Journal(d, 7, segment_records=40)
        j.append_many([_passage(i) for i in range(100)])
        want = j.pending(1000)
        j.close()
        disk = TalliedReads()
        j = Journal(d, 7, segment_records=40, fs=disk, read_records=3)
        disk.sizes[:] = []
        assert j.pending(1000) == want and list(j.unsynced(chunk=50)) == want
        assert j.pending(10, 33) == want[33:43]  # across a segment boundary
        assert disk.sizes and max(disk.sizes) == 3 * ENTRY3_LEN
        j.read_records = 64  # the default: one read per segment part here
        disk.sizes[:] = []
        assert j.pending(1000) == want and max(disk.sizes) == 40 * ENTRY3_LEN
        j.close()
    finally:
        rmtree(d)
