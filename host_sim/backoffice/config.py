"""`faregate backoffice serve --config FILE`: the back office's settings in TOML, checked first.

    [sync]
    listen = ["0.0.0.0:7700"]        # HOST:PORT gates connect to (several allowed)
    sync_key = "/etc/faregate/sync.key"
    idle_timeout_s = 60              # a session silent this long is closed
    workers = 2                      # front-end processes on the port (default 1; <= cores)
    reuse_port = false               # true: a socket per worker (SO_REUSEPORT), spread evenly
    group_commit = true              # sessions' writes in shared transactions (the default)
    serial = "/dev/ttyUSB0"          # optional: also a gate on this serial port (pyserial URL)

    [store]
    path = "/var/lib/faregate/backoffice.sqlite"   # SQLite, embedded (the default), or:
    url = "postgresql://faregate@/faregate?host=/run/postgresql"   # PostgreSQL (not both)

    [tls]                            # all three, or none (plain TCP: loopback only)
    cert = "/etc/faregate/bo.pem"
    key = "/etc/faregate/bo.key"
    ca = "/etc/faregate/ca.pem"

    [http]
    listen = "127.0.0.1:9108"        # /healthz, /metrics and the dashboard (plain HTTP)

    [log]
    file = "/var/log/faregate/backoffice.jsonl"   # JSON lines; default: standard output
    [translog]                       # the transparency log (docs/settlement.md)
    key = "/etc/faregate/log.key"    # signs its tree heads (default: the sync key)
    head_interval_s = 3600           # a signed head at least this often (1..3600)

    [risk]                           # the risk engine on arrival (docs/fraud.md), if deny_key
    deny_key = "/etc/faregate/deny.key"   # the operator key that signs deny lists
    root_key_id = 1                  # ignored (lists name their signers' key ids since format 3)
    rules = "/etc/faregate/risk.toml"     # the rules' settings (default: the built-in ones)
    every_s = 30                     # also run this often without arrivals (expiry, refresh)

Relative paths are relative to the config file. Every key is optional and defaults as in
FIELDS; `serve`'s flags override the file. Every problem is reported with the file's line:
`backoffice.toml:3: sync.listen: ...` (tomllib gives lines only for syntax errors, so the
site file's `find_line` finds a key's line).
"""

import ipaddress
import os
import re
import tomllib
from typing import Any

from host_sim.errors import SimError
from provisioning.site import find_line

# "section.key" -> (kind, default, meaning); kinds: listen (HOST:PORT, or a list of them),
# addr (one HOST:PORT), path, str, seconds (an int in 1..3600), url (postgresql://...),
# count (an int in 1..64), bool
FIELDS: dict[str, tuple[str, Any, str]] = {
    "sync.listen": ("listen", ["127.0.0.1:7700"], "addresses gates connect to"),
    "sync.sync_key": ("path", os.path.join("operator", "sync.key"), "the operator's sync key"),
    "sync.idle_timeout_s": ("seconds", 60, "a session silent this long is closed"),
    "sync.serial": ("str", None, "also serve a gate on this serial port (pyserial URL)"),
    "sync.workers": ("count", 1, "sync front-end processes on the same port (1..64)"),
    "sync.reuse_port": ("bool", False, "a listening socket per worker (SO_REUSEPORT)"),
    "sync.group_commit": ("bool", True, "concurrent sessions' writes in one transaction"),
    "store.path": ("path", "backoffice.sqlite", "the SQLite file"),
    "store.url": ("url", None, "the store on PostgreSQL instead: a postgresql:// URL"),
    "tls.cert": ("path", None, "the back office's TLS certificate (PEM)"),
    "tls.key": ("path", None, "its private key"),
    "tls.ca": ("path", None, "the operator CA of the gates' client certificates"),
    "http.listen": ("addr", None, "HOST:PORT of /healthz, /metrics and the dashboard"),
    "log.file": ("path", None, "JSON-lines log file (default: standard output)"),
    "translog.key": ("path", None, "the key that signs the log's heads (default: the sync key)"),
    "translog.head_interval_s": ("seconds", 3600, "a signed tree head at least this often"),
    "risk.deny_key": ("path", None, "the key that signs deny lists: runs the risk engine"),
    "risk.root_key_id": (
        "count",
        1,
        "ignored: deny lists of format 3 carry their signers' key ids (kept so older files load)",
    ),
    "risk.rules": ("path", None, "the risk engine's settings (docs/fraud.md section 3)"),
    "risk.every_s": ("seconds", 30, "run the engine this often without arrivals too"),
}


class ConfigError(SimError):
    """A back-office config file that cannot be used: every problem as `path:line: key: what`."""

    reason = "bad_config"
    remedy = "correct the config file"

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = sorted(problems)
        super().__init__("; ".join(p for _line, p in self.problems))


def parse_addr(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 address in brackets: [::1]:7700) -> (host, port); ValueError else."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text)
    if not m:
        raise ValueError("%r is not HOST:PORT" % text)
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if m.group(1):
        ipaddress.IPv6Address(host)
    if not 0 <= int(port) <= 65535:
        raise ValueError("port %s is not 0..65535" % port)
    return host, int(port)


def defaults() -> dict[str, Any]:
    return {k: v[1] for k, v in FIELDS.items()}


def _value(kind: str, v: Any, base: str) -> Any:
    """The checked value of one key (ValueError with what is wrong)."""
    if kind in ("path", "str"):
        if not isinstance(v, str) or not v:
            raise ValueError("must be a non-empty string")
        return os.path.join(base, v) if kind == "path" else v
    if kind == "url":
        if not isinstance(v, str) or not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (libpq: postgresql://USER@HOST/DB)")
        return v
    if kind == "seconds":
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 3600:
            raise ValueError("must be a whole number of seconds, 1..3600")
        return v
    if kind == "count":
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 64:
            raise ValueError("must be a whole number, 1..64")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ValueError("must be true or false")
        return v
    if kind == "addr":
        if not isinstance(v, str):
            raise ValueError('must be a string "HOST:PORT"')
        parse_addr(v)
        return v
    items = [v] if isinstance(v, str) else v  # listen
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ValueError('must be "HOST:PORT" or a list of them')
    for i in items:
        parse_addr(i)
    return items


def load(path: str) -> dict[str, Any]:
    """The settings a config file sets ("section.key" -> value); raises ConfigError."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise ConfigError([(0, "%s: %s" % (path, e.strerror or e))]) from None
    except UnicodeDecodeError:
        raise ConfigError([(1, "%s:1: not UTF-8" % path)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else 1
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise ConfigError([(line, "%s:%d: syntax: %s" % (path, line, problem))]) from None
    base = os.path.dirname(path)
    problems: list[tuple[int, str]] = []
    values: dict[str, Any] = {}

    def bad(section: str, key: str | None, problem: str) -> None:
        line = find_line(text, section, None, key)
        problems.append(
            (line, "%s:%d: %s: %s" % (path, line, section + ("." + key if key else ""), problem))
        )

    sections = sorted({k.split(".")[0] for k in FIELDS})
    for section, table in data.items():
        if section not in sections:
            bad(section, None, "unknown section (sections: %s)" % ", ".join(sections))
            continue
        if not isinstance(table, dict):
            bad(section, None, "must be a table [%s]" % section)
            continue
        for key, v in table.items():
            name = section + "." + key
            if name not in FIELDS:
                known = [k.split(".")[1] for k in FIELDS if k.startswith(section + ".")]
                bad(section, key, "unknown key (keys: %s)" % ", ".join(known))
                continue
            try:
                values[name] = _value(FIELDS[name][0], v, base)
            except ValueError as e:
                bad(section, key, str(e))
    tls = [k for k in ("tls.cert", "tls.key", "tls.ca") if k in values]
    if tls and len(tls) < 3:
        missing = [k.split(".")[1] for k in ("tls.cert", "tls.key", "tls.ca") if k not in tls]
        bad("tls", None, "needs cert, key and ca together (missing: %s)" % ", ".join(missing))
    if "store.path" in values and "store.url" in values:
        bad("store", "url", "set path (SQLite) or url (PostgreSQL), not both")
    if problems:
        raise ConfigError(problems)
    return values
