"""NMEA 0183 position sentences from a GNSS receiver: RMC and GGA, with their checksum.

A sentence is one ASCII line, `$` TALKER TYPE `,` fields `*` HH (CR LF), where HH is the XOR
of every byte between `$` and `*` in two hex digits (NMEA 0183 4.11, 5.3). Talkers: GP (GPS),
GL (GLONASS), GA (Galileo), GB/BD (BeiDou), GN (several systems). What a validator needs:

    $GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A
           time   st lat      N  lon       E  knots course ddmmyy
    st: A a valid fix, V void (the receiver has no fix: the position is not to be used)

    $GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47
           time   lat      N  lon       E  q sats hdop alt
    q: 0 no fix, 1 GPS, 2 DGPS, 4/5 RTK, 6 dead reckoning (not a fix), ...

Latitude ddmm.mmmm, longitude dddmm.mmmm; positions are returned in integer 1e-7 degrees
(`lat_e7`, `lon_e7`: exact from the digits, no float rounding), south and west negative.

    parse(line) -> Fix, or None for a well-formed sentence of another type (GSV, VTG, ...)
    NmeaError (reason nmea_checksum or nmea_malformed) for a line that is not a sentence

Pure: no I/O, MicroPython-compatible. drivers/portable/gnss.py reads lines from a UART;
on CPython drivers/linux/gnss_serial.py parses with pynmea2 and tests compare the two.
"""

from protocol.errors import FormatError

TYPES = ("RMC", "GGA")
MAX_LEN = 82  # NMEA 0183: at most 82 characters including $ and CR LF
NO_FIX_QUALITY = (0, 6)  # GGA quality 0 invalid, 6 estimated (dead reckoning)


class NmeaError(FormatError):
    """A line that is not a well-formed NMEA sentence (bad checksum, bad field)."""

    reason = "nmea_malformed"


class Fix:
    """One position sentence. `valid` is False when the receiver says it has no fix (RMC
    status V, GGA quality 0 or 6); lat_e7 / lon_e7 are then None or not to be used."""

    __slots__ = ("kind", "talker", "time", "date", "valid", "lat_e7", "lon_e7", "quality", "sats")

    def __init__(self, kind, talker, time, date, valid, lat_e7, lon_e7, quality=0, sats=0):
        self.kind = kind
        self.talker = talker
        self.time = time  # "hhmmss" (fraction dropped), "" if the receiver sent none
        self.date = date  # "ddmmyy" (RMC only), else ""
        self.valid = valid
        self.lat_e7 = lat_e7
        self.lon_e7 = lon_e7
        self.quality = quality
        self.sats = sats

    def __repr__(self):
        return "Fix(%s%s valid=%s %s,%s)" % (
            self.talker,
            self.kind,
            self.valid,
            self.lat_e7,
            self.lon_e7,
        )


def checksum(body: str) -> int:
    """XOR of the characters between `$` and `*`."""
    c = 0
    for ch in body:
        c ^= ord(ch)
    return c


def _split(line) -> list:
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except UnicodeError:
            raise NmeaError("not ASCII") from None
    line = line.strip()
    if len(line) > MAX_LEN or not line.startswith("$"):
        raise NmeaError("not an NMEA sentence: %r" % line[:20])
    star = line.rfind("*")
    if star < 0 or len(line) - star != 3:
        raise NmeaError("no checksum: %r" % line[:20])
    body = line[1:star]
    try:
        want = int(line[star + 1 :], 16)
    except ValueError:
        raise NmeaError("bad checksum digits") from None
    if checksum(body) != want:
        raise NmeaError("checksum mismatch in %r" % line[:20], "nmea_checksum")
    fields = body.split(",")
    if len(fields[0]) < 5:
        raise NmeaError("no talker and type")
    return fields


def _angle(value: str, hemi: str, deg_digits: int, limit: int):
    """ddmm.mmmm (deg_digits 2) or dddmm.mmmm (3) and N/S/E/W -> 1e-7 degrees, or None when
    the receiver left the field empty."""
    if not value and not hemi:
        return None
    point = value.find(".")
    whole = value if point < 0 else value[:point]
    frac = "" if point < 0 else value[point + 1 :]
    if len(whole) != deg_digits + 2 or not (whole + frac).isdigit() or len(frac) > 7:
        raise NmeaError("bad angle %r" % value)
    deg = int(whole[:deg_digits])
    minutes_scaled = int(whole[deg_digits:] + frac)  # minutes * 10**len(frac)
    scale = 10 ** len(frac)
    if minutes_scaled >= 60 * scale or deg > limit or (deg == limit and minutes_scaled):
        raise NmeaError("angle out of range %r" % value)
    e7 = deg * 10000000 + (minutes_scaled * 10000000 * 2 + 60 * scale) // (2 * 60 * scale)
    if hemi in ("S", "W"):
        return -e7
    if hemi not in ("N", "E"):
        raise NmeaError("bad hemisphere %r" % hemi)
    return e7


def _int(s: str) -> int:
    if not s:
        return 0
    if not s.isdigit():
        raise NmeaError("bad number %r" % s)
    return int(s)


def _time(s: str) -> str:
    hhmmss = s.split(".")[0]
    if s and (len(hhmmss) != 6 or not hhmmss.isdigit()):
        raise NmeaError("bad time %r" % s)
    return hhmmss


def parse(line):
    """The Fix of an RMC or GGA sentence; None for any other well-formed sentence."""
    f = _split(line)
    head = f[0]
    talker, kind = head[:-3], head[-3:]
    if kind not in TYPES:
        return None
    if kind == "RMC":
        if len(f) < 10:
            raise NmeaError("RMC has %d fields" % len(f))
        status = f[2]
        if status not in ("A", "V"):
            raise NmeaError("bad RMC status %r" % status)
        date = f[9]
        if date and (len(date) != 6 or not date.isdigit()):
            raise NmeaError("bad date %r" % date)
        lat, lon = _angle(f[3], f[4], 2, 90), _angle(f[5], f[6], 3, 180)
        valid = status == "A" and lat is not None and lon is not None
        if len(f) >= 13 and f[12] == "N":  # NMEA 2.3 mode indicator: N data not valid
            valid = False
        return Fix(kind, talker, _time(f[1]), date, valid, lat, lon)
    if len(f) < 10:
        raise NmeaError("GGA has %d fields" % len(f))
    lat, lon = _angle(f[2], f[3], 2, 90), _angle(f[4], f[5], 3, 180)
    quality, sats = _int(f[6]), _int(f[7])
    valid = quality not in NO_FIX_QUALITY and lat is not None and lon is not None
    return Fix(kind, talker, _time(f[1]), "", valid, lat, lon, quality, sats)


def _ddmm(e7: int, deg_digits: int) -> str:
    """1e-7 degrees -> ddmm.mmmmm (5 decimals of a minute: 1.85 cm), no sign."""
    e7 = abs(e7)
    deg, rest = divmod(e7, 10000000)
    minutes_e5 = (rest * 60 * 100000 + 5000000) // 10000000  # minutes * 1e5, rounded
    if minutes_e5 >= 6000000:
        deg, minutes_e5 = deg + 1, minutes_e5 - 6000000
    fmt = "%02d%02d.%05d" if deg_digits == 2 else "%03d%02d.%05d"
    return fmt % (deg, minutes_e5 // 100000, minutes_e5 % 100000)


def sentence(body: str) -> str:
    """`$` body `*` checksum (no line end)."""
    return "$%s*%02X" % (body, checksum(body))


def format_rmc(hhmmss: str, ddmmyy: str, lat_e7=None, lon_e7=None, talker="GP") -> str:
    """An RMC sentence as a receiver sends it; lat_e7 None: status V, no position."""
    if lat_e7 is None or lon_e7 is None:
        return sentence("%sRMC,%s,V,,,,,,,%s,,,N" % (talker, hhmmss, ddmmyy))
    return sentence(
        "%sRMC,%s,A,%s,%s,%s,%s,0.0,0.0,%s,,,A"
        % (
            talker,
            hhmmss,
            _ddmm(lat_e7, 2),
            "S" if lat_e7 < 0 else "N",
            _ddmm(lon_e7, 3),
            "W" if lon_e7 < 0 else "E",
            ddmmyy,
        )
    )
