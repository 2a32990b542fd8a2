"""The sync link over a serial line (pyserial), for gates without a network.

The same frames and the same authenticated protocol as over TCP; a frame's CRC catches line
noise, and a lost frame fails the session, which the gate simply starts again (nothing is
trimmed without an ACK). The port is opened by URL (`serial.serial_for_url`): "/dev/ttyUSB0",
a pty path from the simulator, or "loop://".
"""

import serial


class SerialLink:
    """A serial port with the link interface: send(bytes), recv(timeout) -> bytes (None on
    timeout), close()."""

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1)
        self.name = url

    def send(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def recv(self, timeout_s: float) -> bytes | None:
        self.port.timeout = timeout_s
        first = self.port.read(1)
        if not first:
            return None
        waiting = self.port.in_waiting
        return first + (self.port.read(waiting) if waiting else b"")

    def close(self) -> None:
        self.port.close()


def from_url(url: str, machine: object = None, ticks: object = None) -> SerialLink:
    """The registry's factory (drivers/portable/registry.py, kind "link"): "serial:PATH" or a bare
    path."""
    return SerialLink(url[len("serial:") :] if url.startswith("serial:") else url)
