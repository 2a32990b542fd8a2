"""Damaged and full stores recover instead of failing open or halting (issue 19, items 4-6).

The replay cache, the deny store and the time anchor each meet the damage a disk really
leaves: a bad record in the middle of a log, a half-written append on a full disk, a base file
that fails its check, both anchor slots bad, a power cut between the journal's sync and the
replay log's. None fails open: the bad record is skipped and counted (later ones kept), the
journal rebuilds the replay window, the deny store refuses every code until a snapshot, the
clock is flagged. A full disk heals as acknowledgements arrive (the journal's trim needs no new
space), and the passage_not_taken void is journaled before the barrier closes. Faults are
injected through the storage object (firmware/storage/fs.py). Portable: runs on MicroPython.
"""

import os

from firmware.gate.gate import Gate
from firmware.storage.fs import FileProxy, Storage
from firmware.storage.journal import Journal, JournalFull
from firmware.verify.denystore import DenyStore
from firmware.verify.flashdeny import FlashDenyStore
from firmware.verify.replay import REC_LEN, ReplayCache
from firmware.verify.timeanchor import TimeAnchor
from firmware.verify.truststore import ListError
from firmware.verify.validator import Validator, ValidatorConfig
from protocol import denylist, reasons, records, replaylog
from tests.portable import codes
from tests.portable.fake_machine import Ticks
from tests.portable.harness import mkdtemp, raises, rmtree
from tests.portable.test_gate_core import Clock
from tests.portable.test_stores import FakeRTC

ENOSPC = 28


def ACC(account):  # codes' credentials are issuer key 1's
    return denylist.account_key(1, account)


class QuotaStorage(Storage):
    """The real storage on a volume of `quota` bytes (the files of one directory): a write that
    would grow past it writes what fits and fails with ENOSPC, as a full volume does."""

    def __init__(self, directory, quota):
        self.dir = directory
        self.quota = quota

    def used(self):
        n = 0
        for name in os.listdir(self.dir):
            n += os.stat(self.dir + "/" + name)[6]
        return n

    def open_file(self, path, mode):
        f = Storage.open_file(self, path, mode)
        return f if mode == "rb" else _QuotaFile(f, self, path, "a" in mode)

    def sync_file(self, f):
        Storage.sync_file(self, f.f if isinstance(f, _QuotaFile) else f)


class _QuotaFile(FileProxy):
    def __init__(self, f, disk, path, appending):
        super().__init__(f)
        self.disk = disk
        self.path = path
        self.appending = appending  # every write goes to the end (MicroPython's tell() is 0)

    def write(self, data):
        self.f.flush()
        size = os.stat(self.path)[6]
        pos = size if self.appending else self.f.tell()
        grow = max(0, pos + len(data) - size)
        room = self.disk.quota - self.disk.used()
        if grow > room:
            keep = max(0, room + size - pos)
            if keep:
                self.f.write(data[:keep])  # a partial write, as a full volume leaves
                self.f.flush()
            raise OSError(ENOSPC, "No space left on device")
        return self.f.write(data)


def _in(prefix, fn):
    d = mkdtemp(prefix)
    try:
        fn(d)
    finally:
        rmtree(d)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _flip(path, at):
    data = bytearray(_read(path))
    data[at] ^= 0x40
    _write(path, bytes(data))


# -- the replay cache -------------------------------------------------------------------------


def test_a_bad_replay_record_is_skipped_and_the_later_ones_kept():
    def body(d):
        path = d + "/replay.log"
        r = ReplayCache(path, retain_s=70)
        for cid in (100, 200, 300):
            r.commit(cid, 5, codes.NOW, codes.NOW)
        r.close()
        _flip(path, REC_LEN + 3)  # the middle record rots
        again = ReplayCache(path, retain_s=70)
        assert again.damaged_records == 1 and again.torn_bytes_cut == 0
        assert again.is_replay(100, 5) and again.is_replay(300, 5)  # kept after the bad one
        assert again.newest(200) is None
        assert again.status()["damaged_records"] == 1
        again.commit(400, 1, codes.NOW, codes.NOW)  # appended in line with the others
        again.close()
        third = ReplayCache(path, retain_s=70)
        assert third.is_replay(400, 1) and third.is_replay(300, 5)
        assert replaylog.parse(_read(path))[2] == 1
        third.close()

    _in("replay-bad", body)


def test_a_half_written_replay_record_is_cut_so_the_next_lands_in_line():
    def body(d):
        disk = QuotaStorage(d, REC_LEN + REC_LEN // 2)
        path = d + "/replay.log"
        r = ReplayCache(path, retain_s=70, fs=disk)
        r.commit(100, 1, codes.NOW, codes.NOW)
        r.commit(200, 1, codes.NOW, codes.NOW)  # half of it fits
        assert r.write_errors == 1  # cut back at once (MicroPython: before the next append)
        disk.quota = 10 * REC_LEN
        r.commit(300, 1, codes.NOW, codes.NOW)
        r.close()
        again = ReplayCache(path, retain_s=70)
        assert again.is_replay(100, 1) and again.is_replay(300, 1)
        assert again.damaged_records == 0 and again.torn_bytes_cut == 0
        again.close()

    _in("replay-half", body)


class Barrier:
    def __init__(self, journal=None):
        self.journal = journal
        self.cmds = []

    def open(self):
        self.cmds.append("open")

    def close(self):
        # what the journal holds when the barrier closes
        self.cmds.append(("close", self.journal.last_seq if self.journal else 0))


class Display:
    last = ""

    def show(self, text):
        self.last = text


def _gate(d, ticks, deny=None, clock=None):
    replay = ReplayCache(d + "/replay.log", retain_s=70)
    v = Validator(codes.VERIFIER, {1: codes.issuer_key()}, deny=deny, replay=replay, clock=clock)
    j = Journal(d, device_id=1)
    barrier = Barrier(j)
    return Gate(v, j, barrier, Display(), Clock(ticks), mode=1, direction=1, ticks=ticks)


def _code(account, counter, ticks):
    cred = codes.credential(account_id=account)
    return codes.code(cred, time=codes.NOW + ticks() // 1000, counter=counter)


def _reboot(g):
    g.validator.replay.close()
    g.journal.close()


def test_a_power_cut_between_the_journal_and_the_replay_log_never_lets_a_code_pass_twice():
    def body(d):
        ticks = Ticks(0)
        g = _gate(d, ticks)
        first = _code(5, 1, ticks)
        assert g.on_scan(first).accept
        g.on_event("occupied")
        g.on_event("passage_fwd")
        size = os.stat(d + "/replay.log")[6]
        again = _code(6, 1, ticks)  # another rider
        assert g.on_scan(again).accept
        _reboot(g)
        # the cut came after the journal's sync, before the replay log's: that entry is gone
        with open(d + "/replay.log", "rb") as f:
            kept = f.read(size)
        _write(d + "/replay.log", kept)
        ticks.advance(5000)
        g2 = _gate(d, ticks)
        g2.restore()
        assert g2.validator.replay.rebuilt == 1
        assert g2.on_scan(again).reason == "replayed"
        _reboot(g2)
        # and a replay.log lost altogether: the journal still knows both codes
        os.remove(d + "/replay.log")
        g3 = _gate(d, ticks)
        g3.restore()
        assert g3.on_scan(first).reason == "replayed"
        assert g3.on_scan(again).reason == "replayed"
        _reboot(g3)

    _in("replay-cut", body)


# -- the deny store ---------------------------------------------------------------------------


def test_a_half_written_deny_delta_is_cut_so_the_next_one_counts():
    def body(d):
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        s.install(codes.deny_snapshot(1, [ACC(1)]))
        delta = codes.deny_delta(1, 2, adds=[ACC(2)])
        s.fs = QuotaStorage(d, os.stat(d + "/deny.base")[6] + 10)
        raises(OSError, s.install, delta)  # the disk filled in the middle of the append
        assert s.version == 1 and os.stat(d + "/deny.log")[6] == 0  # the half record cut
        s.fs.quota = 1 << 20
        assert s.install(delta)
        again = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert again.version == 2 and again.is_denied(1, 2, 1) and again.torn_bytes_cut == 0

    _in("deny-half", body)


def _damaged_deny_fails_closed(d, make):
    s = make(d)
    s.install(codes.deny_snapshot(3, [ACC(1)]))
    s.close()
    _flip(d + "/deny.base", 22)  # a key rots
    bad = make(d)
    assert bad.damaged and bad.version == 0 and bad.status()["damaged"]
    ticks = Ticks(0)
    g = _gate(d, ticks, deny=bad)
    assert g.on_scan(_code(7, 1, ticks)).reason == "deny_list_damaged"  # never fails open
    assert g.display.last == reasons.display_text("deny_list_damaged")
    assert g.validator.notice(codes.NOW) == "Deny list damaged - see staff"
    # a delta cannot rebuild what was lost: only a snapshot (the next sync's) can
    gap = raises(ListError, bad.install, codes.deny_delta(3, 4, adds=[ACC(2)]))
    assert gap.reason == "deny_gap" and bad.damaged
    assert bad.install(codes.deny_snapshot(4, [ACC(1), ACC(2)]))
    assert not bad.damaged and bad.status()["load_error"] == ""
    assert g.on_scan(_code(7, 1, ticks)).accept
    assert g.on_scan(_code(1, 1, ticks)).reason in ("denied", "gate_busy")
    _reboot(g)
    bad.close()
    assert not make(d).damaged


def test_a_damaged_deny_base_fails_closed_until_a_snapshot_in_ram():
    _in("deny-ram", lambda d: _damaged_deny_fails_closed(d, _ram_deny))


def test_a_damaged_deny_base_fails_closed_until_a_snapshot_in_flash():
    _in("deny-flash", lambda d: _damaged_deny_fails_closed(d, _flash_deny))


def _ram_deny(d):
    return DenyStore(d, codes.ROOTS, codes.VERIFIER)


def _flash_deny(d):
    return FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, index_keys=16, chunk=256)


# -- the time anchor --------------------------------------------------------------------------


def test_both_anchor_slots_bad_flag_the_clock_until_a_trusted_time():
    def body(d):
        path = d + "/anchor.bin"
        rtc = FakeRTC(codes.NOW)
        a = TimeAnchor(rtc, path, ticks_ms=lambda: 0, ticks_diff=lambda x, y: x - y)
        a.mark_good(codes.NOW)
        a.mark_good(codes.NOW + 1)
        assert not a.untrusted
        _flip(path, 2)
        _flip(path, 22)  # both slots rot
        flagged = []
        b = TimeAnchor(
            rtc, path, ticks_ms=lambda: 0, ticks_diff=lambda x, y: x - y, on_flag=flagged.append
        )
        assert b.untrusted and b.damaged and b.status()["damaged"]
        assert flagged == ["anchor.bin is damaged (both slots bad)"]
        # the documented consequence: the clock policy limits (or refuses) offline acceptance
        v = Validator(codes.VERIFIER, {1: codes.issuer_key()}, clock=b)
        d1 = v.check(codes.code(counter=1), codes.NOW)
        assert d1.accept and "clock_untrusted" in d1.flags
        strict = Validator(
            codes.VERIFIER,
            {1: codes.issuer_key()},
            config=ValidatorConfig(clock_policy="refuse"),
            clock=b,
        )
        assert strict.check(codes.code(counter=1), codes.NOW).reason == "clock_untrusted"
        c = TimeAnchor(rtc, path, ticks_ms=lambda: 0, ticks_diff=lambda x, y: x - y)
        assert c.untrusted  # the flag was persisted: a reboot does not clear it
        c.set_trusted(codes.NOW + 10)
        assert not c.untrusted and not c.damaged
        after = TimeAnchor(rtc, path, ticks_ms=lambda: 0, ticks_diff=lambda x, y: x - y)
        assert not after.untrusted

    _in("anchor-bad", body)


# -- a full disk ------------------------------------------------------------------------------


def _passage(account):
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW, account_id=account)


def test_a_full_disk_frees_itself_as_acknowledgements_arrive():
    def body(d):
        disk = QuotaStorage(d, 8192)
        j = Journal(d, 7, segment_records=8, fs=disk)
        n = 0
        while True:
            try:
                j.append(_passage(n))
            except JournalFull:
                break
            n += 1
        assert n > 24 and disk.used() > 8192 - 254
        disk.quota = disk.used()  # and another store takes the last bytes: full to the byte
        assert j.ack(n - 1) == n - 1  # the trim needs no new space
        assert j.ack(n) == 1  # nor does the next (its spare came back with the room freed)
        assert j.append(_passage(99)).seq == n + 1  # room again
        assert disk.used() < 8192 // 2 and disk.used() <= disk.quota
        j.close()
        again = Journal(d, 7, segment_records=8)
        assert again.acked_seq == n and again.last_seq == n + 1
        again.close()

    _in("full-trim", body)


# -- the void made durable --------------------------------------------------------------------


def test_the_void_is_journaled_before_the_barrier_closes():
    def body(d):
        ticks = Ticks(0)
        g = _gate(d, ticks)
        assert g.on_scan(_code(5, 1, ticks)).accept
        seq = g.journal.last_seq
        ticks.advance(60000)
        g.tick()  # the pass window ends, nobody passed
        close = [c for c in g.barrier.cmds if c != "open"]
        assert close == [("close", seq + 1)]  # the void was durable when the barrier closed
        last = records.decode(g.journal.pending()[-1])
        assert last.kind == records.KIND_EVENT
        assert reasons.by_number(last.reason) == "passage_not_taken"
        _reboot(g)

    _in("void-order", body)


def test_a_power_cut_inside_the_pass_window_leaves_the_passage_standing():
    def body(d):
        ticks = Ticks(0)
        g = _gate(d, ticks)
        code = _code(5, 1, ticks)
        assert g.on_scan(code).accept
        assert g.state == "authorized"
        _reboot(g)  # the power goes inside the pass window
        g2 = _gate(d, ticks)
        assert g2.restore() == 1  # the passage stands (docs/gate-modes.md, "Power cuts")
        kinds = [records.decode(r).kind for r in g2.journal.pending()]
        assert kinds == [records.KIND_PASSAGE]  # charged: no void was journaled
        assert g2.on_scan(code).reason == "replayed"
        assert g2.on_scan(_code(5, 2, ticks)).reason == "anti_passback"
        _reboot(g2)

    _in("void-cut", body)


# -- what a technician sees -------------------------------------------------------------------


def test_a_gate_names_its_damaged_stores_in_its_status():
    from tests.portable import test_device as td

    def body(d):
        hw, clock = td.Hardware(), td.Clock()
        dev, _tech = td._provision(d, hw, clock)
        assert "alarms" not in dev.report()
        dev.close()
        _flip(d + "/deny/deny.base", 2)  # the deny list's header rots
        _flip(d + "/anchor.bin", 2)
        _flip(d + "/anchor.bin", 22)  # and both anchor slots
        dev = td._open(d, hw, clock)
        assert dev.in_service  # degraded, not halted
        assert dev.report()["alarms"] == ["deny_damaged", "anchor_damaged"]
        logged = [e.get("alarm") for e in dev.events.since(0, 500) if e["ev"] == "store_alarm"]
        assert logged == ["deny_damaged", "anchor_damaged"]
        assert dev.status()["clock_untrusted"]
        assert td._scan(dev, hw, codes.code(time=td.NOW))["deny_list_damaged"] == 1
        assert hw.barrier.opened == 0  # fails closed
        dev.close()

    _in("device-alarms", body)


def test_a_gate_whose_disk_filled_boots_after_a_power_cut_and_stays_shut_safely():
    from tests.portable import test_device as td

    def body(d):
        hw, clock = td.Hardware(), td.Clock()
        dev, _tech = td._provision(d, hw, clock)
        td._scan(dev, hw, codes.code(time=td.NOW))
        td._walk(dev, hw, clock)
        dev = None  # the power goes; when it comes back the disk is full to the byte
        disk = QuotaStorage(d, 0)
        disk.quota = disk.used()
        hw.disk = disk
        hw.barrier.state = False
        dev = td._open(d, hw, clock)
        assert dev.in_service and dev.journal.pending_count() == 1
        other = codes.code(codes.credential(account_id=43), time=td.NOW, counter=1)
        assert td._scan(dev, hw, other)["journal_full"] == 1  # nothing journaled: shut
        assert hw.barrier.opened == 1 and disk.used() <= disk.quota
        dev.close()

    _in("device-full", body)
