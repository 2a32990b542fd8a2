"""Reason codes: one name per way a ride code or a passage can be refused.

Each entry: name -> (number, text for the rider's display, explanation for technicians).
The number is stable and goes into journals and reports; the name goes into JSON output.
The order of the verification pipeline is documented in docs/ridecode.md.
"""

import sys

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
    "issuer_alg_mismatch": (
        25,
        "Code not accepted here",
        "The trust list gives this issuer key another algorithm than the code's.",
    ),
    "issuer_key_not_yet_valid": (
        26,
        "Code not accepted here",
        "The issuer key's validity has not started (at the gate's time).",
    ),
    "trust_list_missing": (
        27,
        "Gate closed - see staff",
        "No valid trust list is installed: provision or sync the gate.",
    ),
    # credential validity
    "credential_not_yet_valid": (30, "Code not valid yet", "The credential starts later."),
    "credential_expired": (31, "Code expired - refresh app", "The credential has expired."),
    "out_of_scope": (32, "Code not valid here", "The credential's scope excludes this gate."),
    "credential_outlives_key": (
        33,
        "Code not accepted here",
        "The credential's validity reaches outside its issuer key's validity.",
    ),
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
    "deny_list_damaged": (
        58,
        "Gate closed - see staff",
        "deny.base failed its check: no code can be checked against the deny list until a sync"
        " brings a snapshot (docs/sync-protocol.md, fail closed).",
    ),
    "journal_full": (
        56,
        "Gate closed - see staff",
        "The journal is at capacity; no passage can be recorded.",
    ),
    "journal_unverified": (
        59,
        "Gate closed - see staff",
        "The journal cannot vouch for its seq (journal.meta unreadable): no offline acceptance "
        "until a technician repairs it (`faregate device journal repair --seq-floor`).",
    ),
    # installing trust and deny lists (firmware/verify/truststore.py,
    # firmware/verify/denystore.py): not shown to riders; reported by provisioning, sync and
    # `faregate wallet`/`verify`
    "list_malformed": (120, "", "A trust or deny list does not parse (docs/ridecode.md)."),
    "list_unknown_root": (121, "", "The list is signed by an operator root the gate lacks."),
    "list_bad_signature": (122, "", "The list's operator root signature does not verify."),
    "list_downgrade": (123, "", "The list is older than the one installed."),
    "deny_gap": (124, "", "A deny delta does not follow the installed version: fetch a snapshot."),
    "deny_full": (125, "", "The deny list would exceed the store's capacity."),
    # firmware images (firmware.maintenance.update_agent; refusals shown by `faregate flash` and at
    # sync)
    "image_malformed": (80, "Update refused", "The bytes are not a well-formed faregate image."),
    "image_unsigned": (81, "Update refused", "The image carries no signature."),
    "image_unknown_key": (82, "Update refused", "Signed by a key the gate does not trust."),
    "image_bad_signature": (83, "Update refused", "The release signature does not verify."),
    "image_wrong_target": (84, "Update refused", "The image is for another profile or mpy ABI."),
    "image_rollback": (85, "Update refused", "The security counter is below the confirmed one."),
    "image_truncated": (86, "Update refused", "The transfer ended before the whole image arrived."),
    "image_hash_mismatch": (87, "Update refused", "A file or the image does not match its hash."),
    "image_too_large": (88, "Update refused", "The image does not fit the gate's slot."),
    "image_unknown_alg": (89, "Update refused", "The signature algorithm is not supported."),
    "no_verifier": (90, "Update refused", "This gate has no signature verifier to check images."),
    "update_busy": (91, "Update refused", "Another update is on trial; wait for it."),
    "update_storage_error": (92, "Update refused", "The gate could not write the image."),
    "update_no_previous": (
        93,
        "Update refused",
        "No previous image in the other slot to go back to.",
    ),
    "image_head_too_large": (
        94,
        "Update refused",
        "The BEGIN message (image header and manifest) is over the gate's buffers.console_frame.",
    ),
    # service console (firmware.maintenance.console): why a technician's command was refused
    "svc_unauthenticated": (
        100,
        "Service mode",
        "A command came before a technician authenticated this session (HELLO, then AUTH).",
    ),
    "svc_replayed": (
        101,
        "Service mode",
        "The command's sequence number, or the session's AUTH, was already used: a replay.",
    ),
    "svc_bad_signature": (
        102,
        "Service mode",
        "The technician's signature does not verify for this session (wrong key, or a command "
        "recorded in another session).",
    ),
    "svc_bad_credential": (
        103,
        "Service mode",
        "The technician credential is malformed or not signed by this gate's operator root.",
    ),
    "svc_credential_expired": (
        104,
        "Service mode",
        "The technician credential is outside its validity period (check both clocks).",
    ),
    "svc_revoked": (105, "Service mode", "The technician credential is revoked by the config."),
    "svc_forbidden": (106, "Service mode", "The credential's role does not allow this command."),
    "svc_not_provisioned": (
        107,
        "Service mode",
        "The gate has no operator root yet: only the first-time flow (AUTH with CLAIM) works.",
    ),
    "svc_claimed": (
        108,
        "Service mode",
        "The gate already belongs to another operator root: only that operator can reset it.",
    ),
    "svc_bad_request": (109, "Service mode", "The command is malformed, unknown or out of order."),
    "svc_no_key": (110, "Service mode", "The gate has no device key yet: generate it first."),
    "svc_bad_cert": (
        111,
        "Service mode",
        "The device certificate is not for this gate, its key or its operator root, or is "
        "outside its validity.",
    ),
    "svc_bad_blob": (
        112,
        "Service mode",
        "An uploaded file failed its SHA-256 or its format check; nothing was installed.",
    ),
    "svc_unsynced": (
        113,
        "Service mode",
        "Unsynced passages exist: sync the gate first, or export them and force the reset.",
    ),
    "svc_export_mismatch": (
        114,
        "Service mode",
        "The export digest does not match the gate's unsynced passages: export them again.",
    ),
    "svc_storage": (115, "Gate closed - see staff", "The gate could not write its storage."),
    "svc_internal": (116, "Gate closed - see staff", "The gate hit an internal error."),
    "svc_clock_bound": (
        119,
        "Service mode",
        "The new time is further than clock.set_bound_s from the gate's anchored time: only "
        "a time signed by the operator root (set-time --root-key) or the back office may.",
    ),
    # gate modes: scans refused by the mode's state (firmware/gate/modes.py, docs/gate-modes.md)
    "gate_busy": (60, "Please wait", "The gate is still serving the previous passage."),
    "barrier_fault": (61, "Gate closed - see staff", "The barrier or lock reported a jam."),
    "no_vehicle": (62, "Drive up to the barrier", "A parking lane reads codes for a vehicle."),
    "already_exited": (63, "Already exited", "This account already exited here recently."),
    # gate events and alarms, journaled as KIND_EVENT records (firmware/gate/gate.py)
    "tailgating": (
        64,
        "Alarm - one person per code",
        "Someone passed without an accepted code (close behind another, or forcing the gate).",
    ),
    "wrong_direction": (65, "No entry this way", "Someone passed against the gate's direction."),
    "loitering": (66, "Please move on", "The passage stayed occupied longer than loiter_ms."),
    "passage_not_taken": (
        67,
        "Please scan again",
        "A code was accepted but nobody passed in time; the back office voids that passage.",
    ),
    "barrier_jam": (68, "Gate closed - see staff", "The barrier or lock did not reach its end."),
    "barrier_recovered": (69, "Scan your code", "The barrier reports the jam cleared."),
    "door_held": (70, "Please close the door", "The door stood open longer than held_ms."),
    "door_forced": (71, "Alarm - door forced", "The door opened while it was locked."),
    "alarm_cleared": (72, "Scan your code", "The door closed; the door alarm stopped."),
    "emergency_open": (
        73,
        "Emergency - exit freely",
        "The fire-alarm input opened the gate; passages are logged, not charged.",
    ),
    "emergency_end": (74, "Scan your code", "The fire-alarm input cleared; normal service."),
    "emergency_passage": (75, "Emergency - exit freely", "A passage during an emergency."),
    "in_service": (76, "Scan your code", "The gate was put back in service."),
    "session_expired": (
        77,
        "",
        "A store session had no exit scan within session_max_s; the back office closes it.",
    ),
    "journal_repaired": (
        79,
        "",
        "A technician repaired the journal; the record's value is how many unacknowledged "
        "records it found lost (their seqs never arrive: see the sequence_gap anomaly).",
    ),
    "clock_set": (
        95,
        "",
        "A technician set the clock: the record's time is the gate's time before, its value "
        "the time set, counter 1 when the operator root signed it (svc_clock_bound: refused).",
    ),
    # the bus validator (firmware/gate/bus.py, protocol/nmea.py), 320-329
    "stop_reached": (
        320,
        "",
        "A bus validator's vehicle reached a stop of its route (inside the stop's geofence for "
        "bus.dwell_s); the record's station is the stop.",
    ),
    "gnss_fix": (
        321,
        "",
        "The validator's GNSS receiver has a position fix (at boot, or again after gnss_lost).",
    ),
    "gnss_lost": (
        322,
        "",
        "No valid GNSS fix for bus.fix_timeout_s (receiver without fix, unplugged, or bad "
        "sentences): taps are still accepted, their records flagged with the last stop reached.",
    ),
    "nmea_checksum": (
        323,
        "",
        "An NMEA 0183 sentence whose checksum does not match its text: dropped (noise on the "
        "GNSS receiver's UART, wrong baud rate).",
    ),
    "nmea_malformed": (
        324,
        "",
        "A line from the GNSS receiver that is not a well-formed NMEA 0183 sentence: dropped.",
    ),
    # readers (drivers/portable/qrengine.py, drivers/linux/wedge_evdev.py)
    "wrong_symbology": (
        340,
        "Code not readable",
        "The reader's AIM identifier says the code was not read as a QR Code (e.g. ]C0, Code "
        "128): a ride code's text in another barcode is not a ride code.",
    ),
    "test_card": (
        78,
        "Test card read",
        "A technician's test card (FGTEST:...) was shown: the reader works; nothing journaled.",
    ),
    # roles, root rotation and claiming (protocol/rootmeta.py; docs/security.md), 280-289
    "root_malformed": (280, "", "Not root metadata: use the file faregate keys wrote."),
    "root_threshold": (281, "", "Too few root signatures: faregate keys root-sign."),
    "root_rollback": (282, "", "Not the next version: install the versions in order."),
    "root_expired": (283, "", "Expired: sign a fresh root metadata."),
    "config_needs_root": (284, "", "Changes security settings: faregate keys sign-config."),
    "claim_foreign": (285, "", "Bound to another operator: claim with its credential."),
    "release_refused": (286, "", "Release for another gate or root version, or unsigned."),
    # no-sense parking and store baskets (texts: docs/gate-modes.md), 330-339
    "plate_accepted": (330, "Welcome", "Passed by plate."),
    "plate_unknown": (331, "Plate not recognised - scan your code", "Plate not listed."),
    "plate_low_confidence": (332, "Plate not recognised - scan your code", "Read unsure."),
    "anpr_malformed": (333, "", "Camera sent no plate read."),
    "plate_gap": (334, "", "Plate delta out of order."),
    "exit_button": (335, "Goodbye", "Left by the exit button."),
    "group_member": (336, "Welcome - group", "Group member."),
    "group_full": (337, "Group limit reached", "Over gate.group_max."),
    "basket_final": (338, "Goodbye", "Basket closed the session."),
    "basket_malformed": (339, "", "Bad basket line."),
    # risk control (docs/fraud.md)
    "deny_list_stale": (
        310,
        "Gate offline - see staff",
        "The deny list is past its valid_until and validation.stale_deny is refuse: the gate "
        "cannot know of recent denials until it syncs.",
    ),
    "first_ride_refused": (
        311,
        "Code not accepted here - see staff",
        "The credential's risk_class may not take a first ride offline (risk.no_first_ride): "
        "it was issued less than risk.first_ride_s ago.",
    ),
    # settlement: statements an issuer verifies (docs/settlement.md, faregate settle)
    "statement_malformed": (
        360,
        "Statement refused",
        "Not a well-formed statement of faregate-statement/1.",
    ),
    "statement_bad_signature": (
        361,
        "Statement refused",
        "The statement or its tree head is not signed by the log key.",
    ),
    "head_inconsistent": (
        362,
        "Statement refused",
        "The statement's tree head does not extend the previous day's: the log was rewritten.",
    ),
    "leaf_not_included": (
        363,
        "Statement refused",
        "A record of the statement is not the log's leaf at its index: altered, "
        "invented after the fact, or moved.",
    ),
    "wrong_issuer": (
        364,
        "Statement refused",
        "A record of another issuer or account, or one charged twice, or one no charge rests on.",
    ),
    "rider_signature_bad": (
        365,
        "Statement refused",
        "The rider's signature in a record's ride code (or the issuer's of its "
        "credential) does not verify.",
    ),
    "gate_signature_bad": (
        366,
        "Statement refused",
        "The gate's signature of a record's batch does not verify.",
    ),
    "tariff_mismatch": (
        367,
        "Statement refused",
        "Re-pricing the charge's records with the published fare table gives other "
        "journeys or amounts, or it was priced with another table.",
    ),
    "totals_mismatch": (
        368,
        "Statement refused",
        "A charge's amount or the statement's totals do not add up.",
    ),
    "reconcile_mismatch": (
        369,
        "Statement refused",
        "The issuer's own view and the statement differ: missing, extra or priced differently.",
    ),
    # device key in a token, boot and anti-rollback (issue 16; docs/security.md)
    "key_token_unavailable": (290, "Gate closed - see staff", "Key token missing."),
    "key_token_pin": (291, "Gate closed - see staff", "Key token refused PIN."),
    "key_token_failed": (292, "Gate closed - see staff", "Key token failed."),
    "key_url_bad": (293, "Gate closed - see staff", "Bad device_key URL."),
    "boot_bad_signature": (294, "Gate closed - see staff", "Slot not as signed."),
    "boot_rollback": (295, "Gate closed - see staff", "Slot below rollback counter."),
    "boot_counter_damaged": (296, "Gate closed - see staff", "Rollback counter unreadable."),
}

# the station mesh, 300-309 (docs/mesh.md, section 3): its refusals of peers' messages, defined
# with the message format in protocol/mesh.py (REASONS there) and added here on Linux gates
# only: an MCU gate has no mesh, and its 512 KB heap (docs/mcu.md) does not pay for them
if sys.implementation.name != "micropython":
    from protocol.mesh import REASONS as _MESH

    REASONS.update(_MESH)


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
