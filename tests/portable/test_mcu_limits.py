"""An MCU gate whose journal holds as many unsynced passages as its offline limits allow
(`limits.max_unsynced_count` at the MCU profile's default, firmware/settings.py) boots in an
MCU's memory and admits the passage that reaches the bound: the offline limits
(firmware/verify/limits.py) keep one compact entry per unsynced passage, not a tuple of objects.

Part of the MCU suite (Makefile MCU_SUITE): each module runs in its own interpreter with
`-X heapsize=512K`. Also runs on CPython, where the heap is not bounded but the checks are the
same.
"""

import gc

from drivers.mcu import entry as mcu_gate
from firmware import platform, settings
from firmware.maintenance import boot
from firmware.storage.journal import Journal
from protocol import image, records
from tests.portable import codes
from tests.portable.device_kit import HOST_PUB, Backend, Clock, Hardware, _provision
from tests.portable.fake_machine import FakeMachine
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, device, make
from tests.portable.test_mcu_gate import HARDWARE, RELAY, Board, BoardRTC, World

BOUND = settings.default("limits.max_unsynced_count", "mcu")
BATCH = 8  # records staged per group commit while the test fills the journal (2 KB)


def _fill(d, n):
    """n unsynced passages of account 7, an hour old, a batch at a time so the test fits."""
    j = Journal(d, 1)
    try:
        left = n
        while left:
            k = min(BATCH, left)
            recs = [
                records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW - 3600, account_id=7)
                for _ in range(k)
            ]
            j.append_many(recs)
            left -= k
            del recs
            gc.collect()
        assert j.pending_count() == n
    finally:
        j.close()


class _Rider(World):
    """One rider scans and walks through; then the service port closes and the gate halts."""

    def read(self, timeout_s=None):
        if self.closed_at:
            return b""
        return World.read(self, timeout_s)


def test_an_mcu_gate_at_its_unsynced_bound_boots_and_admits_the_last_passage():
    d = mkdtemp("mcu-limits")
    platform.set_crypto(Backend)
    try:
        dev, _tech = _provision(d, Hardware(), Clock(), host_key=HOST_PUB.hex())
        dev.close()
        del dev, _tech
        gc.collect()
        _fill(d, BOUND - 1)  # one short of the bound: the next passage reaches it
        gate = device("mcu")
        a = agent(d, gate)
        a.stage(make(profile=image.PROFILE_MCU, mpy=(6, 3)))
        a.request_test()
        assert boot.choose(d) == ("a", True) and agent(d, gate, running="a").confirm()
        gate["hardware"] = HARDWARE
        m, board, logs = FakeMachine(), Board(), []
        m.rtc = BoardRTC(board, codes.NOW + 60)
        del a
        gc.collect()
        world = _Rider(m, board, None, codes.code(time=codes.NOW + 60), logs)
        ctx = {"state_dir": d, "slot": "a", "trial": False, "device": gate}
        code = mcu_gate.main(ctx, machine=m, link=world, clock=board, logger=logs.append)
        assert code == boot.EXIT_HALT, logs
        ready = [line for line in logs if line.startswith("console: ready ")]
        assert ready and '"in_service"' in ready[0], logs
        assert "gate: accepted account 42" in logs, logs
        assert m.pins[RELAY].history[-2:] == [1, 0] and world.opened_at > 0
        j = Journal(d, 1)
        try:  # the bound is reached: every passage is in the journal, none synced
            assert j.pending_count() == BOUND
            last = records.decode(j.pending(1, BOUND - 1)[0])
            assert (last.kind, last.account_id, last.flags) == (records.KIND_PASSAGE, 42, 0)
        finally:
            j.close()
    finally:
        platform.set_crypto(None)
        rmtree(d)
