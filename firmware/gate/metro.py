"""Metro entry or exit line: a turnstile or swing gate with two passage beams.

The same table serves entry and exit lines; the gate's direction decides the policy
(anti-passback on entry, no second exit, optionally no exit without an entry).

    idle        closed, waiting for a code
    authorized  a code was accepted and journaled; the gate is open, waiting for the rider
    passing     someone is in the passage after an authorization
    (plus the common states of firmware/gate/modes.py: emergency, out_of_service, jammed)

Nobody passes without an authorization: a passage counted while idle (a second person close
behind the first, or someone jumping the gate) raises the tailgating alarm. The gate never
closes on a person: the pass timer only runs while the passage is empty, and a rider who
steps in and backs out restarts it. If the timer runs out the passage is voided (journaled as
passage_not_taken, anti-passback undone) so the rider can scan again.
"""

from firmware.gate import policy as _policy
from protocol.fsm import SAME

TABLE = {
    # "resync": a rider already standing in the passage when the code is accepted moves the
    # machine on to "passing" at once (the beams re-announce the occupancy).
    ("idle", "paid"): ("authorized", ("open", "start:pass", "signal:accept", "resync")),
    ("idle", "passage_fwd"): (SAME, ("alarm:tailgating",)),
    ("idle", "passage_back"): (SAME, ("alarm:wrong_direction",)),
    ("idle", "loitering"): (SAME, ("alarm:loitering",)),
    ("authorized", "occupied"): ("passing", ("stop",)),
    ("authorized", "pass_timeout"): ("idle", ("void", "close", "show:ready")),
    ("authorized", "passage_back"): (SAME, ("alarm:wrong_direction",)),
    # the occupancy began before the scan and nobody re-announced it: the passage still counts
    ("authorized", "passage_fwd"): ("idle", ("stop", "close", "done", "show:ready")),
    ("passing", "passage_fwd"): ("idle", ("close", "done", "show:ready")),
    ("passing", "passage_back"): ("authorized", ("start:pass", "alarm:wrong_direction")),
    ("passing", "clear"): ("authorized", ("start:pass",)),
    ("passing", "loitering"): (SAME, ("alarm:loitering",)),
}

SCANS = {
    "idle": None,
    "authorized": "gate_busy",
    "passing": "gate_busy",
}

TIMERS = {"pass": "pass_ms"}


def policy(cfg: dict):
    return _policy.Passback(int(cfg["passback_s"]), bool(cfg["require_entry"]))
