"""The gate's portable building blocks on both interpreters: the table runner, the sensor
trackers, anti-passback and sessions, the QR-engine line framer, restore after a reboot,
offline limits, and a reader that fails without stopping the loop."""

from drivers.portable.qrengine import LineFramer, parse_options, unquote_bytes
from firmware.gate import modes
from firmware.gate.gate import Gate
from firmware.gate.loop import GateLoop
from firmware.gate.policy import Passback, Sessions
from firmware.gate.sensors import BeamTracker, EdgeInput, LoopTracker
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator, ValidatorConfig
from protocol import p256, reasons, records
from protocol.fsm import ANY, IGNORED, SAME, Machine, merge, states_of
from tests.portable import codes
from tests.portable.fake_machine import Ticks
from tests.portable.harness import mkdtemp, raises, rmtree


def test_machine_looks_up_exact_rows_before_wildcards_and_logs_every_step():
    table = {
        ("a", "go"): ("b", ("x",)),
        (ANY, "stop"): ("a", ("y",)),
        ("b", "stop"): (SAME, ("z",)),
    }
    seen = []
    m = Machine(table, "a", on_transition=seen.append)
    assert m.step("go", 5) == ("x",) and m.state == "b"
    assert m.step("stop", 6) == ("z",) and m.state == "b"  # exact row wins
    assert m.step("nothing", 7) == () and m.state == "b"
    assert m.log == [(5, "a", "go", "b"), (6, "b", "stop", "b"), (7, "b", "nothing", IGNORED)]
    assert seen == m.log
    assert states_of(table) == ["a", "b"] and m.events_from("a") == ["go", "stop"]
    assert merge({1: 1, 2: 2}, {2: 3}) == {1: 1, 2: 3}


def test_machine_log_is_bounded():
    m = Machine({}, "s", log_size=10)
    for i in range(100):
        m.step("e", i)
    assert len(m.log) <= 10 and m.log[-1][0] == 99


def test_beam_tracker_counts_walkers_tailgaters_and_wrong_way():
    t = BeamTracker(loiter_ms=1000)
    seq = [(1, 0), (1, 1), (0, 1), (0, 0)]
    out = []
    for i, (a, b) in enumerate(seq):
        out += t.update(a, b, i * 10)
    assert out == ["occupied", "passage_fwd", "clear"]
    out = []
    for i, (a, b) in enumerate([(0, 1), (1, 1), (1, 0), (0, 0)]):
        out += t.update(a, b, 100 + i * 10)
    assert out == ["occupied", "passage_back", "clear"]
    out = []  # two people, the beams never both clear between them
    for i, (a, b) in enumerate([(1, 0), (1, 1), (0, 1), (1, 1), (1, 0), (1, 1), (0, 1), (0, 0)]):
        out += t.update(a, b, 200 + i * 10)
    assert out == ["occupied", "passage_fwd", "passage_fwd", "clear"]
    out = t.update(1, 0, 1000) + t.update(1, 0, 1500) + t.update(1, 0, 2100) + t.update(1, 0, 3000)
    assert out == ["occupied", "loitering"]  # once per occupancy
    assert t.resync() == ["occupied"]
    assert t.update(0, 0, 3100) == ["clear"]  # stepped back out: no passage


def test_loop_tracker_and_edge_input():
    t = LoopTracker()
    assert t.update(1, 0) == ["vehicle_arrived"]
    assert t.update(1, 1) == ["vehicle_on_safety"]
    assert t.update(0, 1) == ["vehicle_left"]
    assert t.resync() == ["vehicle_on_safety"]
    assert t.update(0, 0) == ["vehicle_cleared"]
    e = EdgeInput("fire_alarm", "fire_clear", debounce_ms=20)
    assert e.update(1, 0) == [] and e.update(0, 5) == [] and e.update(1, 10) == []  # bounce
    assert e.update(1, 25) == [] and e.update(1, 31) == ["fire_alarm"]
    assert e.update(1, 40) == [] and e.update(0, 50) == [] and e.update(0, 70) == ["fire_clear"]
    b = EdgeInput("exit_request", None, debounce_ms=0)
    assert b.update(1, 0) == ["exit_request"] and b.update(0, 1) == []


def test_passback_entry_exit_and_revert():
    p = Passback(window_s=100, require_entry=True)
    assert p.check(7, 2, 0) == "no_entry"
    tok = p.commit(7, 1, 0)
    assert p.check(7, 1, 50) == "anti_passback" and p.check(7, 1, 100) is None
    p.revert(tok)
    assert p.check(7, 1, 50) is None
    p.commit(7, 1, 0)
    assert p.check(7, 2, 10) is None
    p.commit(7, 2, 10)
    assert p.check(7, 2, 20) == "already_exited" and p.check(7, 1, 20) is None
    assert p.check(8, 0, 0) is None  # no direction, no policy


def test_passback_memory_is_bounded():
    p = Passback(window_s=1000, capacity=100)
    for i in range(1000):
        p.commit(i, 1, i)
    assert len(p.inside) <= 100
    assert p.check(999, 1, 1000) == "anti_passback"  # the newest are kept


def test_sessions_start_end_and_expire():
    s = Sessions(max_s=60)
    assert s.check(1, 1, 0) is None
    s.commit(1, 1, 0)
    s.commit(1, 1, 30)  # re-entry continues the session
    assert s.open == {1: 0}
    s.commit(2, 1, 10)
    s.commit(2, 2, 20)
    assert 2 not in s.open
    assert s.expire(59) == [] and s.expire(60) == [("session_expired", 1)] and s.open == {}


def test_line_framer_and_url_options():
    f = LineFramer(b"\r\n", max_line=8, gap_ms=100)
    assert f.feed(b"AB\r", 0) == [] and f.feed(b"\nCD\r\n", 1) == [b"AB", b"CD"]
    assert f.feed(b"0123456789", 2) == [] and f.feed(b"tail\r\nOK\r\n", 3) == [b"OK"]
    assert f.stats["overlong"] == 1
    assert f.feed(b"half", 10) == [] and f.feed(b"\r\n", 200) == [b""]
    assert f.stats["partial"] == 1
    assert unquote_bytes("%16T%0d") == b"\x16T\r"
    assert raises(ValueError, unquote_bytes, "%1")
    assert parse_options("suffix=%0D&max_line=64&x=1") == {
        "suffix": b"\r",
        "max_line": 64,
        "x": "1",
    }


class Clock:
    def __init__(self, ticks):
        self.ticks = ticks

    def now(self):
        return codes.NOW + self.ticks() // 1000


class Barrier:
    def __init__(self):
        self.cmds = []

    def open(self):
        self.cmds.append("open")

    def close(self):
        self.cmds.append("close")


class Display:
    last = ""

    def show(self, text):
        self.last = text


def _gate(d, ticks, **kw):
    v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
    j = Journal(d, device_id=1)
    return Gate(v, j, Barrier(), Display(), Clock(ticks), mode=1, direction=1, ticks=ticks, **kw)


def _code(account, counter, ticks):
    cred = codes.credential(account_id=account)
    return codes.code(cred, time=codes.NOW + ticks() // 1000, counter=counter)


def test_restore_rebuilds_anti_passback_from_the_journal():
    d = mkdtemp("restore")
    ticks = Ticks(0)
    try:
        g = _gate(d, ticks)
        assert g.on_scan(_code(5, 1, ticks)).accept
        g.on_event("occupied")
        g.on_event("passage_fwd")
        assert g.on_scan(_code(6, 1, ticks)).accept
        ticks.advance(9000)
        g.tick()  # account 6 never passed: voided
        g.journal.close()
        g2 = _gate(d, ticks)  # reboot
        assert g2.restore() == 1
        assert g2.on_scan(_code(5, 2, ticks)).reason == "anti_passback"
        assert g2.on_scan(_code(6, 2, ticks)).accept
        g2.journal.close()
    finally:
        rmtree(d)


OTHER = p256.Signer(0x5B5B0001)  # a second issuer (a bank), key id 7


def test_every_issuer_of_the_trust_list_in_its_own_scope():
    d = mkdtemp("issuers")
    ticks = Ticks(0)
    try:
        keys = {1: codes.issuer_key(), 7: codes.issuer_key(7, OTHER, scope=0x02)}
        cfg = ValidatorConfig(gate_scope=0x03)  # a gate serving products 1 and 2
        v = Validator(codes.VERIFIER, keys, config=cfg)
        j = Journal(d, device_id=1)
        g = Gate(v, j, Barrier(), Display(), Clock(ticks), mode=1, direction=1, ticks=ticks)

        def code(key_id, signer, counter, scope):
            cred = codes.credential(account_id=42, key_id=key_id, issuer=signer, scope=scope)
            return codes.code(cred, time=codes.NOW + ticks() // 1000, counter=counter)

        assert g.on_scan(code(1, codes.ISSUER, 5, 1)).accept
        g.on_event("occupied")
        g.on_event("passage_fwd")
        # issuer 7's account 42: another rider, its own replay entry and anti-passback
        assert g.on_scan(code(7, OTHER, 1, 2)).accept
        g.on_event("occupied")
        g.on_event("passage_fwd")
        assert g.on_scan(code(1, codes.ISSUER, 6, 1)).reason == "anti_passback"
        # each key in its own scope: issuer 7 may not sell product 1
        assert g.on_scan(code(7, OTHER, 2, 1)).reason == "issuer_out_of_scope"
        raws = j.pending()
        passed = [records.decode(r) for r in raws if records.decode(r).kind == 1]
        assert [(r.issuer, r.account_id) for r in passed] == [(1, 42), (7, 42)]
        assert all(r.rider_evidence() for r in passed)
        j.close()
        g2 = Gate(Validator(codes.VERIFIER, keys, config=cfg), Journal(d, device_id=1), Barrier(),
                  Display(), Clock(ticks), mode=1, direction=1, ticks=ticks)  # fmt: skip
        assert g2.restore() == 2  # both riders inside again after a reboot, each its own
        assert g2.on_scan(code(7, OTHER, 3, 2)).reason == "anti_passback"
        g2.journal.close()
    finally:
        rmtree(d)


def test_snapshot_reads_the_gate_as_plain_values():
    d = mkdtemp("snapshot")
    ticks = Ticks(0)
    try:
        g = _gate(d, ticks)
        snap = g.snapshot()
        assert snap == {
            "state": "idle",
            "timer": None,
            "pending": 0,
            "counts": {},
            "last_step": None,
        }
        assert g.on_scan(_code(5, 1, ticks)).accept
        ticks.advance(1000)
        snap = g.snapshot()
        event, left_ms = snap["timer"]
        assert snap["pending"] == 1 and snap["counts"] == {"accepted": 1}
        assert event.endswith("_timeout") and 0 < left_ms == g.timer[2] - 1000
        assert snap["last_step"] == ("idle", "paid", g.state)
        snap["counts"]["accepted"] = 99  # a copy: the gate's own counts stay
        assert g.counts == {"accepted": 1}
        g.journal.close()
    finally:
        rmtree(d)


class Limits:
    def __init__(self, refuse):
        self.refuse = refuse
        self.calls = []

    def check(self, account_id, value, now, account_limit=None):
        self.calls.append((account_id, value, now))
        return "offline_limit" if account_id in self.refuse else None


def test_offline_limits_are_asked_after_the_mode_policy():
    d = mkdtemp("limits")
    ticks = Ticks(0)
    try:
        lim = Limits(refuse={records.account_key(1, 9)})  # the rider's key: issuer 1's 9
        g = _gate(d, ticks, limits=lim, config={"value": 250})
        d9 = g.on_scan(_code(9, 1, ticks))
        assert (d9.accept, d9.reason) == (False, "offline_limit")
        assert g.barrier.cmds == [] and g.display.last == reasons.display_text("offline_limit")
        assert g.on_scan(_code(10, 1, ticks)).accept
        k9, k10 = records.account_key(1, 9), records.account_key(1, 10)
        assert lim.calls == [(k9, 250, codes.NOW), (k10, 250, codes.NOW)]
        recs = [records.decode(r) for r in g.journal.pending()]
        assert [(r.kind, r.value) for r in recs] == [(records.KIND_REJECT, 0), (1, 250)]
        g.journal.close()
    finally:
        rmtree(d)


def test_real_offline_limits_refuse_or_flag_and_follow_the_journal():
    from firmware.verify.limits import LimitsConfig, OfflineLimits

    for policy in ("refuse", "flag"):
        d = mkdtemp("lim")
        ticks = Ticks(0)
        try:
            lim = OfflineLimits(LimitsConfig(max_value_per_account=300, policy=policy))
            g = _gate(d, ticks, limits=lim, config={"value": 250, "passback_s": 0})
            assert lim in g.journal.listeners
            assert g.on_scan(_code(4, 1, ticks)).accept
            g.on_event("passage_fwd")
            second = g.on_scan(_code(4, 2, ticks))  # 500 unsynced for account 4: over 300
            last = records.decode(g.journal.pending()[-1])
            if policy == "refuse":
                assert (second.accept, second.reason) == (False, "offline_limit")
            else:
                assert second.accept and last.flags & records.FLAG_OVER_LIMIT
            assert lim.unsynced() == (1 if policy == "refuse" else 2)
            g.journal.close()
        finally:
            rmtree(d)


def test_a_lowered_offline_limit_binds():
    # An untrusted clock or a stale trust list lowers the code's offline limit (the validator's
    # Decision.offline_limit); the value bound then uses the lower of it and the configured one.
    from firmware.verify.limits import LimitsConfig, OfflineLimits

    lim = OfflineLimits(LimitsConfig(max_value_per_account=5000))
    assert lim.check(4, 250, codes.NOW) is None
    assert lim.check(4, 250, codes.NOW, account_limit=5000) is None
    assert lim.check(4, 250, codes.NOW, account_limit=100) == "offline_limit"
    d = mkdtemp("lowered")
    ticks = Ticks(0)
    try:
        g = _gate(d, ticks, limits=lim, config={"value": 250})
        real_check = g.validator.check

        def untrusted_clock_check(text, now, leaving=False):
            dec = real_check(text, now, leaving)
            dec.offline_limit = 100  # what clock_offline_limit=100 gives under an untrusted clock
            return dec

        g.validator.check = untrusted_clock_check
        refused = g.on_scan(_code(4, 1, ticks))
        assert (refused.accept, refused.reason) == (False, "offline_limit")
        assert g.barrier.cmds == []
        g.journal.close()
    finally:
        rmtree(d)


class BrokenReader:
    def read(self, timeout_s=0):
        raise OSError("device unplugged")


class ListReader:
    def __init__(self, texts):
        self.texts = list(texts)

    def read(self, timeout_s=0):
        return self.texts.pop(0) if self.texts else None


def test_bad_input_and_a_failing_reader_never_stop_the_loop():
    d = mkdtemp("loop")
    ticks = Ticks(0)
    try:
        g = _gate(d, ticks)
        junk = ["", "FG1:", "\x00\xff", "FG1:" + "A" * 300, "x" * 5000, _code(3, 1, ticks)]
        loop = GateLoop(g, [(BrokenReader(), None), (ListReader(junk), None)])
        for _ in range(10):
            loop.step(0)
        assert loop.read_errors == 10
        assert g.barrier.cmds == ["open"]
        kinds = [records.decode(r).kind for r in g.journal.pending()]
        assert kinds == [records.KIND_REJECT] * 4 + [records.KIND_PASSAGE]  # "" is no scan
        g.on_event("no such event")
        assert g.state == "authorized"
        g.journal.close()
    finally:
        rmtree(d)


def test_unknown_settings_and_modes_are_refused():
    from firmware.settings import SettingError
    from protocol.errors import UsageError

    # a bad setting is a SettingError (a FormatError: settings come from outside)
    assert raises(SettingError, modes.config, {"pass_sec": 3}).reason == "bad_config"
    assert raises(UsageError, modes.build, 9).reason == "bad_config"


def test_an_exit_line_lets_a_denied_rider_out_and_journals_the_exit():
    from firmware.verify.denystore import DenyStore
    from protocol import denylist

    d = mkdtemp("denied-exit")
    ticks = Ticks(0)
    try:
        deny = DenyStore.from_keys([denylist.credential_key(1, 5, 1)])
        v = Validator(codes.VERIFIER, {1: codes.issuer_key()}, deny)
        j = Journal(d, device_id=1)
        barrier = Barrier()
        out = Gate(v, j, barrier, Display(), Clock(ticks), mode=1, direction=2, ticks=ticks)
        assert out.on_scan(_code(5, 1, ticks)).accept and barrier.cmds == ["open"]
        [raw] = j.pending()
        rec = records.decode(raw)
        assert (rec.kind, rec.account_id, rec.direction) == (records.KIND_PASSAGE, 5, 2)
        # on the way in (the entry reader of a two-reader door) it is refused
        out.on_event("occupied")
        out.on_event("passage_fwd")
        assert out.on_scan(_code(5, 2, ticks), direction=1).reason == "denied"
        j.close()
    finally:
        rmtree(d)
