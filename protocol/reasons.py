"""Reason codes: one name per way a ride code or a passage can be refused.

Each entry: name -> (number, text for the rider's display); on CPython a third element, the
explanation for technicians, joined from protocol/reason_notes.py (an MCU gate does not load
them: its 512 KB heap, docs/mcu.md). A new reason gets its entry here and its note there.
The number is stable and goes into journals and reports; the name goes into JSON output.
The order of the verification pipeline is documented in docs/ridecode.md.
"""

import sys

ACCEPTED = "accepted"

# display texts several reasons share, each one string (a gate's heap holds each literal
# once per use)
_CODE_NOT_ACCEPTED_HERE = "Code not accepted here"
_CODE_NOT_READABLE = "Code not readable"
_EMERGENCY_EXIT_FREELY = "Emergency - exit freely"
_GATE_CLOSED_SEE_STAFF = "Gate closed - see staff"
_GATE_OFFLINE_SEE_STAFF = "Gate offline - see staff"
_GOODBYE = "Goodbye"
_INVALID_CODE = "Invalid code"
_PLATE_NOT_RECOGNISED_SCAN_YOUR_CODE = "Plate not recognised - scan your code"
_SCAN_YOUR_CODE = "Scan your code"
_SERVICE_MODE = "Service mode"
_STATEMENT_REFUSED = "Statement refused"
_UPDATE_REFUSED = "Update refused"

REASONS: dict = {  # name -> (number, display[, explanation: CPython])
    ACCEPTED: (0, "Welcome"),
    # parsing (protocol.ridecode)
    "malformed": (10, _CODE_NOT_READABLE),
    "bad_base45": (11, _CODE_NOT_READABLE),
    "bad_prefix": (12, _CODE_NOT_READABLE),
    "bad_length": (13, _CODE_NOT_READABLE),
    "bad_version": (14, _CODE_NOT_READABLE),
    "unknown_alg": (15, _CODE_NOT_READABLE),
    # trust (issuer keys)
    "unknown_issuer": (20, _CODE_NOT_ACCEPTED_HERE),
    "issuer_out_of_scope": (21, _CODE_NOT_ACCEPTED_HERE),
    "issuer_key_expired": (22, _CODE_NOT_ACCEPTED_HERE),
    "trust_list_stale": (23, _GATE_OFFLINE_SEE_STAFF),
    "bad_issuer_signature": (24, _INVALID_CODE),
    "issuer_alg_mismatch": (25, _CODE_NOT_ACCEPTED_HERE),
    "issuer_key_not_yet_valid": (26, _CODE_NOT_ACCEPTED_HERE),
    "trust_list_missing": (27, _GATE_CLOSED_SEE_STAFF),
    # credential validity
    "credential_not_yet_valid": (30, "Code not valid yet"),
    "credential_expired": (31, "Code expired - refresh app"),
    "out_of_scope": (32, "Code not valid here"),
    "credential_outlives_key": (33, _CODE_NOT_ACCEPTED_HERE),
    # presentation
    "bad_rider_signature": (40, _INVALID_CODE),
    "presentation_stale": (41, "Code too old - refresh app"),
    "presentation_future": (42, "Check phone clock"),
    "replayed": (43, "Code already used"),
    # lists and policy
    "denied": (50, "Account blocked - see staff"),
    "clock_untrusted": (51, _GATE_OFFLINE_SEE_STAFF),
    "offline_limit": (52, "Please sync app - see staff"),
    "anti_passback": (53, "Already inside"),
    "no_entry": (54, "No entry recorded - see staff"),
    "out_of_service": (55, "Gate closed"),
    "journal_error": (57, _GATE_CLOSED_SEE_STAFF),
    "deny_list_damaged": (58, _GATE_CLOSED_SEE_STAFF),
    "journal_full": (56, _GATE_CLOSED_SEE_STAFF),
    "journal_unverified": (59, _GATE_CLOSED_SEE_STAFF),
    # installing trust and deny lists (firmware/verify/truststore.py,
    # firmware/verify/denystore.py): not shown to riders; reported by provisioning, sync and
    # `faregate wallet`/`verify`
    "list_malformed": (120, ""),
    "list_unknown_root": (121, ""),
    "list_bad_signature": (122, ""),
    "list_downgrade": (123, ""),
    "deny_gap": (124, ""),
    "deny_full": (125, ""),
    # firmware images (firmware.maintenance.update_agent; refusals shown by `faregate flash` and at
    # sync)
    "image_malformed": (80, _UPDATE_REFUSED),
    "image_unsigned": (81, _UPDATE_REFUSED),
    "image_unknown_key": (82, _UPDATE_REFUSED),
    "image_bad_signature": (83, _UPDATE_REFUSED),
    "image_wrong_target": (84, _UPDATE_REFUSED),
    "image_rollback": (85, _UPDATE_REFUSED),
    "image_truncated": (86, _UPDATE_REFUSED),
    "image_hash_mismatch": (87, _UPDATE_REFUSED),
    "image_too_large": (88, _UPDATE_REFUSED),
    "image_unknown_alg": (89, _UPDATE_REFUSED),
    "no_verifier": (90, _UPDATE_REFUSED),
    "update_busy": (91, _UPDATE_REFUSED),
    "update_storage_error": (92, _UPDATE_REFUSED),
    "update_no_previous": (93, _UPDATE_REFUSED),
    "image_head_too_large": (94, _UPDATE_REFUSED),
    # service console (firmware.maintenance.console): why a technician's command was refused
    "svc_unauthenticated": (100, _SERVICE_MODE),
    "svc_replayed": (101, _SERVICE_MODE),
    "svc_bad_signature": (102, _SERVICE_MODE),
    "svc_bad_credential": (103, _SERVICE_MODE),
    "svc_credential_expired": (104, _SERVICE_MODE),
    "svc_revoked": (105, _SERVICE_MODE),
    "svc_forbidden": (106, _SERVICE_MODE),
    "svc_not_provisioned": (107, _SERVICE_MODE),
    "svc_claimed": (108, _SERVICE_MODE),
    "svc_bad_request": (109, _SERVICE_MODE),
    "svc_no_key": (110, _SERVICE_MODE),
    "svc_bad_cert": (111, _SERVICE_MODE),
    "svc_bad_blob": (112, _SERVICE_MODE),
    "svc_unsynced": (113, _SERVICE_MODE),
    "svc_export_mismatch": (114, _SERVICE_MODE),
    "svc_storage": (115, _GATE_CLOSED_SEE_STAFF),
    "svc_internal": (116, _GATE_CLOSED_SEE_STAFF),
    "svc_clock_bound": (119, _SERVICE_MODE),
    # gate modes: scans refused by the mode's state (firmware/gate/modes.py, docs/gate-modes.md)
    "gate_busy": (60, "Please wait"),
    "barrier_fault": (61, _GATE_CLOSED_SEE_STAFF),
    "no_vehicle": (62, "Drive up to the barrier"),
    "already_exited": (63, "Already exited"),
    # gate events and alarms, journaled as KIND_EVENT records (firmware/gate/gate.py)
    "tailgating": (64, "Alarm - one person per code"),
    "wrong_direction": (65, "No entry this way"),
    "loitering": (66, "Please move on"),
    "passage_not_taken": (67, "Please scan again"),
    "barrier_jam": (68, _GATE_CLOSED_SEE_STAFF),
    "barrier_recovered": (69, _SCAN_YOUR_CODE),
    "door_held": (70, "Please close the door"),
    "door_forced": (71, "Alarm - door forced"),
    "alarm_cleared": (72, _SCAN_YOUR_CODE),
    "emergency_open": (73, _EMERGENCY_EXIT_FREELY),
    "emergency_end": (74, _SCAN_YOUR_CODE),
    "emergency_passage": (75, _EMERGENCY_EXIT_FREELY),
    "in_service": (76, _SCAN_YOUR_CODE),
    "session_expired": (77, ""),
    "journal_repaired": (79, ""),
    "clock_set": (95, ""),
    # the bus validator (firmware/gate/bus.py, protocol/nmea.py), 320-329
    "stop_reached": (320, ""),
    "gnss_fix": (321, ""),
    "gnss_lost": (322, ""),
    "nmea_checksum": (323, ""),
    "nmea_malformed": (324, ""),
    # readers (drivers/portable/qrengine.py, drivers/linux/wedge_evdev.py)
    "wrong_symbology": (340, _CODE_NOT_READABLE),
    "test_card": (78, "Test card read"),
    # roles, root rotation and claiming (protocol/rootmeta.py; docs/security.md), 280-289
    "root_malformed": (280, ""),
    "root_threshold": (281, ""),
    "root_rollback": (282, ""),
    "root_expired": (283, ""),
    "config_needs_root": (284, ""),
    "claim_foreign": (285, ""),
    "release_refused": (286, ""),
    # no-sense parking and store baskets (texts: docs/gate-modes.md), 330-339
    "plate_accepted": (330, "Welcome"),
    "plate_unknown": (331, _PLATE_NOT_RECOGNISED_SCAN_YOUR_CODE),
    "plate_low_confidence": (332, _PLATE_NOT_RECOGNISED_SCAN_YOUR_CODE),
    "anpr_malformed": (333, ""),
    "plate_gap": (334, ""),
    "exit_button": (335, _GOODBYE),
    "group_member": (336, "Welcome - group"),
    "group_full": (337, "Group limit reached"),
    "basket_final": (338, _GOODBYE),
    "basket_malformed": (339, ""),
    # risk control (docs/fraud.md)
    "deny_list_stale": (310, _GATE_OFFLINE_SEE_STAFF),
    "first_ride_refused": (311, "Code not accepted here - see staff"),
    # settlement: statements an issuer verifies (docs/settlement.md, faregate settle)
    "statement_malformed": (360, _STATEMENT_REFUSED),
    "statement_bad_signature": (361, _STATEMENT_REFUSED),
    "head_inconsistent": (362, _STATEMENT_REFUSED),
    "leaf_not_included": (363, _STATEMENT_REFUSED),
    "wrong_issuer": (364, _STATEMENT_REFUSED),
    "rider_signature_bad": (365, _STATEMENT_REFUSED),
    "gate_signature_bad": (366, _STATEMENT_REFUSED),
    "tariff_mismatch": (367, _STATEMENT_REFUSED),
    "totals_mismatch": (368, _STATEMENT_REFUSED),
    "reconcile_mismatch": (369, _STATEMENT_REFUSED),
    # settlement, the gate's keys and the weekly cap (docs/settlement.md)
    "gate_certificate_bad": (370, _STATEMENT_REFUSED),
    "week_total_mismatch": (371, _STATEMENT_REFUSED),
    # device key in a token, boot and anti-rollback (issue 16; docs/security.md)
    "key_token_unavailable": (290, _GATE_CLOSED_SEE_STAFF),
    "key_token_pin": (291, _GATE_CLOSED_SEE_STAFF),
    "key_token_failed": (292, _GATE_CLOSED_SEE_STAFF),
    "key_url_bad": (293, _GATE_CLOSED_SEE_STAFF),
    "boot_bad_signature": (294, _GATE_CLOSED_SEE_STAFF),
    "boot_rollback": (295, _GATE_CLOSED_SEE_STAFF),
    "boot_counter_damaged": (296, _GATE_CLOSED_SEE_STAFF),
    # deny and plate lists per issuer, signed by the lists role (issues 14, 17), 341-349
    "deny_needs_issuer": (341, ""),
    "list_below_threshold": (342, ""),
    "list_wrong_role": (343, ""),
    "list_unknown_key": (344, ""),
    "plate_needs_issuer": (345, ""),
}

# the station mesh, 300-309 (docs/mesh.md, section 3): its refusals of peers' messages, defined

# the technicians' explanations, on CPython only (before the mesh's, which carry their own)
if sys.implementation.name != "micropython":
    from protocol import reason_notes

    for name in REASONS:
        REASONS[name] = REASONS[name] + (reason_notes.NOTES[name],)

# with the message format in protocol/mesh.py (REASONS there) and added here on Linux gates
# only: an MCU gate has no mesh, and its 512 KB heap (docs/mcu.md) does not pay for them
if sys.implementation.name != "micropython":
    from protocol import mesh

    REASONS.update(mesh.REASONS)


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
