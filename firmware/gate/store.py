"""Unattended store door: an electric lock, a door contact, a reader outside (entry), an
optional reader inside (exit) and an exit button inside (free egress, as fire codes require).

The barrier interface drives the lock: open() unlocks, close() locks. An entry code starts a
session for the account, an exit code ends it (firmware/gate/policy.Sessions); the back office
charges per session.

    idle        locked, door closed
    unlocked    a code was accepted: unlocked for unlock_ms, waiting for the door to open
    egress      the exit button unlocked the door (no code; journaled as exit_button, and the
                basket source is told: firmware/gate/baskets.py)
    open        the door is open (legitimately); held_ms later the door-held alarm sounds
    held        the door has stood open too long (alarm until it closes)
    forced      the door opened while locked (alarm until it closes)
    (plus the common states of firmware/gate/modes.py)
"""

from firmware.gate import policy as _policy
from protocol.fsm import SAME

TABLE = {
    ("idle", "paid"): ("unlocked", ("open", "start:unlock", "signal:accept")),
    ("idle", "exit_request"): ("egress", ("open", "start:unlock", "event:exit_button")),
    ("idle", "door_opened"): ("forced", ("alarm:door_forced",)),
    ("unlocked", "paid"): (SAME, ("start:unlock", "signal:accept")),
    ("unlocked", "door_opened"): ("open", ("start:held", "done")),
    ("unlocked", "unlock_timeout"): ("idle", ("void", "close", "show:ready")),
    ("egress", "paid"): ("unlocked", ("start:unlock", "signal:accept")),
    ("egress", "door_opened"): ("open", ("start:held",)),
    ("egress", "unlock_timeout"): ("idle", ("close",)),
    ("open", "paid"): (SAME, ("start:held", "done", "signal:accept")),
    ("open", "door_closed"): ("idle", ("stop", "close", "show:ready")),
    ("open", "held_timeout"): ("held", ("alarm:door_held",)),
    ("held", "door_closed"): ("idle", ("close", "event:alarm_cleared", "signal:alarm_off")),
    ("forced", "door_closed"): ("idle", ("event:alarm_cleared", "signal:alarm_off")),
}

SCANS = {
    "idle": None,
    "unlocked": None,
    "egress": None,
    "open": None,
    "held": "gate_busy",
    "forced": "gate_busy",
}

TIMERS = {"unlock": "unlock_ms", "held": "held_ms"}


def policy(cfg: dict):
    return _policy.Sessions(int(cfg["session_max_s"]), group_max=int(cfg["group_max"]))
