"""Queues in front of gates, and the people and cars that move through them.

Each simulated gate has a lane: a queue of `Visitor`s and the physical things the gate's
sensors see (host_sim/hardware/passage.py bodies on passage beams or vehicle loops, a store's door).
A visitor enters the lane when the one before has cleared it, walks (or drives) up, shows a
code (`scan(visitor, reader)`, supplied by the simulator, mints it then), waits for the gate to
open and goes through, or turns back after `give_up_ms`. A tailgater follows close behind
without a code (metro: a second person in the passage; parking: a second car under the arm).

    lane = MetroLane(hw, scan, done, rng, cfg)
    lane.queue.append(visitor)
    lane.advance(ms)        # every step of the virtual clock while lane.busy

`done(visitor, outcome)` reports "passed" or "turned_back". Nothing here reads a wall clock or
an unseeded random number.
"""

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from host_sim.hardware import passage

PASSED = "passed"
TURNED_BACK = "turned_back"


class Visitor:
    """One arrival at a gate: who, with what behaviour, and what became of them."""

    __slots__ = (
        "n",
        "behaviour",
        "arrived_ms",
        "direction",
        "person",
        "scans",
        "scanned_ms",
        "outcome",
        "gate",
        "trip",
        "accepted",
    )

    def __init__(self, n: int, behaviour: str, arrived_ms: int, direction: int = 1) -> None:
        self.n = n
        self.behaviour = behaviour
        self.arrived_ms = arrived_ms
        self.direction = direction  # store: 1 entering, 2 leaving
        self.person: Any = None
        self.scans = 0
        self.scanned_ms = 0
        self.outcome = ""
        self.gate = -1
        self.trip: Any = None  # a commuter's trips.Plan (None: a walk-in)
        self.accepted = False  # a gate accepted a code this visitor showed


class Lane:
    def __init__(
        self,
        hw: Any,
        scan: Callable[[Visitor, Any], None],
        done: Callable[[Visitor, str], None],
        rng: random.Random,
        riders: dict[str, Any],
    ) -> None:
        self.hw = hw
        self.scan = scan
        self.done = done
        self.rng = rng
        self.give_up_ms = int(riders["give_up_ms"])
        self.speed = riders["walk_speed"]
        self.gap = riders["tailgate_gap_m"]
        self.queue: deque[Visitor] = deque()
        self.admitting = True  # False while the gate is off or out of use: the queue waits

    @property
    def busy(self) -> bool:
        return bool(self.queue) or not self.empty

    @property
    def empty(self) -> bool:
        raise NotImplementedError

    def free(self) -> bool:
        raise NotImplementedError

    def advance(self, ms: int) -> None:
        raise NotImplementedError

    def admit(self) -> None:
        if self.admitting and self.queue and self.free():
            self.enter(self.queue.popleft())

    def enter(self, v: Visitor) -> None:
        raise NotImplementedError

    def _finish(self, v: Visitor, outcome: str) -> Callable[[], None]:
        def fn() -> None:
            if not v.outcome:
                v.outcome = outcome
                self.done(v, outcome)

        return fn


class _TrackLane(Lane):
    """A lane where bodies move along a line past the sensors (host_sim/hardware/passage.py)."""

    CLEAR = 0.0  # a body's centre past this has left the last sensor: the next may come

    @property
    def track(self) -> Any:
        raise NotImplementedError

    @property
    def empty(self) -> bool:
        return self.track.empty

    def free(self) -> bool:
        return all(b.x > self.CLEAR for b in self.track.bodies)

    def advance(self, ms: int) -> None:
        track = self.track
        track.advance(ms)
        if track.bodies:
            self._leave(track)
        self.admit()

    def _leave(self, track: Any) -> None:
        """A body walking (driving) on past the last sensor with nothing left to do but walk on
        has left the gate: nothing can see it any more, and the next one may already come
        (x > CLEAR), so it leaves the lane now rather than at the end of its walk, and the
        gate's loop stops turning every step for it (a third of a passage's turns)."""
        last = max(track.SENSORS[0][1], track.SENSORS[1][1])
        clear = self.CLEAR

        def gone(b: Any) -> bool:
            return (
                b.x > clear
                and b.x - b.length / 2 > last
                and len(b.plan) == 1
                and b.plan[0][0] == "to"
                and b.plan[0][1] > b.x
            )

        if any(gone(b) for b in track.bodies):
            track.bodies = [b for b in track.bodies if not gone(b)]


class MetroLane(_TrackLane):
    """Turnstile with passage beams. Riders start at the head of the queue, 1 m before the
    gate; the next one steps up when the one in front has cleared beam B."""

    START = -1.0
    CLEAR = 0.35

    @property
    def track(self) -> Any:
        return self.hw.beams

    def enter(self, v: Visitor) -> None:
        beams = self.hw.beams
        reader = self.hw.reader
        speed = self.rng.uniform(*self.speed)
        may_pass = self.hw.barrier.is_open
        plan = [
            ("to", passage.Beams.WAIT_AT),
            ("do", lambda: self.scan(v, reader)),
            (
                "until",
                may_pass,
                self.give_up_ms,
                [("do", self._finish(v, TURNED_BACK)), ("to", -2.0)],
            ),
            ("do", self._finish(v, PASSED)),
            ("to", 2.0),
        ]
        leader = beams.add(passage.Body(self.START, 0.4, speed, plan, "rider"))
        if v.behaviour == "tailgating":
            gap = self.rng.uniform(*self.gap)
            follow = [
                ("until", lambda: leader.x > passage.Beams.WAIT_AT + 0.05, 15000, [("to", -3.0)]),
                ("to", 2.0),
            ]
            x = self.START - gap - 0.4
            beams.add(passage.Body(x, 0.4, speed + 0.3, follow, "tailgater"))


class ParkingLane(_TrackLane):
    """Barrier arm with vehicle loops. Cars wait 12 m back; the next drives up when the one in
    front has cleared loop B."""

    START = -12.0
    CLEAR = 4.8

    @property
    def track(self) -> Any:
        return self.hw.loops

    def enter(self, v: Visitor) -> None:
        loops = self.hw.loops
        reader = self.hw.reader
        may_pass = self.hw.barrier.is_open
        give_up = max(self.give_up_ms, 20000)
        plan = [
            ("to", passage.Loops.STOP_AT),
            ("pause", 1500),  # the driver lowers the window and holds the phone up
            ("do", lambda: self.scan(v, reader)),
            ("until", may_pass, give_up, [("do", self._finish(v, TURNED_BACK)), ("to", -12.0)]),
            ("do", self._finish(v, PASSED)),
            ("to", 10.0),
        ]
        loops.add(passage.Body(self.START, 4.5, 2.0, plan, "car"))
        if v.behaviour == "tailgating":
            # Bumper to bumper would be one long vehicle to the loops; this driver keeps just
            # enough gap to reach loop B while the arm is still coming down, and the arm goes
            # up again (never onto a car) with the tailgating alarm.
            close_m = 2.0 * self.hw.barrier.close_ms / 1000.0
            gap = 3.0 + self.rng.uniform(0.0, 0.8 * close_m)
            wait_at = passage.Loops.STOP_AT - 4.5 - gap
            follow = [
                ("to", wait_at),
                ("until", may_pass, give_up + 5000, [("to", -20.0)]),
                ("to", 10.0),
            ]
            loops.add(passage.Body(self.START - 4.5 - gap, 4.5, 2.0, follow, "tailgater"))


class StoreLane(Lane):
    """A store door: one shopper at a time at the door, entering (entry reader outside) or
    leaving (exit reader inside). `inside(visitor)` is called when a shopper has entered."""

    DOOR_OPEN_MS = 1500

    def __init__(self, *args: Any, inside: Callable[[Visitor], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.inside = inside
        self.current: Visitor | None = None
        self.phase = ""
        self.waited = 0

    @property
    def empty(self) -> bool:
        return self.current is None and not self.hw.door.is_open

    def free(self) -> bool:
        return self.current is None and not self.hw.door.is_open

    def enter(self, v: Visitor) -> None:
        self.current = v
        self.phase = "scan"
        self.waited = 0

    def advance(self, ms: int) -> None:
        door = self.hw.door
        door.advance(ms)
        v = self.current
        if v is not None:
            if self.phase == "scan":
                reader = self.hw.reader if v.direction == 1 else self.hw.exit_reader
                self.scan(v, reader)
                self.phase = "wait"
            elif self.phase == "wait":
                self.waited += ms
                if self.hw.barrier.is_open():
                    door.open_for(self.DOOR_OPEN_MS)
                    self.phase = "through"
                elif self.waited >= self.give_up_ms:
                    self.current = None
                    self._finish(v, TURNED_BACK)()
            elif self.phase == "through" and not door.is_open:
                self.current = None
                self._finish(v, PASSED)()
                if v.direction == 1:
                    self.inside(v)
        self.admit()


LANES = {"metro": MetroLane, "parking": ParkingLane, "store": StoreLane}
