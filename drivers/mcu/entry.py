"""Entry point of an MCU gate image (MicroPython): the boot shim imports it from the chosen
slot and calls `main(ctx)`. Packed into mcu images as .mpy (drivers/manifest.py).

It wires the board from the gate's `device.json` and runs the gate as a Linux gate does
(firmware/compose/app.py: service console, gate loop, sync), with the pure-Python P-256 of
protocol/p256.py (firmware.platform's default backend) for ride codes, images, credentials and
the device key:

    "hardware": {          device URLs (drivers/portable/wiring.py, docs/drivers.md), on `machine`
      "readers": [{"url": "uart:1?baudrate=9600&tx=4&rx=5&prefix=%02&suffix=%0D"}],
      "barrier": "gpio:relay=17&opened=18&closed=19&travel_ms=3000",
      "beams":   "gpio:a=22&b=23",
      "inputs":  {"fire_alarm": "gpio:pin=12"},
      "rtc":     "machine:"                   the board's RTC (else the platform's clock)
    }
    "sync_serial": "uart:2?baudrate=115200&tx=25&rx=26"   sync with the back office over this
                           UART (drivers/mcu/link_uart.py: the same frames and protocol as TCP)

The service port is the interpreter's stdin/stdout: the USB REPL UART on a board, and what the
MicroPython unix port gives the simulator (host_sim/hardware/sim_device.py relays it to a pty).
Hardware that cannot be opened (a typo in a URL; the unix port, whose `machine` has no Pin or UART)
is logged and the console still starts, so a technician can look; a gate without a barrier does
not run its gate loop (firmware/compose/device.py). No "sync_serial": this gate does not sync.
"""

import gc
import select
import sys

from drivers.portable import registry, wiring
from firmware import settings

LINK_READ = settings.default("buffers.link_read")


class StdioLink:
    def __init__(self):
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def read(self, timeout_s=None):
        # MicroPython's read(n) waits for all n bytes, so take what is there one byte at a time
        if not self._poll.poll(-1 if timeout_s is None else int(timeout_s * 1000)):
            return None
        out = bytearray()
        while len(out) < LINK_READ and self._poll.poll(0):
            b = self._in.read(1)
            if not b:
                break
            out += b
        return bytes(out)

    def write(self, data: bytes) -> None:
        self._out.write(data)
        if hasattr(self._out, "flush"):
            self._out.flush()


def log(text):
    sys.stderr.write(text + "\n")


def _machine(machine):
    if machine is None:
        import machine  # type: ignore[no-redef]  # the board's (MicroPython)
    return machine


def hardware(device: dict, machine=None, ticks=None, log=log):
    """The board's devices from device.json's "hardware" (a wiring.Hardware), or None."""
    spec = device.get("hardware")
    if not spec:
        return None
    try:
        return wiring.build(spec, machine=_machine(machine), ticks=ticks)
    except (OSError, ValueError, ImportError, AttributeError) as e:
        log("app: hardware not available: %s" % (e,))
        return None


def connector(device: dict, machine=None):
    """`connect(dev, endpoint)` for firmware.compose.app: the sync link on the UART that
    device.json names (opened once, at the first session, and kept; no endpoint to choose), or
    None when the gate does not sync."""
    url = device.get("sync_serial")
    if not url:
        return None
    opened: list = []

    def connect(_dev, _endpoint=None):  # a UART: no host to choose
        if not opened:
            try:
                opened.append(registry.open_device("link", url, machine=_machine(machine)))
            except (registry.NoBackend, ValueError, ImportError, AttributeError) as e:
                raise OSError("sync link %s: %s" % (url, e)) from None
        return opened[0]

    return connect


def main(ctx, machine=None, link=None, clock=None, logger=None):
    """Run the gate. `machine`, `link` (the service port), `clock` (the board's tick counter
    `.ticks_ms()`, and its RTC when the hardware names none) and `logger` (the console log)
    default to the board's."""
    gc.collect()  # before the gate's largest import: its compile wants whole blocks
    from firmware.compose import app

    if hasattr(gc, "threshold"):
        # collect early and often (the MicroPython docs' advice for small heaps): garbage
        # collected sooner leaves fewer holes, and the gate's buffers need whole blocks
        gc.collect()
        gc.threshold(gc.mem_free() // 8)  # type: ignore[attr-defined]
    device = ctx["device"]
    if device.get("sync_serial"):
        # a gate that syncs loads the sync protocol's code now, while the heap is whole, not
        # at its first session amid the gate's buffers (firmware/compose/device.py sync_client)
        import firmware.sync.client  # noqa: F401
    say = logger or log
    hw = hardware(device, machine, getattr(clock, "ticks_ms", None), say)
    return app.run(
        ctx, link or StdioLink(), hw, None, say, clock=clock, connect=connector(device, machine)
    )
