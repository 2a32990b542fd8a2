"""A GNSS receiver speaking NMEA 0183 on a serial line, independent of the port. Portable.

The port is the adapter of drivers/portable/qrengine.py: `recv(max_bytes, timeout_s) -> bytes`
(b"" when nothing arrived). Receivers send a burst of sentences once a second (RMC, GGA, GSA,
GSV, VTG ...), each one line ending CR LF. `fixes()` reads what has arrived without waiting and
returns the position sentences in it, parsed by `parse` (default protocol.nmea.parse, the
hand-written parser; the Linux driver hands in pynmea2's). Lines that are not sentences are
dropped and counted in `stats`: "nmea_checksum" (noise, wrong baud rate), "nmea_malformed",
"overlong" (no line end within MAX_LINE bytes: cut, so its tail never passes for a sentence).
"""

from protocol import nmea

MAX_LINE = 96  # a sentence is at most 82 bytes; some receivers overrun by a few
READ_MAX = 512  # bytes taken per recv


class GnssReceiver:
    def __init__(self, port, parse=None):
        self.port = port
        self.parse = parse or nmea.parse
        self.buf = b""
        self.stats = {"sentences": 0, "nmea_checksum": 0, "nmea_malformed": 0, "overlong": 0}

    @property
    def bad(self) -> int:
        s = self.stats
        return s["nmea_checksum"] + s["nmea_malformed"] + s["overlong"]

    def fixes(self) -> list:
        """The RMC / GGA sentences received since the last call (protocol.nmea.Fix)."""
        out = []
        while True:
            data = self.port.recv(READ_MAX, 0)
            if not data:
                break
            self.buf += data
            while True:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    if len(self.buf) > MAX_LINE:
                        self.stats["overlong"] += 1
                        self.buf = b""
                    break
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                if nl > MAX_LINE:
                    self.stats["overlong"] += 1
                    continue
                line = line.strip()
                if not line:
                    continue
                try:
                    fix = self.parse(line)
                except nmea.NmeaError as e:
                    self.stats[e.reason] = self.stats.get(e.reason, 0) + 1
                    continue
                self.stats["sentences"] += 1
                if fix is not None:
                    out.append(fix)
        return out

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
