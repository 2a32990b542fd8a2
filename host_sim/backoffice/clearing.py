"""Clearing: turn the passages the back office holds into journeys and published charges.

Two halves. `journeys(taps, tariff, as_of)` is pure: one account's taps in, its journeys out
(each with the tariff rule that priced it, its flags and the amount before and after caps).
`run(store, tariff, as_of, now)` is the incremental, idempotent clearing: it finds the taps that
arrived since the last run (a per-device seq cursor), re-clears only the (account, service day)s
they can change, and publishes one charge per (account, service day) with a revision number.
A charge that changes (a late tap, an open journey that became a missing exit) gets a new
revision and an ADJUSTMENT row with the delta, never a second charge; running it twice changes
nothing. Operator corrections (refund, adjust) are revisions too, kept apart from the cleared
amount so that re-clearing never undoes them, and each is written to the audit trail. What a
charge owes is the cleared amount plus the corrections, never below 0; corrections beyond a
re-cleared fare are kept as the charge's excess (`owed`).
All SQL is in store.py (the `clearing_*` methods); this module never touches the database.

Policies, in the order they apply to an account's taps:
- voided: a passage the gate voided (a KIND_EVENT record `passage_not_taken` with the same
  presentation on the same gate) is kept as a `voided` journey at 0: nobody passed.
- fraud copy: a presentation (account_id, cred_no, counter; not 0/0) accepted as a passage at
  two gates, or twice, is charged once (the first, by time then gate); the copies become
  `fraud_copy` journeys at 0 flagged `fraud_review`: the victim does not pay the copier's trip.
- untrusted clock (record flag bit 2): the time is a guess, so the service day is unknown: the
  passage is paired as usual, and the journey it belongs to (with its partner tap) becomes a
  `held_clock` journey at 0 flagged `review_clock` (an operator settles it with `backoffice
  adjust`), rather than a charge on a guessed day, or its partner charged as a broken journey.
- emergency (flag bit 1): an exit through gates opened for an emergency completes the open
  journey at its NORMAL fare (status `complete`, flag `emergency_exit`); an emergency exit with
  no entry is `emergency_exit` at 0 flagged `review_emergency`; an emergency entry is 0.
- over-limit (flag bit 0: the gate accepted offline beyond its limit): charged as usual and
  flagged `over_limit` (a collection risk to review, not a reason to charge more or less).
- metro: an entry and the next exit within `max_journey_s` make a journey, priced by the zones
  crossed (rule `metro.fares[N]`); a missing exit or entry, or an unknown station, is the
  maximum fare (rule `metro.max_fare`). A second entry at the same station within `retap_s`
  is the same journey; so is a second exit at the same station within `retap_s` of the exit
  that closed it, with no entry between (the barrier failed the first: a power cut in the pass
  window, a jam), not a journey with a missing entry.
- caps (metro): each account's charged total per service day is capped at `daily_cap` and per
  week at `weekly_cap` (0: no weekly cap; weeks start on `week_start`, 0 Monday .. 6 Sunday).
  With `max_fare_counts_to_cap = false` (the default, TfL's rule) maximum fares are charged
  in full and do not count toward either cap.
- parking: free within `grace_s`, then `per_hour` per started hour, at most `daily_max` per
  started 24 hours; an exit with no entry, or a stay over `max_stay_s`, is `lost_ticket`.
- store: a session from the door's entry to its exit is charged its basket (the records'
  value: the exit scan's carries the basket source's total, and a session the basket source
  closed (left by the exit button) ends with a `basket_final` passage carrying it); one not
  closed within `max_session_s` is `open_session_charge`. Entries journaled `group_member`
  (group entry on one code) belong to the open session, each charged `group_member_charge`.
- parking by plate: passages decided by plate (`plate_accepted`) pair with any entry or exit
  of the account, scan or plate, and are priced by the same parking rules, flagged `by_plate`;
  they carry no presentation (their counter is the image tag), so never `fraud_copy`.
- bus (clearing_bus.py): flat per boarding, or by stops travelled with tap-on / tap-off; then
  transfer discounts bus to bus and bus to metro within a window, before the caps.

A journey belongs to the service day of its first tap. The service day starts at `day_start_s`
after midnight in the operator's time zone (`tz_offset_s` from UTC). Amounts are integer minor
units (cents, fen).

Entry points: `run(store, tariff, as_of, now=None, full=False) -> summary`, `clear(store,
tariff, as_of)` (every journey, nothing published), `charges(journeys)` (per account, day and
mode, unpublished), and the operator corrections `refund`, `adjust`, `dispute`.
"""

import contextlib
import functools
import gc
import hashlib
import itertools
import operator
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, NamedTuple

from host_sim.backoffice import clearing_bus
from host_sim.errors import SimError
from protocol import reasons, records
from protocol.records import DIR_ENTRY, DIR_EXIT

DEFAULT_TARIFF: dict[str, Any] = {
    "tz_offset_s": 0,
    "day_start_s": 4 * 3600,
    "week_start": 0,
    "metro": {
        "stations": {str(s): 1 + (s - 1) // 3 for s in range(1, 13)},
        "fares": [250, 300, 400, 500],
        "max_fare": 600,
        "daily_cap": 1500,
        "weekly_cap": 0,
        "max_fare_counts_to_cap": False,
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
    "store": {"open_session_charge": 0, "max_session_s": 4 * 3600, "group_member_charge": 0},
    "bus": clearing_bus.DEFAULT,
}

NOT_TAKEN = reasons.number("passage_not_taken")
BY_PLATE = reasons.number("plate_accepted")  # a parking passage decided by plate
GROUP_MEMBER = reasons.number("group_member")  # a store entry of a session's group


class TariffError(SimError, ValueError):
    """A tariff file that cannot apply: names the section, the key and the problem."""

    reason = "bad_tariff"
    remedy = "correct the tariff file"


class ChargeError(SimError, ValueError):
    """An operator correction that cannot apply: no such charge, or a bad amount."""

    reason = "bad_charge"
    remedy = "check the account and day with `faregate backoffice charges --account ID`"


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
    for k in ("daily_cap", "weekly_cap", "max_fare"):
        if not isinstance(m[k], int) or m[k] < 0:
            raise TariffError("metro %s must be an amount >= 0" % k)
    if not isinstance(tariff["week_start"], int) or not 0 <= tariff["week_start"] <= 6:
        raise TariffError("week_start must be 0 (Monday) .. 6 (Sunday)")
    clearing_bus.check(tariff["bus"], TariffError)
    return tariff


# The columns of a tap, as store.clearing_taps returns them (after account_id).
TAP_COLUMNS = (
    "mode",
    "device_id",
    "seq",
    "kind",
    "reason",
    "time",
    "station",
    "direction",
    "cred_no",
    "counter",
    "value",
    "flags",
)


class Tap(NamedTuple):
    """One tap: a store.clearing_taps row, (account_id, *TAP_COLUMNS), read by name. A tuple
    (made by `tap(row)`, without copying): a full clear makes one per tap."""

    account_id: int
    mode: int
    device_id: int
    seq: int
    kind: int
    reason: int
    time: int
    station: int
    direction: int
    cred_no: int
    counter: int
    value: int
    flags: int

    def key(self) -> list[int]:
        return [self.device_id, self.seq]

    def brief(self) -> dict[str, int]:
        # keys in sorted order, as _explain writes them
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "station": self.station,
            "time": self.time,
        }


assert Tap._fields == ("account_id",) + TAP_COLUMNS


def tap(row: tuple) -> Tap:
    """The Tap of one store.clearing_taps row."""
    return _new(Tap, row)


_new = tuple.__new__


def service_day(t: int, tariff: dict[str, Any]) -> int:
    return (t + tariff["tz_offset_s"] - tariff["day_start_s"]) // 86400


def day_start(day: int, tariff: dict[str, Any]) -> int:
    """The unix time a service day begins."""
    return day * 86400 + tariff["day_start_s"] - tariff["tz_offset_s"]


def week_of(day: int, tariff: dict[str, Any]) -> int:
    """The week a service day is in (day 0, 1970-01-01, was a Thursday: weekday 3)."""
    return (day + 3 - tariff["week_start"]) // 7


def _journey(
    mode: str,
    account: int,
    entry: Tap | None,
    exit_: Tap | None,
    status: str,
    fare: int,
    rule: str,
    flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    # written out, not looped: a full clear makes one per journey, half a million of them
    if exit_ is None:
        assert entry is not None
        first, recs, brief_exit = entry, [[entry.device_id, entry.seq]], None
    else:
        brief_exit = exit_.brief()
        if entry is None:
            first, recs = exit_, [[exit_.device_id, exit_.seq]]
        else:
            first, recs = entry, [[entry.device_id, entry.seq], [exit_.device_id, exit_.seq]]
    return {
        "mode": mode,
        "account_id": account,
        "entry": entry.brief() if entry is not None else None,
        "exit": brief_exit,
        "status": status,
        "rule": rule,
        "fare": fare,
        "charged": fare,
        "flags": list(flags),
        "records": recs,
        "time": first.time,
    }


def _held(j: dict[str, Any]) -> dict[str, Any]:
    """The journey a passage with an untrusted clock belongs to, held whole at 0 for review:
    its partner tap is not charged as a journey missing its exit or entry."""
    j.update(status="held_clock", rule="held", fare=0, charged=0)
    j["flags"] = [f for f in j["flags"] if f != "review_clock"] + ["review_clock"]
    return j


_OVER_LIMIT = records.FLAG_OVER_LIMIT
_OVER = ("over_limit",)


def _flags_of(*taps: Tap | None) -> tuple[str, ...]:
    for t in taps:
        if t is not None and t.flags & _OVER_LIMIT:
            return _OVER
    return ()


def _emergency(t: Tap) -> bool:
    return bool(t.flags & records.FLAG_EMERGENCY)


def _exit_without_entry(mode: str, account: int, tap: Tap, amount: int, rule: str) -> dict:
    """An exit with no open entry: an emergency exit is not charged (flagged for review);
    any other is a missing entry, charged `amount` by `rule`."""
    if _emergency(tap):
        return _journey(
            mode, account, None, tap, "emergency_exit", 0, "emergency", ("review_emergency",)
        )
    return _journey(mode, account, None, tap, "missing_entry", amount, rule, _flags_of(tap))


_ZONES: dict[int, tuple[Any, dict[int, int]]] = {}


def _zones(stations: dict[str, int]) -> dict[int, int]:
    """The station -> zone table with integer keys (made once per tariff table)."""
    got = _ZONES.get(id(stations))
    if got is None or got[0] is not stations:
        got = _ZONES[id(stations)] = (stations, {int(k): v for k, v in stations.items()})
    return got[1]


def _metro(account: int, taps: list[Tap], t: dict[str, Any], as_of: int) -> list[dict]:
    zones = _zones(t["stations"])
    out: list[dict] = []
    open_: Tap | None = None
    retaps: list[Tap] = []
    done: tuple[Tap, dict] | None = None  # the last exit that closed a journey, and that journey
    # the loop's constants as locals: it runs once per metro tap
    retap_s, max_journey_s, max_fare, fares = (
        t["retap_s"],
        t["max_journey_s"],
        t["max_fare"],
        t["fares"],
    )
    rules = ["metro.fares[%d]" % n for n in range(len(fares))]
    top = len(fares) - 1
    entry, exit_, emergency, over = DIR_ENTRY, DIR_EXIT, records.FLAG_EMERGENCY, _OVER_LIMIT

    def close_missing() -> None:
        j = _journey(
            "metro",
            account,
            open_,
            None,
            "missing_exit",
            t["max_fare"],
            "metro.max_fare",
            _flags_of(open_),
        )
        j["records"] += [r.key() for r in retaps]
        out.append(j)

    for tap in taps:
        direction = tap.direction
        if direction == entry:
            if tap.flags & emergency:
                out.append(_journey("metro", account, tap, None, "emergency", 0, "emergency"))
                continue
            if open_ is not None:
                if tap.station == open_.station and tap.time - open_.time <= retap_s:
                    retaps.append(tap)
                    continue
                close_missing()
            open_, retaps, done = tap, [], None
        elif direction == exit_:
            if open_ is not None and tap.time - open_.time > max_journey_s:
                close_missing()
                open_, retaps = None, []
            if open_ is None:
                if (
                    done is not None
                    and tap.station == done[0].station
                    and tap.time - done[0].time <= retap_s
                ):  # the same exit again (the barrier failed it): that journey's, no charge
                    done[1]["records"].append(tap.key())
                    continue
                out.append(_exit_without_entry("metro", account, tap, max_fare, "metro.max_fare"))
                continue
            za, zb = zones.get(open_.station), zones.get(tap.station)
            flags: tuple[str, ...] = _OVER if (open_.flags | tap.flags) & over else ()
            if tap.flags & emergency:
                flags += ("emergency_exit",)
            if za is None or zb is None:
                fare, status, rule = max_fare, "unknown_station", "metro.max_fare"
            else:
                n = min(abs(za - zb), top)
                fare, status, rule = fares[n], "complete", rules[n]
            j = _journey("metro", account, open_, tap, status, fare, rule, flags)
            if retaps:
                j["records"] += [r.key() for r in retaps]
            out.append(j)
            open_, retaps, done = None, [], (tap, j)
    if open_ is not None:
        if as_of - open_.time > t["max_journey_s"]:
            close_missing()
        else:
            j = _journey("metro", account, open_, None, "open", 0, "open")
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
    out: list[dict] = []
    open_: Tap | None = None
    lost = p["lost_ticket"]

    def missing_exit(entry: Tap) -> dict:
        """An entry never closed within max_stay_s: the lost-ticket charge."""
        return _journey(
            "parking",
            account,
            entry,
            None,
            "missing_exit",
            lost,
            "parking.lost_ticket",
            _flags_of(entry),
        )

    for tap in taps:
        if tap.direction == DIR_ENTRY:
            if _emergency(tap):
                out.append(_journey("parking", account, tap, None, "emergency", 0, "emergency"))
                continue
            if open_ is not None:
                out.append(missing_exit(open_))
            open_ = tap
        elif tap.direction == DIR_EXIT:
            if open_ is not None and tap.time - open_.time > p["max_stay_s"]:
                out.append(missing_exit(open_))
                open_ = None
            if open_ is None:
                out.append(
                    _exit_without_entry("parking", account, tap, lost, "parking.lost_ticket")
                )
                continue
            fee = parking_fee(tap.time - open_.time, p)
            flags = _flags_of(open_, tap) + (("emergency_exit",) if _emergency(tap) else ())
            if BY_PLATE in (open_.reason, tap.reason):
                flags += ("by_plate",)
            out.append(
                _journey("parking", account, open_, tap, "complete", fee, "parking.per_hour", flags)
            )
            open_ = None
    if open_ is not None:
        if as_of - open_.time > p["max_stay_s"]:
            out.append(missing_exit(open_))
        else:
            out.append(_journey("parking", account, open_, None, "open", 0, "open"))
    return out


def _store(account: int, taps: list[Tap], s: dict[str, Any], as_of: int) -> list[dict]:
    out: list[dict] = []
    session: list[Tap] = []

    def close(status: str, extra: int = 0, rule: str = "store.basket") -> None:
        members = sum(1 for t in session if t.reason == GROUP_MEMBER)
        fare = sum(t.value for t in session) + extra + members * s["group_member_charge"]
        exit_ = session[-1] if session[-1].direction == DIR_EXIT else None
        j = _journey("store", account, session[0], exit_, status, fare, rule, _flags_of(*session))
        j["records"] = [t.key() for t in session]
        out.append(j)

    for tap in taps:
        if tap.direction == DIR_ENTRY and session and tap.reason == GROUP_MEMBER:
            session.append(tap)  # one more of the group the session's code admitted
            continue
        if tap.direction == DIR_ENTRY and session:
            close("open_session", s["open_session_charge"], "store.open_session_charge")
            session = []
        session.append(tap)
        if tap.direction == DIR_EXIT:
            close("complete" if session[0].direction == DIR_ENTRY else "missing_entry")
            session = []
    if session:
        if as_of - session[0].time > s["max_session_s"]:
            close("open_session", s["open_session_charge"], "store.open_session_charge")
        else:
            close("open", rule="open")
            out[-1]["charged"] = out[-1]["fare"] = 0
    return out


MODES = {records.MODE_METRO: ("metro", _metro), records.MODE_PARKING: ("parking", _parking)}
MODES[records.MODE_STORE] = ("store", _store)
MODES[clearing_bus.MODE_BUS] = ("bus", clearing_bus.journeys)
MAX_FARE_RULES = ("metro.max_fare",)


def journeys(
    account: int, taps: list[Tap], tariff: dict[str, Any], as_of: int
) -> list[dict[str, Any]]:
    """One account's journeys from its taps (passages and gate events, in time order), with
    every policy of the module docstring applied, caps included; each has `day`."""
    out: list[dict[str, Any]] = []
    held: set[tuple[int, int]] = set()  # (device_id, seq) of passages with an untrusted clock
    if _plain(taps):  # most accounts: the loop below would put every tap in by_mode, no more
        by_mode = {taps[0].mode: taps}
    else:
        by_mode = _sort_out(account, taps, out, held)
    for mode, mtaps in by_mode.items():
        name, fn = MODES[mode]
        js = fn(account, mtaps, tariff[name], as_of)
        if held:
            js = [_held(j) if any(tuple(r) in held for r in j["records"]) else j for j in js]
        out.extend(js)
    times = [j["time"] for j in out]
    if len(by_mode) > 1 or not all(map(operator.lt, times, times[1:])):
        out.sort(key=lambda j: (j["time"], j["mode"], j["records"][0]))  # else: sorted
    clearing_bus.apply_transfers(out, tariff)
    _apply_caps(out, tariff)
    return out


_KIND, _MODE, _FLAGS = itemgetter(4), itemgetter(1), itemgetter(12)
_PRESENTATION = itemgetter(9, 10)  # cred_no, counter


def _plain(taps: list[Tap]) -> bool:
    """Whether none of these taps is anything but a passage of one mode clearing prices, with
    a trusted clock and a presentation of its own: no event (so no void), no copy, nothing
    held. Tested in C (map over itemgetters), not tap by tap: true of most accounts."""
    return (
        bool(taps)
        and set(map(_KIND, taps)) == {records.KIND_PASSAGE}
        and len(set(map(_MODE, taps))) == 1
        and taps[0].mode in MODES
        and not functools.reduce(operator.or_, map(_FLAGS, taps)) & records.FLAG_CLOCK_UNTRUSTED
        and len(set(map(_PRESENTATION, taps))) == len(taps)
    )


def _sort_out(
    account: int, taps: list[Tap], out: list[dict[str, Any]], held: set[tuple[int, int]]
) -> dict[int, list[Tap]]:
    """The taps of each mode that make journeys; voided passages and copies go to `out` as
    their 0 journeys, passages with an untrusted clock to `held`."""
    voids = {
        (t.device_id, t.cred_no, t.counter, t.direction)
        for t in taps
        if t.kind == records.KIND_EVENT and t.reason == NOT_TAKEN
    }
    seen: set[tuple[int, int]] = set()
    by_mode: dict[int, list[Tap]] = defaultdict(list)
    passage = records.KIND_PASSAGE
    untrusted = records.FLAG_CLOCK_UNTRUSTED
    for t in taps:
        mode = t.mode
        if t.kind != passage or mode not in MODES:
            continue
        if voids and (t.device_id, t.cred_no, t.counter, t.direction) in voids:
            out.append(_journey(MODES[mode][0], account, t, None, "voided", 0, "voided"))
            continue
        pres = (t.cred_no, t.counter)
        if pres != (0, 0) and t.reason != BY_PLATE:  # a plate passage is no presentation
            if pres in seen:
                name = MODES[mode][0]
                out.append(
                    _journey(name, account, t, None, "fraud_copy", 0, "fraud", ("fraud_review",))
                )
                continue
            seen.add(pres)
        if t.flags & untrusted:
            held.add((t.device_id, t.seq))
        by_mode[mode].append(t)
    return by_mode


def _apply_caps(
    js: list[dict[str, Any]], tariff: dict[str, Any], week_spent: dict[int, int] | None = None
) -> None:
    """The caps, in the journeys' order; `week_spent`: what earlier days already spent of
    each week's cap (statements.py re-prices one day with it)."""
    m = tariff["metro"]
    daily, weekly = m["daily_cap"], m["weekly_cap"]
    spent_day: dict[int, int] = defaultdict(int)
    spent_week: dict[int, int] = defaultdict(int, week_spent or {})
    shift = tariff["tz_offset_s"] - tariff["day_start_s"]  # service_day, inlined
    week_shift = 3 - tariff["week_start"]
    for j in js:
        day = j["day"] = (j["time"] + shift) // 86400
        if j["mode"] != "metro":
            continue
        if j["rule"] in MAX_FARE_RULES and not m["max_fare_counts_to_cap"]:
            continue  # charged in full, outside the caps
        week = (day + week_shift) // 7  # week_of, inlined
        room = daily - spent_day[day]
        if weekly:
            room = min(room, weekly - spent_week[week])
        j["charged"] = max(0, min(j["fare"], room))
        if j["charged"] < j["fare"]:
            j["flags"].append("capped")
        spent_day[day] += j["charged"]
        spent_week[week] += j["charged"]


_ORDER = itemgetter(6, 2, 3)  # a tap row's time, device_id, seq: the order of an account's taps
_ACCOUNT = itemgetter(0)


def _group(rows: Any) -> dict[int, list[Tap]]:
    """{account: its taps in time order} from store.clearing_taps rows, fastest when they come
    in account order (store.clearing_all_taps: the database sorts, PostgreSQL in parallel
    workers): one groupby and the taps made in C, no Python step per tap; rows in any other
    order are grouped right too, only slower."""
    groups: dict[int, list[Tap]] = {}
    for account, rs in itertools.groupby(rows, _ACCOUNT):
        taps = groups.get(account)
        if taps is None:
            groups[account] = list(map(_make_tap, rs))
        else:
            taps += map(_make_tap, rs)
    for taps in groups.values():
        taps.sort(key=_ORDER)  # one pass over them when they came in order
    return groups


_make_tap = functools.partial(_new, Tap)


def clear(store: Any, tariff: dict[str, Any], as_of: int) -> list[dict[str, Any]]:
    """Every journey from every passage in the store, in time order (nothing published)."""
    out: list[dict[str, Any]] = []
    for account, taps in _group(store.clearing_all_taps()).items():
        out.extend(journeys(account, taps, tariff, as_of))
    out.sort(key=lambda j: (j["time"], j["account_id"], j["mode"]))
    return out


def charges(js: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per account, service day and mode: journeys and the amount to charge (unpublished)."""
    acc: dict[tuple[int, int, str], dict[str, Any]] = {}
    for j in js:
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


# -- publishing: per (account, service day), with revisions ----------------------------------
# The explanation of a charge: a JSON list of these keys of each journey, as
# json.dumps(..., sort_keys=True, separators=(",", ":")) would write it (tests check that it
# does), formatted directly: 3x faster than the encoder, and a full clear writes 250,000 of
# them. Safe because every string in it (mode, rule, status, flags) is a name this module
# writes, never JSON-escaped.
_EXPLAIN = ("charged", "entry", "exit", "fare", "flags", "mode", "rule", "status")
_ONE = (
    '{"charged":%d,"entry":%s,"exit":%s,"fare":%d,"flags":%s,"mode":"%s","rule":"%s","status":"%s"}'
)
_BRIEF = '{"device_id":%d,"seq":%d,"station":%d,"time":%d}'
WRITE_BATCH = 5000  # account-days whose writes go to the store in one batch
CHUNK = 500  # accounts an incremental run reads in one query


def day_charge(js: list[dict[str, Any]]) -> dict[str, Any]:
    """The charge of one account-day from its journeys: amount, counts and explanation."""
    parts = []
    cleared = fares = open_ = review = 0
    for j in js:
        flags, e, x = j["flags"], j["entry"], j["exit"]
        charged, fare, status = j["charged"], j["fare"], j["status"]
        parts.append(
            _ONE
            % (
                charged,
                "null"
                if e is None
                else _BRIEF % (e["device_id"], e["seq"], e["station"], e["time"]),
                "null"
                if x is None
                else _BRIEF % (x["device_id"], x["seq"], x["station"], x["time"]),
                fare,
                '["%s"]' % '","'.join(flags) if flags else "[]",
                j["mode"],
                j["rule"],
                status,
            )
        )
        cleared += charged
        fares += fare
        if status == "open":
            open_ += 1
        if flags and any(f.startswith(("review", "fraud")) for f in flags):
            review += 1
    text = "[%s]" % ",".join(parts)
    return {
        "cleared": cleared,
        "fares": fares,
        "journeys": len(js),
        "open": open_,
        "review": review,
        "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:32],
        "explanation": text,
    }


def owed(cleared: int, adjusted: int) -> tuple[int, int]:
    """(amount, excess) of a charge: what the rider owes for the day, the cleared fare plus
    the operators' corrections, never below 0; and the excess, what the corrections take off
    beyond the fare (a refund of 300 on a day later re-cleared to 250: owes 0, excess 50).
    The excess is not owed to the rider (they were never charged it): it is kept on the
    charge for the operator to review, and comes back into the amount if a later re-clear
    raises the fare again (the corrections themselves are never rewritten)."""
    net = cleared + adjusted
    return (net, 0) if net >= 0 else (0, -net)


def _lookback(tariff: dict[str, Any]) -> int:
    """How far back a journey can start and still be changed by a tap (seconds)."""
    return (
        max(
            tariff["metro"]["max_journey_s"],
            tariff["parking"]["max_stay_s"],
            tariff["store"]["max_session_s"],
            clearing_bus.lookback_s(tariff),
        )
        + 86400
    )


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: a full clear holds a million taps, which every
    collection would walk again (half its time at 1,000,000 taps), and clearing makes no
    cycles for it to find. Reference counting still frees everything as it goes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def run(
    store: Any, tariff: dict[str, Any], as_of: int, now: int | None = None, full: bool = False
) -> dict[str, Any]:
    """Clear what changed since the last run and publish it; returns a summary dict:
    accounts (re-cleared), days (account-days recomputed), new (charges published for the
    first time), revised (charges given a new revision), unchanged, taps (new taps seen).

    full=True re-clears every account (after a tariff change, or records imported into a gap
    below a gate's highest seq, which the cursor cannot see)."""
    now = as_of if now is None else now
    with _no_gc(), store.clearing_transaction():
        first = not store.clearing_has_charges()  # nothing published yet: nothing to read
        full = full or first
        cursor_moves, new_taps = store.clearing_new_taps(with_taps=not full)
        dirty: dict[int, int] = {}  # account -> earliest time to re-clear from
        if not full:
            for account, t in new_taps:
                dirty[account] = min(dirty.get(account, t), t)
            for account, day in store.clearing_open_days():
                t = day_start(day, tariff)
                dirty[account] = min(dirty.get(account, t), t)
        summary = {"accounts": 0, "days": 0, "new": 0, "revised": 0, "unchanged": 0}
        summary["taps"] = len(new_taps)
        back = _lookback(tariff)
        new: list[tuple[int, int, dict[str, Any]]] = []
        revised: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = []

        def week0_of(t: int) -> int:
            """The first day of the week a journey begun up to one journey span before `t`
            is in: a new tap can close a journey that began that early."""
            first_day = service_day(t - back, tariff)
            return first_day - ((first_day + 3 - tariff["week_start"]) % 7)

        def work() -> Iterator[tuple[int, int, list[Tap], dict[int, dict[str, Any]]]]:
            """(account, first week day, its taps, its published charges from that day) of
            every account to re-clear: a few queries per CHUNK accounts, not per account."""
            if full:  # every account, from one scan of the taps
                week0 = week0_of(-(1 << 50))
                published = {} if first else store.clearing_published_of(None)
                taps = _group(store.clearing_all_taps())
                for account in sorted(set(taps) | set(published)):
                    yield account, week0, taps.get(account, []), published.get(account, {})
                return
            todo = [(a, week0_of(since)) for a, since in sorted(dirty.items())]
            for i in range(0, len(todo), CHUNK):
                # the chunk's taps from its earliest week on: more history than some of its
                # accounts need changes none of their days from their own week0 on
                chunk = todo[i : i + CHUNK]
                accounts, w_min = [a for a, _ in chunk], min(w for _, w in chunk)
                taps = _group(store.clearing_taps_of(accounts, day_start(w_min, tariff) - back))
                published = store.clearing_published_of(accounts, w_min)
                for a, w in chunk:
                    mine = {d: c for d, c in published.get(a, {}).items() if d >= w}
                    yield a, w, taps.get(a, []), mine

        n_new = n_revised = n_unchanged = 0
        for account, week0, taps, published in work():
            summary["accounts"] += 1
            by_day = _by_day(journeys(account, taps, tariff, as_of), week0)
            if not published:  # the common case of a full run: every day is new
                n_new += len(by_day)
                new += [(account, day, day_charge(js)) for day, js in by_day.items()]
            else:
                for day in sorted(by_day.keys() | published.keys()):
                    c = day_charge(by_day.get(day, []))
                    old = published.get(day)
                    if old is None:
                        new.append((account, day, c))
                        n_new += 1
                    elif old["fingerprint"] != c["fingerprint"]:
                        c["amount"], c["excess"] = owed(c["cleared"], old["adjusted"])
                        revised.append((account, day, c, old))
                        n_revised += 1
                    else:
                        n_unchanged += 1
            if len(new) + len(revised) >= WRITE_BATCH:
                store.clearing_write(new, revised, now)
                new, revised = [], []
        store.clearing_write(new, revised, now)
        summary.update(new=n_new, revised=n_revised, unchanged=n_unchanged)
        summary["days"] = n_new + n_revised + n_unchanged
        store.clearing_move_cursor(cursor_moves)
    return summary


def _by_day(js: list[dict[str, Any]], week0: int) -> dict[int, list[dict[str, Any]]]:
    """{day: its journeys} of the days from week0 on, days rising. The journeys are in time
    order, so their days rise too: each day is one run of them, no sorting."""
    out: dict[int, list[dict[str, Any]]] = {}
    cur = -(1 << 62)
    for j in js:
        day = j["day"]
        if day != cur:
            if day < week0:
                continue
            cur, mine = day, out.setdefault(day, [])
        mine.append(j)
    return out


def _correct(
    store: Any, account: int, day: int, delta: int, kind: str, operator: str, why: str, now: int
) -> dict[str, Any]:
    if not operator or not why:
        raise ChargeError("an operator correction needs who (--operator) and why (--reason)")
    with store.clearing_transaction():
        before = store.clearing_charge(account, day)
        if before is None:
            raise ChargeError("no published charge for account %d on day %d" % (account, day))
        if before["amount"] + delta < 0:
            raise ChargeError(
                "the charge is %d: a %s of %d would make it negative"
                % (before["amount"], kind, -delta)
            )
        adjusted = before["adjusted"] + delta
        amount, excess = owed(before["cleared"], adjusted)
        store.clearing_operator_revision(before, adjusted, amount, excess, kind, why, now)
        after = store.clearing_charge(account, day)
        store.clearing_audit(now, operator, kind, account, day, why, before, after)
    return after


def refund(store: Any, account: int, day: int, amount: int, operator: str, why: str, now: int):
    """Refund `amount` (> 0) of a published charge: a revision of kind refund, audited."""
    if amount <= 0:
        raise ChargeError("a refund is an amount > 0")
    return _correct(store, account, day, -amount, "refund", operator, why, now)


def adjust(store: Any, account: int, day: int, delta: int, operator: str, why: str, now: int):
    """Change a published charge by `delta` (+ or -): a revision of kind adjust, audited."""
    if delta == 0:
        raise ChargeError("an adjustment of 0 changes nothing")
    return _correct(store, account, day, delta, "adjust", operator, why, now)


def dispute(
    store: Any, account: int, day: int, action: str, operator: str, why: str, now: int
) -> dict[str, Any]:
    """Open or resolve a rider's dispute of a charge (the money side is refund/adjust)."""
    if action not in ("open", "resolve"):
        raise ChargeError("a dispute is opened or resolved, not %r" % action)
    if not operator or not why:
        raise ChargeError("a dispute needs who (--operator) and why (--reason)")
    with store.clearing_transaction():
        charge = store.clearing_charge(account, day)
        if charge is None:
            raise ChargeError("no published charge for account %d on day %d" % (account, day))
        before = store.clearing_dispute(account, day)
        want = "open" if action == "open" else "resolved"
        if action == "resolve" and (before is None or before["status"] != "open"):
            raise ChargeError("no open dispute for account %d on day %d" % (account, day))
        if action == "open" and before is not None and before["status"] == "open":
            raise ChargeError("a dispute is already open for account %d on day %d" % (account, day))
        store.clearing_set_dispute(account, day, want, why, now)
        after = store.clearing_dispute(account, day)
        store.clearing_audit(now, operator, "dispute_" + action, account, day, why, before, after)
    return after or {}
