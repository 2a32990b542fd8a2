"""Clearing's bus rules: journeys from a bus validator's taps, and transfer discounts.

Called from clearing.py (its MODES table and `journeys()`); pure, like the rest of clearing.
A bus validator's records (mode 4, firmware/gate/bus.py) carry the stop they were made at in
their `station` field (stop ids are station ids of the network), and bit 3 of their flags
(FLAG_STOP_STALE) when the validator had no GNSS fix: the stop is then the last one reached,
not where the rider was.

The tariff's [bus] section (host_sim/scenarios/tariffs/bus.toml shows one):

    fare            "flat": each boarding (tap-on) costs `flat_fare` (rule bus.flat_fare);
                    a tap-off is attached to its boarding and costs nothing.
                    "stops": a tap-on and the next tap-off within `max_journey_s` make a
                    journey priced by the stops travelled along its route: `band_fares[i]`
                    for the first band i with stops <= `stop_bands[i]`, else the last band
                    (rule bus.band_fares[i]); a tap-on with no tap-off, or a tap-off with no
                    tap-on, is `max_fare` (rule bus.max_fare); a journey whose stops cannot
                    be counted (a stop on no route, or a stale stop) is `flat_fare` (rule
                    bus.flat_fare, flag stop_unknown).
    routes          {"route number" = [stop ids in order]}: stops travelled = how far apart
                    the two stops are on a route holding both (the fewest, if several do)
    transfers       within `transfer_window_s` of the boarding that began a chain, up to
                    `max_transfers` later journeys get a discount: a bus boarding
                    `transfer_bus` off (rule suffix +bus.transfer_bus), a metro journey
                    `transfer_metro` off (+bus.transfer_metro), never below 0, flag transfer.
                    A journey that got a discount does not begin a new chain; a penalty fare
                    (bus.max_fare, metro.max_fare) neither gets a discount nor begins one.

A bus journey's status is one of clearing's: complete, open (stops mode, tap-off still
possible), missing_exit, missing_entry, emergency, emergency_exit, plus `tap_off_only` (flat
mode: a tap-off whose boarding is not there, 0). Amounts are integer minor units.
"""

from typing import Any

from protocol.records import DIR_ENTRY, DIR_EXIT, FLAG_EMERGENCY

MODE_BUS = 4  # firmware/gate/modes.MODE_BUS; protocol/records.py names it with record v2
FLAG_STOP_STALE = 8  # firmware/gate/bus.FLAG_STOP_STALE

DEFAULT: dict[str, Any] = {
    "fare": "flat",
    "flat_fare": 200,
    "stop_bands": [3, 8],
    "band_fares": [150, 220, 300],
    "max_fare": 300,
    "max_journey_s": 3 * 3600,
    "routes": {},
    "transfer_window_s": 3600,
    "transfer_bus": 200,
    "transfer_metro": 100,
    "max_transfers": 2,
}

# what a transfer can discount, and what begins a chain: charged journeys, not the 0 ones
_NOT_A_BOARDING = ("voided", "fraud_copy", "held_clock", "emergency", "tap_off_only")
_PENALTIES = ("bus.max_fare", "metro.max_fare")


def check(b: dict[str, Any], error: Any) -> None:
    """Raise `error(message)` (clearing's TariffError) for a [bus] section that cannot apply."""
    if b["fare"] not in ("flat", "stops"):
        raise error('bus fare must be "flat" or "stops", not %r' % (b["fare"],))
    for k in ("flat_fare", "max_fare", "transfer_bus", "transfer_metro"):
        if not isinstance(b[k], int) or b[k] < 0:
            raise error("bus %s must be an amount >= 0" % k)
    for k in ("max_journey_s", "transfer_window_s", "max_transfers"):
        if not isinstance(b[k], int) or b[k] < 0:
            raise error("bus %s must be an integer >= 0" % k)
    bands, fares = b["stop_bands"], b["band_fares"]
    if not all(isinstance(n, int) and n >= 0 for n in bands) or sorted(bands) != list(bands):
        raise error("bus stop_bands must be rising stop counts")
    if len(fares) != len(bands) + 1 or any(not isinstance(f, int) or f < 0 for f in fares):
        raise error("bus band_fares must be one amount more than stop_bands")
    for route, stops in b["routes"].items():
        if not str(route).isdigit() or not all(isinstance(s, int) and s > 0 for s in stops):
            raise error("bus routes: %r must be a route number and a list of stop ids" % route)


_POSITIONS: dict[int, tuple[Any, dict[int, list[tuple[int, int]]]]] = {}


def _positions(routes: dict[str, list[int]]) -> dict[int, list[tuple[int, int]]]:
    """stop -> [(route, index on it)], made once per tariff table."""
    got = _POSITIONS.get(id(routes))
    if got is None or got[0] is not routes:
        pos: dict[int, list[tuple[int, int]]] = {}
        for route, stops in routes.items():
            for i, stop in enumerate(stops):
                pos.setdefault(stop, []).append((int(route), i))
        got = _POSITIONS[id(routes)] = (routes, pos)
    return got[1]


def stops_travelled(a: int, b: int, routes: dict[str, list[int]]) -> int | None:
    """How many stops apart a and b are on a route holding both (None: no such route)."""
    pos = _positions(routes)
    best = None
    for ra, ia in pos.get(a, ()):
        for rb, ib in pos.get(b, ()):
            if ra == rb and (best is None or abs(ia - ib) < best):
                best = abs(ia - ib)
    return best


def band_fare(stops: int, b: dict[str, Any]) -> tuple[int, str]:
    for i, limit in enumerate(b["stop_bands"]):
        if stops <= limit:
            return b["band_fares"][i], "bus.band_fares[%d]" % i
    n = len(b["stop_bands"])
    return b["band_fares"][n], "bus.band_fares[%d]" % n


def journeys(account: int, taps: list, b: dict[str, Any], as_of: int) -> list[dict[str, Any]]:
    """One account's bus journeys from its bus passages in time order (clearing's MODES)."""
    from host_sim.backoffice.clearing import _exit_without_entry, _flags_of, _journey

    out: list[dict[str, Any]] = []
    open_ = None  # the tap-on waiting for its tap-off
    open_j: dict[str, Any] | None = None  # flat mode: the boarding's journey, charged already
    stops_mode = b["fare"] == "stops"

    def missing_exit(entry: Any) -> dict[str, Any]:
        return _journey(
            "bus",
            account,
            entry,
            None,
            "missing_exit",
            b["max_fare"],
            "bus.max_fare",
            _flags_of(entry),
        )

    for tap in taps:
        emergency = tap.flags & FLAG_EMERGENCY
        if tap.direction == DIR_ENTRY:
            if emergency:
                out.append(_journey("bus", account, tap, None, "emergency", 0, "emergency"))
                continue
            if stops_mode:
                if open_ is not None:
                    out.append(missing_exit(open_))
                open_ = tap
            else:
                open_j = _journey(
                    "bus",
                    account,
                    tap,
                    None,
                    "complete",
                    b["flat_fare"],
                    "bus.flat_fare",
                    _flags_of(tap),
                )
                open_ = tap
                out.append(open_j)
        elif tap.direction == DIR_EXIT:
            if open_ is not None and tap.time - open_.time > b["max_journey_s"]:
                if stops_mode:
                    out.append(missing_exit(open_))
                open_, open_j = None, None
            if not stops_mode:
                if open_j is None:
                    out.append(
                        _journey("bus", account, None, tap, "tap_off_only", 0, "bus.flat_fare")
                    )
                else:  # the boarding's journey, now with its tap-off
                    open_j["exit"] = tap.brief()
                    open_j["records"].append(tap.key())
                    open_, open_j = None, None
                continue
            if open_ is None:
                out.append(_exit_without_entry("bus", account, tap, b["max_fare"], "bus.max_fare"))
                continue
            flags = _flags_of(open_, tap) + (("emergency_exit",) if emergency else ())
            n = None
            if not (open_.flags | tap.flags) & FLAG_STOP_STALE:
                n = stops_travelled(open_.station, tap.station, b["routes"])
            if n is None:
                fare, rule = b["flat_fare"], "bus.flat_fare"
                flags += ("stop_unknown",)
            else:
                fare, rule = band_fare(n, b)
            out.append(_journey("bus", account, open_, tap, "complete", fare, rule, flags))
            open_ = None
    if stops_mode and open_ is not None:
        if as_of - open_.time > b["max_journey_s"]:
            out.append(missing_exit(open_))
        else:
            out.append(_journey("bus", account, open_, None, "open", 0, "open"))
    return out


def apply_transfers(js: list[dict[str, Any]], tariff: dict[str, Any]) -> None:
    """Transfer discounts over one account's journeys of every mode, in time order (before
    caps: a metro journey's discounted fare is what counts toward its cap)."""
    b = tariff["bus"]
    window, most = b["transfer_window_s"], b["max_transfers"]
    off = {"bus": b["transfer_bus"], "metro": b["transfer_metro"]}
    chain_start: int | None = None
    used = 0
    for j in js:
        mode = j["mode"]
        if mode not in off or j["status"] in _NOT_A_BOARDING or j["rule"] in _PENALTIES:
            continue
        if chain_start is not None and j["time"] - chain_start <= window and used < most:
            d = min(off[mode], j["fare"])
            if d > 0 or j["status"] == "open":
                used += 1
                if d > 0:
                    j["fare"] -= d
                    j["charged"] = j["fare"]
                    j["rule"] += "+bus.transfer_" + mode
                    j["flags"].append("transfer")
                continue
        if mode == "bus" and j["entry"] is not None:
            chain_start, used = j["time"], 0


def lookback_s(tariff: dict[str, Any]) -> int:
    """How far back a bus journey or a transfer chain reaches (for clearing's _lookback)."""
    b = tariff["bus"]
    return int(b["max_journey_s"]) + int(b["transfer_window_s"])
