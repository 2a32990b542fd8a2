"""People and vehicles moving through a gate on the virtual clock, seen by beams and loops.

A lane is one-dimensional: positions in metres along the allowed direction, the barrier at 0.
Each body (a person, a car) follows a plan of steps, one after another:

    ("to", x)                   move until its centre is at x (at its own speed)
    ("until", cond, ms, alt)    wait until cond() is true; after ms give up and follow alt
    ("do", fn)                  call fn() (show a code to the reader, push the exit button)
    ("pause", ms)               stand still

    Beams    metro passage: beam A at -0.15 m, beam B at +0.1 m, so a person (0.4 m deep)
             interrupts both for a moment as they walk through. read() -> (a, b)
    Loops    parking lane: loop A from -4.0 to -0.6 m (a car waiting at the arm), loop B from
             -0.4 to +2.5 m (under the arm). read() -> (a, b)
    Door     store door contact: `open_for(ms)` / `force_open()` model shoppers.

The helpers build the typical plans: a rider who scans and walks through when the gate opens
(and turns back if it does not), a tailgater close behind, a loiterer, someone walking the
wrong way, a car that waits for the arm, a car tailgating another.
"""

from collections.abc import Callable
from typing import Any


class Body:
    def __init__(self, x: float, length: float, speed: float, plan: list[tuple], name: str = ""):
        self.x = x
        self.length = length
        self.speed = speed  # metres per second
        self.plan = list(plan)
        self.name = name
        self._wait_ms = 0
        self.done = False

    def span(self) -> tuple[float, float]:
        return (self.x - self.length / 2, self.x + self.length / 2)

    def advance(self, ms: int) -> None:
        while ms > 0 and self.plan:
            step = self.plan[0]
            kind = step[0]
            if kind == "to":
                target = step[1]
                dist = self.speed * ms / 1000.0
                if abs(target - self.x) <= dist:
                    used = int(abs(target - self.x) / self.speed * 1000)
                    self.x = target
                    self.plan.pop(0)
                    ms -= max(used, 1)
                else:
                    self.x += dist if target > self.x else -dist
                    ms = 0
            elif kind == "until":
                if step[1]():
                    self.plan.pop(0)
                    self._wait_ms = 0
                    continue
                self._wait_ms += ms
                if self._wait_ms >= step[2]:
                    self._wait_ms = 0
                    self.plan = list(step[3])  # give up: the alternative plan
                    continue
                ms = 0
            elif kind == "do":
                self.plan.pop(0)
                step[1]()
            elif kind == "pause":
                left = step[1] - self._wait_ms
                if ms >= left:
                    self._wait_ms = 0
                    self.plan.pop(0)
                    ms -= left
                else:
                    self._wait_ms += ms
                    ms = 0
        if not self.plan:
            self.done = True


class _Lane:
    SENSORS: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))

    def __init__(self) -> None:
        self.bodies: list[Body] = []

    def add(self, body: Body) -> Body:
        self.bodies.append(body)
        return body

    def advance(self, ms: int) -> None:
        done = False
        for b in self.bodies:
            b.advance(ms)
            done = done or b.done
        if done:
            self.bodies = [b for b in self.bodies if not b.done]

    def read(self) -> tuple[bool, bool]:
        """Whether each sensor sees a body (read every turn of the gate's loop: one pass)."""
        (lo_a, hi_a), (lo_b, hi_b) = self.SENSORS
        a = b = False
        for body in self.bodies:
            half = body.length / 2
            lo, hi = body.x - half, body.x + half  # its span()
            a = a or (lo <= hi_a and hi >= lo_a)
            b = b or (lo <= hi_b and hi >= lo_b)
        return (a, b)

    @property
    def empty(self) -> bool:
        return not self.bodies


class Beams(_Lane):
    """Metro passage beams; bodies are people 0.4 m deep walking at ~1.2 m/s."""

    SENSORS = ((-0.15, -0.15), (0.1, 0.1))
    WAIT_AT = -0.3  # where a rider stands to scan (blocking beam A)


class Loops(_Lane):
    """Parking lane loops; bodies are cars 4.5 m long driving at ~2 m/s."""

    SENSORS = ((-4.0, -0.6), (-0.4, 2.5))
    STOP_AT = -2.7  # a car's centre when it waits at the arm (front 0.45 m before it)


def rider(
    beams: Beams,
    scan: Callable[[], Any],
    may_pass: Callable[[], bool],
    give_up_ms: int = 10000,
    speed: float = 1.2,
    name: str = "rider",
) -> Body:
    """A rider who walks up, scans, waits for the gate to open and walks through; if it does
    not open within give_up_ms they turn back."""
    plan = [
        ("to", Beams.WAIT_AT),
        ("do", scan),
        ("until", may_pass, give_up_ms, [("to", -2.0)]),
        ("to", 2.0),
    ]
    return beams.add(Body(-2.0, 0.4, speed, plan, name))


def walker(beams: Beams, delay_ms: int = 0, speed: float = 1.2, backwards: bool = False) -> Body:
    """Someone walking straight through without scanning (a tailgater close behind a rider, a
    gate jumper) or, backwards, through the gate against its direction."""
    start, end = (2.0, -2.0) if backwards else (-2.0, 2.0)
    plan = [("pause", delay_ms), ("to", end)] if delay_ms else [("to", end)]
    return beams.add(Body(start, 0.4, speed, plan, "walker"))


def loiterer(beams: Beams, stay_ms: int, speed: float = 1.2) -> Body:
    """Someone who steps into the passage, stands there, then walks back out."""
    plan = [("to", Beams.WAIT_AT), ("pause", stay_ms), ("to", -2.0)]
    return beams.add(Body(-2.0, 0.4, speed, plan, "loiterer"))


def car(
    loops: Loops,
    scan: Callable[[], Any] | None,
    may_pass: Callable[[], bool],
    give_up_ms: int = 60000,
    delay_ms: int = 0,
    speed: float = 2.0,
    name: str = "car",
) -> Body:
    """A car that drives up to the arm, shows a code (if `scan`), waits until it may pass
    (the arm is up) and drives on; if it never may, it reverses away after give_up_ms."""
    plan: list[tuple] = [("pause", delay_ms)] if delay_ms else []
    plan.append(("to", Loops.STOP_AT))
    if scan is not None:
        plan.append(("do", scan))
    plan += [("until", may_pass, give_up_ms, [("to", -12.0)]), ("to", 10.0)]
    return loops.add(Body(-12.0, 4.5, speed, plan, name))


class Door:
    """A store door's contact (`value()`: True = open), opened by shoppers on a schedule."""

    def __init__(self) -> None:
        self.is_open = False
        self._close_in: int | None = None
        self.openings = 0

    def value(self) -> bool:
        return self.is_open

    def open_for(self, ms: int) -> None:
        """A shopper pushes the door open and lets it close ms later."""
        if not self.is_open:
            self.openings += 1
        self.is_open = True
        self._close_in = ms

    def close(self) -> None:
        self.is_open = False
        self._close_in = None

    def advance(self, ms: int) -> None:
        if self._close_in is not None:
            self._close_in -= ms
            if self._close_in <= 0:
                self.close()


class World:
    """The virtual clock, the gate's loop and the moving things, stepped together."""

    def __init__(self, clock: Any, loop: Any, movers: list[Any], step_ms: int = 10) -> None:
        self.clock = clock
        self.loop = loop
        self.movers = movers
        self.step_ms = step_ms
        self.at: list[tuple[int, Callable[[], Any]]] = []  # (ticks_ms, action) scheduled

    def schedule(self, after_ms: int, action: Callable[[], Any]) -> None:
        self.at.append((self.clock.ticks_ms() + after_ms, action))
        self.at.sort(key=lambda a: a[0])

    def run(self, ms: int) -> None:
        end = self.clock.ticks_ms() + ms
        while self.clock.ticks_ms() < end:
            self.clock.advance_ms(self.step_ms)
            while self.at and self.at[0][0] <= self.clock.ticks_ms():
                self.at.pop(0)[1]()
            for m in self.movers:
                m.advance(self.step_ms)
            self.loop.step(0)

    def run_until(self, cond: Callable[[], bool], limit_ms: int = 120000) -> bool:
        end = self.clock.ticks_ms() + limit_ms
        while not cond():
            if self.clock.ticks_ms() >= end:
                return False
            self.run(self.step_ms)
        return True
