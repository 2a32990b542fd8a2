"""Entry point of a Linux gate image: the boot shim (firmware/boot.py) imports this module from
the slot it chose and calls `main(ctx)`. It wires the CPython implementations into firmware.app:
the OpenSSL signature backend (for images, credentials and the device key), the service port
and the board's hardware.

From the gate's `device.json`:
    "console": "stdio"     the service port: "stdio" (the simulator relays the launcher's
                           stdin/stdout to a pty, host_sim/sim_device.py) or a pyserial URL
                           such as "/dev/ttyS1"
    "hardware": {          device URLs as in drivers/wiring.py and docs/drivers.md; GPIO pins
                           are sysfs value files (drivers/gpio_sysfs.py); relative paths are
                           relative to the state directory, the gate's working directory
      "readers": [{"url": "serial:/dev/ttyACM0"}],    the first one reads the test card
      "barrier": "gpio:relay=17&opened=18",           position feedback for the self-test
      "beams": "gpio:a=22&b=23"                       passage beams A and B
    }
    "rtc_reset_time": T    what an unset clock reads (firmware/rtc.py)
"""

import os
import sys
from typing import Any

from drivers import crypto_openssl, gpio_sysfs, registry
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


def _open(kind: str, url: str) -> Any:
    return registry.open_device(kind, url, machine=gpio_sysfs)


class Scanner:
    """The first reader, opened when first read: a scanner unplugged at boot fails the
    technician's self-test (with the reason), not the boot."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reader: Any = None

    def read(self, timeout_s: float) -> str | None:
        if self.reader is None:
            self.reader = _open("reader", self.url)
        return self.reader.read(timeout_s)


class Beam:
    """One beam of a pair, named, as the technician's self-test reads it."""

    def __init__(self, name: str, pair: Any, index: int) -> None:
        self.name = name
        self.pair = pair
        self.index = index

    def blocked(self) -> bool:
        return bool(self.pair.read()[self.index])


class Hardware:
    """What the technician's self-test drives (firmware/gate_selftest.py)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        readers = spec.get("readers") or []
        self.scanner = Scanner(readers[0]["url"]) if readers else None
        self.barrier = _open("barrier", spec["barrier"]) if spec.get("barrier") else None
        beams = _open("pair", spec["beams"]) if spec.get("beams") else None
        self.sensors = [Beam("beam A", beams, 0), Beam("beam B", beams, 1)] if beams else []


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(ctx: dict[str, Any]) -> int:
    device = ctx["device"]
    console = device.get("console", "stdio")
    link = StdioLink() if console == "stdio" else SerialLink(console)
    os.chdir(ctx["state_dir"])
    hw = Hardware(device.get("hardware") or {})
    platform.set_crypto(crypto_openssl)
    return app.run(ctx, link, hw, os.urandom, log)
