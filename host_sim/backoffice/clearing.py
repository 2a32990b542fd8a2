"""Clearing: turn the passages the back office holds into journeys and charges.

A pure function of the stored records (deduplicated by (device_id, seq)) and a tariff, so
running it twice, or after a gate re-uploaded a batch, charges nothing twice. Every passage
record lands in at most one journey. Passages flagged emergency (a fire alarm opened the
gates) are shown with a zero fare.

Metro (mode 1): per account, taps in time order; an entry and the next exit make a journey,
priced from the station -> zone table by the number of zones crossed. An entry followed by
another entry, or left open longer than `max_journey_s`, is a missing exit: maximum fare. An
exit with no entry is charged the maximum fare too. A second entry at the same station within
`retap_s` (a rider tapping again because the barrier was slow) belongs to the same journey.
Each service day's total per account is capped at `daily_cap`.

Parking (mode 2): entry and exit per account (the plate's account); free within `grace_s`,
then `per_hour` for each started hour, at most `daily_max` for each started 24 hours. An exit
with no entry, or an entry never closed, is charged `lost_ticket`.

Store (mode 3): a session runs from the door's entry to its exit; the charge is the value the
store system put on the session's records (the basket). A session not closed within
`max_session_s` is charged `open_session_charge` and flagged.

The service day starts at `day_start_s` after midnight in the operator's time zone
(`tz_offset_s` from UTC). Amounts are integer minor units (cents, fen).
"""

import tomllib
from collections import defaultdict
from typing import Any

from host_sim.errors import SimError
from protocol import records
from protocol.records import DIR_ENTRY, DIR_EXIT

DEFAULT_TARIFF: dict[str, Any] = {
    "tz_offset_s": 0,
    "day_start_s": 4 * 3600,
    "metro": {
        "stations": {str(s): 1 + (s - 1) // 3 for s in range(1, 13)},
        "fares": [250, 300, 400, 500],
        "max_fare": 600,
        "daily_cap": 1500,
        "retap_s": 120,
        "max_journey_s": 4 * 3600,
    },
    "parking": {
        "grace_s": 900,
        "per_hour": 200,
        "daily_max": 2000,
        "lost_ticket": 2000,
        "max_stay_s": 30 * 86400,
    },
    "store": {"open_session_charge": 0, "max_session_s": 4 * 3600},
}


class TariffError(SimError, ValueError):
    """A tariff file that cannot apply: names the section, the key and the problem."""

    reason = "bad_tariff"
    remedy = "correct the tariff file"


def load_tariff(path: str | None) -> dict[str, Any]:
    """The default tariff, with the sections of a TOML file laid over it."""
    tariff = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_TARIFF.items()}
    if path:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        for key, value in data.items():
            if key not in tariff:
                raise TariffError("%s: unknown section or key %r" % (path, key))
            if isinstance(tariff[key], dict):
                if not isinstance(value, dict):
                    raise TariffError("%s: [%s] must be a table" % (path, key))
                unknown = set(value) - set(tariff[key])
                if unknown:
                    raise TariffError(
                        "%s: unknown key(s) in [%s]: %s" % (path, key, ", ".join(sorted(unknown)))
                    )
                tariff[key].update(value)
            else:
                tariff[key] = value
    m = tariff["metro"]
    if not m["fares"] or any(not isinstance(f, int) or f < 0 for f in m["fares"]):
        raise TariffError("metro fares must be a non-empty list of amounts")
    return tariff


class Tap:
    __slots__ = ("device_id", "seq", "time", "station", "direction", "value", "flags")

    def __init__(self, row: tuple) -> None:
        (self.device_id, self.seq, self.time, self.station, self.direction, self.value) = row[:6]
        self.flags = row[6]

    def key(self) -> list[int]:
        return [self.device_id, self.seq]

    def brief(self) -> dict[str, int]:
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "time": self.time,
            "station": self.station,
        }


def service_day(t: int, tariff: dict[str, Any]) -> int:
    return (t + tariff["tz_offset_s"] - tariff["day_start_s"]) // 86400


def _journey(mode: str, account: int, entry: Tap | None, exit_: Tap | None, status: str, fare: int):
    taps = [t for t in (entry, exit_) if t is not None]
    return {
        "mode": mode,
        "account_id": account,
        "entry": entry.brief() if entry else None,
        "exit": exit_.brief() if exit_ else None,
        "status": status,
        "fare": fare,
        "charged": fare,
        "records": [t.key() for t in taps],
        "time": taps[0].time,
    }


def _metro(account: int, taps: list[Tap], t: dict[str, Any], as_of: int) -> list[dict]:
    zones = {int(k): v for k, v in t["stations"].items()}
    out = []
    open_: Tap | None = None
    retaps: list[Tap] = []

    def close_missing() -> None:
        j = _journey("metro", account, open_, None, "missing_exit", t["max_fare"])
        j["records"] += [r.key() for r in retaps]
        out.append(j)

    for tap in taps:
        if tap.direction == DIR_ENTRY:
            if open_ is not None:
                if tap.station == open_.station and tap.time - open_.time <= t["retap_s"]:
                    retaps.append(tap)
                    continue
                close_missing()
            open_, retaps = tap, []
        elif tap.direction == DIR_EXIT:
            if open_ is None:
                out.append(_journey("metro", account, None, tap, "missing_entry", t["max_fare"]))
                continue
            za, zb = zones.get(open_.station), zones.get(tap.station)
            if za is None or zb is None:
                fare, status = t["max_fare"], "unknown_station"
            else:
                fares = t["fares"]
                fare, status = fares[min(abs(za - zb), len(fares) - 1)], "complete"
            j = _journey("metro", account, open_, tap, status, fare)
            j["records"] += [r.key() for r in retaps]
            out.append(j)
            open_, retaps = None, []
    if open_ is not None:
        if as_of - open_.time > t["max_journey_s"]:
            close_missing()
        else:
            j = _journey("metro", account, open_, None, "open", 0)
            j["records"] += [r.key() for r in retaps]
            out.append(j)
    return out


def parking_fee(seconds: int, p: dict[str, Any]) -> int:
    if seconds <= p["grace_s"]:
        return 0
    days, rest = divmod(seconds, 86400)
    hours = -(-rest // 3600)
    return days * p["daily_max"] + min(p["daily_max"], hours * p["per_hour"])


def _parking(account: int, taps: list[Tap], p: dict[str, Any], as_of: int) -> list[dict]:
    out = []
    open_: Tap | None = None
    for tap in taps:
        if tap.direction == DIR_ENTRY:
            if open_ is not None:
                out.append(
                    _journey("parking", account, open_, None, "missing_exit", p["lost_ticket"])
                )
            open_ = tap
        elif tap.direction == DIR_EXIT:
            if open_ is None:
                out.append(
                    _journey("parking", account, None, tap, "missing_entry", p["lost_ticket"])
                )
                continue
            fee = parking_fee(tap.time - open_.time, p)
            out.append(_journey("parking", account, open_, tap, "complete", fee))
            open_ = None
    if open_ is not None:
        over = as_of - open_.time > p["max_stay_s"]
        status, fee = ("missing_exit", p["lost_ticket"]) if over else ("open", 0)
        out.append(_journey("parking", account, open_, None, status, fee))
    return out


def _store(account: int, taps: list[Tap], s: dict[str, Any], as_of: int) -> list[dict]:
    out = []
    session: list[Tap] = []

    def close(status: str, extra: int = 0) -> None:
        fare = sum(t.value for t in session) + extra
        exit_ = session[-1] if session[-1].direction == DIR_EXIT else None
        j = _journey("store", account, session[0], exit_, status, fare)
        j["records"] = [t.key() for t in session]
        out.append(j)

    for tap in taps:
        if tap.direction == DIR_ENTRY and session:
            close("open_session", s["open_session_charge"])
            session = []
        session.append(tap)
        if tap.direction == DIR_EXIT:
            close("complete" if session[0].direction == DIR_ENTRY else "missing_entry")
            session = []
    if session:
        if as_of - session[0].time > s["max_session_s"]:
            close("open_session", s["open_session_charge"])
        else:
            close("open")
            out[-1]["charged"] = out[-1]["fare"] = 0
    return out


MODES = {records.MODE_METRO: ("metro", _metro), records.MODE_PARKING: ("parking", _parking)}
MODES[records.MODE_STORE] = ("store", _store)


def clear(store: Any, tariff: dict[str, Any], as_of: int) -> list[dict[str, Any]]:
    """Journeys from every passage in the back office's `store` (store.Store), in time order."""
    rows = store.passages()
    groups: dict[tuple[int, int], list[Tap]] = defaultdict(list)
    for account, mode, *rest in rows:
        groups[(account, mode)].append(Tap(tuple(rest)))
    journeys: list[dict[str, Any]] = []
    for (account, mode), taps in groups.items():
        if mode not in MODES:
            continue
        name, fn = MODES[mode]
        emergency = [t for t in taps if t.flags & records.FLAG_EMERGENCY]
        normal = [t for t in taps if not t.flags & records.FLAG_EMERGENCY]
        for t in emergency:
            journeys.append(_journey(name, account, t, None, "emergency", 0))
        journeys.extend(fn(account, normal, tariff[name], as_of))
    _apply_daily_cap(journeys, tariff)
    journeys.sort(key=lambda j: (j["time"], j["account_id"], j["mode"]))
    return journeys


def _apply_daily_cap(journeys: list[dict[str, Any]], tariff: dict[str, Any]) -> None:
    cap = tariff["metro"]["daily_cap"]
    spent: dict[tuple[int, int], int] = defaultdict(int)
    for j in sorted(journeys, key=lambda j: j["time"]):
        j["day"] = service_day(j["time"], tariff)
        if j["mode"] != "metro":
            continue
        key = (j["account_id"], j["day"])
        j["charged"] = max(0, min(j["fare"], cap - spent[key]))
        spent[key] += j["charged"]


def charges(journeys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per account, service day and mode: journeys and the amount to charge."""
    acc: dict[tuple[int, int, str], dict[str, Any]] = {}
    for j in journeys:
        key = (j["account_id"], j["day"], j["mode"])
        c = acc.setdefault(
            key,
            {
                "account_id": key[0],
                "day": key[1],
                "mode": key[2],
                "journeys": 0,
                "fares": 0,
                "charged": 0,
                "open": 0,
            },
        )
        c["journeys"] += 1
        c["fares"] += j["fare"]
        c["charged"] += j["charged"]
        c["open"] += j["status"] == "open"
    return [acc[k] for k in sorted(acc)]
