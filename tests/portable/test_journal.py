import os

from firmware.journal import Journal, JournalError, JournalFull
from protocol import records
from tests.portable.harness import mkdtemp, raises, rmtree


def _passage(account=1):
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, 1767254400, account_id=account)


def test_append_reopen_keeps_everything_and_the_chain():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(5):
            j.append(_passage(i))
        j.close()
        j = Journal(d, device_id=7)
        raws = j.pending()
        assert [records.decode(r).seq for r in raws] == [1, 2, 3, 4, 5]
        assert records.verify_chain(raws) == -1
        assert j.append(_passage()).seq == 6
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
        size = os.stat(d + "/journal.bin")[6]
        with open(d + "/journal.bin", "ab") as f:
            f.write(b"\xa5" + bytes(20))  # a power cut mid-write
        j = Journal(d, device_id=7)
        assert j.torn_bytes_cut == 21
        assert j.pending_count() == 3
        assert os.stat(d + "/journal.bin")[6] == size
        assert j.append(_passage()).seq == 4
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
        with open(d + "/journal.bin", "rb") as f:
            data = bytearray(f.read())
        data[10] ^= 0xFF
        with open(d + "/journal.bin", "wb") as f:
            f.write(data)
        raises(JournalError, Journal, d, 7)
    finally:
        rmtree(d)


def test_ack_trims_and_seq_never_repeats():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(4):
            j.append(_passage(i))
        assert j.ack(2) == 2
        assert [records.decode(r).seq for r in j.pending()] == [3, 4]
        assert j.ack(4) == 2
        assert j.pending_count() == 0
        j.close()
        j = Journal(d, device_id=7)  # reboot with an empty journal
        rec = j.append(_passage())
        assert rec.seq == 5
        assert rec.prev_hash == j.trimmed_hash  # the chain continues across the trim
        j.close()
    finally:
        rmtree(d)


def test_capacity():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7, capacity=2)
        j.append(_passage())
        j.append(_passage())
        assert raises(JournalFull, j.append, _passage()).reason == "journal_full"
        j.ack(1)
        j.append(_passage())
        j.close()
    finally:
        rmtree(d)
