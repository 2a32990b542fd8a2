"""Every setting of a gate, defined once: name, type, bounds, default, unit and meaning.

SCHEMA is the one table (python-tuf's `UpdaterConfig`, as a tuple of rows for MicroPython).
Everything else is built from it and writes no default of its own: the gate config's check
(firmware/compose/gate_config.py), the site files' check (provisioning/site.py),
`ValidatorConfig`, `LimitsConfig`, the mode timings (firmware/gate/modes.py), the sensors',
policies', replay cache's and time anchor's constructor defaults, and the settings tables of
docs/service-console.md, docs/gate-modes.md and docs/ridecode.md (tests/test_settings_docs.py
keeps them equal).

    row      (name, kind, bounds, default, unit, doc); doc, the meaning, is written in
             firmware/settings_docs.py and joined on CPython only (an MCU gate's rows have five)
    name     dotted: the section of the gate config it lives in; "gate.pass_ms" is written
             {"gate": {"pass_ms": 8000}} (a flat "gate.pass_ms" key means the same, and is
             checked the same; both at once is an error)
    kind     "int"     bounds (min, max)
             "str"     bounds (min, max) length in UTF-8 bytes
             "hex"     bounds (min, max) length in bytes (twice as many hex digits)
             "choice"  bounds: the allowed strings
             "bool"    bounds ()
             "ints"    a list of integers, each within bounds (min, max)
    default  the value when nothing sets it; None: none (the setting is optional)

REQUIRED names what every gate config must state (who and where the gate is). ALIASES are
older spellings still accepted, read as their new value.

A bad setting raises `SettingError` (reason "bad_config"), naming the setting and the bound. It
is a FormatError: settings reach a gate from outside (a config blob over the console or sync, a
site file, validator.json), and every reader of outside input already refuses a FormatError and
keeps what it had; a constructor handed a bad value by code raises the same error.
"""

import sys

from protocol import flash, service
from protocol.errors import FormatError

DAY = 86400

# fmt: off
SCHEMA = (
    # who and where the gate is
    ("version", "int", (1, 1), None, ""),
    ("device_id", "int", (1, 0xFFFFFFFF), None, ""),
    ("name", "str", (1, 16), None, ""),
    ("station", "int", (0, 0xFFFF), None, ""),
    ("station_name", "str", (0, 64), None, ""),
    ("lane", "int", (0, 255), None, ""),
    ("mode", "choice", ("metro", "parking", "store", "bus"), None, ""),
    ("direction", "choice", ("entry", "exit", "both"), None, ""),
    ("scope", "int", (1, 0xFFFF), 1, ""),
    ("revoked_technicians", "ints", (1, 0xFFFFFFFF), None, ""),
    # ride-code checks (firmware/verify/validator.py ValidatorConfig)
    ("validation.window_s", "int", (5, 3600), 60, "s"),
    ("validation.skew_s", "int", (0, 600), 10, "s"),
    ("validation.stale_trust", "choice", ("refuse", "grace", "limit"), "refuse", ""),
    ("validation.stale_grace_s", "int", (0, 30 * DAY), DAY, "s"),
    ("validation.stale_offline_limit", "int", (0, 1000000), 0, "minor units"),
    ("validation.clock_policy", "choice", ("refuse", "limit"), "limit", ""),
    ("validation.clock_offline_limit", "int", (0, 1000000), 0, "minor units"),
    ("validation.cache_size", "int", (0, 1000000), 4096, ""),
    ("validation.stale_deny", "choice", ("accept", "limit", "refuse"), "limit", ""),
    ("validation.stale_deny_offline_limit", "int", (0, 1000000), 0, "minor units"),
    # risk classes (firmware/verify/validator.py; the credential's risk_class, docs/fraud.md)
    ("risk.class_offline_limits", "ints", (0, 1000000), [], "minor units"),
    ("risk.no_first_ride", "ints", (0, 255), [], ""),
    ("risk.first_ride_s", "int", (0, 30 * DAY), DAY, "s"),
    # offline limits (firmware/verify/limits.py LimitsConfig)
    ("limits.max_unsynced_count", "int", (1, 10000000), 20000, ""),
    ("limits.max_unsynced_age_s", "int", (60, 30 * DAY), 3 * DAY, "s"),
    ("limits.max_value_per_account", "int", (0, 100000000), 5000, "minor units"),
    ("limits.at_limit", "choice", ("refuse", "flag"), "refuse", ""),
    # the back office (firmware/sync/client.py, firmware/compose/app.py)
    ("sync.host", "str", (1, 253), None, ""),
    ("sync.port", "int", (1, 65535), 7700, ""),
    ("sync.hosts", "str", (1, 2047), None, ""),
    ("sync.host_key", "hex", (33, 33), None, ""),
    ("sync.interval_s", "int", (1, DAY), 60, "s"),
    ("sync.batch_records", "int", (1, 1024), 16, "records"),
    ("sync.window", "int", (1, 16), 4, "frames"),
    ("sync.blob_chunk", "int", (256, 65536), 2048, "bytes"),
    # bounded buffers (docs/mcu.md: sized for a 512 KB heap)
    ("buffers.io_chunk", "int", (256, 65536), 1024, "bytes"),
    ("buffers.link_read", "int", (64, 65536), 512, "bytes"),
    ("buffers.console_frame", "int", (service.MAX_REQUEST, 65536), service.MAX_FRAME, "bytes"),
    ("buffers.console_frame_ms", "int", (100, 600000), 10000, "ms"),
    ("buffers.flash_chunk", "int", (256, flash.MAX_CHUNK), flash.MAX_CHUNK, "bytes"),
    ("buffers.flash_window", "int", (1, 64), 8, "frames"),
    ("buffers.journal_read", "int", (1, 16384), 16, "records"),
    ("deny.index_keys", "int", (0, 1000000), 512, "keys"),
    # the gate modes (firmware/gate/modes.py; the site file's [timing] table)
    ("gate.pass_ms", "int", (500, 120000), 8000, "ms"),
    ("gate.parking_pass_ms", "int", (1000, 600000), 30000, "ms"),
    ("gate.unlock_ms", "int", (500, 120000), 5000, "ms"),
    ("gate.held_ms", "int", (1000, 600000), 30000, "ms"),
    ("gate.loiter_ms", "int", (1000, 600000), 15000, "ms"),
    ("gate.debounce_ms", "int", (0, 1000), 20, "ms"),
    ("gate.passback_s", "int", (0, DAY), 1200, "s"),
    ("gate.session_max_s", "int", (60, 7 * DAY), 4 * 3600, "s"),
    ("gate.require_entry", "bool", (), False, ""),
    ("gate.value", "int", (0, 1000000), 0, "minor units"),
    ("gate.show_ms", "int", (200, 60000), 2000, "ms"),
    ("gate.plates", "bool", (), False, ""),
    ("gate.plate_min_confidence", "int", (1, 100), 90, "%"),
    ("gate.group_max", "int", (1, 20), 1, "people"),
    # the bus validator (firmware/gate/bus.py; docs/operator-guide.md, routes and stops)
    ("bus.vehicle", "int", (0, 0xFFFF), 0, ""),
    ("bus.route", "int", (0, 0xFFFF), 0, ""),
    ("bus.stops", "str", (0, 2047), None, ""),
    ("bus.radius_m", "int", (5, 500), 40, "m"),
    ("bus.dwell_s", "int", (0, 300), 5, "s"),
    ("bus.fix_timeout_s", "int", (1, 600), 5, "s"),
    # parking by plate (firmware/gate/plates.py, firmware/verify/platestore.py)
    ("plates.hash_key", "hex", (16, 64), None, ""),
    # maintenance
    ("selftest.scan_timeout_s", "int", (1, 120), 15, "s"),
    ("clock.ahead_tolerance_s", "int", (1, DAY), 10, "s"),
    ("clock.set_bound_s", "int", (0, DAY), 300, "s"),
)
# fmt: on

# defaults that differ by profile: an MCU gate (MicroPython, docs/mcu.md) has 512 KB of heap,
# so what would be a default's RAM there is smaller; a config may still set any value in bounds
PROFILE = "mcu" if sys.implementation.name == "micropython" else "linux"
PROFILE_DEFAULTS = {
    "mcu": {
        "validation.cache_size": 32,  # ~0.9 KB an entry on the unix port (P15): 4096 is MBs
        # 12 bytes an unsynced passage (24 with values) in OfflineLimits (P15): 20,000 of them
        # are 240-480 KB, the whole heap; 3072 already fail the 512 KB gate of the MCU suite,
        # 1024 leave room for a full credential cache (docs/mcu.md)
        "limits.max_unsynced_count": 1024,
        # 2 KB reads of 254-byte journal entries: a 4 KB buffer is not always to be had whole
        # in a 512 KB heap that also holds the firmware's bytecode
        "buffers.journal_read": 8,
    },
    "linux": {},
}

if PROFILE == "linux":
    # the meanings (the doc column): CPython renders the docs' tables from them; an MCU gate
    # keeps its rows without them, 8 KB less heap (docs/mcu.md)
    from firmware import settings_docs

    SCHEMA = tuple(r + (settings_docs.DOCS[r[0]],) for r in SCHEMA)
    # the station mesh's rows: an MCU gate has no mesh (docs/mcu.md)
    from firmware.mesh import schema

    SCHEMA = SCHEMA + schema.ROWS

REQUIRED = ("version", "device_id", "name", "station", "lane", "mode", "direction", "scope")
# Which settings touch security (a root-signed config changes them, the sync key alone may not)
# is firmware/compose/roles.py SECURITY: loaded only when a config comes by sync.
ALIASES = {"validation.stale_trust": {"accept_flagged": "grace"}}

ROWS = {}
for _row in SCHEMA:
    ROWS[_row[0]] = _row


class SettingError(FormatError):
    """A setting that does not exist, is missing, or is out of its bounds.

    `setting` is its name, `bound` the bound it broke (None for an unknown or missing one)."""

    reason = "bad_config"

    def __init__(self, setting: str, problem: str, bound=None):
        super().__init__("setting %s: %s" % (setting, problem), "bad_config")
        self.setting = setting
        self.problem = problem
        self.bound = bound


def row(name: str):
    r = ROWS.get(name)
    if r is None:
        raise SettingError(name, "unknown setting")
    return r


def default(name: str, profile: str = PROFILE):
    """The default for `name` on `profile` (this interpreter's by default): the profile's own
    (PROFILE_DEFAULTS), else the schema's (None: it has none)."""
    r = row(name)
    own = PROFILE_DEFAULTS[profile]
    return own[name] if name in own else r[3]


def problem(name: str, value):
    """None if `value` is acceptable for setting `name`, else what is wrong with it."""
    r = ROWS.get(name)
    if r is None:
        return "unknown setting"
    kind, bounds = r[1], r[2]
    if kind == "int":
        return _int_problem(value, bounds)
    if kind == "ints":
        if not isinstance(value, list):
            return "must be a list of integers"
        for v in value:
            p = _int_problem(v, bounds)
            if p:
                return "each entry " + p
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be a string"
    if kind == "choice":
        if value in bounds or value in ALIASES.get(name, ()):
            return None
        return "%r is not one of %s" % (value, ", ".join(bounds))
    if kind == "hex":
        try:
            n = len(bytes.fromhex(value))
        except ValueError:
            return "must be hexadecimal"
        if not bounds[0] <= n <= bounds[1]:
            return "must be %d to %d bytes (twice as many hex digits)" % bounds
        return None
    if not bounds[0] <= len(value.encode()) <= bounds[1]:
        return "must be %d to %d bytes long" % bounds
    if name in ("sync.hosts", "mesh.peers"):
        from firmware.sync import failover

        try:
            failover.parse_hosts(value, 1, failover.MAX_ENDPOINTS if name == "sync.hosts" else 64)
        except failover.EndpointError as e:
            return str(e)
    return None


def _int_problem(value, bounds):
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not bounds[0] <= value <= bounds[1]:
        return "must be between %d and %d" % bounds
    return None


def check(name: str, value):
    """`value` as the gate uses it (an alias read as its new value); SettingError if bad."""
    p = problem(name, value)
    if p:
        raise SettingError(name, p, ROWS[name][2] if name in ROWS else None)
    aliases = ALIASES.get(name)
    if aliases and value in aliases:
        return aliases[value]
    return value


def flatten(cfg) -> dict:
    """A config's settings by dotted name, nested sections and flat dotted keys alike."""
    if not isinstance(cfg, dict):
        raise SettingError("(config)", "must be a JSON object")
    out: dict = {}
    _walk(cfg, "", out)
    return out


def _walk(obj: dict, prefix: str, out: dict) -> None:
    for key in obj:
        name = prefix + key
        value = obj[key]
        if isinstance(value, dict):
            _walk(value, name + ".", out)
        elif name in out:
            raise SettingError(name, "given twice (nested and as a dotted key)")
        else:
            out[name] = value


def validate(cfg) -> dict:
    """Check a whole gate config: every setting known and within bounds, REQUIRED present.
    Returns its settings by dotted name, as `check` reads them."""
    flat = flatten(cfg)
    out = {}
    for name in flat:
        out[name] = check(name, flat[name])
    for name in REQUIRED:
        if name not in out:
            raise SettingError(name, "missing")
    return out


def value(cfg, name: str):
    """Setting `name` as `cfg` (a gate config, nested or flat, or None) sets it, else its
    default."""
    row(name)  # an unknown name is a SettingError, set or not
    if cfg:
        cur = cfg
        for part in name.split("."):
            if not isinstance(cur, dict) or part not in cur:
                cur = None
                break
            cur = cur[part]
        if cur is None:
            cur = cfg.get(name)
        if cur is not None:
            return check(name, cur)
    return default(name)


def section(prefix: str, cfg=None) -> dict:
    """{short name: value} of every setting under `prefix` ("gate" -> {"pass_ms": ...})."""
    start = prefix + "."
    out = {}
    for r in SCHEMA:
        if r[0].startswith(start):
            out[r[0][len(start) :]] = value(cfg, r[0])
    return out


def assign(obj, names, given: dict) -> None:
    """Set obj.<keyword> for each (keyword, setting) of `names`: the checked value `given`
    names, else the setting's default. A keyword not in `names` is a SettingError."""
    for key in given:
        if not any(key == k for k, _ in names):
            raise SettingError(
                key,
                "unknown setting of %s (have: %s)"
                % (type(obj).__name__, ", ".join(k for k, _ in names)),
            )
    for key, name in names:
        setattr(obj, key, check(name, given[key]) if key in given else default(name))


def build(cls, cfg):
    """cls(**its settings as the gate config `cfg` sets them), for a class with SETTINGS."""
    kw = {}
    for key, name in cls.SETTINGS:
        kw[key] = value(cfg, name)
    return cls(**kw)
