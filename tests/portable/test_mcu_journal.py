"""A journal with a full 16384-record segment (about 2.4 MB, four times the heap of
`make test-mcu`) opens in an MCU's memory: the journal streams each segment
`buffers.journal_read` entries at a time (firmware/storage/journal.py), cutting a torn tail,
mending and reporting damage the same way, and the whole MCU gate (drivers/mcu/entry.py) boots
on it to in service.

Part of the MCU suite (Makefile MCU_SUITE): each module runs in its own interpreter with
`-X heapsize=512K`. Also runs on CPython, where the heap is not bounded but the checks are the
same.
"""

import gc
import os

from drivers.mcu import entry as mcu_gate
from firmware import platform
from firmware.maintenance import boot
from firmware.storage.journal import Journal
from protocol import image, records
from protocol.journalfile import ENTRY3_LEN, FOOTER_LEN, segment_name
from tests.portable import codes
from tests.portable.device_kit import HOST_PUB, Backend, Clock, Hardware, _provision
from tests.portable.fake_machine import HARDWARE, SYNC_UART, Board, BoardRTC, FakeMachine
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, device, make

FULL = 16384  # Journal's segment_records: the largest segment a gate writes
ACKED = FULL - 100  # acknowledged by the back office; the full segment stays (100 are not)
TAIL = 5  # records in the newest, unsealed segment
BATCH = 8  # records staged per group commit while the test fills the journal (2 KB)


def _fill(d, device_id, account=7):
    """FULL + TAIL passages (a sealed full segment and an active one), ACKED acknowledged;
    written a batch at a time so the test itself fits the heap."""
    j = Journal(d, device_id)
    try:
        n = 0
        while n < FULL + TAIL:
            k = min(BATCH, FULL + TAIL - n)
            recs = [
                records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW - 3600, account_id=account)
                for _ in range(k)
            ]
            j.append_many(recs)
            n += k
            del recs
            gc.collect()
        j.ack(ACKED)
    finally:
        j.close()


def _flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))


def test_a_full_segment_opens_streamed_with_its_torn_tail_cut():
    d = mkdtemp("mcu-journal")
    try:
        _fill(d, 7)
        full = d + "/" + segment_name(1)
        active = d + "/" + segment_name(FULL + 1)
        assert os.stat(full)[6] == FULL * ENTRY3_LEN + FOOTER_LEN  # > 2 MB, four times the heap
        with open(active, "ab") as f:
            f.write(b"\xa5" + b"\x00" * 30)  # a power cut in the middle of an append
        gc.collect()
        j = Journal(d, 7, read_records=64)
        try:
            assert j.torn_bytes_cut == 31
            assert (j.last_seq, j.acked_seq, j.pending_count()) == (FULL + TAIL, ACKED, 100 + TAIL)
            # the chain continues across the reopen: a new record links to the last one
            last = j.pending(1, FULL + TAIL - 1)[0]
            rec = j.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW, account_id=8))
            assert rec.seq == FULL + TAIL + 1 and rec.prev_hash == records.record_hash(last)
            seqs = [records.seq_of(r) for r in j.unsynced()]
            assert seqs == list(range(ACKED + 1, FULL + TAIL + 2))
        finally:
            j.close()
        assert os.stat(active)[6] == (TAIL + 1) * ENTRY3_LEN

        # one byte changed in the middle of the sealed segment: its CRC check fails, the
        # segment is checked entry by entry (streamed too) and that one record is lost (one copy;
        # it was acknowledged, so nothing is missing)
        _flip(full, (FULL // 2) * ENTRY3_LEN + 10)
        gc.collect()
        j = Journal(d, 7, read_records=64)
        try:
            rep = j.report()
            assert rep["lost_acked"] == 1 and rep["lost_unacked"] == 0
            assert j.pending_count() == 100 + TAIL + 1
        finally:
            j.close()
        _flip(full, (FULL // 2) * ENTRY3_LEN + 10)
        # a destroyed entry with good ones after it in the newest segment: not a torn tail,
        # the rest salvaged
        for p in range(2 * ENTRY3_LEN, 3 * ENTRY3_LEN):
            _flip(active, p)
        j = Journal(d, 7, read_records=64)
        try:
            rep = j.report()
            assert rep["lost_unacked"] == 1 and rep["lost_seqs"] == [[FULL + 3, FULL + 3]]
            assert j.pending_count() == 100 + TAIL + 1 and j.torn_bytes_cut == 0
            assert sum(1 for _r in j.unsynced()) == 100 + TAIL
        finally:
            j.close()
    finally:
        rmtree(d)


class _Halt:
    """A service port that closes at the gate loop's first read: the gate booted, then halts."""

    def read(self, timeout_s=None):
        return b""

    def write(self, data):
        pass


def test_an_mcu_gate_boots_in_service_on_a_full_segment():
    d = mkdtemp("mcu-journal-gate")
    platform.set_crypto(Backend)
    try:
        dev, _tech = _provision(d, Hardware(), Clock(), host_key=HOST_PUB.hex())
        dev.close()
        del dev, _tech
        gc.collect()
        _fill(d, 1, account=42)
        gate = device("mcu")
        a = agent(d, gate)
        a.stage(make(profile=image.PROFILE_MCU, mpy=(6, 3)))
        a.request_test()
        assert boot.choose(d) == ("a", True) and agent(d, gate, running="a").confirm()
        gate["hardware"] = HARDWARE
        gate["sync_serial"] = SYNC_UART
        m, board, logs = FakeMachine(), Board(), []
        m.rtc = BoardRTC(board, codes.NOW + 60)
        del a
        gc.collect()
        ctx = {"state_dir": d, "slot": "a", "trial": False, "device": gate}
        code = mcu_gate.main(ctx, machine=m, link=_Halt(), clock=board, logger=logs.append)
        assert code == boot.EXIT_HALT, logs
        ready = [line for line in logs if line.startswith("console: ready ")]
        assert ready and '"in_service"' in ready[0], logs
        j = Journal(d, 1)
        try:  # nothing was lost or cut: the acknowledged position and the queue are as written
            assert (j.last_seq, j.acked_seq, j.torn_bytes_cut) == (FULL + TAIL, ACKED, 0)
        finally:
            j.close()
    finally:
        platform.set_crypto(None)
        rmtree(d)
