"""A serial QR engine on an MCU gate's `machine.UART` (MicroPython). Portable: the UART object
is handed in, so tests run it on the unix port against a fake `machine` module.

    uart:1?baudrate=9600&tx=4&rx=5&suffix=%0D      (docs/drivers.md)
"""

from drivers.portable import qrengine

try:
    from time import sleep_ms  # type: ignore[attr-defined]
except ImportError:  # CPython (tests)
    import time

    def sleep_ms(ms):
        time.sleep(ms / 1000)


class UartPort:
    """The recv/send adapter of drivers/portable/qrengine.py over a machine.UART."""

    def __init__(self, uart, sleep=sleep_ms):
        self.uart = uart
        self.sleep = sleep

    def recv(self, max_bytes: int, timeout_s: float) -> bytes:
        start = qrengine.ticks_ms()  # real time: this is the wait for bytes on the wire
        limit = int(timeout_s * 1000)
        while not self.uart.any():
            if qrengine.ticks_diff(qrengine.ticks_ms(), start) >= limit:
                return b""
            self.sleep(1)
        return self.uart.read(max_bytes) or b""

    def send(self, data: bytes) -> None:
        self.uart.write(data)


class UartQREngine(qrengine.QREngine):
    def __init__(self, uart, options=None, ticks=None, sleep=sleep_ms):
        self.uart = uart
        super().__init__(UartPort(uart, sleep), options, ticks)

    def close(self) -> None:
        deinit = getattr(self.uart, "deinit", None)
        if deinit:
            deinit()


UART_KEYS = ("baudrate", "tx", "rx", "bits", "parity", "stop", "timeout")


def open_uart(url: str, machine, baudrate: int, other=()):
    """(machine.UART, {option: value}) from "uart:ID?baudrate=..&tx=..&rx=..&...": the UART
    takes UART_KEYS (`baudrate` when the URL gives none); options named in `other` are
    returned; any other key is a ValueError. `machine` None: import the board's."""
    if machine is None:
        import machine  # type: ignore[no-redef]
    rest = url[len("uart:") :] if url.startswith("uart:") else url
    ident, _, query = rest.partition("?")
    opts = qrengine.parse_options(query)
    uart_kw = {}
    rest_opts = {}
    for key in opts:
        if key in other:
            rest_opts[key] = opts[key]
        elif key in UART_KEYS:
            uart_kw[key] = int(opts[key])
        else:
            raise ValueError("unknown uart option %r in %r" % (key, url))
    uart_kw.setdefault("baudrate", baudrate)
    return machine.UART(int(ident), **uart_kw), rest_opts


def from_url(url: str, machine=None, ticks=None, sleep=sleep_ms) -> UartQREngine:
    """ "uart:ID?baudrate=..&tx=..&rx=..&<engine options>" on `machine` (default: import it)."""
    uart, engine = open_uart(url, machine, 9600, qrengine.DEFAULTS)
    return UartQREngine(uart, engine, ticks, sleep)
