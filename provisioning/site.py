"""Site files: one station's settings and its gates, in TOML, checked before anything is sent.

    [operator]
    ca_key = "../operator/root.key"     # signs device certificates (the operator root)
    revoked_technicians = []            # technician numbers gates must refuse

    [station]
    id = 12
    name = "Central"
    mode = "metro"                      # metro | parking | store | bus
    scope = 1                           # product bits this station's gates accept

    [lists]                             # files loaded onto every gate (paths relative to
    trust_list = "lists/trust.bin"      # this file); trust_list is required
    deny_list = "lists/deny.bin"
    fare_table = "lists/fares.bin"

    [validation]  window_s = 30, ...    optional: the settings of that section in
    [limits]      [selftest]  [clock]   firmware/settings.py (docs/service-console.md lists them)
    [timing]      pass_ms = 6000, ...   the gate.* settings (the gate modes' timings)
    [bus]         route, stops, ...     the bus.* settings of a route's validators (mode bus)
    [sync]        host, port (or hosts = "bo1:7700,bo2:7700": several front ends of one
                  back office, tried in order with failover), host_key (the back office's
                  sync key, hex; default: sync.pub of the operator directory, next to
                  ca_key), interval_s, and registry: the back office's SQLite file (or its
                  database's postgresql:// URL), where provisioning registers the gate's key
                  (the back office refuses gates it does not know)
    [mesh]        enabled, port, peers (every gate of the station, "host:port,..."; a gate
                  skips its own datagrams), heartbeat_ms, ...: the station mesh (docs/mesh.md)

    [[gate]]                            # one table per gate
    name = "A1"
    device_id = 1017                    # optional: checked against the plugged-in gate
    lane = 1
    direction = "entry"                 # entry | exit | both
    vehicle = 7                         # bus validators: the vehicle it is fitted to

Every error names the file, the line and the field: `site.toml:14: gate[2].direction: ...`.
tomllib reports lines only for syntax errors, so `find_line` finds a key's line itself.
Values are checked with the gate's own schema (firmware/settings.py SCHEMA).
"""

import os
import re
import tomllib
from typing import Any

from firmware import settings
from firmware.compose import gate_config
from protocol.errors import EXIT_USAGE
from provisioning.errors import ProvisioningError


def _rows(prefix: str) -> dict[str, str]:
    """Every setting under `prefix` (firmware/settings.py) as a site-file key."""
    return {k: prefix + "." + k for k in settings.section(prefix)}


# section -> key -> config field it becomes ("" for a file path; "!" marks a required key)
SECTIONS: dict[str, dict[str, str]] = {
    "operator": {"ca_key": "!", "revoked_technicians": "revoked_technicians"},
    "station": {"id": "!station", "name": "station_name", "mode": "!mode", "scope": "!scope"},
    "lists": {"trust_list": "!", "deny_list": "", "fare_table": ""},
    "validation": _rows("validation"),
    "limits": _rows("limits"),
    "sync": dict(_rows("sync"), registry=""),
    "selftest": _rows("selftest"),
    "clock": _rows("clock"),
    "timing": _rows("gate"),
    "bus": {k: v for k, v in _rows("bus").items() if k != "vehicle"},  # per gate: [[gate]]
    "mesh": _rows("mesh"),
}
REQUIRED_SECTIONS = ("operator", "station", "lists")
GATE_KEYS = {"name": "!name", "device_id": "device_id", "lane": "!lane", "direction": "!direction"}
GATE_KEYS["vehicle"] = "bus.vehicle"


class SiteError(ProvisioningError):
    """One problem of a site file: `path:line: field: problem`, and what to do."""

    reason = "bad_site_file"
    exit_code = EXIT_USAGE

    def __init__(self, path: str, line: int, field: str, problem: str, remedy: str = "") -> None:
        super().__init__("%s:%d: %s: %s" % (path, line, field, problem), remedy=remedy)
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem


class SiteErrors(ProvisioningError):
    """All the problems of one site file, in line order. As one line: the last problem, and
    how many more there are (the command prints the others on their own lines first)."""

    reason = "bad_site_file"
    exit_code = EXIT_USAGE

    def __init__(self, errors: list[SiteError]) -> None:
        self.errors = sorted(errors, key=lambda e: e.line)
        last = self.errors[-1]
        more = len(self.errors) - 1
        super().__init__(
            str(last) + (" (and %d more above)" % more if more else ""),
            remedy=last.remedy or "correct the site file",
        )
        self.summary = "; ".join(str(e) for e in self.errors)

    def __str__(self) -> str:
        return self.summary


_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\"' -]+?)\s*\]?\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*=")


def find_line(text: str, section: str, index: int | None, key: str | None) -> int:
    """1-based line of `key` in table `section` (the `index`-th [[section]] for arrays), or of
    the table's header when the key is absent, or 1 when the table is absent."""
    counts: dict[str, int] = {}
    current: tuple[str, int | None] | None = None
    header_line = 0
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            name = m.group(2).strip("\"'")
            if m.group(1):
                counts[name] = counts.get(name, 0) + 1
                current = (name, counts[name] - 1)
            else:
                current = (name, None)
            if current == (section, index):
                header_line = n
            continue
        if current == (section, index) and key is not None:
            k = _KEY.match(line)
            if k and k.group(1).strip("\"'") == key:
                return n
    return header_line or 1


class Gate:
    def __init__(self, fields: dict[str, Any], line: int) -> None:
        self.name: str = fields["name"]
        self.device_id: int | None = fields.get("device_id")
        self.lane: int = fields["lane"]
        self.direction: str = fields["direction"]
        self.vehicle: int | None = fields.get("vehicle")
        self.line = line


class Site:
    def __init__(self, path: str, data: dict[str, Any], gates: list[Gate]) -> None:
        self.path = path
        self.dir = os.path.dirname(os.path.abspath(path))
        self.data = data
        self.gates = gates
        self.ca_key = self._file(data["operator"]["ca_key"])
        lists = data["lists"]
        self.lists = {
            k: self._file(lists[k]) for k in ("trust_list", "deny_list", "fare_table") if k in lists
        }
        registry = data.get("sync", {}).get("registry")
        # a path relative to the site file, or a database URL (postgresql://...) as it is
        url = isinstance(registry, str) and "://" in registry
        self.registry = registry if url else self._file(registry) if registry else None

    def _file(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.dir, rel))

    def select_gate(self, name: str | None, device_id: int) -> Gate:
        """The gate to provision: by --gate NAME, else the only one, else by device id."""
        if name is not None:
            for g in self.gates:
                if g.name == name:
                    return g
            raise SiteErrors(
                [
                    SiteError(
                        self.path,
                        1,
                        "gate",
                        "no [[gate]] named %r (have: %s)"
                        % (name, ", ".join(g.name for g in self.gates)),
                        "pass --gate with one of those names",
                    )
                ]
            )
        if len(self.gates) == 1:
            return self.gates[0]
        for g in self.gates:
            if g.device_id == device_id:
                return g
        raise SiteErrors(
            [
                SiteError(
                    self.path,
                    1,
                    "gate",
                    "%d gates and none has device_id = %d" % (len(self.gates), device_id),
                    "pass --gate NAME (one of %s)" % ", ".join(g.name for g in self.gates),
                )
            ]
        )

    def config_for(self, gate: Gate, device_id: int) -> dict[str, Any]:
        """The gate's config (firmware.compose.gate_config), built from the station and the gate."""
        cfg: dict[str, Any] = {
            "version": gate_config.VERSION,
            "device_id": device_id,
            "name": gate.name,
            "lane": gate.lane,
            "direction": gate.direction,
        }
        for section, keys in SECTIONS.items():
            for key, target in keys.items():
                field = target.lstrip("!")
                if field and key in self.data.get(section, {}):
                    _put(cfg, field, self.data[section][key])
        if gate.vehicle is not None:
            _put(cfg, "bus.vehicle", gate.vehicle)
        return cfg


def _put(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        cfg = cfg.setdefault(p, {})
    cfg[parts[-1]] = value


def load(path: str) -> Site:
    """Read and check a site file; raise SiteErrors listing every problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SiteErrors(
            [SiteError(path, 0, "file", "not found", "give the path of the station's site file")]
        ) from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise SiteErrors(
            [SiteError(path, 1, "file", "not UTF-8 (%s)" % e.reason, "save it as UTF-8")]
        ) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else 1
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise SiteErrors(
            [SiteError(path, line, "syntax", problem, "correct the TOML syntax on that line")]
        ) from None
    errors: list[SiteError] = []

    def err(section: str, index: int | None, key: str | None, problem: str, remedy: str = ""):
        field = section if index is None else "%s[%d]" % (section, index + 1)
        if key:
            field += "." + key
        errors.append(SiteError(path, find_line(text, section, index, key), field, problem, remedy))

    site_dir = os.path.dirname(os.path.abspath(path))
    for section in data:
        if section not in SECTIONS and section != "gate":
            err(section, None, None, "unknown section", "sections: %s, gate" % ", ".join(SECTIONS))
    for section in REQUIRED_SECTIONS:
        if section not in data:
            err(section, None, None, "missing section", "add a [%s] table" % section)
    for section, keys in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            err(section, None, None, "must be a table", "write it as [%s]" % section)
            continue
        _check_table(table, keys, section, None, err, site_dir)
    gates = data.get("gate", [])
    if not isinstance(gates, list) or not gates:
        err("gate", None, None, "no [[gate]] tables", "add one [[gate]] table per gate")
        gates = []
    names: dict[str, int] = {}
    for i, g in enumerate(gates):
        if not isinstance(g, dict):
            err("gate", i, None, "must be a table", "write it as [[gate]]")
            continue
        _check_table(g, GATE_KEYS, "gate", i, err, site_dir)
        name = g.get("name")
        if isinstance(name, str):
            if name in names:
                err("gate", i, "name", "%r is also gate %d's name" % (name, names[name] + 1))
            names[name] = i
    _default_host_key(data, site_dir, err)
    if errors:
        raise SiteErrors(errors)
    return Site(
        path,
        data,
        [Gate(g, find_line(text, "gate", i, None)) for i, g in enumerate(gates)],
    )


def _default_host_key(data: dict[str, Any], site_dir: str, err: Any) -> None:
    """A gate that syncs needs the operator's sync public key: without [sync] host_key it is
    sync.pub of the operator directory that ca_key is in (`faregate keys init` makes it)."""
    sync, ca_key = data.get("sync"), data.get("operator", {}).get("ca_key")
    if not isinstance(sync, dict) or not ("host" in sync or "hosts" in sync) or "host_key" in sync:
        return
    if not isinstance(ca_key, str):
        return  # reported already
    path = os.path.normpath(os.path.join(site_dir, os.path.dirname(ca_key), "sync.pub"))
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError:
        err(
            "sync",
            None,
            "host_key",
            "missing, and there is no %s to take it from" % path,
            "run `faregate keys init --dir %s` (it adds the sync key), or set host_key"
            % os.path.dirname(path),
        )
        return
    problem = settings.problem("sync.host_key", value)
    if problem:
        err("sync", None, "host_key", "%s: %s" % (path, problem), "restore it from backup")
        return
    sync["host_key"] = value


def _check_table(table, keys, section, index, err, site_dir) -> None:
    for key, value in table.items():
        if key not in keys:
            close = [k for k in keys if k[:3] == key[:3]]
            err(
                section,
                index,
                key,
                "unknown key",
                "did you mean %s?" % close[0] if close else "keys: %s" % ", ".join(keys),
            )
            continue
        target = keys[key].lstrip("!")
        if target:
            problem = settings.problem(target, value)
            if problem:
                err(section, index, key, problem, _remedy(target))
        elif not isinstance(value, str):
            err(section, index, key, "must be a file path (a string)")
        elif key == "registry" and "://" in value:
            pass  # the back office's database server (postgresql://...), not a file
        elif not os.path.isfile(os.path.join(site_dir, value)):
            err(
                section,
                index,
                key,
                "file %s not found" % os.path.normpath(os.path.join(site_dir, value)),
                "paths are relative to the site file",
            )
    for key, target in keys.items():
        if target.startswith("!") and key not in table:
            err(section, index, key, "missing", "add `%s = ...` to this table" % key)


def _remedy(field: str) -> str:
    _name, kind, check = settings.row(field)[:3]
    if kind == "bool":
        return "use true or false"
    if kind == "hex":
        return "use %d bytes as hex (the operator's sync.pub, from `faregate keys init`)" % check[0]
    if kind == "choice":
        return "use one of: %s" % ", ".join(check)
    if kind == "str":
        return "use a string of %d to %d bytes" % check
    return "use an integer from %d to %d" % check
