"""What each gate setting means: the doc column of firmware/settings.py's SCHEMA, by name.

Joined to the rows on CPython only (firmware/settings.py), where the settings tables of the docs
are rendered from it (tests/test_settings_docs.py); an MCU gate never loads it, so these texts
take none of its 512 KB heap (docs/mcu.md).
"""

from protocol import journalfile

DOCS = {
    "version": "config format version",
    "device_id": "the gate this config is for",
    "name": "the gate's name at its station",
    "station": "station number",
    "station_name": "station name, for displays and reports",
    "lane": "lane number at the station",
    "mode": "the gate mode (docs/gate-modes.md)",
    "direction": "which way the gate lets people through",
    "scope": "scope bits this gate serves",
    "revoked_technicians": "technician numbers the console refuses",
    "validation.window_s": "how old a presentation may be",
    "validation.skew_s": "how far ahead of the gate's clock a presentation may be",
    "validation.stale_trust": (
        "a stale trust list: refuse every code, or accept for stale_grace_s (grace: as usual, "
        "limit: with the offline limit lowered), flagged trust_stale, then refuse"
    ),
    "validation.stale_grace_s": "how long a stale trust list is accepted under grace or limit",
    "validation.stale_offline_limit": "offline limit while a stale list is accepted under limit",
    "validation.clock_policy": (
        "an untrusted clock: refuse every code, or accept with the offline limit lowered"
    ),
    "validation.clock_offline_limit": "offline limit while the clock is untrusted",
    "validation.cache_size": (
        "verified credentials remembered (0: none; 32 by default on MCU gates)"
    ),
    "validation.stale_deny": (
        "a deny list past its valid_until (one the back office stopped refreshing): accept as "
        "usual, accept with the offline limit lowered (limit), or refuse every code "
        "(deny_list_stale); accepts are flagged deny_stale (docs/fraud.md)"
    ),
    "validation.stale_deny_offline_limit": (
        "offline limit while a stale deny list is accepted under limit"
    ),
    "risk.class_offline_limits": (
        "entry i caps the offline limit of credentials of risk_class i (classes past the list's "
        "end: their own limit)"
    ),
    "risk.no_first_ride": (
        "risk classes that may take no first ride offline: their codes are refused "
        "(first_ride_refused) for risk.first_ride_s after the credential's valid_from"
    ),
    "risk.first_ride_s": (
        "how long after its valid_from a credential of a no_first_ride class is refused"
    ),
    "limits.max_unsynced_count": "unsynced passages on this gate (1024 by default on MCU gates)",
    "limits.max_unsynced_age_s": "age of the oldest unsynced passage",
    "limits.max_value_per_account": "unsynced value of one account",
    "limits.at_limit": (
        "at a bound: refuse the passage (offline_limit), or accept it and flag its record"
    ),
    "sync.host": "the back office's host name or address",
    "sync.port": "the back office's TCP port",
    "sync.hosts": (
        "several sync front ends of one back office, tried in order with failover: "
        '"host:port,host:port" (a port left out is sync.port); replaces sync.host when set'
    ),
    "sync.host_key": "the operator's sync public key (SEC1; sync.pub of `faregate keys init`)",
    "sync.interval_s": "time between sync sessions",
    "sync.batch_records": (
        "passage records per BATCH frame (245 bytes each: 3.9 KB a frame, as 64 records of "
        "64 bytes were before the records kept the rider's ride code)"
    ),
    "sync.window": "BATCH frames in flight before the back office's ACK",
    "sync.blob_chunk": "bytes of a list, config or image the gate asks for per BLOB frame",
    "buffers.io_chunk": (
        "bytes read, hashed or copied per step of a file operation (blob hashing, image "
        "unpacking, deny-list merges)"
    ),
    "buffers.link_read": "bytes taken per read of a UART or of an MCU gate's service port",
    "buffers.console_frame": (
        "largest service-console frame the gate takes; a larger one is dropped unread, a larger "
        "flash BEGIN (an image's header and manifest) refused as image_head_too_large (at least "
        "the laptop's largest request, a 4 KB upload chunk with its header)"
    ),
    "buffers.console_frame_ms": (
        "how long the service console waits for the rest of a frame from its first byte; then "
        "the partial frame is dropped (event frame_dropped, reason frame_timeout) and the "
        "console reads on: a forged header announcing a length that never comes holds it no "
        "longer (raise it for a link slower than a console_frame in this time)"
    ),
    "buffers.flash_chunk": (
        "bytes of an image per DATA frame the gate asks for in READY when it is flashed"
    ),
    "buffers.flash_window": (
        "DATA frames the laptop may send ahead of the gate's ACK when it is flashed"
    ),
    "buffers.journal_read": (
        "journal entries read at once (%d bytes each) when the journal opens, uploads or exports "
        "(8 by default on MCU gates)" % journalfile.ENTRY3_LEN
    ),
    "deny.index_keys": (
        "MCU gates: deny keys kept in RAM to narrow the in-file search (8 bytes each)"
    ),
    "gate.pass_ms": (
        "metro: how long an open gate waits for the rider (runs only while the passage is empty)"
    ),
    "gate.parking_pass_ms": "parking: how long the raised arm waits for the vehicle",
    "gate.unlock_ms": "store: how long the door stays unlocked for one entry",
    "gate.held_ms": "store: how long the door may stand open before the door-held alarm",
    "gate.loiter_ms": "metro: an occupancy this long raises the loitering alarm",
    "gate.debounce_ms": "how long a contact input must hold a level",
    "gate.passback_s": "anti-passback window",
    "gate.session_max_s": "store: a session with no exit scan ends by timeout (session_expired)",
    "gate.require_entry": (
        "exit lines refuse an exit with no entry (no_entry); needs a table shared by the "
        "station's gates"
    ),
    "gate.value": "nominal value of one passage, journaled and counted by the offline limits",
    "gate.show_ms": "bus: how long the validator shows an accepted tap before the ready prompt",
    "gate.plates": "parking: the lane reads plates (hardware anpr)",
    "gate.plate_min_confidence": (
        "parking by plate: reads below this confidence fall back to a QR scan"
    ),
    "gate.group_max": "store: people one code admits while its session is open (1: no groups)",
    "bus.vehicle": "bus: the vehicle this validator is fitted to",
    "bus.route": "bus: the route the vehicle runs",
    "bus.stops": (
        'bus: the route\'s stops in order, "id:lat:lon;id:lat:lon" (decimal degrees; stop ids '
        "are the network's station ids)"
    ),
    "bus.radius_m": "bus: a stop's geofence radius",
    "bus.dwell_s": (
        "bus: how long the vehicle stays inside a stop's geofence before the stop is reached"
    ),
    "bus.fix_timeout_s": (
        "bus: no valid GNSS fix for this long and the position is lost (records flagged)"
    ),
    "plates.hash_key": "parking by plate: a hashed list's key",
    "selftest.scan_timeout_s": "how long the self-test waits for a scan",
    "clock.ahead_tolerance_s": (
        "how far the RTC may run ahead of the time the gate counted before it is a jump"
    ),
    "clock.set_bound_s": (
        "how far a technician's set-time may move the gate's anchored time without the root"
    ),
}
