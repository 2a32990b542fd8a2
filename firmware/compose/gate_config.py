"""The gate's config: a small JSON object the technician's tools write over the console.

FIELDS is the one schema: the gate checks a config against it before installing it, and the
technician's tools (provisioning.site) check the site file's values against the same entries,
so a bad value is caught on the laptop with its file and line, and again on the gate.

    name -> (type, required, check)
    type "int" | "str" | "ints" | "hex" | "bool";  check: (min, max) for ints (and for the
    length of a str, or the byte length of a hex string), or a tuple of allowed strings.
    A dotted name lives in a nested object ("sync.port").

The `sync` fields tell the gate where its back office is (host, port), which key it proves
itself with (host_key: the operator's sync public key, SEC1 hex: the operator directory's
sync.pub from `faregate keys init`) and how often to sync (interval_s). The `gate` fields tune
the mode tables' timings (firmware/gate/modes.py DEFAULTS says what each means).
`clock.ahead_tolerance_s` is how far the RTC may run ahead of the time the gate has counted
before the gate calls it a jump (firmware/verify/timeanchor.py).
"""

import json

from protocol.errors import FormatError

VERSION = 1

FIELDS: dict = {
    "version": ("int", True, (1, 1)),
    "device_id": ("int", True, (1, 0xFFFFFFFF)),
    "name": ("str", True, (1, 16)),
    "station": ("int", True, (0, 0xFFFF)),
    "station_name": ("str", False, (0, 64)),
    "lane": ("int", True, (0, 255)),
    "mode": ("str", True, ("metro", "parking", "store")),
    "direction": ("str", True, ("entry", "exit", "both")),
    "scope": ("int", True, (1, 0xFFFF)),
    "validation.window_s": ("int", False, (5, 3600)),
    "validation.skew_s": ("int", False, (0, 600)),
    "validation.stale_trust": ("str", False, ("refuse", "accept_flagged")),
    "limits.max_unsynced_count": ("int", False, (1, 10000000)),
    "limits.max_unsynced_age_s": ("int", False, (60, 30 * 86400)),
    "limits.at_limit": ("str", False, ("refuse", "flag")),
    "sync.host": ("str", False, (1, 253)),
    "sync.port": ("int", False, (1, 65535)),
    "sync.host_key": ("hex", False, (33, 33)),
    "sync.interval_s": ("int", False, (1, 86400)),
    "gate.pass_ms": ("int", False, (500, 120000)),
    "gate.parking_pass_ms": ("int", False, (1000, 600000)),
    "gate.unlock_ms": ("int", False, (500, 120000)),
    "gate.held_ms": ("int", False, (1000, 600000)),
    "gate.loiter_ms": ("int", False, (1000, 600000)),
    "gate.passback_s": ("int", False, (0, 86400)),
    "gate.session_max_s": ("int", False, (60, 7 * 86400)),
    "gate.require_entry": ("bool", False, ()),
    "gate.value": ("int", False, (0, 1000000)),
    "selftest.scan_timeout_s": ("int", False, (1, 120)),
    "clock.ahead_tolerance_s": ("int", False, (1, 86400)),
    "revoked_technicians": ("ints", False, (1, 0xFFFFFFFF)),
}

DEFAULTS = {
    "validation.window_s": 60,
    "validation.skew_s": 10,
    "validation.stale_trust": "refuse",
    "selftest.scan_timeout_s": 15,
    "sync.port": 7700,
    "sync.interval_s": 60,
    "clock.ahead_tolerance_s": 10,
}


def check_value(name: str, value) -> object:
    """None if `value` is acceptable for field `name`, else a short description of the problem."""
    entry = FIELDS.get(name)
    if entry is None:
        return "unknown field"
    kind, _required, check = entry[0], entry[1], entry[2]
    if kind == "ints":
        if not isinstance(value, list):
            return "must be a list of integers"
        for v in value:
            problem = check_value_int(v, check)
            if problem:
                return "each entry " + problem
        return None
    if kind == "int":
        return check_value_int(value, check)
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be a string"
    if kind == "hex":
        try:
            n = len(bytes.fromhex(value))
        except ValueError:
            return "must be hexadecimal"
        if not check[0] <= n <= check[1]:
            return "must be %d to %d bytes (twice as many hex digits)" % check
        return None
    if isinstance(check[0], str):
        if value not in check:
            return "%r is not one of %s" % (value, ", ".join(check))
        return None
    if not check[0] <= len(value.encode()) <= check[1]:
        return "must be %d to %d bytes long" % check
    return None


def check_value_int(value, check):
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not check[0] <= value <= check[1]:
        return "must be between %d and %d" % check
    return None


def _lookup(obj: dict, name: str):
    cur = obj
    for part in name.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _walk(obj: dict, prefix: str, out: list) -> None:
    for key in obj:
        name = prefix + key
        if isinstance(obj[key], dict):
            _walk(obj[key], name + ".", out)
        else:
            out.append(name)


def validate(cfg, device_id: int = 0) -> None:
    """Raise FormatError naming the first bad field; `device_id` (if given) must match."""
    if not isinstance(cfg, dict):
        raise FormatError("config must be a JSON object", "bad_config")
    names: list = []
    _walk(cfg, "", names)
    for name in names:
        if name not in FIELDS:
            raise FormatError("config field %s: unknown field" % name, "bad_config")
    for name in FIELDS:
        present, value = _lookup(cfg, name)
        if not present:
            if FIELDS[name][1]:
                raise FormatError("config field %s: missing" % name, "bad_config")
            continue
        problem = check_value(name, value)
        if problem:
            raise FormatError("config field %s: %s" % (name, problem), "bad_config")
    if device_id and cfg["device_id"] != device_id:
        raise FormatError(
            "config is for device %d, this is device %d" % (cfg["device_id"], device_id),
            "bad_config",
        )


def parse(data: bytes, device_id: int = 0) -> dict:
    try:
        cfg = json.loads(bytes(data).decode())
    except (ValueError, UnicodeError):
        raise FormatError("config is not UTF-8 JSON", "bad_config") from None
    validate(cfg, device_id)
    return cfg


def get(cfg, name: str):
    """A field's value, or its default (None when there is none)."""
    if cfg:
        present, value = _lookup(cfg, name)
        if present:
            return value
    return DEFAULTS.get(name)
