"""Bus validator: a reader on a vehicle, its position from a GNSS receiver, stops from a route.

No barrier moves: boarding riders tap on at the front door's reader (direction entry), and on
routes priced by stops travelled tap off at the rear doors' reader (direction exit). What the
table tracks is where the vehicle is, because every record carries the stop it was made at
(in the record's `station` field: stop ids are station ids of the network):

    idle      no GNSS fix (at boot, or lost for bus.fix_timeout_s): codes are still accepted,
              their records carry the last stop reached, flagged FLAG_STOP_STALE
    moving    a fix, between stops
    at_stop   a fix inside a stop's geofence (bus.radius_m) for bus.dwell_s: the stop is
              reached, journaled once as the event stop_reached (station = the stop)
    (plus the common states of firmware/gate/modes.py)

`Position` is the part the gate loop polls: it reads fixes from a GNSS source (drivers/portable/
gnss.py on a UART, drivers/linux/gnss_serial.py on pyserial + pynmea2), decides where the vehicle
is, and raises the one event that moves the table there (fix_ok, fix_lost, stop_arrived,
stop_departed). It stamps every record the gate makes (`Gate.stamp`): the stop, and the
stale-position flag. The vehicle and route are in the validator's config (bus.vehicle,
bus.route); record v2 carries them in the record (see `Position.stamp`).
"""

import math

from firmware import platform
from firmware.gate import policy as _policy
from protocol.errors import FormatError
from protocol.fsm import SAME

MOVING = "moving"
AT_STOP = "at_stop"
NO_FIX = "idle"  # the resting state every mode starts in: here, no position yet

# A record flag of its own until record v2 names it in protocol/records.py (bits 0-2 are taken):
# the record's stop is the last one reached, not where the vehicle was (no GNSS fix).
FLAG_STOP_STALE = 8

_ACCEPT = ("done", "signal:accept", "start:show")
_READY = ("show:ready",)

TABLE = {
    (NO_FIX, "fix_ok"): (MOVING, ("event:gnss_fix",)),
    (NO_FIX, "paid"): (SAME, _ACCEPT),
    (NO_FIX, "show_timeout"): (SAME, _READY),
    (MOVING, "stop_arrived"): (AT_STOP, ("event:stop_reached",)),
    (MOVING, "fix_lost"): (NO_FIX, ("event:gnss_lost",)),
    (MOVING, "paid"): (SAME, _ACCEPT),
    (MOVING, "show_timeout"): (SAME, _READY),
    (AT_STOP, "stop_departed"): (MOVING, ()),
    (AT_STOP, "fix_lost"): (NO_FIX, ("event:gnss_lost",)),
    (AT_STOP, "paid"): (SAME, _ACCEPT),
    (AT_STOP, "show_timeout"): (SAME, _READY),
}

SCANS = {
    NO_FIX: None,
    MOVING: None,
    AT_STOP: None,
}

TIMERS = {"show": "show_ms"}


def policy(cfg: dict):
    """Tap-on / tap-off: no second tap-on within passback_s while on board (anti_passback),
    no second tap-off (already_exited); a tap-off without a tap-on is accepted (the back
    office prices it as a missing tap-on)."""
    return _policy.Passback(int(cfg["passback_s"]), False)


class RouteError(FormatError):
    """A bus.stops setting that is not a list of stops (names the bad entry)."""

    reason = "bad_config"


def _e7(text: str) -> int:
    """Decimal degrees ("-33.8688") -> integer 1e-7 degrees, exactly (no float)."""
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 7:
        raise RouteError("bad degrees %r" % text)
    v = int(whole) * 10000000 + int((frac + "0000000")[:7])
    return -v if neg else v


def parse_stops(text: str) -> list:
    """The bus.stops setting, "id:lat:lon;id:lat:lon;..." (decimal degrees, the route's stops
    in order) -> [(stop id, lat_e7, lon_e7)]; RouteError names the first bad entry."""
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        bits = part.split(":")
        if len(bits) != 3 or not bits[0].isdigit():
            raise RouteError("bad stop %r (want id:lat:lon)" % part)
        stop, lat, lon = int(bits[0]), _e7(bits[1]), _e7(bits[2])
        if not 0 < stop <= 0xFFFF or abs(lat) > 900000000 or abs(lon) > 1800000000:
            raise RouteError("stop out of range %r" % part)
        out.append((stop, lat, lon))
    return out


EARTH_M = 6371008.8  # mean Earth radius (IUGG)


def distance_m(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> float:
    """Distance in metres (equirectangular: within a geofence's few hundred metres its error is
    far below a receiver's)."""
    k = math.pi / 1800000000
    x = (lon2_e7 - lon1_e7) * k * math.cos((lat1_e7 + lat2_e7) * k / 2)
    y = (lat2_e7 - lat1_e7) * k
    return EARTH_M * math.sqrt(x * x + y * y)


class Route:
    """The stops of a vehicle's route and how a stop is detected (radius, dwell)."""

    def __init__(self, number: int, stops: list, radius_m: int, dwell_ms: int):
        self.number = number
        self.stops = stops  # [(stop id, lat_e7, lon_e7)] in route order
        self.radius_m = radius_m
        self.dwell_ms = dwell_ms

    def stop_at(self, lat_e7: int, lon_e7: int) -> int:
        """The stop whose geofence holds the point (the nearest if two overlap), or 0."""
        best, best_d = 0, self.radius_m
        for stop, lat, lon in self.stops:
            if abs(lat - lat_e7) > 100000:  # > 1 km north or south: not this one
                continue
            d = distance_m(lat, lon, lat_e7, lon_e7)
            if d <= best_d:
                best, best_d = stop, d
        return best


def route_from(cfg: dict) -> Route:
    """The Route of a config's `bus` section (firmware/settings.py bus.* rows)."""
    return Route(
        int(cfg.get("route", 0)),
        parse_stops(cfg.get("stops", "") or ""),
        int(cfg["radius_m"]),
        int(cfg["dwell_s"]) * 1000,
    )


class Position:
    """Where the vehicle is, from a GNSS source's fixes: a poller of the gate loop.

    `gnss.fixes()` returns the protocol.nmea.Fix objects received since the last call
    (invalid ones included: the receiver saying it has no fix); a source that counts bad
    sentences has `.bad` (checksum or malformed lines dropped)."""

    def __init__(self, gnss, route: Route, vehicle: int = 0, fix_timeout_ms: int = 5000):
        self.gnss = gnss
        self.route = route
        self.vehicle = vehicle
        self.fix_timeout_ms = fix_timeout_ms
        self.gate = None  # set by attach()
        self.ticks = platform.ticks_ms
        self.fixed = False
        self.last_fix_ms = 0
        self.lat_e7 = self.lon_e7 = None
        self.inside = 0  # the stop whose geofence the vehicle is in now (0: none)
        self.inside_since = 0
        self.stop = 0  # the last stop reached (what records carry)
        self.fixes = 0
        self.no_fix = 0  # sentences saying the receiver has no fix

    def attach(self, gate) -> None:
        """Stamp the gate's records and follow its ticks."""
        self.gate = gate
        self.ticks = gate.ticks
        gate.stamp = self.stamp

    def stamp(self, rec) -> None:
        """Called for every record the gate makes, before it is journaled."""
        rec.station = self.stop
        if not self.fixed:
            rec.flags |= FLAG_STOP_STALE
        # record v2 (protocol/records.py, owned by settle): set here, one line each:
        # rec.vehicle = self.vehicle; rec.route = self.route.number

    def _reached(self, now: int) -> int:
        """The stop reached now (inside its geofence for the dwell), or 0."""
        if self.inside and platform.ticks_diff(now, self.inside_since) >= self.route.dwell_ms:
            return self.inside
        return 0

    def poll(self) -> list:
        now = self.ticks()
        for fix in self.gnss.fixes():
            if not fix.valid:
                self.no_fix += 1
                continue
            self.fixes += 1
            self.fixed, self.last_fix_ms = True, now
            self.lat_e7, self.lon_e7 = fix.lat_e7, fix.lon_e7
            here = self.route.stop_at(fix.lat_e7, fix.lon_e7)
            if here != self.inside:
                self.inside, self.inside_since = here, now
        if self.fixed and platform.ticks_diff(now, self.last_fix_ms) >= self.fix_timeout_ms:
            self.fixed = False
            self.inside = 0
        return self._events(now)

    def _events(self, now: int) -> list:
        """The event that moves the table to where the vehicle is (none in other states:
        an emergency or out of service is left alone, and re-announced when it ends)."""
        state = self.gate.state if self.gate is not None else NO_FIX
        reached = self._reached(now) if self.fixed else 0
        if state == NO_FIX:
            return ["fix_ok"] if self.fixed else []
        if state not in (MOVING, AT_STOP):
            return []
        if not self.fixed:
            return ["fix_lost"]
        if state == MOVING and reached:
            self.stop = reached  # before the event: its record carries the stop
            return ["stop_arrived"]
        if state == AT_STOP and reached != self.stop:
            return ["stop_departed"]
        return []

    def status(self) -> dict:
        return {
            "fixed": self.fixed,
            "stop": self.stop,
            "inside": self.inside,
            "lat_e7": self.lat_e7,
            "lon_e7": self.lon_e7,
            "fixes": self.fixes,
            "no_fix": self.no_fix,
            "bad_sentences": getattr(self.gnss, "bad", 0),
        }


class NoBarrier:
    """A validator has nothing to open: the common rows' open / close do nothing."""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class NoGnss:
    """A validator wired without a receiver: never a fix (every record flagged stale)."""

    bad = 0

    def fixes(self) -> list:
        return []


def position_for(gate, gnss, cfg: dict) -> Position:
    """The Position of a bus validator from its config's bus section, attached to `gate`."""
    from firmware import settings

    full = settings.section("bus")
    full.update(cfg)
    pos = Position(
        gnss if gnss is not None else NoGnss(),
        route_from(full),
        int(full["vehicle"]),
        int(full["fix_timeout_s"]) * 1000,
    )
    pos.attach(gate)
    return pos
