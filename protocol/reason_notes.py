"""The technicians' explanation of every reason in protocol/reasons.py (name -> text).

Read on the laptop and the back office (CPython), where protocol.reasons joins them to its
entries; an MCU gate does not load them (its 512 KB heap: docs/mcu.md).
"""

NOTES = {
    "accepted": "The code passed every check.",
    "malformed": "The text is not a faregate ride code.",
    "bad_base45": "The text is not canonical base45.",
    "bad_prefix": "The text does not start with a known version prefix.",
    "bad_length": "The decoded bytes have the wrong length.",
    "bad_version": "The format version is not one this gate knows.",
    "unknown_alg": "The signature algorithm id is not supported.",
    "unknown_issuer": "The issuer key id is not in the trust list.",
    "issuer_out_of_scope": "The issuer key may not sign this scope.",
    "issuer_key_expired": "The issuer key is outside its validity.",
    "trust_list_stale": "The trust list is past valid_until.",
    "bad_issuer_signature": "The issuer's signature does not verify.",
    "issuer_alg_mismatch": (
        "The trust list gives this issuer key another algorithm than the code's."
    ),
    "issuer_key_not_yet_valid": "The issuer key's validity has not started (at the gate's time).",
    "trust_list_missing": "No valid trust list is installed: provision or sync the gate.",
    "credential_not_yet_valid": "The credential starts later.",
    "credential_expired": "The credential has expired.",
    "out_of_scope": "The credential's scope excludes this gate.",
    "credential_outlives_key": (
        "The credential's validity reaches outside its issuer key's validity."
    ),
    "bad_rider_signature": "The rider device's signature does not verify.",
    "presentation_stale": "The code was shown too long after it was made.",
    "presentation_future": "The code's time is ahead of the gate's clock.",
    "replayed": "This presentation, or a newer one, was already accepted.",
    "denied": "The account or credential is on the deny list.",
    "clock_untrusted": "The gate's clock went backwards; offline acceptance is limited.",
    "offline_limit": "An offline limit (count, age or value) is reached.",
    "anti_passback": "This account already entered and has not exited.",
    "no_entry": "An exit without a matching entry.",
    "out_of_service": "The gate is out of service.",
    "journal_error": "The journal could not be written.",
    "deny_list_damaged": (
        "deny.base failed its check: no code can be checked against the deny list until a sync "
        "brings a snapshot (docs/sync-protocol.md, fail closed)."
    ),
    "journal_full": "The journal is at capacity; no passage can be recorded.",
    "journal_unverified": (
        "The journal cannot vouch for its seq (journal.meta unreadable): no offline acceptance "
        "until a technician repairs it (`faregate device journal repair --seq-floor`)."
    ),
    "list_malformed": "A trust or deny list does not parse (docs/ridecode.md).",
    "list_unknown_root": "The list is signed by an operator root the gate lacks.",
    "list_bad_signature": "The list's operator root signature does not verify.",
    "list_downgrade": "The list is older than the one installed.",
    "deny_gap": "A deny delta does not follow the installed version: fetch a snapshot.",
    "deny_full": "The deny list would exceed the store's capacity.",
    "image_malformed": "The bytes are not a well-formed faregate image.",
    "image_unsigned": "The image carries no signature.",
    "image_unknown_key": "Signed by a key the gate does not trust.",
    "image_bad_signature": "The release signature does not verify.",
    "image_wrong_target": "The image is for another profile or mpy ABI.",
    "image_rollback": "The security counter is below the confirmed one.",
    "image_truncated": "The transfer ended before the whole image arrived.",
    "image_hash_mismatch": "A file or the image does not match its hash.",
    "image_too_large": "The image does not fit the gate's slot.",
    "image_unknown_alg": "The signature algorithm is not supported.",
    "no_verifier": "This gate has no signature verifier to check images.",
    "update_busy": "Another update is on trial; wait for it.",
    "update_storage_error": "The gate could not write the image.",
    "update_no_previous": "No previous image in the other slot to go back to.",
    "image_head_too_large": (
        "The BEGIN message (image header and manifest) is over the gate's buffers.console_frame."
    ),
    "svc_unauthenticated": (
        "A command came before a technician authenticated this session (HELLO, then AUTH)."
    ),
    "svc_replayed": (
        "The command's sequence number, or the session's AUTH, was already used: a replay."
    ),
    "svc_bad_signature": (
        "The technician's signature does not verify for this session (wrong key, or a command "
        "recorded in another session)."
    ),
    "svc_bad_credential": (
        "The technician credential is malformed or not signed by this gate's operator root."
    ),
    "svc_credential_expired": (
        "The technician credential is outside its validity period (check both clocks)."
    ),
    "svc_revoked": "The technician credential is revoked by the config.",
    "svc_forbidden": "The credential's role does not allow this command.",
    "svc_not_provisioned": (
        "The gate has no operator root yet: only the first-time flow (AUTH with CLAIM) works."
    ),
    "svc_claimed": (
        "The gate already belongs to another operator root: only that operator can reset it."
    ),
    "svc_bad_request": "The command is malformed, unknown or out of order.",
    "svc_no_key": "The gate has no device key yet: generate it first.",
    "svc_bad_cert": (
        "The device certificate is not for this gate, its key or its operator root, or is "
        "outside its validity."
    ),
    "svc_bad_blob": (
        "An uploaded file failed its SHA-256 or its format check; nothing was installed."
    ),
    "svc_unsynced": (
        "Unsynced passages exist: sync the gate first, or export them and force the reset."
    ),
    "svc_export_mismatch": (
        "The export digest does not match the gate's unsynced passages: export them again."
    ),
    "svc_storage": "The gate could not write its storage.",
    "svc_internal": "The gate hit an internal error.",
    "svc_clock_bound": (
        "The new time is further than clock.set_bound_s from the gate's anchored time: only a "
        "time signed by the operator root (set-time --root-key) or the back office may."
    ),
    "gate_busy": "The gate is still serving the previous passage.",
    "barrier_fault": "The barrier or lock reported a jam.",
    "no_vehicle": "A parking lane reads codes for a vehicle.",
    "already_exited": "This account already exited here recently.",
    "tailgating": (
        "Someone passed without an accepted code (close behind another, or forcing the gate)."
    ),
    "wrong_direction": "Someone passed against the gate's direction.",
    "loitering": "The passage stayed occupied longer than loiter_ms.",
    "passage_not_taken": (
        "A code was accepted but nobody passed in time; the back office voids that passage."
    ),
    "barrier_jam": "The barrier or lock did not reach its end.",
    "barrier_recovered": "The barrier reports the jam cleared.",
    "door_held": "The door stood open longer than held_ms.",
    "door_forced": "The door opened while it was locked.",
    "alarm_cleared": "The door closed; the door alarm stopped.",
    "emergency_open": "The fire-alarm input opened the gate; passages are logged, not charged.",
    "emergency_end": "The fire-alarm input cleared; normal service.",
    "emergency_passage": "A passage during an emergency.",
    "in_service": "The gate was put back in service.",
    "session_expired": (
        "A store session had no exit scan within session_max_s; the back office closes it."
    ),
    "journal_repaired": (
        "A technician repaired the journal; the record's value is how many unacknowledged "
        "records it found lost (their seqs never arrive: see the sequence_gap anomaly)."
    ),
    "clock_set": (
        "A technician set the clock: the record's time is the gate's time before, its value the"
        " time set, counter 1 when the operator root signed it (svc_clock_bound: refused)."
    ),
    "stop_reached": (
        "A bus validator's vehicle reached a stop of its route (inside the stop's geofence for "
        "bus.dwell_s); the record's station is the stop."
    ),
    "gnss_fix": (
        "The validator's GNSS receiver has a position fix (at boot, or again after gnss_lost)."
    ),
    "gnss_lost": (
        "No valid GNSS fix for bus.fix_timeout_s (receiver without fix, unplugged, or bad "
        "sentences): taps are still accepted, their records flagged with the last stop reached."
    ),
    "nmea_checksum": (
        "An NMEA 0183 sentence whose checksum does not match its text: dropped (noise on the "
        "GNSS receiver's UART, wrong baud rate)."
    ),
    "nmea_malformed": (
        "A line from the GNSS receiver that is not a well-formed NMEA 0183 sentence: dropped."
    ),
    "wrong_symbology": (
        "The reader's AIM identifier says the code was not read as a QR Code (e.g. ]C0, Code "
        "128): a ride code's text in another barcode is not a ride code."
    ),
    "test_card": (
        "A technician's test card (FGTEST:...) was shown: the reader works; nothing journaled."
    ),
    "root_malformed": "Not root metadata: use the file faregate keys wrote.",
    "root_threshold": "Too few root signatures: faregate keys root-sign.",
    "root_rollback": "Not the next version: install the versions in order.",
    "root_expired": "Expired: sign a fresh root metadata.",
    "config_needs_root": "Changes security settings: faregate keys sign-config.",
    "claim_foreign": "Bound to another operator: claim with its credential.",
    "release_refused": "Release for another gate or root version, or unsigned.",
    "plate_accepted": "Passed by plate.",
    "plate_unknown": "Plate not listed.",
    "plate_low_confidence": "Read unsure.",
    "anpr_malformed": "Camera sent no plate read.",
    "plate_gap": "Plate delta out of order.",
    "exit_button": "Left by the exit button.",
    "group_member": "Group member.",
    "group_full": "Over gate.group_max.",
    "basket_final": "Basket closed the session.",
    "basket_malformed": "Bad basket line.",
    "deny_list_stale": (
        "The deny list is past its valid_until and validation.stale_deny is refuse: the gate "
        "cannot know of recent denials until it syncs."
    ),
    "first_ride_refused": (
        "The credential's risk_class may not take a first ride offline (risk.no_first_ride): it"
        " was issued less than risk.first_ride_s ago."
    ),
    "statement_malformed": "Not a well-formed statement of faregate-statement/1.",
    "statement_bad_signature": "The statement or its tree head is not signed by the log key.",
    "head_inconsistent": (
        "The statement's tree head does not extend the previous day's: the log was rewritten."
    ),
    "leaf_not_included": (
        "A record of the statement is not the log's leaf at its index: altered, invented after "
        "the fact, or moved."
    ),
    "wrong_issuer": (
        "A record of another issuer or account, or one charged twice, or one no charge rests on."
    ),
    "rider_signature_bad": (
        "The rider's signature in a record's ride code (or the issuer's of its credential) does"
        " not verify."
    ),
    "gate_signature_bad": "The gate's signature of a record's batch does not verify.",
    "tariff_mismatch": (
        "Re-pricing the charge's records with the published fare table gives other journeys or "
        "amounts, or it was priced with another table."
    ),
    "totals_mismatch": "A charge's amount or the statement's totals do not add up.",
    "reconcile_mismatch": (
        "The issuer's own view and the statement differ: missing, extra or priced differently."
    ),
    "gate_certificate_bad": (
        "A gate's device certificate in the statement is missing, not signed by the operator"
        " root, not that gate's, or not valid at the record's time."
    ),
    "week_total_mismatch": (
        "The week's running totals (the weekly cap's) do not follow from the previous"
        " statement, or no previous statement was given to check them."
    ),
    "key_token_unavailable": "Key token missing.",
    "key_token_pin": "Key token refused PIN.",
    "key_token_failed": "Key token failed.",
    "key_url_bad": "Bad device_key URL.",
    "boot_bad_signature": "Slot not as signed.",
    "boot_rollback": "Slot below rollback counter.",
    "boot_counter_damaged": "Rollback counter unreadable.",
    "deny_needs_issuer": "Deny list of format 1/2 (no issuer): publish format 3.",
    "list_below_threshold": "Too few lists-role signatures.",
    "list_wrong_role": "List signed by a key of another role.",
    "list_unknown_key": "List signed by a key not in the lists role.",
    "plate_needs_issuer": "Plate list of format 1 (no issuer): publish format 2.",
}
