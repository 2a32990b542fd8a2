"""Rider displays: `.show(text)`. Portable (pyserial is imported only for serial URLs).

LineDisplay    a character display (VFD / LCD "pole display") on a serial line or any
               byte writer: clears (0x0C) and writes the text wrapped to `rows` x `width`,
               the way ESC/POS-style customer displays take it
StreamDisplay  one line per message on a text stream (a console, a log)

serial:/dev/ttyUSB2?baudrate=9600&width=20&rows=2     stdout:      (docs/drivers.md)
"""

CLEAR = b"\x0c"


def wrap(text: str, width: int, rows: int) -> list:
    words = text.split()
    lines: list = []
    cur = ""
    for w in words:
        w = w[:width]
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = cur + " " + w if cur else w
    if cur:
        lines.append(cur)
    return lines[:rows]


class LineDisplay:
    def __init__(self, write, width: int = 20, rows: int = 2):
        self.write = write  # callable taking bytes
        self.width = width
        self.rows = rows
        self.last = ""

    def show(self, text: str) -> None:
        self.last = text
        lines = wrap(text, self.width, self.rows)
        body = "\r\n".join(lines).encode("ascii", "replace") if lines else b""
        self.write(CLEAR + body)


class StreamDisplay:
    def __init__(self, stream):
        self.stream = stream
        self.last = ""

    def show(self, text: str) -> None:
        self.last = text
        self.stream.write(text + "\n")


def from_url(url: str, machine=None, ticks=None):
    if url == "stdout:":
        import sys

        return StreamDisplay(sys.stdout)
    if url.startswith("serial:"):
        import serial

        from drivers.portable.qrengine import parse_options

        base, _, query = url[len("serial:") :].partition("?")
        opts = parse_options(query)
        port = serial.serial_for_url(base, baudrate=int(opts.get("baudrate", 9600)))
        return LineDisplay(port.write, int(opts.get("width", 20)), int(opts.get("rows", 2)))
    raise ValueError("no display backend for %r" % url)
