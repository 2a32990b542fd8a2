"""GPIO hardware on an MCU gate: barrier or lock relay, passage beams, vehicle loops, contact
inputs (fire alarm, door, exit button, service key), LEDs and buzzer. Portable.

Pins are `machine.Pin`-like objects (`value()` reads, `value(v)` writes), handed in; `from_url`
makes them from a `machine` module (the real one on the MCU, a fake in tests):

    gpio:relay=17&opened=18&closed=19&travel_ms=3000     barrier with limit switches
    gpio:relay=17                                        lock / barrier without switches
(docs/drivers.md has the beams, inputs and indicator forms.)
"""

from firmware.platform import ticks_diff, ticks_ms


def _level(pin, active_low) -> bool:
    v = bool(pin.value())
    return not v if active_low else v


class GpioBarrier:
    """A relay that holds the barrier open while on (or a lock unlocked), with optional limit
    switches. `poll()` returns events: barrier_opened / barrier_closed when a switch is
    reached (or, without switches, when travel_ms has passed), barrier_jam when a switch is
    not reached within travel_ms, barrier_ok when a jammed barrier finally arrives."""

    def __init__(
        self, relay, opened=None, closed=None, travel_ms=3000, active_low=False, ticks=None
    ):
        self.relay = relay
        self.opened_pin = opened
        self.closed_pin = closed
        self.travel_ms = travel_ms
        self.active_low = active_low
        self.ticks = ticks or ticks_ms
        self.target = "closed"
        self.moving_since = None  # ticks when the last command was given
        self.jammed = False
        self.openings = 0
        self._drive(False)

    def _drive(self, on: bool) -> None:
        self.relay.value(0 if on == self.active_low else 1)

    def open(self) -> None:
        if self.target != "open":
            self.openings += 1
        self.target = "open"
        self.moving_since = self.ticks()
        self._drive(True)

    def close(self) -> None:
        self.target = "closed"
        self.moving_since = self.ticks()
        self._drive(False)

    def is_open(self) -> bool:
        """Position feedback: the opened switch if fitted, else the commanded position."""
        if self.opened_pin is not None:
            return bool(self.opened_pin.value())
        return self.target == "open" and self.moving_since is None

    def _at_target(self):
        pin = self.opened_pin if self.target == "open" else self.closed_pin
        if pin is None:
            return None  # no switch: arrival assumed after travel_ms
        return bool(pin.value())

    def poll(self) -> list:
        if self.moving_since is None:
            return []
        arrived = self._at_target()
        late = ticks_diff(self.ticks(), self.moving_since) >= self.travel_ms
        if arrived is None:
            arrived = late
        events = []
        if arrived:
            if self.jammed:
                self.jammed = False
                events.append("barrier_ok")
            events.append("barrier_opened" if self.target == "open" else "barrier_closed")
            self.moving_since = None
        elif late and not self.jammed:
            self.jammed = True
            events.append("barrier_jam")
        return events


class GpioPair:
    """Two inputs read together: passage beams (A, B) or vehicle loops (A, B).
    `read() -> (a, b)`, True when interrupted / occupied."""

    def __init__(self, pin_a, pin_b, active_low=False):
        self.pin_a = pin_a
        self.pin_b = pin_b
        self.active_low = active_low

    def read(self):
        return (_level(self.pin_a, self.active_low), _level(self.pin_b, self.active_low))


class GpioInput:
    """One contact input. `value() -> bool` (debouncing is firmware/gate/sensors.EdgeInput's
    job)."""

    def __init__(self, pin, active_low=False):
        self.pin = pin
        self.active_low = active_low

    def value(self) -> bool:
        return _level(self.pin, self.active_low)


# name -> (green, red, buzzer, how long in ms; 0 = until the next signal)
PATTERNS = {
    "accept": (1, 0, 1, 150),
    "reject": (0, 1, 1, 600),
    "alarm": (0, 1, 1, 0),
    "alarm_off": (0, 0, 0, 0),
    "emergency": (1, 0, 0, 0),
    "closed": (0, 1, 0, 0),
    "ready": (0, 0, 0, 0),
}


class GpioIndicator:
    """Green and red LEDs and a buzzer (any may be None). `signal(name)` sets a pattern from
    PATTERNS; timed ones fall back to the steady pattern on `poll()`."""

    def __init__(self, green=None, red=None, buzzer=None, ticks=None):
        self.pins = (green, red, buzzer)
        self.ticks = ticks or ticks_ms
        self.steady = "ready"
        self.until = None
        self.current = "ready"
        self._set(PATTERNS["ready"])

    def _set(self, pattern) -> None:
        for pin, v in zip(self.pins, pattern[:3]):
            if pin is not None:
                pin.value(v)

    def signal(self, name: str) -> None:
        pattern = PATTERNS.get(name)
        if pattern is None:
            return
        self.current = name
        self._set(pattern)
        if pattern[3]:
            self.until = (self.ticks(), pattern[3])
        else:
            self.steady = name
            self.until = None

    def poll(self) -> list:
        if self.until is not None and ticks_diff(self.ticks(), self.until[0]) >= self.until[1]:
            self.until = None
            self.current = self.steady
            self._set(PATTERNS[self.steady])
        return []


def _params(url: str, scheme: str) -> dict:
    rest = url[len(scheme) + 1 :] if url.startswith(scheme + ":") else url
    out = {}
    for part in rest.split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


def _pin(machine, spec, out=False):
    if spec is None or spec == "":
        return None
    ident = int(spec) if spec.isdigit() else spec
    if out:
        return machine.Pin(ident, machine.Pin.OUT)
    return machine.Pin(ident, machine.Pin.IN)


def barrier_from_url(url: str, machine=None, ticks=None) -> GpioBarrier:
    """gpio:relay=N[&opened=N&closed=N&travel_ms=3000&active_low=1]"""
    if machine is None:
        import machine  # type: ignore[no-redef]
    p = _params(url, "gpio")
    if "relay" not in p:
        raise ValueError("gpio barrier URL needs relay=PIN: %r" % url)
    return GpioBarrier(
        _pin(machine, p["relay"], out=True),
        _pin(machine, p.get("opened")),
        _pin(machine, p.get("closed")),
        int(p.get("travel_ms", "3000")),
        p.get("active_low") == "1",
        ticks,
    )


def pair_from_url(url: str, machine=None, ticks=None) -> GpioPair:
    """gpio:a=N&b=N[&active_low=1]  (beams or loops)"""
    if machine is None:
        import machine  # type: ignore[no-redef]
    p = _params(url, "gpio")
    return GpioPair(_pin(machine, p["a"]), _pin(machine, p["b"]), p.get("active_low") == "1")


def input_from_url(url: str, machine=None, ticks=None) -> GpioInput:
    """gpio:pin=N[&active_low=1]"""
    if machine is None:
        import machine  # type: ignore[no-redef]
    p = _params(url, "gpio")
    return GpioInput(_pin(machine, p["pin"]), p.get("active_low") == "1")


def indicator_from_url(url: str, machine=None, ticks=None) -> GpioIndicator:
    """gpio:green=N&red=N&buzzer=N (each optional)"""
    if machine is None:
        import machine  # type: ignore[no-redef]
    p = _params(url, "gpio")
    return GpioIndicator(
        _pin(machine, p.get("green"), True),
        _pin(machine, p.get("red"), True),
        _pin(machine, p.get("buzzer"), True),
        ticks,
    )
