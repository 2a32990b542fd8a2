"""Commuters' round trips across the line, and the truth about what each rider really did.

    plans = trips.plan(scenario, rng, first_account)    # one Plan per commuter, from the seed
    book = trips.Truth()
    book.tap(account, "metro", station, DIR_ENTRY, t, tapped=True)

A commuter leaves home in the morning (`depart_h`), optionally parks at the home station's car
park, enters the metro at home, rides (`ride_s` per station travelled) and exits at work; a
share change trains on the way (they exit at a station in between and enter again: two
journeys). After `work_s` some visit the work station's store, then ride home, exit, and
collect the car. Each step is a visit to one lane group (station, kind, direction); the
simulator queues the commuter there and, once the gate let them through, schedules the next.

`Truth` keeps every rider's journeys as they really happened, in true (simulated) time: which
gates they passed and whether the gate recorded a tap. A rider an honest gate kept turning
back goes through anyway (a member of staff opens the gate): that tap is missing, and the
truth says so. invariants.py prices these journeys with the tariff, independently of clearing.
"""

import random
from typing import Any

from protocol import reasons, records
from protocol.records import DIR_ENTRY, DIR_EXIT


class Step:
    """One visit to a lane group: `wait_s` after the previous step, at (station, kind, dir)."""

    __slots__ = ("station", "kind", "direction", "wait_s")

    def __init__(self, station: int, kind: str, direction: int, wait_s: float) -> None:
        self.station = station
        self.kind = kind
        self.direction = direction
        self.wait_s = wait_s

    def lane_direction(self) -> str:
        return "entry" if self.direction == DIR_ENTRY else "exit"


class Plan:
    """One commuter's day: their account index, when they leave home, and the steps. A
    walk-in's trip (`walkin`: a rider of the population who arrived at an entry lane or a store,
    simulation.py) is a Plan too: its `person`, the `behaviour` they show the next gate, the
    entry and the exit back at the same station (`away_since` the entry, `back` once they are
    on their way out)."""

    __slots__ = (
        "index",
        "home",
        "work",
        "depart",
        "steps",
        "next",
        "attempts",
        "person",
        "behaviour",
        "walkin",
        "away_since",
        "back",
        "shown",
    )

    def __init__(self, index: int, home: int, work: int, depart: float, steps: list[Step]):
        self.index = index
        self.home = home
        self.work = work
        self.depart = depart  # unix seconds
        self.steps = steps
        self.next = 0  # index of the step under way
        self.attempts = 0  # gate visits for this step so far
        self.person: Any = None  # None: the commuter pool's person `index`
        self.behaviour = "valid"
        self.walkin = False
        self.away_since = 0.0
        self.back = False
        self.shown: list[tuple[int, ...]] = []  # (gate device, presentation) this step


def _has(scenario: dict[str, Any], station: int, kind: str, direction: str = "") -> bool:
    return any(
        lane["station"] == station
        and lane["kind"] == kind
        and (not direction or kind == "store" or lane["direction"] == direction)
        for lane in scenario["lanes"]
    )


def line(scenario: dict[str, Any]) -> list[int]:
    """Stations a commuter can ride between: those with metro entry and exit lanes, in order."""
    stations = sorted({lane["station"] for lane in scenario["lanes"]})
    return [
        s
        for s in stations
        if _has(scenario, s, "metro", "entry") and _has(scenario, s, "metro", "exit")
    ]


def plan(scenario: dict[str, Any], rng: random.Random, start: int) -> list[Plan]:
    """Every commuter's day, drawn from `rng`; departures on the day of `start`."""
    t = scenario["trips"]
    stops = line(scenario)
    if t["commuters"] and len(stops) < 2:
        return []
    day0 = start - start % 86400
    ride = float(t["ride_s"])
    out = []
    for i in range(int(t["commuters"])):
        a, b = rng.sample(range(len(stops)), 2)
        home, work = stops[a], stops[b]
        depart = day0 + rng.uniform(*t["depart_h"]) * 3600.0
        steps: list[Step] = []
        park = rng.random() < t["park_share"] and (
            _has(scenario, home, "parking", "entry") and _has(scenario, home, "parking", "exit")
        )
        if park:
            steps.append(Step(home, "parking", DIR_ENTRY, 0))
            steps.append(Step(home, "metro", DIR_ENTRY, rng.uniform(60, 240)))
        else:
            steps.append(Step(home, "metro", DIR_ENTRY, 0))
        if rng.random() < t["transfer_share"] and abs(a - b) >= 2:
            lo, hi = sorted((a, b))
            via = rng.randrange(lo + 1, hi)
            steps.append(Step(stops[via], "metro", DIR_EXIT, ride * abs(via - a)))
            steps.append(Step(stops[via], "metro", DIR_ENTRY, rng.uniform(120, 600)))
            steps.append(Step(work, "metro", DIR_EXIT, ride * abs(b - via)))
        else:
            steps.append(Step(work, "metro", DIR_EXIT, ride * abs(b - a)))
        stay = rng.uniform(*t["work_s"])
        if rng.random() < t["store_share"] and _has(scenario, work, "store"):
            steps.append(Step(work, "store", DIR_ENTRY, stay))
            steps.append(Step(work, "metro", DIR_ENTRY, rng.uniform(30, 180)))
        else:
            steps.append(Step(work, "metro", DIR_ENTRY, stay))
        steps.append(Step(home, "metro", DIR_EXIT, ride * abs(b - a)))
        if park:
            steps.append(Step(home, "parking", DIR_EXIT, rng.uniform(60, 240)))
        out.append(Plan(i, home, work, depart, steps))
    return out


class Truth:
    """What every tracked rider really did: taps in true time, recorded by a gate or not."""

    def __init__(self) -> None:
        # account -> [(mode, station, direction, true time, tapped)]
        self.taps: dict[int, list[tuple[str, int, int, int, bool]]] = {}
        self.finished = 0  # commuters home again
        self.walkins = 0  # walk-ins' trips (simulation.py) finished
        self.recorded_not_passed = 0  # taps a gate recorded for a rider it did not let through
        self._shown: dict[tuple[int, int], tuple] = {}  # untapped tap -> presentations shown
        self._unseen: list[tuple] = []  # steps the rider never got through, with what they showed
        self.missing = 0  # taps a gate did not record (the rider went through anyway)

    def tap(
        self,
        account: int,
        mode: str,
        station: int,
        direction: int,
        t: int,
        tapped: bool,
        shown: tuple = (),
        through: bool = True,
    ) -> None:
        """One step's outcome; `shown`: the presentations (device_id, account, cred_no,
        counter) the rider held up for it, and to which gate, so that `resolve` can tell a
        tap a gate recorded although the rider did not get through (staff let them out after
        a gate took the code, or the run ended mid-step). `through=False`: the rider never
        went through (a walk-in refused on the way in): no tap, unless a gate recorded one."""
        if not through:
            if shown:
                self._unseen.append((account, mode, station, direction, t, shown))
            return
        taps = self.taps.setdefault(account, [])
        taps.append((mode, station, direction, t, tapped))
        if not tapped:
            self.missing += 1
            if shown:
                self._shown[(account, len(taps) - 1)] = shown

    def resolve(self, held: list[Any]) -> None:
        """Taps the rider did not see go through, that a gate recorded all the same: a passage
        record (in `held`, the back office's decoded records) of one of the presentations
        shown for that step, by the gate it was shown to (a copy elsewhere is not the
        rider's), not voided by its gate (passage_not_taken), counts as a tap."""
        not_taken = reasons.number("passage_not_taken")
        voided = {
            (r.device_id, r.account_id, r.cred_no, r.counter)
            for r in held
            if r.kind == records.KIND_EVENT and r.reason == not_taken
        }
        recorded = {
            (r.device_id, r.account_id, r.cred_no, r.counter)
            for r in held
            if r.kind == records.KIND_PASSAGE
            and (r.device_id, r.account_id, r.cred_no, r.counter) not in voided
        }
        for account, mode, station, direction, t, shown in self._unseen:
            if any(pres in recorded for pres in shown):
                taps = self.taps.setdefault(account, [])
                at = sum(1 for tap in taps if tap[3] <= t)
                taps.insert(at, (mode, station, direction, t, True))
                self.recorded_not_passed += 1
        self._unseen = []
        for (account, i), shown in sorted(self._shown.items()):
            if any(pres in recorded for pres in shown):
                mode, station, direction, t, _tapped = self.taps[account][i]
                self.taps[account][i] = (mode, station, direction, t, True)
                self.missing -= 1
                self.recorded_not_passed += 1
        self._shown = {}

    def journeys(self, account: int) -> list[dict[str, Any]]:
        """The rider's journeys: an entry and the exit that followed it, per mode; a store
        visit is its entry and exit."""
        out: list[dict[str, Any]] = []
        open_: dict[str, tuple] = {}
        for mode, station, direction, t, tapped in self.taps.get(account, []):
            if direction == DIR_ENTRY:
                open_[mode] = (station, t, tapped)
                continue
            if direction != DIR_EXIT or mode not in open_:
                continue
            s0, t0, tapped0 = open_.pop(mode)
            out.append(
                {
                    "mode": mode,
                    "from": s0,
                    "to": station,
                    "entry_t": t0,
                    "exit_t": t,
                    "entry_tapped": tapped0,
                    "exit_tapped": tapped,
                }
            )
        for mode, (s0, t0, tapped0) in open_.items():  # still under way at the end
            out.append(
                {
                    "mode": mode,
                    "from": s0,
                    "to": None,
                    "entry_t": t0,
                    "exit_t": None,
                    "entry_tapped": tapped0,
                    "exit_tapped": False,
                }
            )
        return sorted(out, key=lambda j: j["entry_t"])
