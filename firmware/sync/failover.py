"""Which of the back office's sync front ends the gate syncs with next. Portable.

A back office may run several sync front ends (`faregate backoffice serve` processes) on one
database. A gate configured with them (`sync.hosts` = "bo1.metro:7700,bo2.metro:7700"; the
single `sync.host` with `sync.port` is the one-entry list) tries them in order:

    fo = Failover(endpoints(host, port, hosts))
    host, port = fo.current()       # where the next session goes
    fo.succeeded()                  # the session ended well: stay with this one
    again_now = fo.failed()         # it failed (no connect, TLS refused, link dropped mid-
                                    # session): move on to the next one; True while this round
                                    # has one left that has not failed, False once every one
                                    # failed in a row (then the caller backs off)

It remembers the last good one: a gate stays with the front end that answers until it stops
answering, and after a round of failures begins the next round where it left off. What was
uploaded and not acknowledged is uploaded again to whichever answers next; the back office's
ingest by (device_id, seq) stores it once, and its WELCOME (the highest seq it holds) trims
what a lost ACK left on the gate (docs/sync-protocol.md, "Several front ends").
"""

from protocol.errors import FormatError

MAX_ENDPOINTS = 8


class EndpointError(FormatError):
    """A `sync.hosts` entry that is not host[:port] (the settings check reports it as the
    setting's problem: a SettingError, reason bad_config)."""

    reason = "bad_config"


def parse_hosts(text: str, default_port: int, limit: int = MAX_ENDPOINTS) -> list:
    """ "a:7700, b" -> [("a", 7700), ("b", default_port)]; EndpointError if malformed or more
    than `limit` (the station mesh's peers, firmware/mesh/, take more than sync's front ends)."""
    out: list = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            raise EndpointError("an empty entry (two commas, or a comma at an end)")
        host, port = entry, default_port
        if entry.startswith("["):  # [::1]:7700
            end = entry.find("]")
            if end < 0:
                raise EndpointError("%r: no closing ]" % entry)
            host, rest = entry[1:end], entry[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise EndpointError("%r: expected :PORT after ]" % entry)
                port = _port(entry, rest[1:])
        elif entry.count(":") == 1:
            host, p = entry.split(":")
            port = _port(entry, p)
        if not host or " " in host or len(host.encode()) > 253:
            raise EndpointError("%r: not a host name or address" % entry)
        if (host, port) in out:
            raise EndpointError("%r is listed twice" % entry)
        out.append((host, port))
    if len(out) > limit:
        raise EndpointError("at most %d entries" % limit)
    return out


def _port(entry: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise EndpointError("%r: the port is not a number" % entry) from None
    if not 1 <= port <= 65535:
        raise EndpointError("%r: the port must be between 1 and 65535" % entry)
    return port


def endpoints(host, port: int, hosts) -> list:
    """The gate's front ends from its settings: `sync.hosts` when set (each entry's port
    defaulting to `sync.port`), else `sync.host` alone; [] when neither is set."""
    if hosts:
        return parse_hosts(hosts, port)
    return [(host, port)] if host else []


class Failover:
    def __init__(self, eps: list) -> None:
        self.endpoints = list(eps)
        self.index = 0  # the one in use: the last good one, or the next to try
        self.failed_in_a_row = 0

    def set_endpoints(self, eps: list) -> None:
        """The config changed: keep the one in use if it is still listed."""
        eps = list(eps)
        if eps == self.endpoints:
            return
        here = self.current()
        self.endpoints = eps
        self.index = eps.index(here) if here in eps else 0
        self.failed_in_a_row = 0

    def current(self):
        """(host, port) of the next session, or None when there is none."""
        if not self.endpoints:
            return None
        return self.endpoints[self.index % len(self.endpoints)]

    def succeeded(self) -> None:
        self.failed_in_a_row = 0

    def failed(self) -> bool:
        """Move on to the next front end; True if it should be tried now (it has not failed
        in this round), False when every one has failed in a row (back off, then go on)."""
        n = len(self.endpoints)
        if n == 0:
            return False
        self.index = (self.index + 1) % n
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= n:
            self.failed_in_a_row = 0
            return False
        return True
