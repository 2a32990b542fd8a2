"""A serial QR engine (the scan modules built into turnstiles), independent of the port.

Runs on CPython and MicroPython. The port is an adapter with two methods:
    recv(max_bytes, timeout_s) -> bytes   (b"" when nothing arrived in time)
    send(data: bytes) -> None
drivers/linux/qrengine_serial.py adapts pyserial (Linux), drivers/mcu/qrengine_uart.py machine.UART.

What such engines send: each decoded code as one line, optionally wrapped in a configurable
prefix (often STX 0x02 or a symbology id) and a suffix (CR, CRLF or ETX). What goes wrong on
real lines, and what this module does about it (`stats` counts each):
    noise / garbage bytes   with a prefix set, everything before the last prefix is dropped;
                            a line with non-ASCII bytes is dropped             -> "garbage"
    a partial line          the engine or cable glitched mid-line: a line not finished within
                            `gap_ms` of its last byte is dropped              -> "partial"
    an over-long line       more than `max_line` bytes without a suffix: dropped up to the
                            next suffix, so its tail never passes for a code  -> "overlong"
Commands the gate sends (bytes, all optional):
    trigger     start a scan (engines in command-trigger mode scan only when told); sent at
                the start of a read and again every `trigger_ms` while waiting
    keepalive   a query the engine answers with a line starting with `keepalive_ack`; sent
                every `keepalive_ms`; `alive` is False once three go unanswered. The answer is
                consumed here, never returned as a code.
"""

from firmware.platform import ticks_diff, ticks_ms

DEFAULTS: dict = {
    "prefix": b"",
    "suffix": b"\r\n",
    "max_line": 1024,
    "gap_ms": 200,
    "trigger": b"",
    "trigger_ms": 3000,
    "keepalive": b"",
    "keepalive_ack": b"",
    "keepalive_ms": 5000,
}
BYTES_OPTIONS = ("prefix", "suffix", "trigger", "keepalive", "keepalive_ack")


def unquote_bytes(text: str) -> bytes:
    """Percent-decode a URL option to bytes: "%02" -> b"\\x02", "%0D%0A" -> b"\\r\\n"."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            try:
                if i + 3 > len(text):
                    raise ValueError()
                out.append(int(text[i + 1 : i + 3], 16))
            except ValueError:
                raise ValueError("bad percent escape in %r" % text) from None
            i += 3
        else:
            out.extend(text[i].encode())
            i += 1
    return bytes(out)


def parse_options(query: str) -> dict:
    """Options from a URL query "suffix=%0D&prefix=%02&baudrate=9600": engine options as bytes
    or ints, anything else (port settings such as baudrate) returned as strings."""
    opts: dict = {}
    if not query:
        return opts
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if key in BYTES_OPTIONS:
            opts[key] = unquote_bytes(value)
        elif key in DEFAULTS:
            opts[key] = int(value)
        else:
            opts[key] = value
    return opts


class LineFramer:
    """Bytes from the engine in, complete lines (bytes) out. Sans-IO: times are passed in."""

    def __init__(self, suffix=b"\r\n", max_line=1024, gap_ms=200):
        if not suffix:
            raise ValueError("a QR engine needs a line suffix")
        self.suffix = suffix
        self.max_line = max_line
        self.gap_ms = gap_ms
        self.buf = b""
        self.skipping = False  # inside an over-long line: drop up to the next suffix
        self.last_rx = 0
        self.stats = {"lines": 0, "garbage": 0, "partial": 0, "overlong": 0}

    def feed(self, data: bytes, now_ms: int) -> list:
        self.expire(now_ms)
        self.last_rx = now_ms
        self.buf += data
        lines = []
        sl = len(self.suffix)
        while True:
            end = self.buf.find(self.suffix)
            if end < 0:
                break
            line = self.buf[:end]
            self.buf = self.buf[end + sl :]
            if self.skipping:
                self.skipping = False
                continue
            if len(line) > self.max_line:
                self.stats["overlong"] += 1
                continue
            lines.append(line)
        if len(self.buf) > self.max_line:
            if not self.skipping:
                self.stats["overlong"] += 1
            self.skipping = True
            self.buf = self.buf[-(sl - 1) :] if sl > 1 else b""  # keep a split suffix
        return lines

    def expire(self, now_ms: int) -> None:
        """Drop a partial line that has waited longer than gap_ms (call while idle)."""
        if self.buf and self.gap_ms and ticks_diff(now_ms, self.last_rx) > self.gap_ms:
            self.buf = b""  # the rest of that line never came
            self.stats["partial"] += 1


class QREngine:
    """Reads ride-code texts from an engine through a port adapter (see module docstring)."""

    def __init__(self, port, options=None, ticks=None):
        o: dict = dict(DEFAULTS)
        if options:
            for k in options:
                if k in DEFAULTS:
                    o[k] = options[k]
        self.port = port
        self.options = o
        self.prefix = o["prefix"]
        self.ticks = ticks or ticks_ms
        self.framer = LineFramer(o["suffix"], o["max_line"], o["gap_ms"])
        self.stats = self.framer.stats
        self.stats["acks"] = 0
        self._texts: list = []
        self._triggered_at = None
        self._keepalive_at = None
        self.last_alive = self.ticks()

    @property
    def alive(self) -> bool:
        o = self.options
        if not o["keepalive"]:
            return True
        return ticks_diff(self.ticks(), self.last_alive) <= 3 * o["keepalive_ms"]

    def read(self, timeout_s: float = 1.0):
        """The next code text, or None if none arrived within timeout_s (0: don't wait).
        The wait is real time; trigger, keep-alive and partial-line timing use `ticks`."""
        start = ticks_ms()
        limit = int(timeout_s * 1000)
        while True:
            self._commands(self.ticks())
            if self._texts:
                self._triggered_at = None  # the next read triggers a new scan
                return self._texts.pop(0)
            waited = ticks_diff(ticks_ms(), start)
            left = limit - waited
            got = self._pump(max(0, min(left, 100)) / 1000)
            if left <= 0 and (not got or waited > limit + 100):
                self.framer.expire(self.ticks())
                return None

    def _pump(self, timeout_s: float) -> bool:
        data = self.port.recv(4096, timeout_s)
        if not data:
            return False
        for line in self.framer.feed(data, self.ticks()):
            self._line(line)
        return True

    def _line(self, line: bytes) -> None:
        o = self.options
        if o["keepalive_ack"] and line.startswith(o["keepalive_ack"]):
            self.last_alive = self.ticks()
            self.stats["acks"] += 1
            return
        if self.prefix:
            i = line.rfind(self.prefix)
            if i < 0:
                self.stats["garbage"] += 1
                return
            line = line[i + len(self.prefix) :]
        try:
            text = line.decode("ascii").strip()
        except UnicodeError:
            self.stats["garbage"] += 1
            return
        if not text or not _printable(text):
            self.stats["garbage"] += 1
            return
        self.stats["lines"] += 1
        self._texts.append(text)

    def _commands(self, now: int) -> None:
        o = self.options
        if o["trigger"] and (
            self._triggered_at is None or ticks_diff(now, self._triggered_at) >= o["trigger_ms"]
        ):
            self.port.send(o["trigger"])
            self._triggered_at = now
        if o["keepalive"] and (
            self._keepalive_at is None or ticks_diff(now, self._keepalive_at) >= o["keepalive_ms"]
        ):
            self.port.send(o["keepalive"])
            self._keepalive_at = now

    def poll(self) -> None:
        """Send due trigger/keep-alive commands and take in waiting bytes, without blocking."""
        self._commands(self.ticks())
        self._pump(0)


def _printable(text: str) -> bool:
    for ch in text:
        if not " " <= ch <= "~":
            return False
    return True
