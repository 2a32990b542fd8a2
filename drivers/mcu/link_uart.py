"""The sync link over an MCU gate's `machine.UART` (MicroPython). Portable: the UART is handed
in, so tests run it on the unix port against a fake `machine` module.

    uart:2?baudrate=115200&tx=17&rx=16       (the "sync_serial" entry of an MCU gate's device.json)

The same frames and the same authenticated protocol as over TCP or a serial port on Linux
(drivers/linux/link_serial.py): a frame's CRC catches line noise, and a lost frame fails the
session,
which the gate simply starts again (nothing is trimmed without an ACK). A UART is always
"connected": the link is ready at once, so firmware/compose/app.py's Syncer starts the session in
the same turn of the main loop, and `recv(0)` never waits. The port stays configured between
sessions; `close()` only drops what is left in its receive buffer (a late answer of a failed
session must not start the next one).
"""

from drivers.mcu.qrengine_uart import open_uart, sleep_ms
from drivers.portable import qrengine
from firmware import settings

MAX_READ = settings.default("buffers.link_read")  # bytes per read: a bounded buffer


class UartLink:
    """A machine.UART with the link interface: send(bytes), recv(timeout_s) -> bytes (None when
    nothing came in time), close()."""

    def __init__(self, uart, name: str = "uart", sleep=sleep_ms):
        self.uart = uart
        self.name = name
        self.sleep = sleep

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            n = self.uart.write(view)
            if n is None:  # a full transmit buffer on some ports: wait for it to drain
                self.sleep(1)
                continue
            view = view[n:]

    def recv(self, timeout_s: float):
        if not self.uart.any():
            start = qrengine.ticks_ms()  # real time: this is the wait for bytes on the wire
            limit = int(timeout_s * 1000)
            while not self.uart.any():
                if qrengine.ticks_diff(qrengine.ticks_ms(), start) >= limit:
                    return None
                self.sleep(1)
        return self.uart.read(MAX_READ) or None

    def close(self) -> None:
        while self.uart.any():
            self.uart.read(MAX_READ)


def from_url(url: str, machine=None, ticks=None, sleep=sleep_ms) -> UartLink:
    """ "uart:ID?baudrate=..&tx=..&rx=.." on `machine` (default: import it)."""
    uart, _none = open_uart(url, machine, 115200)
    return UartLink(uart, url, sleep)
