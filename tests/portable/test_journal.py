import os

from firmware import platform
from firmware.storage.fs import FileProxy, Storage
from firmware.storage.journal import Journal, JournalError, JournalFull
from protocol import records
from protocol.journalfile import ENTRY_LEN, FOOTER_LEN
from tests.portable.harness import mkdtemp, raises, rmtree


def _passage(account=1):
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, 1767254400, account_id=account)


def _reject(account=1):
    return records.Record(records.KIND_REJECT, 43, 0, 0, 1767254400, account_id=account)


def _seqs(raws):
    return [records.decode(r).seq for r in raws]


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
        assert names == ["seg-%016x.jnl" % s for s in (1, 5, 9)]
        assert os.stat(d + "/" + names[0])[6] == 4 * ENTRY_LEN + FOOTER_LEN  # sealed
        j = Journal(d, device_id=7, segment_records=4)
        raws = j.pending(100)
        assert _seqs(raws) == list(range(1, 11))
        assert records.verify_chain(raws) == -1
        assert _seqs(j.pending(3, after_seq=4)) == [5, 6, 7]
        j.close()
    finally:
        rmtree(d)


def test_corruption_in_a_sealed_segment_is_an_error():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, segment_records=4)
        for i in range(6):
            j.append(_passage(i))
        j.close()
        path = d + "/" + _segfiles(d)[0]
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[100] ^= 1
        with open(path, "wb") as f:
            f.write(data)
        raises(JournalError, Journal, d, 7, 100000, 4)
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
            f.write(bytes(ENTRY_LEN * 3 + 10))  # blocks allocated, data never written
        j = Journal(d, device_id=7)
        assert j.torn_bytes_cut == ENTRY_LEN * 3 + 10 and j.pending_count() == 1
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


def test_corruption_in_the_middle_is_an_error():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(3):
            j.append(_passage(i))
        j.close()
        path = d + "/" + _segfiles(d)[0]
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[10] ^= 0xFF
        with open(path, "wb") as f:
            f.write(data)
        raises(JournalError, Journal, d, 7)
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
        assert _segfiles(d) == ["seg-%016x.jnl" % s for s in (3, 5)]  # 1-2 gone, 3-4 half
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
        assert _segfiles(d) == ["seg-%016x.jnl" % 5]
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
        disk = FaultyDisk(room=ENTRY_LEN * 3 + 30)
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


class _Reads(Storage):
    """The real storage, recording how many bytes each file read asks for."""

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
        disk = _Reads()
        j = Journal(d, 7, segment_records=40, fs=disk, read_records=3)
        disk.sizes[:] = []
        assert j.pending(1000) == want and list(j.unsynced(chunk=50)) == want
        assert j.pending(10, 33) == want[33:43]  # across a segment boundary
        assert disk.sizes and max(disk.sizes) == 3 * ENTRY_LEN
        j.read_records = 64  # the default: one read per segment part here
        disk.sizes[:] = []
        assert j.pending(1000) == want and max(disk.sizes) == 40 * ENTRY_LEN
        j.close()
    finally:
        rmtree(d)
