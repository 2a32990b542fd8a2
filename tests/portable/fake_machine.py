"""A fake `machine` module for the MCU profile's tests on the MicroPython unix port (which has
no Pin, UART or RTC) and on CPython. Used only by tests.

`FakeMachine()` behaves like the module: `m.Pin(17, m.Pin.OUT)`, `m.UART(1, baudrate=9600)`,
`m.RTC()`. Each instance keeps its own pins and UARTs so tests can reach them:
    m.pins[17].level          what an output was driven to / set an input's level
    m.uarts[1].feed(b"...")    bytes arriving from the device on the other end
    m.uarts[1].sent            bytes the gate wrote
"""

from drivers.portable import rtc as board_rtc


class FakePin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, ident, mode=0, pull=None, value=None):
        self.id = ident
        self.mode = mode
        self.pull = pull
        self.level = 1 if pull == 1 else 0
        if value is not None:
            self.level = 1 if value else 0
        self.history = []  # levels written by the firmware

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.history.append(self.level)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class FakeUART:
    def __init__(self, ident, baudrate=9600, **kw):
        self.id = ident
        self.baudrate = baudrate
        self.kw = kw
        self.rx = b""
        self.sent = b""
        self.on_write = None  # callable(data) for a simulated device that answers

    def feed(self, data):
        self.rx += data

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        if n is None or n < 0:
            n = len(self.rx)
        out, self.rx = self.rx[:n], self.rx[n:]
        return out

    def write(self, data):
        self.sent += bytes(data)
        if self.on_write is not None:
            self.on_write(bytes(data))
        return len(data)

    def deinit(self):
        pass


class FakeRTC:
    def __init__(self):
        self.dt = (2000, 1, 1, 5, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return self.dt
        self.dt = tuple(dt)
        return None


class FakeMachine:
    def __init__(self):
        self.pins = {}
        self.uarts = {}
        self.rtc = FakeRTC()
        owner = self

        class Pin(FakePin):
            def __init__(self, ident, mode=0, pull=None, value=None):
                super().__init__(ident, mode, pull, value)
                owner.pins[ident] = self

        class UART(FakeUART):
            def __init__(self, ident, baudrate=9600, **kw):
                super().__init__(ident, baudrate, **kw)
                owner.uarts[ident] = self

        self.Pin = Pin
        self.UART = UART

    def RTC(self):  # noqa: N802 - machine.RTC's spelling
        return self.rtc


class Ticks:
    """A millisecond tick counter the test moves by hand."""

    def __init__(self, start=0):
        self.t = start

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += ms


# The board an MCU gate under test sits on (tests/portable/test_mcu_gate.py, test_mcu_journal.py):
# its pins and UART URLs, its tick counter and its RTC. Here, in a module both already load,
# so sharing them costs the 512 KB heap no module of its own (docs/mcu.md, the qstr pools).
RELAY, BEAM_A, BEAM_B = 17, 4, 5
HARDWARE = {
    "readers": [{"url": "uart:1?baudrate=9600&prefix=%02&suffix=%0D"}],
    "barrier": "gpio:relay=%d&travel_ms=0" % RELAY,
    "beams": "gpio:a=%d&b=%d" % (BEAM_A, BEAM_B),
    "rtc": "machine:",
}
SYNC_UART = "uart:2?baudrate=115200&tx=25&rx=26"


class Board:
    """The board's tick counter, moved by the test."""

    def __init__(self):
        self.ms = 5000

    def ticks_ms(self):
        return self.ms


class BoardRTC:
    """machine.RTC running on the board's ticks (set by the back office's time)."""

    def __init__(self, board, t):
        self.board = board
        self.offset = t - board.ms // 1000

    def datetime(self, dt=None):
        if dt is None:
            return board_rtc.from_unix(self.board.ms // 1000 + self.offset)
        self.offset = board_rtc.to_unix(dt) - self.board.ms // 1000
        return None
