"""Simulated gate hardware: a QR engine on a pty, a barrier, a display and a clock.

The QR engine writes lines to the master side of a real pseudo-terminal; the gate opens the
slave side's path through pyserial exactly as it would open /dev/ttyUSB0.
"""

import os
import tty


class PtyQREngine:
    """A QR engine on a pty. `path` is what the gate opens; `show(text)` is a rider's phone."""

    def __init__(self, prefix: bytes = b"", suffix: bytes = b"\r\n") -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.prefix = prefix
        self.suffix = suffix

    def show(self, text: str) -> None:
        self.write(self.prefix + text.encode("ascii") + self.suffix)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SimBarrier:
    def __init__(self) -> None:
        self.openings = 0

    def open(self) -> None:
        self.openings += 1


class SimDisplay:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def show(self, text: str) -> None:
        self.lines.append(text)

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""


class ManualClock:
    """A clock the test or the simulator moves by hand."""

    def __init__(self, now: int) -> None:
        self.t = now

    def now(self) -> int:
        return self.t

    def advance(self, seconds: int) -> None:
        self.t += seconds
