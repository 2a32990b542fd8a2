"""Entry point of a Linux gate image: the boot shim (firmware/boot.py) imports this module from
the slot it chose and calls `main(ctx)`. It wires the CPython implementations into firmware.app:
the OpenSSL signature backend (for images, credentials and the device key), the service port
and the board's hardware.

From the gate's `device.json` (paths relative to the state directory):
    "console": "stdio"                 the service port: "stdio" (the simulator relays the
                                       launcher's stdin/stdout to a pty, host_sim/sim_device.py)
                                       or a pyserial URL such as "/dev/ttyS1"
    "hardware": {
      "scanner": URL                   the QR engine (drivers/qrengine_serial.py)
      "barrier": {"relay": PATH, "position": PATH}      GPIO value files (drivers/gpio_sysfs.py)
      "beams": {"beam-in": PATH, ...}                    passage beams, GPIO value files
    }
    "rtc_reset_time": T                what an unset clock reads (firmware/rtc.py)
"""

import os
import sys
from typing import Any

from drivers import crypto_openssl
from drivers.gpio_sysfs import Barrier, Beam
from firmware import app, platform


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


class Scanner:
    """The QR engine, opened when first read: a scanner unplugged at boot fails the technician's
    self-test (with the reason), not the boot."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Any = None

    def read(self, timeout_s: float) -> str | None:
        if self.engine is None:
            from drivers.qrengine_serial import SerialQREngine

            self.engine = SerialQREngine(self.url)
        return self.engine.read(timeout_s)


class Hardware:
    def __init__(self, state_dir: str, spec: dict[str, Any]) -> None:
        def path(p: str) -> str:
            return p if p.startswith("/") or "://" in p else os.path.join(state_dir, p)

        self.scanner = Scanner(path(spec["scanner"])) if spec.get("scanner") else None
        b = spec.get("barrier")
        self.barrier = Barrier(path(b["relay"]), path(b["position"])) if b else None
        self.sensors = [Beam(name, path(p)) for name, p in sorted(spec.get("beams", {}).items())]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(ctx: dict[str, Any]) -> int:
    device = ctx["device"]
    console = device.get("console", "stdio")
    link = StdioLink() if console == "stdio" else SerialLink(console)
    hw = Hardware(ctx["state_dir"], device.get("hardware") or {})
    platform.set_crypto(crypto_openssl)
    return app.run(ctx, link, hw, os.urandom, log)
