"""The gate's config: a small JSON object the technician's tools write over the console.

Its fields are the settings of firmware/settings.py (SCHEMA: type, bounds, default, unit and
meaning of each; docs/service-console.md shows the table): the gate checks a config against it
before installing it, and the technician's tools (provisioning.site) check the site file's
values against the same rows, so a bad value is caught on the laptop with its file and line,
and again on the gate. A section is a nested object (`{"sync": {"port": 7700}}`); a flat dotted
key ("sync.port") means the same and is checked the same.

Over sync, who signed a config decides what it may change (firmware/compose/roles.py
`delivered`, docs/security.md "Roles").
"""

import json

from firmware import settings
from protocol import service
from protocol.errors import FormatError

VERSION = 1


def validate(cfg, device_id: int = 0) -> None:
    """Raise SettingError (a FormatError) naming the first bad setting; `device_id` (if given)
    must match."""
    flat = settings.validate(cfg)
    stops = flat.get("bus.stops")
    if stops:  # a bus validator's route: every stop must parse, or no stop is ever found
        from firmware.gate import bus

        try:
            bus.parse_stops(stops)
        except bus.RouteError as e:
            raise settings.SettingError("bus.stops", str(e)) from None
    theirs = flat["device_id"]
    if device_id and theirs != device_id:
        problem = "config is for device %d, this is device %d" % (theirs, device_id)
        raise settings.SettingError("device_id", problem)


def parse(data: bytes, device_id: int = 0) -> dict:
    try:
        cfg = json.loads(bytes(data).decode())
    except (ValueError, UnicodeError):
        raise FormatError("config is not UTF-8 JSON", "bad_config") from None
    validate(cfg, device_id)
    return cfg


def stored(store):
    """The config a DeviceStore holds, parsed and checked, or None (none, or a bad one)."""
    raw = store.read_blob(service.BLOB_CONFIG)
    if not raw:
        return None
    try:
        return parse(raw, store.device_id)
    except FormatError:
        return None


def get(cfg, name: str):
    """A setting's value in `cfg`, or its default (None when there is none)."""
    return settings.value(cfg, name)
