"""Simulated gate hardware: backends of the same interfaces as drivers/
(drivers/portable/interfaces.py).

    ManualClock            virtual time: .now() unix seconds, .ticks_ms() for timers
    SimReader              a reader the test or simulator hands texts to (no wire)
    PtyQREngine            a QR engine on a real pseudo-terminal: the gate opens its path through
                           pyserial exactly as it would /dev/ttyUSB0; answers trigger and
                           keep-alive commands, and can send garbage, partial and over-long lines
    SimBarrier             a barrier arm / swing door / lock with open and close times and jams
    PtyBarrierController   a SimBarrier behind a pty, speaking drivers/barrier_serial's protocol
    SimDisplay             remembers every line shown (tests read `.last` and `.lines`)
    SimIndicator           remembers every LED/buzzer signal
    SimInput               one contact level (fire alarm, door, button, service key)
    SimRTC                 an RTC that drifts and can be set

Riders, vehicles and shoppers that move through beams and loops are in host_sim/hardware/passage.py;
the camera that films phones is host_sim/hardware/camera.py.
"""

import os
import tty
from typing import Any


def _drain(fd: int) -> bytes:
    """Everything waiting on a non-blocking descriptor."""
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # BlockingIOError: nothing more for now
            return out
        if not data:
            return out
        out += data


def _open_pty() -> tuple[int, int, str]:
    """A raw pty: (master fd, non-blocking; slave fd; the slave's path for the gate to open)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte to a non-blocking pty master, retrying while its buffer is full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ManualClock:
    """A clock the test or the simulator moves by hand (millisecond resolution)."""

    def __init__(self, now: int) -> None:
        self.t_ms = int(now) * 1000

    def now(self) -> int:
        return self.t_ms // 1000

    def ticks_ms(self) -> int:
        return self.t_ms

    def advance(self, seconds: float) -> None:
        self.t_ms += int(round(seconds * 1000))

    def advance_ms(self, ms: int) -> None:
        self.t_ms += int(ms)


class SimReader:
    """A code reader with no wire: `present(text)` queues a scan, `read()` returns it."""

    def __init__(self) -> None:
        self.queue: list[str] = []

    def present(self, text: str) -> None:
        self.queue.append(text)

    def read(self, timeout_s: float = 0.0) -> str | None:
        return self.queue.pop(0) if self.queue else None


class PtyQREngine:
    """A QR engine on a pty. `path` is what the gate opens; `show(text)` is a rider's phone.

    In continuous mode (the default) a shown code is sent at once. With `trigger` set the
    engine is in command mode: shown codes wait in `pending` until the gate sends the trigger
    command (call `serve()` to let the engine read its commands). A `keepalive` command is
    answered with `keepalive_ack` + suffix, unless `mute` is set (a dead engine).
    """

    def __init__(
        self,
        prefix: bytes = b"",
        suffix: bytes = b"\r\n",
        trigger: bytes = b"",
        keepalive: bytes = b"",
        keepalive_ack: bytes = b"",
        aim: bytes = b"",
        trigger_ack: bytes = b"",
    ) -> None:
        self.master, self.slave, self.path = _open_pty()
        self.prefix = prefix
        self.aim = aim  # AIM symbology identifier sent before each code (b"]Q1"), or none
        self.trigger_ack = trigger_ack  # sent (without suffix) when a trigger command arrives
        self.suffix = suffix
        self.trigger = trigger
        self.keepalive = keepalive
        self.keepalive_ack = keepalive_ack
        self.pending: list[bytes] = []  # lines waiting for a trigger
        self.commands = b""  # everything the gate ever sent
        self.triggers = 0
        self.keepalives = 0
        self.mute = False
        self._inbox = b""

    def show(self, text: str, symbology: bytes | None = None) -> None:
        """A code held up; `symbology` overrides the AIM identifier (b"]C0": read as Code 128)."""
        line = self.prefix + (self.aim if symbology is None else symbology)
        line += text.encode("ascii") + self.suffix
        if self.trigger:
            self.pending.append(line)
        else:
            self.write(line)

    def write(self, data: bytes) -> None:
        _write_all(self.master, data)

    def serve(self) -> None:
        """Read the gate's commands and answer them (trigger: send a pending code)."""
        data = _drain(self.master)
        self.commands += data
        self._inbox += data
        for cmd, action in ((self.trigger, self._on_trigger), (self.keepalive, self._on_ka)):
            while cmd and cmd in self._inbox:
                i = self._inbox.index(cmd)
                self._inbox = self._inbox[:i] + self._inbox[i + len(cmd) :]
                action()

    def _on_trigger(self) -> None:
        self.triggers += 1
        if self.mute:
            return
        if self.trigger_ack:
            self.write(self.trigger_ack)
        if self.pending:
            self.write(self.pending.pop(0))

    def _on_ka(self) -> None:
        self.keepalives += 1
        if not self.mute:
            self.write(self.keepalive_ack + self.suffix)

    # -- line faults -------------------------------------------------------------------------
    def garbage(self, data: bytes) -> None:
        """Line noise: bytes that belong to no code (a cable glitch, a baud mismatch)."""
        self.write(data)

    def partial(self, text: str, keep: int) -> None:
        """The first `keep` characters of a code line, then nothing (the engine reset)."""
        self.write((self.prefix + text.encode("ascii"))[:keep])

    def overlong(self, n: int, fill: bytes = b"A") -> None:
        """A line of n bytes: far longer than any code (a stuck engine, a wrong symbology)."""
        self.write(fill * n + self.suffix)

    def close(self) -> None:
        _close(self.master, self.slave)


class PtyGnss:
    """A GNSS receiver on a pty: `send(sentence)` writes one NMEA line (CR LF added) as a
    receiver does once a second; `write(data)` any bytes (noise, a line cut in two)."""

    def __init__(self) -> None:
        self.master, self.slave, self.path = _open_pty()

    def send(self, sentence: str) -> None:
        self.write(sentence.encode("ascii") + b"\r\n")

    def write(self, data: bytes) -> None:
        _write_all(self.master, data)

    def close(self) -> None:
        _close(self.master, self.slave)


class WedgeScanner:
    """A USB keyboard-wedge scanner: the input events it makes when it reads a code, as a
    real one types them (each key: MSC_SCAN with its HID usage, the key event, SYN_REPORT;
    Shift around capitals; Enter at the end), `key_ms` apart. `events()` feeds a recording
    (drivers.linux.wedge_evdev.record); `uinput()` makes it a kernel input device."""

    NAME = "faregate sim wedge scanner"

    def __init__(self, layout: str = "us", key_ms: int = 2, aim: str = "") -> None:
        self.layout = layout
        self.key_ms = key_ms
        self.aim = aim  # AIM identifier typed before each code ("]Q1"), or none

    def events(self, text: str, at_ms: int = 0, aim: str | None = None) -> list[tuple]:
        from evdev import ecodes

        from drivers.linux.keymap import keystrokes

        out = []
        t = at_ms
        for code, value in keystrokes((self.aim if aim is None else aim) + text, self.layout):
            out.append((ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code, t))
            out.append((ecodes.EV_KEY, code, value, t))
            out.append((ecodes.EV_SYN, ecodes.SYN_REPORT, 0, t))
            t += self.key_ms
        return out

    def uinput(self) -> Any:
        """A virtual input device (evdev.UInput) with a keyboard's keys; raises
        evdev.UInputError or OSError where the kernel has no uinput (/dev/uinput)."""
        from evdev import UInput, ecodes

        keys = [c for c in ecodes.keys if isinstance(c, int) and 0 < c < 0x100]
        return UInput(
            {ecodes.EV_KEY: keys, ecodes.EV_MSC: [ecodes.MSC_SCAN]},
            name=self.NAME,
            vendor=0x1D6B,
            product=0x0104,
        )

    def type_into(self, ui: Any, text: str) -> None:
        """Type a code into a UInput device, as the scanner would."""
        for etype, code, value, _t in self.events(text):
            ui.write(etype, code, value)


class SimBarrier:
    """A barrier arm, swing door or electric lock with travel times and jams.

    States: closed, opening, open, closing, jammed. With a `ticks` source, `open()`/`close()`
    start a movement that ends `open_ms`/`close_ms` later; `poll()` then reports
    barrier_opened / barrier_closed, like a controller with limit switches. `jam_next()`
    (or `jam_rate` with a seeded `rng`) makes the next movement stop half-way: poll()
    reports barrier_jam once the movement is overdue, and `clear_jam()` (a technician)
    finishes it with barrier_ok. Without `ticks` it moves instantly.
    """

    def __init__(
        self,
        ticks: Any = None,
        open_ms: int = 0,
        close_ms: int = 0,
        rng: Any = None,
        jam_rate: float = 0.0,
    ) -> None:
        self.ticks = ticks or (lambda: 0)
        self.open_ms = open_ms
        self.close_ms = close_ms
        self.rng = rng
        self.jam_rate = jam_rate
        self.state = "closed"
        self.openings = 0  # open commands that started an opening
        self.commands: list[tuple[int, str]] = []
        self.jams = 0
        self._target = "closed"
        self._since = 0
        self._jam_pending = False
        self._events: list[str] = []

    def is_open(self) -> bool:
        """Position feedback (firmware/maintenance/hardware_selftest asks it): fully open."""
        return self.state == "open"

    def jam_next(self) -> None:
        self._jam_pending = True

    def open(self) -> None:
        self.commands.append((self.ticks(), "open"))
        if self.state in ("open", "opening") or self._target == "open" and self.state == "jammed":
            return
        self.openings += 1
        self._move("open")

    def close(self) -> None:
        self.commands.append((self.ticks(), "close"))
        if self.state in ("closed", "closing"):
            return
        self._move("closed")

    def _move(self, target: str) -> None:
        if self.state == "jammed":
            self._target = target  # a jammed barrier ignores commands until cleared
            return
        self._target = target
        self._since = self.ticks()
        if self.rng is not None and self.jam_rate and self.rng.random() < self.jam_rate:
            self._jam_pending = True
        self.state = "opening" if target == "open" else "closing"
        self.poll_now()

    def poll_now(self) -> None:
        if self.state not in ("opening", "closing"):
            return
        travel = self.open_ms if self.state == "opening" else self.close_ms
        if self.ticks() - self._since < travel:
            return
        if self._jam_pending:
            self._jam_pending = False
            self.state = "jammed"
            self.jams += 1
            self._events.append("barrier_jam")
            return
        self.state = self._target
        self._events.append("barrier_opened" if self.state == "open" else "barrier_closed")

    def clear_jam(self) -> None:
        if self.state == "jammed":
            self.state = self._target
            self._events.append("barrier_ok")
            self._events.append("barrier_opened" if self.state == "open" else "barrier_closed")

    def poll(self) -> list[str]:
        self.poll_now()
        out, self._events = self._events, []
        return out


class PtyBarrierController:
    """A barrier controller on a pty speaking drivers/barrier_serial's line protocol, with a
    SimBarrier (timing, jams) behind it. Call `pump()` to let it read commands and report."""

    STATE_NAMES = {
        "closed": b"CLOSED",
        "open": b"OPEN",
        "opening": b"OPENING",
        "closing": b"CLOSING",
        "jammed": b"JAM",
    }
    EVENT_LINES = {
        "barrier_opened": b"OPENED",
        "barrier_closed": b"CLOSED",
        "barrier_jam": b"JAM",
        "barrier_ok": b"OK",
    }

    def __init__(self, barrier: SimBarrier | None = None) -> None:
        self.barrier = barrier or SimBarrier()
        self.master, self.slave, self.path = _open_pty()
        self._inbox = b""
        self.received: list[bytes] = []
        self.dropped = 0

    def pump(self) -> None:
        self._inbox += _drain(self.master)
        while b"\r\n" in self._inbox:
            line, _, self._inbox = self._inbox.partition(b"\r\n")
            self.received.append(line)
            if line == b"OPEN":
                self.barrier.open()
            elif line == b"CLOSE":
                self.barrier.close()
            elif line == b"STATUS":
                self._send(b"STATE " + self.STATE_NAMES[self.barrier.state])
            else:
                self._send(b"ERR")
        for event in self.barrier.poll():
            self._send(self.EVENT_LINES[event])

    def _send(self, line: bytes) -> None:
        try:
            os.write(self.master, line + b"\r\n")
        except BlockingIOError:
            self.dropped += 1  # nobody reads the line: like a UART, the controller loses it

    def close(self) -> None:
        _close(self.master, self.slave)


class SimDisplay:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def show(self, text: str) -> None:
        self.lines.append(text)

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""


class SimIndicator:
    def __init__(self) -> None:
        self.signals: list[str] = []

    def signal(self, name: str) -> None:
        self.signals.append(name)


class SimInput:
    """One contact: set `.level` (True = active); the gate reads `.value()`."""

    def __init__(self, level: bool = False) -> None:
        self.level = level

    def value(self) -> bool:
        return self.level


class SimRTC:
    """An RTC on the virtual clock that runs fast or slow by `drift_ppm` and can be set."""

    def __init__(self, clock: ManualClock, drift_ppm: float = 0.0, offset_s: int = 0) -> None:
        self.clock = clock
        self.drift_ppm = drift_ppm
        self._base_ms = clock.ticks_ms()
        self._base_t = clock.now() + offset_s

    def now(self) -> int:
        elapsed = self.clock.ticks_ms() - self._base_ms
        return self._base_t + int(elapsed * (1 + self.drift_ppm / 1e6)) // 1000

    def set(self, t: int) -> None:
        self._base_ms = self.clock.ticks_ms()
        self._base_t = int(t)
