"""Gate modes: their numbers, the rows every mode shares, prompts, timings, and `build()`.

A mode is a table for protocol/fsm.py plus a scan table and a policy (firmware/gate/policy.py);
the table is the only thing that moves a gate's state (firmware/gate/gate.py runs it):

    module              mode            resting state   policy
    firmware.gate.metro     1 metro     idle            Passback (entry / exit lines)
    firmware.gate.parking   2 parking   idle            Passback (vehicle in / out)
    firmware.gate.plates    2 parking   idle            the same, lanes with gate.plates (ANPR)
    firmware.gate.store     3 store     idle (locked)   Sessions
    firmware.gate.bus       4 bus       idle (no fix)   Passback (tap-on / tap-off)

The rows below are merged into every mode's table (a mode's own rows win for the same key):
a fire alarm opens everything from any state, passages during the emergency are journaled
with records.FLAG_EMERGENCY (logged, not charged), and the end of the alarm returns the gate
to where it was (in service or out of service); a jam takes the gate out of use until the
barrier reports it cleared; service_off / service_on take it out of service and back.

Scan table: for each state, None if a scan is welcome, else the reason it is refused (the
code is then not even verified). Events and actions are listed in docs/gate-modes.md.
"""

from firmware import settings
from protocol.fsm import ANY, SAME, merge
from protocol.records import MODE_METRO, MODE_PARKING, MODE_STORE  # the numbers records carry

# The bus validator's mode number; protocol/records.py names 1-3 and takes this one with record
# v2 (records carry any mode byte; the back office's clearing knows 4 as bus).
MODE_BUS = 4
NAMES = {MODE_METRO: "metro", MODE_PARKING: "parking", MODE_STORE: "store", MODE_BUS: "bus"}

IDLE = "idle"
EMERGENCY = "emergency"
EMERGENCY_OOS = "emergency_oos"  # fire alarm while out of service: opens, and returns to it
OUT_OF_SERVICE = "out_of_service"
JAMMED = "jammed"
EMERGENCY_STATES = (EMERGENCY, EMERGENCY_OOS)

_OPEN_ALL = (
    "stop",
    "void",
    "hold_open",
    "event:emergency_open",
    "signal:emergency",
    "show:emergency",
)
_CLOSE_DOWN = ("stop", "void", "close", "event:out_of_service", "signal:closed", "show:closed")

COMMON = {
    (ANY, "fire_alarm"): (EMERGENCY, _OPEN_ALL),
    (EMERGENCY, "fire_alarm"): (SAME, ()),
    (OUT_OF_SERVICE, "fire_alarm"): (EMERGENCY_OOS, _OPEN_ALL),
    (EMERGENCY_OOS, "fire_alarm"): (SAME, ()),
    (EMERGENCY, "fire_clear"): (
        IDLE,
        ("close", "event:emergency_end", "signal:ready", "show:ready", "resync"),
    ),
    (EMERGENCY_OOS, "fire_clear"): (
        OUT_OF_SERVICE,
        ("close", "event:emergency_end", "signal:closed", "show:closed"),
    ),
    (EMERGENCY, "passage_fwd"): (SAME, ("emergency_passage",)),
    (EMERGENCY, "passage_back"): (SAME, ("emergency_passage",)),
    (EMERGENCY_OOS, "passage_fwd"): (SAME, ("emergency_passage",)),
    (EMERGENCY_OOS, "passage_back"): (SAME, ("emergency_passage",)),
    (ANY, "service_off"): (OUT_OF_SERVICE, _CLOSE_DOWN),
    (OUT_OF_SERVICE, "service_off"): (SAME, ()),
    (EMERGENCY, "service_off"): (EMERGENCY_OOS, ()),
    (EMERGENCY_OOS, "service_on"): (EMERGENCY, ()),
    (OUT_OF_SERVICE, "service_on"): (
        IDLE,
        ("event:in_service", "signal:ready", "show:ready", "resync"),
    ),
    (ANY, "barrier_jam"): (JAMMED, ("stop", "void", "alarm:barrier_jam", "show:closed")),
    (EMERGENCY, "barrier_jam"): (SAME, ("alarm:barrier_jam",)),
    (EMERGENCY_OOS, "barrier_jam"): (SAME, ("alarm:barrier_jam",)),
    (OUT_OF_SERVICE, "barrier_jam"): (SAME, ("alarm:barrier_jam",)),
    (JAMMED, "barrier_ok"): (IDLE, ("close", "event:barrier_recovered", "show:ready", "resync")),
}

COMMON_SCANS = {
    EMERGENCY: None,  # verified and journaled with FLAG_EMERGENCY, never charged
    EMERGENCY_OOS: None,
    OUT_OF_SERVICE: "out_of_service",
    JAMMED: "barrier_fault",
}

# Display lines that are not reasons (reasons carry their own text in protocol/reasons.py).
PROMPTS = {
    "ready": "Scan your code",
    "closed": "Gate closed",
    "emergency": "Emergency - exit freely",
    "drive_up": "Drive up and scan your code",
    "reading_plate": "Reading your plate",
}

# The modes' settings: the "gate." rows of firmware/settings.py (timings, passback window,
# nominal value), by their short names; a gate's config may override any of them.
DEFAULTS = settings.section("gate")


class Mode:
    """What a gate runs: its table, scan table, timer durations and policy."""

    def __init__(self, number: int, table: dict, scans: dict, timers: dict, policy):
        self.number = number
        self.name = NAMES.get(number, "mode%d" % number)
        self.table = table
        self.scans = scans
        self.timers = timers  # timer name -> milliseconds
        self.policy = policy


def config(overrides=None) -> dict:
    """DEFAULTS with `overrides` ({short name: value}) applied, each checked against its row
    (SettingError for an unknown one or one out of bounds)."""
    cfg = dict(DEFAULTS)
    if overrides:
        for k in overrides:
            cfg[k] = settings.check("gate." + k, overrides[k])
    return cfg


def build(number: int, overrides=None, policy=None) -> Mode:
    """The Mode for `number` (MODE_METRO, MODE_PARKING, MODE_STORE, MODE_BUS) with `overrides`
    applied.
    `policy` replaces the mode's own (e.g. one Passback table shared by a station's gates)."""
    cfg = config(overrides)
    if number == MODE_METRO:
        from firmware.gate import metro as m
    elif number == MODE_PARKING and cfg["plates"]:
        from firmware.gate import plates as m  # type: ignore[no-redef]
    elif number == MODE_PARKING:
        from firmware.gate import parking as m  # type: ignore[no-redef]
    elif number == MODE_STORE:
        from firmware.gate import store as m  # type: ignore[no-redef]
    elif number == MODE_BUS:
        from firmware.gate import bus as m  # type: ignore[no-redef]
    else:
        from protocol.errors import UsageError

        raise UsageError("unknown gate mode %r" % number, "bad_config")
    timers = {}
    for name in m.TIMERS:
        t = m.TIMERS[name]  # a setting's name, or milliseconds fixed by the mode
        timers[name] = int(cfg[t]) if isinstance(t, str) else t
    table = merge(COMMON, m.TABLE)
    scans = merge(COMMON_SCANS, m.SCANS)
    return Mode(number, table, scans, timers, policy or m.policy(cfg))
