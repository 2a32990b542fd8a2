"""Sensor levels in, gate events out (sans-IO): passage beams, vehicle loops, contact inputs.

Drivers report raw levels (True = beam interrupted / loop occupied / contact active); these
trackers turn them into the events the mode tables use. They read no clock: every update
carries `now_ms` (a monotonic tick, compared with platform.ticks_diff: MCU ticks wrap).

Passage beams (metro): beam A on the approach side of the allowed direction, beam B on the far
side. An *occupancy* starts when either beam is blocked and ends when both are clear; the beam
blocked first gives its direction. In a forward occupancy each time B clears one person has
passed (`passage_fwd`); in a backward one each time A clears (`passage_back`). A tailgater
walking close behind the first rider is counted as a second passage even if the beams never
both clear between them.

    event          when
    occupied       an occupancy starts
    passage_fwd    a person passed in the allowed direction
    passage_back   a person passed against it
    loitering      the occupancy lasted longer than loiter_ms (once per occupancy)
    clear          both beams clear again (always ends an occupancy)
"""

from firmware import settings
from firmware.platform import ticks_diff


class BeamTracker:
    def __init__(self, loiter_ms: int = settings.default("gate.loiter_ms")):
        self.loiter_ms = loiter_ms
        self.a = False
        self.b = False
        self.direction = 0  # 0 idle, 1 forward, 2 backward
        self.since = 0
        self.loiter_sent = False

    def update(self, a: bool, b: bool, now_ms: int) -> list:
        a = bool(a)
        b = bool(b)
        events = []
        if self.direction == 0 and (a or b):
            self.direction = 1 if a else 2
            self.since = now_ms
            self.loiter_sent = False
            events.append("occupied")
        if self.direction == 1 and self.b and not b:
            events.append("passage_fwd")
        if self.direction == 2 and self.a and not a:
            events.append("passage_back")
        self.a = a
        self.b = b
        if self.direction and not (a or b):
            self.direction = 0
            events.append("clear")
        elif (
            self.direction
            and not self.loiter_sent
            and ticks_diff(now_ms, self.since) >= self.loiter_ms
        ):
            self.loiter_sent = True
            events.append("loitering")
        return events

    def resync(self) -> list:
        """Events describing the present levels to a machine that just reset."""
        return ["occupied"] if self.direction else []


class LoopTracker:
    """Parking lane: loop A in front of the barrier (arrival), loop B under the arm (safety).

    Each edge is one event: A on `vehicle_arrived`, A off `vehicle_left`, B on
    `vehicle_on_safety`, B off `vehicle_cleared`.
    """

    def __init__(self):
        self.a = False
        self.b = False

    def update(self, a: bool, b: bool, now_ms: int = 0) -> list:
        a = bool(a)
        b = bool(b)
        events = []
        if a and not self.a:
            events.append("vehicle_arrived")
        if b and not self.b:
            events.append("vehicle_on_safety")
        if self.a and not a:
            events.append("vehicle_left")
        if self.b and not b:
            events.append("vehicle_cleared")
        self.a = a
        self.b = b
        return events

    def resync(self) -> list:
        out = []
        if self.a:
            out.append("vehicle_arrived")
        if self.b:
            out.append("vehicle_on_safety")
        return out


class EdgeInput:
    """One debounced digital input (fire alarm, door contact, exit button, service key).

    A level must hold for `debounce_ms` before it counts; then a rising edge emits `on_event`
    and a falling edge `off_event` (either may be None for a push button).
    """

    def __init__(
        self,
        on_event,
        off_event=None,
        debounce_ms: int = settings.default("gate.debounce_ms"),
        initial: bool = False,
    ):
        self.on_event = on_event
        self.off_event = off_event
        self.debounce_ms = debounce_ms
        self.level = bool(initial)
        self._pending = self.level
        self._since = 0

    def update(self, level: bool, now_ms: int) -> list:
        level = bool(level)
        if level == self.level:
            self._pending = level
            return []
        if level != self._pending:
            self._pending = level
            self._since = now_ms
        if ticks_diff(now_ms, self._since) < self.debounce_ms:
            return []
        self.level = level
        ev = self.on_event if level else self.off_event
        return [ev] if ev else []

    def resync(self) -> list:
        return [self.on_event] if self.level and self.on_event else []
