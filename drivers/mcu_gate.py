"""Entry point of an MCU gate image (MicroPython): the boot shim imports it from the chosen
slot and calls `main(ctx)`. Packed into mcu images as .mpy (every drivers/mcu_*.py is).

The service port here is the interpreter's stdin/stdout, which is what the MicroPython unix
port gives the simulator (host_sim/sim_device.py relays it to a pty); on a board it is the USB
REPL UART. The gate runs on it as on a Linux gate (firmware/app.py: console, gate loop, sync),
with the pure-Python P-256 of protocol/p256.py (firmware.platform's default backend) for ride
codes, images, credentials and the device key. No peripherals and no sync link are wired here
yet: the simulated MCU gate is a console (drivers/wiring.py can wire uart: and gpio: URLs, as
tests/portable/test_mcu_profile.py does).
"""

import select
import sys


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
        out = b""
        while len(out) < 4096 and self._poll.poll(0):
            b = self._in.read(1)
            if not b:
                break
            out += b
        return out

    def write(self, data: bytes) -> None:
        self._out.write(data)
        if hasattr(self._out, "flush"):
            self._out.flush()


def log(text):
    sys.stderr.write(text + "\n")


def main(ctx):
    from firmware import app

    return app.run(ctx, StdioLink(), None, None, log)
