"""A barrier or door controller on a serial line (Linux gate, pyserial). ASCII lines, CRLF:

    gate -> controller          controller -> gate
    OPEN                        OPENED      reached the open position
    CLOSE                       CLOSED      reached the closed position
    STATUS                      JAM         did not reach its position (obstruction, fault)
                                OK          a jam cleared
                                STATE <OPEN|CLOSED|OPENING|CLOSING|JAM>   (answer to STATUS)

`poll()` turns controller lines into gate events (barrier_opened, barrier_closed,
barrier_jam, barrier_ok); anything else is counted in `stats["unknown"]` and ignored.
host_sim/hardware/devices.PtyBarrierController is the simulated controller on a pty.

    serial:/dev/ttyUSB1?baudrate=9600      (docs/drivers.md)
"""

from typing import Any

import serial

from drivers.portable.qrengine import LineFramer, parse_options, ticks_ms

EVENTS = {
    b"OPENED": "barrier_opened",
    b"CLOSED": "barrier_closed",
    b"JAM": "barrier_jam",
    b"OK": "barrier_ok",
}


class SerialBarrier:
    def __init__(self, url: str, baudrate: int = 9600, ticks: Any = None) -> None:
        self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0)
        self.framer = LineFramer(b"\r\n", 64, 0)
        self.ticks = ticks or ticks_ms
        self.state = "UNKNOWN"  # last STATE reported
        self.position = "unknown"  # from the last OPENED / CLOSED
        self.openings = 0
        self.stats = {"unknown": 0}

    def _send(self, line: bytes) -> None:
        self.serial.write(line + b"\r\n")
        self.serial.flush()

    def open(self) -> None:
        self.openings += 1
        self._send(b"OPEN")

    def close(self) -> None:
        self._send(b"CLOSE")

    def request_status(self) -> None:
        self._send(b"STATUS")

    def poll(self) -> list[str]:
        data = self.serial.read(self.serial.in_waiting or 1) if self.serial.in_waiting else b""
        events = []
        for line in self.framer.feed(bytes(data), self.ticks()) if data else []:
            line = line.strip()
            if line in EVENTS:
                events.append(EVENTS[line])
                if line in (b"OPENED", b"CLOSED"):
                    self.position = "open" if line == b"OPENED" else "closed"
            elif line.startswith(b"STATE "):
                self.state = line[6:].decode("ascii", "replace")
            else:
                self.stats["unknown"] += 1
        return events

    def is_open(self) -> bool:
        """Position feedback as last reported (call poll() to take in new reports)."""
        return self.position == "open"

    def close_port(self) -> None:
        self.serial.close()


def from_url(url: str, machine: Any = None, ticks: Any = None) -> SerialBarrier:
    if url.startswith("serial:"):
        url = url[len("serial:") :]
    base, _, query = url.partition("?")
    opts = parse_options(query)
    return SerialBarrier(base, int(opts.get("baudrate", 9600)), ticks)
