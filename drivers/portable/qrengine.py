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
    trigger_ack what some engines answer to a trigger, without a line end (the common
                "7E 00" command-protocol modules answer 02 00 00 01 00 33 31): removed from the
                byte stream wherever it falls, so it never sticks to the next code's line
    keepalive   a query the engine answers with a line starting with `keepalive_ack`; sent
                every `keepalive_ms`; `alive` is False once three go unanswered. The answer is
                consumed here, never returned as a code.
AIM symbology identifiers (ISO/IEC 15424, `aim=1`): the engine puts "]" + a symbology letter + a
modifier before each code (after its prefix): "]Q1" is a QR Code (model 2), "]C0" Code 128,
"]d1" Data Matrix, "]E0" EAN-13... A QR identifier ("]Q" + a digit) is stripped; any other is
left on the text, and the gate refuses it by name (reasons "wrong_symbology"): a ride code's
text printed as a Code 128 or a Data Matrix is not a ride code. A line without an identifier is
dropped (-> "no_aim": the engine's AIM setting is off while the gate expects it). The same
line rules serve keyboard-wedge scanners (drivers/linux/wedge_evdev.py): `line_text()`.
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
    "aim": 0,
    "trigger_ack": b"",
}
AIM_MARK = "]"  # how every AIM symbology identifier starts (three characters: "]Q1")
AIM_QR = "]Q"
BYTES_OPTIONS = ("prefix", "suffix", "trigger", "keepalive", "keepalive_ack", "trigger_ack")


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
        self.stats["no_aim"] = 0
        self.stats["symbology"] = 0
        self.stats["trigger_acks"] = 0
        self._held = b""  # received bytes that may be the start of a trigger_ack
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
        if self.options["trigger_ack"]:
            data = self._strip_acks(data)
        for line in self.framer.feed(data, self.ticks()):
            self._line(line)
        return True

    def _strip_acks(self, data: bytes) -> bytes:
        ack = self.options["trigger_ack"]
        data = self._held + data
        self._held = b""
        n = data.count(ack)
        if n:
            data = data.replace(ack, b"")
            self.stats["trigger_acks"] += n
        for k in range(min(len(ack) - 1, len(data)), 0, -1):
            if ack.startswith(data[-k:]):  # an ack split across reads: wait for its rest
                self._held = data[-k:]
                return data[:-k]
        return data

    def _line(self, line: bytes) -> None:
        o = self.options
        if o["keepalive_ack"] and line.startswith(o["keepalive_ack"]):
            self.last_alive = self.ticks()
            self.stats["acks"] += 1
            return
        text = line_text(line, self.prefix, o["aim"], self.stats)
        if text is not None:
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


def split_aim(text: str) -> tuple:
    """("]Q1", "FG1:...") for a text that starts with an AIM identifier, ("", text) otherwise."""
    if len(text) >= 3 and text[0] == AIM_MARK:
        return text[:3], text[3:]
    return "", text


def line_text(line: bytes, prefix: bytes, aim, stats: dict):
    """The code text in one line from a reader (serial engine or keyboard wedge), or None when
    the line is dropped (counted in `stats`): the prefix, printable ASCII, the AIM identifier
    (module docstring). A non-QR identifier stays on the text for the gate to refuse."""
    if prefix:
        i = line.rfind(prefix)
        if i < 0:
            stats["garbage"] += 1
            return None
        line = line[i + len(prefix) :]
    try:
        text = line.decode("ascii").strip()
    except UnicodeError:
        stats["garbage"] += 1
        return None
    if not text or not _printable(text):
        stats["garbage"] += 1
        return None
    if aim:
        ident, rest = split_aim(text)
        if not ident:
            stats["no_aim"] += 1
            return None
        if ident.startswith(AIM_QR) and "0" <= ident[2] <= "9":
            text = rest
        else:
            stats["symbology"] += 1
    stats["lines"] += 1
    return text


def _printable(text: str) -> bool:
    # walked as bytes: on MicroPython each one-character str would be interned (a qstr); a
    # non-ASCII character is bytes above "~" in UTF-8, so the answer is the same
    for ch in text.encode():
        if not 32 <= ch <= 126:
            return False
    return True
