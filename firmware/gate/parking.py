"""Parking entry or exit lane: a barrier arm with two vehicle loops.

Loop A lies in front of the barrier (a vehicle waiting), loop B under the arm (the safety
loop). Codes are read only while a vehicle waits on loop A. The arm closes only after the
vehicle has cleared loop B, and if anything drives onto loop B while the arm is lowering it
goes up again (never lower an arm onto a vehicle) and the tailgating alarm sounds.

    idle        no vehicle
    present     a vehicle waits on loop A
    authorized  a code was accepted; the arm is up, waiting for the vehicle
    passing     the vehicle is on loop B under the raised arm
    closing     the vehicle cleared; the arm is lowering
    (plus the common states of firmware/gate/modes.py)
"""

from firmware.gate import policy as _policy
from protocol.fsm import SAME

TABLE = {
    ("idle", "vehicle_arrived"): ("present", ("show:drive_up",)),
    ("idle", "vehicle_on_safety"): (SAME, ("alarm:wrong_direction",)),
    ("present", "vehicle_left"): ("idle", ("show:ready",)),
    ("present", "vehicle_on_safety"): (SAME, ("alarm:wrong_direction",)),
    ("present", "paid"): ("authorized", ("open", "start:pass", "signal:accept")),
    ("authorized", "vehicle_on_safety"): ("passing", ("stop",)),
    ("authorized", "vehicle_left"): ("idle", ("stop", "void", "close", "show:ready")),
    ("authorized", "pass_timeout"): ("present", ("void", "close", "show:drive_up")),
    ("passing", "vehicle_cleared"): ("closing", ("close", "done", "show:ready")),
    ("closing", "vehicle_on_safety"): ("passing", ("open", "alarm:tailgating")),
    ("closing", "barrier_closed"): ("idle", ("resync",)),
}

SCANS = {
    "idle": "no_vehicle",
    "present": None,
    "authorized": "gate_busy",
    "passing": "gate_busy",
    "closing": "gate_busy",
}

TIMERS = {"pass": "parking_pass_ms"}


def policy(cfg: dict):
    return _policy.Passback(int(cfg["passback_s"]), bool(cfg["require_entry"]))
