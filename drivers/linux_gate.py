"""Entry point of a Linux gate image: the boot shim (firmware/boot.py) imports this module from
the slot it chose and calls `main(ctx)`. It wires the CPython implementations into firmware.app:
the OpenSSL signature backend and the service port.

The service port is `device.json`'s "console": "stdio" (the simulator relays the launcher's
stdin/stdout to a pty, host_sim/sim_gate.py) or a pyserial URL such as "/dev/ttyS1".
"""

import os
import sys
from typing import Any

from drivers.crypto_openssl import OpenSSLVerifier
from firmware import app


class StdioLink:
    """The service port on file descriptors 0 and 1."""

    def __init__(self, rfd: int = 0, wfd: int = 1) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def read(self) -> bytes:
        return os.read(self.rfd, 65536)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]


class SerialLink:
    """The service port on a UART through pyserial (any URL pyserial opens)."""

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        import serial

        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=None)

    def read(self) -> bytes:
        first = self.port.read(1)
        return first + self.port.read(self.port.in_waiting)

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(ctx: dict[str, Any]) -> int:
    console = ctx["device"].get("console", "stdio")
    link = StdioLink() if console == "stdio" else SerialLink(console)
    return app.run(ctx, link, OpenSSLVerifier(), log)
