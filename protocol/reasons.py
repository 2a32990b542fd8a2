"""Reason codes: one name per way a ride code or a passage can be refused.

Each entry: name -> (number, text for the rider's display, explanation for technicians).
The number is stable and goes into journals and reports; the name goes into JSON output.
The order of the verification pipeline is documented in docs/ridecode.md.
"""

ACCEPTED = "accepted"

REASONS = {
    ACCEPTED: (0, "Welcome", "The code passed every check."),
    # parsing (protocol.ridecode)
    "malformed": (10, "Code not readable", "The text is not a faregate ride code."),
    "bad_base45": (11, "Code not readable", "The text is not canonical base45."),
    "bad_prefix": (12, "Code not readable", "The text does not start with a known version prefix."),
    "bad_length": (13, "Code not readable", "The decoded bytes have the wrong length."),
    "bad_version": (14, "Code not readable", "The format version is not one this gate knows."),
    "unknown_alg": (15, "Code not readable", "The signature algorithm id is not supported."),
    # trust (issuer keys)
    "unknown_issuer": (20, "Code not accepted here", "The issuer key id is not in the trust list."),
    "issuer_out_of_scope": (
        21,
        "Code not accepted here",
        "The issuer key may not sign this scope.",
    ),
    "issuer_key_expired": (22, "Code not accepted here", "The issuer key is outside its validity."),
    "trust_list_stale": (23, "Gate offline - see staff", "The trust list is past valid_until."),
    "bad_issuer_signature": (24, "Invalid code", "The issuer's signature does not verify."),
    # credential validity
    "credential_not_yet_valid": (30, "Code not valid yet", "The credential starts later."),
    "credential_expired": (31, "Code expired - refresh app", "The credential has expired."),
    "out_of_scope": (32, "Code not valid here", "The credential's scope excludes this gate."),
    # presentation
    "bad_rider_signature": (40, "Invalid code", "The rider device's signature does not verify."),
    "presentation_stale": (
        41,
        "Code too old - refresh app",
        "The code was shown too long after it was made.",
    ),
    "presentation_future": (
        42,
        "Check phone clock",
        "The code's time is ahead of the gate's clock.",
    ),
    "replayed": (
        43,
        "Code already used",
        "This presentation, or a newer one, was already accepted.",
    ),
    # lists and policy
    "denied": (50, "Account blocked - see staff", "The account or credential is on the deny list."),
    "clock_untrusted": (
        51,
        "Gate offline - see staff",
        "The gate's clock went backwards; offline acceptance is limited.",
    ),
    "offline_limit": (
        52,
        "Please sync app - see staff",
        "An offline limit (count, age or value) is reached.",
    ),
    "anti_passback": (53, "Already inside", "This account already entered and has not exited."),
    "no_entry": (54, "No entry recorded - see staff", "An exit without a matching entry."),
    "out_of_service": (55, "Gate closed", "The gate is out of service."),
    "journal_error": (57, "Gate closed - see staff", "The journal could not be written."),
    "journal_full": (
        56,
        "Gate closed - see staff",
        "The journal is at capacity; no passage can be recorded.",
    ),
    # gate modes: scans refused by the mode's state (firmware/modes.py, docs/gate-modes.md)
    "gate_busy": (60, "Please wait", "The gate is still serving the previous passage."),
    "barrier_fault": (61, "Gate closed - see staff", "The barrier or lock reported a jam."),
    "no_vehicle": (62, "Drive up to the barrier", "A parking lane reads codes for a vehicle."),
    "already_exited": (63, "Already exited", "This account already exited here recently."),
    # gate events and alarms, journaled as KIND_EVENT records (firmware/gate.py)
    "tailgating": (
        70,
        "Alarm - one person per code",
        "Someone passed without an accepted code (close behind another, or forcing the gate).",
    ),
    "wrong_direction": (71, "No entry this way", "Someone passed against the gate's direction."),
    "loitering": (72, "Please move on", "The passage stayed occupied longer than loiter_ms."),
    "passage_not_taken": (
        73,
        "Please scan again",
        "A code was accepted but nobody passed in time; the back office voids that passage.",
    ),
    "barrier_jam": (74, "Gate closed - see staff", "The barrier or lock did not reach its end."),
    "barrier_recovered": (75, "Scan your code", "The barrier reports the jam cleared."),
    "door_held": (76, "Please close the door", "The door stood open longer than held_ms."),
    "door_forced": (77, "Alarm - door forced", "The door opened while it was locked."),
    "alarm_cleared": (78, "Scan your code", "The door closed; the door alarm stopped."),
    "emergency_open": (
        79,
        "Emergency - exit freely",
        "The fire-alarm input opened the gate; passages are logged, not charged.",
    ),
    "emergency_end": (80, "Scan your code", "The fire-alarm input cleared; normal service."),
    "emergency_passage": (81, "Emergency - exit freely", "A passage during an emergency."),
    "in_service": (82, "Scan your code", "The gate was put back in service."),
    "session_expired": (
        83,
        "",
        "A store session had no exit scan within session_max_s; the back office closes it.",
    ),
}


def number(reason: str) -> int:
    return REASONS[reason][0]


def display_text(reason: str) -> str:
    entry = REASONS.get(reason)
    return entry[1] if entry else "Not accepted"


def by_number(n: int) -> str:
    for name in REASONS:
        if REASONS[name][0] == n:
            return name
    return "unknown"
