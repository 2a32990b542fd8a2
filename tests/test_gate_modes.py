"""Every row of every gate mode's table, one test each, on simulated hardware.

For each (state, event) row of metro, parking and store (their own rows and the common
emergency / out-of-service / jam rows), the gate is brought into the state through real
inputs (valid ride codes, sensor and barrier events, timers on a virtual clock), the event is
applied, and the test checks the next state and the effect of every action the row names:
the barrier's commands, journal records, display lines, indicator signals, timers.
Behaviour through moving riders, cars and doors is in tests/test_gate_scenarios.py.
"""

import pytest

from firmware.gate import modes
from firmware.gate.gate import Gate
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from host_sim.hardware.devices import ManualClock, SimBarrier, SimDisplay, SimIndicator
from protocol import reasons, records
from protocol.fsm import ANY, IGNORED
from tests.portable import codes

# How to reach each state from idle: "scan" is a valid ride code, anything else an event.
PATHS = {
    modes.MODE_METRO: {
        "idle": [],
        "authorized": ["scan"],
        "passing": ["scan", "occupied"],
    },
    modes.MODE_PARKING: {
        "idle": [],
        "present": ["vehicle_arrived"],
        "authorized": ["vehicle_arrived", "scan"],
        "passing": ["vehicle_arrived", "scan", "vehicle_on_safety"],
        "closing": ["vehicle_arrived", "scan", "vehicle_on_safety", "vehicle_cleared"],
    },
    modes.MODE_STORE: {
        "idle": [],
        "unlocked": ["scan"],
        "egress": ["exit_request"],
        "open": ["scan", "door_opened"],
        "held": ["scan", "door_opened", "held_timeout"],
        "forced": ["door_opened"],
    },
}
COMMON_PATHS = {
    "jammed": ["barrier_jam"],
    "emergency": ["fire_alarm"],
    "out_of_service": ["service_off"],
    "emergency_oos": ["service_off", "fire_alarm"],
}


class Rig:
    def __init__(self, tmp_path, mode: int) -> None:
        self.clock = ManualClock(codes.NOW)
        self.journal = Journal(str(tmp_path), device_id=3)
        self.barrier = SimBarrier(self.clock.ticks_ms)
        self.display = SimDisplay()
        self.indicator = SimIndicator()
        validator = Validator(codes.VERIFIER, {1: codes.issuer_key()})
        self.gate = Gate(
            validator,
            self.journal,
            self.barrier,
            self.display,
            self.clock,
            station=2,
            mode=mode,
            direction=1,
            indicator=self.indicator,
            ticks=self.clock.ticks_ms,
        )
        self.counter = 0
        self.account = 100

    def scan(self):
        self.counter += 1
        self.account += 1  # a new rider each time: anti-passback stays out of the way
        cred = codes.credential(account_id=self.account)
        return self.gate.on_scan(codes.code(cred, time=self.clock.now(), counter=self.counter))

    def fire(self, event: str) -> None:
        if event == "scan":
            assert self.scan().accept
        elif event.endswith("_timeout"):
            timer = self.gate.timer
            assert timer and timer[0] == event, (event, timer)
            self.clock.advance_ms(timer[2])
            self.gate.tick()
        else:
            self.gate.on_event(event)

    def records(self) -> list[records.Record]:
        return [records.decode(r) for r in self.journal.pending(self.journal.pending_count())]


def _rows(mode: int):
    spec = modes.build(mode)
    paths = dict(COMMON_PATHS)
    paths.update(PATHS[mode])
    out = []
    for (state, event), row in sorted(spec.table.items()):
        sources = sorted(paths) if state == ANY else [state]
        for src in sources:
            if state == ANY and (src, event) in spec.table:
                continue  # an exact row overrides the wildcard there; tested as itself
            out.append(pytest.param(mode, src, event, row, id="%s-%s-%s" % (spec.name, src, event)))
    return out


ROWS = _rows(modes.MODE_METRO) + _rows(modes.MODE_PARKING) + _rows(modes.MODE_STORE)


@pytest.mark.parametrize("mode,state,event,row", ROWS)
def test_transition(tmp_path, mode, state, event, row):
    rig = Rig(tmp_path, mode)
    paths = dict(COMMON_PATHS)
    paths.update(PATHS[mode])
    for step in paths[state]:
        rig.fire(step)
    assert rig.gate.state == state
    pending_before = len(rig.gate.pending)
    n_cmds = len(rig.barrier.commands)
    n_recs = len(rig.records())
    n_lines = len(rig.display.lines)
    n_signals = len(rig.indicator.signals)

    rig.fire(event)

    nxt, actions = row
    assert rig.gate.state == (state if nxt is None else nxt)
    log = rig.gate.machine.log[-1] if not event.endswith("_timeout") else None
    if log is not None:
        assert log[1:] == (state, event, rig.gate.state)
    cmds = [c for _t, c in rig.barrier.commands[n_cmds:]]
    new = rig.records()[n_recs:]
    events = [reasons.by_number(r.reason) for r in new if r.kind == records.KIND_EVENT]
    lines = rig.display.lines[n_lines:]
    signals = rig.indicator.signals[n_signals:]
    expected_events = []
    for action in actions:
        verb, _, arg = action.partition(":")
        if verb in ("open", "hold_open"):
            assert "open" in cmds
        elif verb == "close":
            assert "close" in cmds
        elif verb in ("alarm", "event"):
            expected_events.append(arg)
            if verb == "alarm":
                assert reasons.display_text(arg) in lines and "alarm" in signals
        elif verb == "void":
            expected_events += ["passage_not_taken"] * pending_before
        elif verb == "emergency_passage":
            expected_events.append("emergency_passage")
            assert new[-1].flags & records.FLAG_EMERGENCY
        elif verb == "show":
            assert (modes.PROMPTS.get(arg) or reasons.display_text(arg)) in lines
        elif verb == "signal":
            assert arg in signals
        elif verb == "start":
            assert rig.gate.timer and rig.gate.timer[0] == arg + "_timeout"
        elif verb == "stop":
            if not any(a.startswith("start:") for a in actions):
                assert rig.gate.timer == ()
        elif verb == "done":
            assert rig.gate.pending == []
        elif verb == "resync":
            pass  # no sensors wired here; tests/test_gate_scenarios.py covers it
        else:
            raise AssertionError("untested action %r" % action)
    assert sorted(events) == sorted(expected_events)
    if not any(a.partition(":")[0] in ("open", "hold_open", "close") for a in actions):
        assert cmds == []  # a row that names no barrier action leaves the barrier alone


@pytest.mark.parametrize("mode", [modes.MODE_METRO, modes.MODE_PARKING, modes.MODE_STORE])
def test_events_without_a_row_change_nothing_and_are_logged(tmp_path, mode):
    spec = modes.build(mode)
    all_events = sorted({e for _s, e in spec.table} | {"barrier_opened", "nonsense"})
    paths = dict(COMMON_PATHS)
    paths.update(PATHS[mode])
    for state in sorted(paths):
        for event in all_events:
            if (state, event) in spec.table or (ANY, event) in spec.table:
                continue
            d = tmp_path / ("%s-%s" % (state, event))
            d.mkdir()
            rig = Rig(d, mode)
            for step in paths[state]:
                rig.fire(step)
            n = len(rig.records())
            rig.gate.on_event(event)
            assert rig.gate.state == state
            assert rig.gate.machine.log[-1][1:] == (state, event, IGNORED)
            assert len(rig.records()) == n
            rig.journal.close()


@pytest.mark.parametrize("mode", [modes.MODE_METRO, modes.MODE_PARKING, modes.MODE_STORE])
def test_scan_table_covers_every_state_and_refuses_by_state(tmp_path, mode):
    spec = modes.build(mode)
    paths = dict(COMMON_PATHS)
    paths.update(PATHS[mode])
    from protocol.fsm import states_of

    assert sorted(states_of(spec.table)) == sorted(paths)
    assert sorted(spec.scans) == sorted(paths)
    for state in sorted(paths):
        d = tmp_path / state
        d.mkdir()
        rig = Rig(d, mode)
        for step in paths[state]:
            rig.fire(step)
        opened = rig.barrier.openings
        decision = rig.scan()
        refusal = spec.scans[state]
        if refusal is None:
            assert decision.accept
            kind = records.KIND_PASSAGE
        else:
            assert (decision.accept, decision.reason) == (False, refusal)
            assert rig.barrier.openings == opened
            kind = records.KIND_REJECT
        last = rig.records()[-1]
        assert (last.kind, reasons.by_number(last.reason)) == (kind, decision.reason)
        if state in modes.EMERGENCY_STATES:
            assert last.flags & records.FLAG_EMERGENCY
        rig.journal.close()
