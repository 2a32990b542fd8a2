"""A serial QR engine on the Linux gate, read through pyserial (the engine logic is in
drivers/portable/qrengine.py and shared with the MCU's machine.UART backend).

The port is opened with `serial.serial_for_url`, so "/dev/ttyUSB0", a pty path from the
simulator, "loop://" or "socket://host:port" all work the same. Engine options ride in the
URL's query (docs/drivers.md):

    serial:/dev/ttyUSB0?baudrate=9600&prefix=%02&suffix=%0D&trigger=%16T%0D
"""

import select
from typing import Any

import serial

from drivers.portable import qrengine


class PyserialPort:
    """The recv/send adapter of drivers/portable/qrengine.py over a pyserial port."""

    def __init__(self, ser: Any) -> None:
        self.ser = ser
        try:
            self.fd: int | None = ser.fileno()
        except Exception:  # loop://, socket:// and friends have no usable descriptor
            self.fd = None
        if self.fd is not None:
            ser.timeout = 0  # reads never block; select() below does the waiting

    def recv(self, max_bytes: int, timeout_s: float) -> bytes:
        if self.fd is not None:
            if not self.ser.in_waiting:
                ready, _, _ = select.select([self.fd], [], [], timeout_s)
                if not ready:
                    return b""
            return bytes(self.ser.read(max_bytes))
        if self.ser.timeout != timeout_s:
            self.ser.timeout = timeout_s
        return bytes(self.ser.read(max(1, min(max_bytes, self.ser.in_waiting))))

    def send(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()


class SerialQREngine(qrengine.QREngine):
    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        prefix: bytes = b"",
        suffix: bytes = b"\r\n",
        max_line: int = 1024,
        ticks: Any = None,
        **options: Any,
    ) -> None:
        self.url = url
        self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0)
        options.update(prefix=prefix, suffix=suffix, max_line=max_line)
        super().__init__(PyserialPort(self.serial), options, ticks)

    @property
    def dropped_lines(self) -> int:
        s = self.stats
        return s["garbage"] + s["partial"] + s["overlong"]

    def close(self) -> None:
        self.serial.close()


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """ "serial:/dev/ttyS1?baudrate=9600&suffix=%0D" -> ("/dev/ttyS1", {"baudrate": 9600, ...}).
    Query keys that are neither engine options nor baudrate stay on the pyserial URL."""
    if url.startswith("serial:"):
        url = url[len("serial:") :]
    base, _, query = url.partition("?")
    opts = qrengine.parse_options(query)
    engine: dict[str, Any] = {}
    passthrough = []
    for key, value in opts.items():
        if key in qrengine.DEFAULTS:
            engine[key] = value
        elif key == "baudrate":
            engine["baudrate"] = int(value)
        else:
            passthrough.append("%s=%s" % (key, value))
    if passthrough:
        base += "?" + "&".join(passthrough)
    return base, engine


def from_url(url: str, machine: Any = None, ticks: Any = None) -> SerialQREngine:
    base, engine = split_url(url)
    return SerialQREngine(base, ticks=ticks, **engine)
