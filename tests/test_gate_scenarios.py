"""Gate modes with things moving through them: riders, tailgaters, loiterers and wrong-way
walkers in a metro passage, cars in a parking lane, shoppers at a store door, fire alarms,
jams and a service key, all on simulated hardware (host_sim.hardware.devices,
host_sim.hardware.passage) driven by the gate's own loop on a virtual clock.

The seeded runs at the end mix everything at random and check the safety rules at every
10 ms step: the barrier never opens without an accepted, journaled code (or a fire alarm, or
the store's exit button), a parking arm is never lowered onto a car, every accepted passage
ends either in a passage or in a journaled passage_not_taken.
"""

import random

import pytest

from firmware.gate import modes
from firmware.gate.gate import Gate
from firmware.gate.loop import GateLoop
from firmware.gate.policy import Passback
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from host_sim.hardware import passage
from host_sim.hardware.devices import (
    ManualClock,
    SimBarrier,
    SimDisplay,
    SimIndicator,
    SimInput,
    SimReader,
)
from protocol import reasons, records
from tests.portable import codes


class Site:
    """One gate of the given mode on simulated hardware, with the world that moves around it."""

    def __init__(self, tmp_path, mode, direction=1, settings=None, seed=0, policy=None, name="g"):
        self.clock = ManualClock(codes.NOW)
        d = tmp_path / name
        d.mkdir()
        self.journal = Journal(str(d), device_id=1)
        self.rng = random.Random(seed)
        travel = 0 if mode == modes.MODE_STORE else 400  # a lock moves at once, an arm does not
        self.barrier = SimBarrier(self.clock.ticks_ms, travel, travel, rng=self.rng)
        self.display = SimDisplay()
        self.gate = Gate(
            Validator(codes.VERIFIER, {1: codes.issuer_key()}),
            self.journal,
            self.barrier,
            self.display,
            self.clock,
            station=4,
            mode=mode,
            direction=direction,
            config=settings,
            policy=policy,
            indicator=SimIndicator(),
            ticks=self.clock.ticks_ms,
        )
        self.reader = SimReader()
        self.exit_reader = SimReader()
        self.fire = SimInput()
        self.service = SimInput()
        self.beams = passage.Beams()
        self.loops = passage.Loops()
        self.door = passage.Door()
        self.button = SimInput()
        inputs = [
            (self.fire, "fire_alarm", "fire_clear"),
            (self.service, "service_off", "service_on"),
        ]
        kw = {}
        if mode == modes.MODE_METRO:
            kw["beams"] = self.beams
        elif mode == modes.MODE_PARKING:
            kw["loops"] = self.loops
        else:
            inputs += [
                (self.door, "door_opened", "door_closed"),
                (self.button, "exit_request", None),
            ]
        readers = [(self.reader, None), (self.exit_reader, 2)]
        self.loop = GateLoop(self.gate, readers, inputs=inputs, **kw)
        self.world = passage.World(self.clock, self.loop, [self.beams, self.loops, self.door])
        self.counter = 0

    def code(self, account=42, valid=True):
        """A fresh ride code; `valid=False` signs the presentation with a key that is not the
        rider's (bad_rider_signature)."""
        self.counter += 1
        cred = codes.credential(account_id=account)
        rider = codes.RIDER if valid else codes.FORGER
        return codes.code(cred, time=self.clock.now(), counter=self.counter, rider=rider)

    def scanner(self, account=42, valid=True, reader=None):
        return lambda: (reader or self.reader).present(self.code(account, valid))

    def events(self):
        out = []
        for raw in self.journal.pending(self.journal.pending_count()):
            r = records.decode(raw)
            out.append((r.kind, reasons.by_number(r.reason)))
        return out

    def names(self, kind=None):
        return [n for k, n in self.events() if kind is None or k == kind]

    def run(self, ms):
        self.world.run(ms)


# -- metro ---------------------------------------------------------------------------------


def test_metro_rider_scans_and_walks_through(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    r = passage.rider(s.beams, s.scanner(), s.barrier.is_open)
    s.run(6000)
    assert r.done and s.beams.empty
    assert s.names() == ["accepted"]
    assert s.gate.state == "idle" and s.barrier.state == "closed"
    assert [c for _t, c in s.barrier.commands] == ["open", "close"]


def test_metro_tailgater_close_behind_raises_the_alarm(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    passage.rider(s.beams, s.scanner(), s.barrier.is_open)
    passage.walker(s.beams, delay_ms=900)  # reaches the gate while the rider walks through
    s.run(8000)
    assert s.names() == ["accepted", "tailgating"]
    assert s.display.last == reasons.display_text("tailgating")


def test_metro_gate_jumper_and_wrong_way_walker(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    passage.walker(s.beams)
    s.run(5000)
    passage.walker(s.beams, backwards=True)
    s.run(5000)
    assert s.names() == ["tailgating", "wrong_direction"]
    assert s.barrier.openings == 0


def test_metro_loiterer_raises_the_loitering_alarm_once(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO, settings={"loiter_ms": 5000})
    passage.loiterer(s.beams, stay_ms=12000)
    s.run(20000)
    assert s.names() == ["loitering"]


def test_metro_refused_rider_turns_back_and_the_gate_stays_shut(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    r = passage.rider(s.beams, s.scanner(valid=False), s.barrier.is_open, give_up_ms=3000)
    s.run(10000)
    assert r.done and s.barrier.openings == 0
    assert s.names() == ["bad_rider_signature"]
    assert s.display.lines[0] == reasons.display_text("bad_rider_signature")


def test_metro_rider_who_never_comes_is_voided_and_may_scan_again(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO, settings={"pass_ms": 3000})
    s.reader.present(s.code(account=9))
    s.run(5000)
    assert s.names() == ["accepted", "passage_not_taken"]
    assert s.barrier.state == "closed"
    passage.rider(s.beams, s.scanner(account=9), s.barrier.is_open)
    s.run(6000)
    assert s.names() == ["accepted", "passage_not_taken", "accepted"]


def test_metro_never_closes_on_a_rider_standing_in_the_open_gate(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO, settings={"pass_ms": 2000, "loiter_ms": 60000})
    # the rider scans, then stands in the passage for 8 s before walking on
    plan = [
        ("to", passage.Beams.WAIT_AT),
        ("do", s.scanner()),
        ("pause", 8000),
        ("to", 2.0),
    ]
    s.beams.add(passage.Body(-2.0, 0.4, 1.2, plan))
    s.run(5000)
    assert s.barrier.state == "open" and s.gate.state == "passing"
    s.run(7000)
    assert s.names() == ["accepted"] and s.barrier.state == "closed"


def test_metro_entry_then_exit_with_a_shared_table(tmp_path):
    shared = Passback(require_entry=True)
    entry = Site(tmp_path, modes.MODE_METRO, direction=1, policy=shared, name="in")
    exit_ = Site(tmp_path, modes.MODE_METRO, direction=2, policy=shared, name="out")
    assert exit_.gate.on_scan(exit_.code(account=5)).reason == "no_entry"
    passage.rider(entry.beams, entry.scanner(account=5), entry.barrier.is_open)
    entry.run(6000)
    assert entry.gate.on_scan(entry.code(account=5)).reason == "anti_passback"
    passage.rider(exit_.beams, exit_.scanner(account=5), exit_.barrier.is_open)
    exit_.run(6000)
    assert exit_.names() == ["no_entry", "accepted"]
    assert exit_.gate.on_scan(exit_.code(account=5)).reason == "already_exited"
    assert entry.names() == ["accepted", "anti_passback"]


def test_metro_jam_takes_the_gate_out_until_cleared(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    s.barrier.jam_next()
    s.reader.present(s.code(account=1))
    s.run(1000)
    assert s.gate.state == "jammed"
    passage.rider(s.beams, s.scanner(account=2), s.barrier.is_open, give_up_ms=2000)
    s.run(5000)
    assert s.names() == ["accepted", "passage_not_taken", "barrier_jam", "barrier_fault"]
    s.barrier.clear_jam()
    s.run(1000)
    assert s.gate.state == "idle" and s.barrier.state == "closed"
    assert s.names()[-1] == "barrier_recovered"


def test_fire_alarm_opens_logs_passages_and_charges_nobody(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    s.fire.level = True
    s.run(500)
    assert s.barrier.state == "open" and s.gate.state == "emergency"
    for i in range(3):
        passage.walker(s.beams, delay_ms=1500 * i)
    s.reader.present(s.code(account=77))
    s.run(8000)
    s.fire.level = False
    s.run(1000)
    assert s.barrier.state == "closed" and s.gate.state == "idle"
    recs = [records.decode(r) for r in s.journal.pending(100)]
    flagged = [
        (reasons.by_number(r.reason), r.kind) for r in recs if r.flags & records.FLAG_EMERGENCY
    ]
    assert flagged.count(("emergency_passage", records.KIND_EVENT)) == 3
    assert ("accepted", records.KIND_PASSAGE) in flagged  # identified, logged, not charged
    assert s.names()[0] == "emergency_open" and s.names()[-1] == "emergency_end"
    assert "tailgating" not in s.names()


def test_service_key_takes_the_gate_out_and_a_fire_alarm_still_opens_it(tmp_path):
    s = Site(tmp_path, modes.MODE_METRO)
    s.service.level = True
    s.run(200)
    assert s.gate.state == "out_of_service"
    assert s.gate.on_scan(s.code()).reason == "out_of_service"
    s.fire.level = True
    s.run(500)
    assert s.barrier.state == "open"
    s.fire.level = False
    s.run(1000)
    assert s.gate.state == "out_of_service" and s.barrier.state == "closed"
    s.service.level = False
    s.run(200)
    assert s.gate.state == "idle"
    assert s.names(records.KIND_EVENT) == [
        "out_of_service",
        "emergency_open",
        "emergency_end",
        "in_service",
    ]


# -- parking -------------------------------------------------------------------------------


def test_parking_car_waits_for_the_arm_and_it_closes_after_the_car_cleared(tmp_path):
    s = Site(tmp_path, modes.MODE_PARKING)
    c = passage.car(s.loops, s.scanner(account=31), s.barrier.is_open)
    closed_while_on_b = []
    for _ in range(2000):
        s.run(10)
        if s.barrier.commands and s.barrier.commands[-1][1] == "close" and s.loops.read()[1]:
            closed_while_on_b.append(s.clock.ticks_ms())
    assert c.done and closed_while_on_b == []
    assert s.names() == ["accepted"]
    assert s.gate.state == "idle" and s.barrier.state == "closed"


def test_parking_tailgating_car_reopens_the_arm(tmp_path):
    s = Site(tmp_path, modes.MODE_PARKING)
    passage.car(s.loops, s.scanner(account=32), s.barrier.is_open)
    assert s.world.run_until(lambda: s.gate.state == "closing")
    # a second car waiting right behind drives on as the arm starts to come down
    s.loops.add(passage.Body(passage.Loops.STOP_AT, 4.5, 2.0, [("to", 10.0)], "tailgater"))
    s.run(100)
    assert s.gate.state == "passing" and s.barrier.commands[-1][1] == "open"
    assert s.world.run_until(lambda: s.loops.empty and s.barrier.state == "closed")
    assert s.names() == ["accepted", "tailgating"]
    assert s.gate.state == "idle"


def test_parking_scan_without_a_car_is_refused(tmp_path):
    s = Site(tmp_path, modes.MODE_PARKING)
    s.reader.present(s.code())
    s.run(100)
    assert s.names() == ["no_vehicle"] and s.barrier.openings == 0


# -- store door ----------------------------------------------------------------------------


def test_store_shopper_enters_and_the_session_starts_and_ends(tmp_path):
    s = Site(tmp_path, modes.MODE_STORE)
    s.reader.present(s.code(account=51))
    s.run(300)
    assert s.gate.state == "unlocked" and s.barrier.state == "open"
    s.door.open_for(2000)
    s.run(3000)
    assert s.gate.state == "idle" and s.barrier.state == "closed"
    assert records.account_key(1, 51) in s.gate.policy.open
    s.exit_reader.present(s.code(account=51))
    s.run(300)
    s.door.open_for(1500)
    s.run(2000)
    assert records.account_key(1, 51) not in s.gate.policy.open
    dirs = [records.decode(r).direction for r in s.journal.pending(10)]
    assert s.names() == ["accepted", "accepted"] and dirs == [1, 2]


def test_store_door_held_and_forced_alarms(tmp_path):
    s = Site(tmp_path, modes.MODE_STORE, settings={"held_ms": 10000})
    s.reader.present(s.code(account=52))
    s.run(300)
    s.door.open_for(15000)
    s.run(16000)
    assert s.names() == ["accepted", "door_held", "alarm_cleared"]
    s.door.open_for(1000)  # nobody unlocked it
    s.run(2000)
    assert s.names()[-2:] == ["door_forced", "alarm_cleared"]


def test_store_exit_button_unlocks_without_a_record(tmp_path):
    s = Site(tmp_path, modes.MODE_STORE)
    s.button.level = True
    s.run(100)
    s.button.level = False
    assert s.barrier.state == "open" and s.gate.state == "egress"
    s.door.open_for(1000)
    s.run(3000)
    assert s.events() == [] and s.barrier.state == "closed"


def test_store_session_without_an_exit_scan_expires(tmp_path):
    s = Site(tmp_path, modes.MODE_STORE, settings={"session_max_s": 60})
    s.reader.present(s.code(account=53))
    s.run(300)
    s.door.open_for(1000)
    s.run(2000)
    assert records.account_key(1, 53) in s.gate.policy.open
    s.run(60000)
    assert s.names() == ["accepted", "session_expired"]
    assert records.account_key(1, 53) not in s.gate.policy.open
    assert records.decode(s.journal.pending(10)[-1]).account_id == 53


def test_store_unlocked_but_never_opened_voids_the_entry(tmp_path):
    s = Site(tmp_path, modes.MODE_STORE)
    s.reader.present(s.code(account=54))
    s.run(6000)
    assert s.names() == ["accepted", "passage_not_taken"]
    assert records.account_key(1, 54) not in s.gate.policy.open and s.barrier.state == "closed"


# -- seeded mixtures with the safety rules checked at every step ---------------------------


def _metro_mixture(s: Site, rng: random.Random) -> None:
    for _ in range(12):
        kind = rng.choice(["rider", "rider", "rider", "bad", "tailgate", "wrong", "loiter"])
        acct = rng.randrange(1, 10_000)
        if kind in ("rider", "bad", "tailgate"):
            passage.rider(s.beams, s.scanner(acct, kind != "bad"), s.barrier.is_open, 4000)
            if kind == "tailgate":
                passage.walker(s.beams, delay_ms=rng.randrange(600, 1200))
        elif kind == "wrong":
            passage.walker(s.beams, backwards=True)
        else:
            passage.loiterer(s.beams, stay_ms=rng.randrange(1000, 20000))
        if rng.random() < 0.1:
            s.barrier.jam_next()
        if rng.random() < 0.08:
            s.world.schedule(1000, lambda: setattr(s.fire, "level", True))
            s.world.schedule(6000, lambda: setattr(s.fire, "level", False))
        s.run(rng.randrange(6000, 12000))
        if s.barrier.state == "jammed":
            s.barrier.clear_jam()  # the technician comes by


@pytest.mark.parametrize("seed", range(6))
def test_seeded_metro_mixture_keeps_the_rules(tmp_path, seed):
    s = Site(tmp_path, modes.MODE_METRO, seed=seed)
    rng = random.Random(seed)
    opened_by = []
    commands_seen = 0

    def check():
        nonlocal commands_seen
        new = s.barrier.commands[commands_seen:]
        commands_seen = len(s.barrier.commands)
        for _t, c in new:
            if c == "open":
                last = s.events()[-1] if s.events() else None
                ok = last == (records.KIND_PASSAGE, "accepted") or s.gate.state in (
                    modes.EMERGENCY_STATES
                )
                assert ok, "seed %d: opened without an accepted code: %r" % (seed, last)
                opened_by.append(last)

    step = s.loop.step

    def checked_step(wait_s=0.0):
        step(wait_s)
        check()

    s.loop.step = checked_step  # type: ignore[method-assign]
    walked = []  # transitions where an authorized rider's passage was counted
    s.gate.machine.on_transition = lambda e: (
        walked.append(e)
        if e[2:] == ("passage_fwd", "idle") and e[1] in ("authorized", "passing")
        else None
    )
    _metro_mixture(s, rng)
    s.run(30000)
    names = s.names()
    recs = [records.decode(r) for r in s.journal.pending(1000)]
    charged = [r for r in recs if r.kind == records.KIND_PASSAGE and not r.flags]
    voided = names.count("passage_not_taken")
    # every accepted (chargeable) code ended in exactly one of: a passage, a void
    assert len(charged) == len(walked) + voided, "seed %d" % seed
    assert s.gate.pending == [] and s.gate.state == "idle"
    assert set(names) <= set(reasons.REASONS)
