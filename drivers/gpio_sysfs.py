"""Barrier and passage beams on GPIO lines, through Linux's sysfs GPIO value files.

Each line is a file holding "0" or "1" (`/sys/class/gpio/gpio17/value` on a board, exported
with the right direction by the gate's setup). The simulated board (host_sim/board.py) wires
plain files the same way, so the gate image runs the same code on both.

    barrier = Barrier(relay="/sys/class/gpio/gpio17/value", position=".../gpio27/value")
    beams = [Beam("beam-in", ".../gpio22/value"), Beam("beam-out", ".../gpio23/value")]

The barrier's relay is an output (1 = open); its position switch an input (1 = open), which
firmware/gate_selftest.py reads to see that it really moved. A beam reads 1 while something
interrupts it.
"""


class Line:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> bool:
        with open(self.path) as f:
            return f.read(1) == "1"

    def write(self, on: bool) -> None:
        with open(self.path, "w") as f:
            f.write("1" if on else "0")


class Barrier:
    def __init__(self, relay: str, position: str) -> None:
        self.relay = Line(relay)
        self.position = Line(position)

    def open(self) -> None:
        self.relay.write(True)

    def close(self) -> None:
        self.relay.write(False)

    def is_open(self) -> bool:
        return self.position.read()


class Beam:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.line = Line(path)

    def blocked(self) -> bool:
        return self.line.read()
