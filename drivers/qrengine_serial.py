"""A serial QR engine (the kind sold for turnstiles) read through pyserial.

Such engines send each decoded code as one line, optionally wrapped in a configurable prefix
and suffix. The port is opened by URL with `serial.serial_for_url`, so "/dev/ttyUSB0", a pty
path from the simulator, or "loop://" all work the same.
"""

import serial


class SerialQREngine:
    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        prefix: bytes = b"",
        suffix: bytes = b"\r\n",
        max_line: int = 1024,
    ) -> None:
        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1)
        self.prefix = prefix
        self.suffix = suffix
        self.max_line = max_line
        self._buf = bytearray()
        self.dropped_lines = 0  # over-long or garbled lines thrown away

    def read(self, timeout_s: float = 1.0) -> str | None:
        """Return the next complete code text, or None if none arrived in time."""
        self.port.timeout = timeout_s
        while True:
            end = self._buf.find(self.suffix)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + len(self.suffix)]
                if self.prefix:
                    start = line.rfind(self.prefix)
                    if start < 0:
                        self.dropped_lines += 1
                        continue
                    line = line[start + len(self.prefix) :]
                try:
                    text = line.decode("ascii").strip()
                except UnicodeDecodeError:
                    self.dropped_lines += 1
                    continue
                if text:
                    return text
                continue
            if len(self._buf) > self.max_line:
                self._buf.clear()
                self.dropped_lines += 1
            chunk = self.port.read(max(1, self.port.in_waiting))
            if not chunk:
                return None
            self._buf.extend(chunk)

    def close(self) -> None:
        self.port.close()
