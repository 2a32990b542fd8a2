"""protocol/fsm.py, the one table helper, and the tables written with it: guards, the refusing
mode, and that every action a table names is one its owner can run."""

from firmware.maintenance import boot
from firmware.maintenance import console as console_mod
from protocol import fsm, service, sync
from protocol.fsm import ANY, OTHERWISE, SAME, Guarded, Illegal, Machine
from tests.portable import console_kit as kit
from tests.portable.harness import mkdtemp, raises, rmtree

TABLE = {
    ("off", "on"): Guarded(("warm", "ready", ("greet",)), (OTHERWISE, "heating", ("heat",))),
    ("heating", "on"): Guarded(("warm", "ready", ())),
    (ANY, "off"): ("off", ("stop",)),
    ("ready", "tick"): (SAME, ()),
}


def test_a_guarded_row_takes_the_first_alternative_whose_guard_holds():
    warm = [False]
    m = Machine(TABLE, "off", guards={"warm": lambda: warm[0]})
    assert m.step("on") == ("heat",) and m.state == "heating"
    assert m.step("on") == () and m.state == "heating"  # no guard held: ignored
    assert m.log[-1][3] == fsm.IGNORED
    warm[0] = True
    assert m.step("on") == () and m.state == "ready"
    assert m.step("off") == ("stop",) and m.step("on") == ("greet",) and m.state == "ready"


def test_a_refusing_machine_raises_one_typed_error_and_stays():
    m = Machine(TABLE, "ready", refuse=True, guards={"warm": lambda: False})
    e = raises(Illegal, m.step, "on")
    assert e.reason == "illegal_event" and (e.state, e.event) == ("ready", "on")
    assert m.state == "ready"
    m.state = "heating"
    raises(Illegal, m.step, "on")  # a Guarded row none of whose guards holds is no row
    assert m.step("off") == ("stop",) and m.state == "off"


def test_fire_and_rows_are_the_tables_as_data():
    assert fsm.fire(TABLE, "ready", "tick") == ("ready", ())
    assert fsm.fire(TABLE, "ready", "nope") is None
    assert fsm.fire(TABLE, "off", "on", {"warm": lambda: True}) == ("ready", ("greet",))
    flat = fsm.rows(TABLE)
    assert ("off", "on", "warm", "ready", ("greet",)) in flat
    assert ("off", "on", OTHERWISE, "heating", ("heat",)) in flat
    assert (ANY, "off", None, "off", ("stop",)) in flat and len(flat) == 5
    assert fsm.states_of(TABLE) == ["heating", "off", "ready"]


def test_the_bootloader_fire_agrees_with_the_helper_on_every_row():
    for (state, event), row in boot.TABLE.items():
        assert boot.fire(boot.TABLE, state, event) == fsm.fire(boot.TABLE, state, event) == row
        for action in row[1]:
            assert action in boot.ACTIONS, action
    assert boot.fire(boot.TABLE, "trial", "stage") is None
    assert fsm.fire(boot.TABLE, "trial", "stage") is None


def test_every_console_action_is_dispatched_and_every_frame_has_a_row_in_every_state():
    d = mkdtemp("fsm")
    try:
        console = kit.make_gate(d)
        for _s, _e, _g, _nxt, actions in fsm.rows(console_mod.TABLE):
            for action in actions:
                assert action in console._actions, action
        for state in (console_mod.NONE, console_mod.CHALLENGED, console_mod.OPEN):
            for frame in console_mod.FRAMES:
                assert fsm.fire(console_mod.TABLE, state, frame) is not None, (state, frame)
        assert sorted(console._commands) == sorted(service.COMMANDS)
    finally:
        rmtree(d)


def test_the_sync_tables_fail_on_error_from_any_state():
    for role in (sync.DEVICE, sync.HOST):
        table = sync.TRANSITIONS[role]
        for state in fsm.states_of(table):
            for direction in (sync.SEND, sync.RECV):
                hit = fsm.fire(table, state, (direction, sync.m.ERROR))
                assert hit == (sync.FAILED, ()), (role, state)
