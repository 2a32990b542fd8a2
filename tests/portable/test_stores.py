"""Replay cache and time anchor: persisted state that must survive a power cut."""

from firmware.verify.replay import REC_LEN, ReplayCache
from firmware.verify.timeanchor import TimeAnchor
from protocol import records, ridecode
from protocol.anchorfile import SLOT_LEN
from tests.portable import codes
from tests.portable.harness import mkdtemp, rmtree

T0 = codes.NOW


class FakeRTC:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t

    def set(self, t):
        self.t = t


class FakeTicks:
    def __init__(self):
        self.ms = 1000

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        return a - b


def _anchor(path, rtc, ticks):
    return TimeAnchor(rtc, path, 2, ticks.ticks_ms, ticks.ticks_diff)


def test_replay_cache_persists_and_cuts_a_torn_tail():
    d = mkdtemp()
    try:
        path = d + "/replay.log"
        r = ReplayCache(path, retain_s=70)
        r.commit(100, 5, T0, T0)
        r.commit(100, 4, T0, T0)  # older: ignored, not logged
        r.commit(200, 1, T0, T0)
        r.commit(100, 6, T0 + 1, T0 + 1)
        r.close()
        with open(path, "rb") as f:
            data = f.read()
        assert len(data) == 3 * REC_LEN
        with open(path, "ab") as f:
            f.write(data[:10])  # a record torn by a power cut
        again = ReplayCache(path, retain_s=70)
        assert again.torn_bytes_cut == 10
        assert again.newest(100) == 6 and again.newest(200) == 1 and again.newest(300) is None
        assert again.is_replay(100, 6) and not again.is_replay(100, 7)
        again.close()
    finally:
        rmtree(d)


def test_replay_cache_prunes_and_compacts():
    d = mkdtemp()
    try:
        path = d + "/replay.log"
        r = ReplayCache(path, retain_s=70)
        for i in range(300):
            r.commit(i, 1, T0, T0)
        r.commit(9999, 1, T0 + 100, T0 + 100)
        assert r.prune(T0 + 71) == 300
        # rewritten: the live entry and the horizon (the newest time of those forgotten)
        assert list(r.entries) == [9999] and r.log_records == 2 and r.horizon == T0
        r.commit(9999, 2, T0 + 101, T0 + 101)
        r.close()
        again = ReplayCache(path, retain_s=70)
        assert again.entries == {9999: (2, T0 + 101, T0 + 101)} and again.horizon == T0
        # a forgotten credential's presentation of the horizon's time or before is a replay
        assert again.is_replay(5, 1, T0) and not again.is_replay(5, 1, T0 + 1)
        again.close()
    finally:
        rmtree(d)


def test_replay_rebuild_leaves_out_old_passages_behind_the_horizon():
    old = records.Record(records.KIND_PASSAGE, 0, 9, 1, T0, account_id=1, cred_no=1, counter=4)
    new = records.Record(records.KIND_PASSAGE, 0, 9, 2, T0 + 500, account_id=2, cred_no=1)
    r = ReplayCache(None, retain_s=70)
    assert r.rebuild([old.to_bytes(), new.to_bytes()], T0 + 510) == 1
    # the first was left out as too old at the gate's time: a clock set back must not pass it
    assert r.newest(ridecode.cred_id(1, 1)) is None and r.horizon == T0
    assert r.is_replay(ridecode.cred_id(1, 1), 4, T0) and not r.is_replay(7, 1, T0 + 1)


def test_time_anchor_follows_rtc_and_survives_reboot():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        rtc, ticks = FakeRTC(T0), FakeTicks()
        a = _anchor(path, rtc, ticks)
        assert a.now() == T0 and not a.untrusted
        rtc.t += 30
        ticks.ms += 30000
        a.mark_good()
        assert a.last_good == T0 + 30
        # reboot with a dead RTC battery: the anchor keeps time from the last good passage
        rtc2, ticks2 = FakeRTC(None), FakeTicks()
        b = _anchor(path, rtc2, ticks2)
        assert b.now() == T0 + 30 and b.untrusted and "no time" in b.reason
        ticks2.ms += 5000
        assert b.now() == T0 + 35
    finally:
        rmtree(d)


def test_time_anchor_flags_a_clock_rolled_back_and_keeps_the_flag():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        rtc, ticks = FakeRTC(T0), FakeTicks()
        a = _anchor(path, rtc, ticks)
        a.mark_good()
        rtc.t -= 1  # within tolerance: no alarm
        assert a.now() == T0 and not a.untrusted
        rtc.t = T0 - 3600  # someone rolls the clock back an hour
        ticks.ms += 2000
        assert a.now() == T0 + 2  # time does not go backwards
        assert a.untrusted and "behind" in a.reason
        # the flag survives a reboot, even with the RTC still wrong
        b = _anchor(path, FakeRTC(T0 - 3000), FakeTicks())
        assert b.untrusted and b.now() == T0
        # only a trusted time clears it
        b.set_trusted(T0 + 50)
        assert not b.untrusted and b.now() == T0 + 50 and b.rtc.t == T0 + 50
        c = _anchor(path, FakeRTC(T0 + 51), FakeTicks())
        assert not c.untrusted and c.last_good == T0 + 50
    finally:
        rmtree(d)


def test_time_anchor_torn_slot_falls_back_to_the_other():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        rtc, ticks = FakeRTC(T0), FakeTicks()
        a = _anchor(path, rtc, ticks)
        a.mark_good()  # slot 1 (seq 1)
        rtc.t += 10
        a.mark_good()  # slot 0 (seq 2)
        with open(path, "r+b") as f:
            f.seek(0)
            f.write(b"\xff" * 5)  # slot 0 torn mid-write
        b = _anchor(path, FakeRTC(T0), FakeTicks())
        assert b.last_good == T0 and not b.untrusted
        with open(path, "rb") as f:
            assert len(f.read()) == 2 * SLOT_LEN
    finally:
        rmtree(d)


def test_time_anchor_without_persistence_and_long_uptime():
    rtc, ticks = FakeRTC(T0), FakeTicks()
    a = TimeAnchor(rtc, None, 2, ticks.ticks_ms, ticks.ticks_diff)
    rtc.t = None
    ticks.ms += 3 * 3600 * 1000 + 500  # three hours on the tick counter alone
    assert a.now() == T0 + 3 * 3600
    ticks.ms += 600
    assert a.now() == T0 + 3 * 3600 + 1
    assert a.status()["untrusted"] is True


def test_write_failures_are_counted_not_raised():
    d = mkdtemp()
    try:
        r = ReplayCache(d + "/gone/replay.log")  # a directory that does not exist
        r.commit(1, 1, T0, T0)
        assert r.is_replay(1, 1) and r.write_errors == 1
        a = _anchor(d + "/gone/anchor.bin", FakeRTC(T0), FakeTicks())
        a.mark_good(T0 + 1)
        assert a.last_good == T0 + 1 and a.status()["write_errors"] == 1
    finally:
        rmtree(d)


def test_time_anchor_flags_an_rtc_that_jumps_ahead_and_keeps_counting():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        rtc, ticks = FakeRTC(T0), FakeTicks()
        a = _anchor(path, rtc, ticks)
        flagged = []
        a.on_flag = flagged.append
        rtc.t += 10 + a.ahead_tolerance_s  # 10 s pass, the RTC gains exactly the tolerance
        ticks.ms += 10_000
        assert a.now() == T0 + 10 + a.ahead_tolerance_s and not a.untrusted  # followed
        base = a.now()
        rtc.t += 1033 + 10  # 10 s later the RTC reads 1033 s too late
        ticks.ms += 10_000
        assert a.now() == base + 10  # the elapsed time wins, so fresh codes stay fresh
        assert a.untrusted and a.rtc_ahead and a.lead == 1033 and "ahead" in a.reason
        assert flagged == [a.reason]
        rtc.t += 5  # the RTC keeps running: the gate follows it, less its lead
        ticks.ms += 5_000
        assert a.now() == base + 15 and flagged == [a.reason]
        a.mark_good()
        st = a.status()
        assert st["rtc_ahead"] is True and st["rtc_lead_s"] == 1033 and st["untrusted"] is True
        # a second jump adds to the lead, without a second alarm
        rtc.t += 600
        assert a.now() == base + 15 and a.lead == 1633 and flagged == [a.reason]
        # a reboot: only the RTC is known, less the lead persisted with the flags
        rtc.t += 60  # a minute without power
        b = _anchor(path, rtc, FakeTicks())
        assert b.now() == base + 75 and b.untrusted and b.rtc_ahead and b.lead == 1633
        assert "flagged before restart" in b.reason
        # the back office's time clears the flags and sets the RTC right
        b.set_trusted(base + 76)
        assert not b.untrusted and not b.rtc_ahead and b.lead == 0 and rtc.t == base + 76
        c = _anchor(path, rtc, FakeTicks())
        assert not c.untrusted and c.lead == 0 and c.now() == base + 76
    finally:
        rmtree(d)


def test_time_anchor_after_a_reboot_with_the_jumped_rtc_corrected_while_off():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        rtc, ticks = FakeRTC(T0), FakeTicks()
        a = _anchor(path, rtc, ticks)
        rtc.t += 3600
        ticks.ms += 1000
        assert a.now() == T0 + 1 and a.rtc_ahead and a.lead == 3599
        a.mark_good()
        # someone sets the RTC right while the gate is off (2 minutes): the gate cannot know,
        # keeps its lead, never goes below last_good, and stays flagged (limited service)
        b = _anchor(path, FakeRTC(T0 + 121), FakeTicks())
        assert b.now() == T0 + 1 and b.untrusted and b.rtc_ahead
    finally:
        rmtree(d)


def test_time_anchor_reads_the_old_16_byte_slots_and_rewrites_them_whole():
    import struct
    from binascii import crc32

    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        body = struct.pack(">III", 7, T0, 1)  # seq 7, last_good T0, untrusted
        old = bytes(16) + body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)
        with open(path, "wb") as f:
            f.write(old)
        a = _anchor(path, FakeRTC(T0 + 5), FakeTicks())
        assert a.last_good == T0 and a.untrusted and not a.rtc_ahead and a.lead == 0
        a.set_trusted(T0 + 5)
        with open(path, "rb") as f:
            assert len(f.read()) == 2 * SLOT_LEN
        b = _anchor(path, FakeRTC(T0 + 6), FakeTicks())
        assert b.last_good == T0 + 5 and not b.untrusted
    finally:
        rmtree(d)


class FixedRTC:
    """A clock only the OS may set (drivers.portable.rtc.SystemRTC)."""

    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t

    def set(self, t):
        raise OSError("read-only")


def test_time_anchor_over_an_rtc_it_cannot_set_keeps_the_offset():
    rtc, ticks = FixedRTC(T0 + 900), FakeTicks()
    a = TimeAnchor(rtc, None, 2, ticks.ticks_ms, ticks.ticks_diff)
    a.set_trusted(T0)  # the RTC stays 900 s fast: that is its lead now, not an alarm
    assert a.lead == 900 and not a.untrusted
    rtc.t += 30
    ticks.ms += 30_000
    assert a.now() == T0 + 30 and not a.untrusted


def test_time_anchor_reads_the_slot_of_docs_ridecode_md():
    d = mkdtemp()
    try:
        path = d + "/anchor.bin"
        slot = bytes.fromhex("00000003695629800000000300000409fb8c4940")
        with open(path, "wb") as f:
            f.write(bytes(SLOT_LEN) + slot)  # seq 3 lives in slot 1
        a = _anchor(path, FakeRTC(1767254400 + 1033 + 60), FakeTicks())
        assert (a.last_good, a.lead, a.untrusted, a.rtc_ahead) == (1767254400, 1033, True, True)
        assert a.now() == 1767254400 + 60
    finally:
        rmtree(d)
