"""A GNSS receiver on the Linux gate: pyserial for the port, pynmea2 for the sentences.

    serial:/dev/ttyUSB3?baudrate=9600      (or a pty, loop://, socket://; docs/drivers.md)

The line handling is drivers/portable/gnss.py's; `parse_pynmea2` turns what pynmea2 parses into
the portable protocol.nmea.Fix (so the validator sees one type on every gate, and the tests
hold the hand-written MCU parser to pynmea2 on real sentences).
"""

from typing import Any

import pynmea2
import serial

from drivers.linux.qrengine_serial import PyserialPort
from drivers.portable import qrengine
from drivers.portable.gnss import GnssReceiver
from protocol import nmea


def _e7(value: Any, hemi: str, deg_digits: int) -> int | None:
    """pynmea2 keeps the raw ddmm.mmmm text: convert it exactly, as protocol.nmea does."""
    if not value:
        return None
    whole, _, frac = str(value).partition(".")
    deg, minutes = int(whole[:-2] or "0"), int(whole[-2:] + frac)
    scale = 10 ** len(frac)
    e7 = deg * 10000000 + (minutes * 10000000 * 2 + 60 * scale) // (2 * 60 * scale)
    del deg_digits
    return -e7 if hemi in ("S", "W") else e7


def parse_pynmea2(line: bytes | str) -> nmea.Fix | None:
    """One line through pynmea2 (checksum required), as a protocol.nmea.Fix (None: another
    sentence type); NmeaError for what pynmea2 refuses."""
    text = line.decode("ascii", "replace") if isinstance(line, (bytes, bytearray)) else line
    try:
        msg = pynmea2.parse(text.strip(), check=True)
    except pynmea2.ChecksumError:
        raise nmea.NmeaError("checksum mismatch", "nmea_checksum") from None
    except (pynmea2.ParseError, ValueError) as e:
        raise nmea.NmeaError("not NMEA: %s" % e) from None
    kind = msg.sentence_type
    if kind not in nmea.TYPES:
        return None
    time = msg.data[0].split(".")[0]
    if kind == "RMC":
        lat, lon = _e7(msg.lat, msg.lat_dir, 2), _e7(msg.lon, msg.lon_dir, 3)
        mode = msg.data[11] if len(msg.data) > 11 else ""
        valid = msg.status == "A" and lat is not None and lon is not None and mode != "N"
        return nmea.Fix(kind, msg.talker, time, msg.data[8], valid, lat, lon)
    lat, lon = _e7(msg.lat, msg.lat_dir, 2), _e7(msg.lon, msg.lon_dir, 3)
    quality = int(msg.gps_qual or 0)
    sats = int(msg.num_sats or 0)
    valid = quality not in nmea.NO_FIX_QUALITY and lat is not None and lon is not None
    return nmea.Fix(kind, msg.talker, time, "", valid, lat, lon, quality, sats)


class SerialGnss(GnssReceiver):
    def __init__(self, url: str, baudrate: int = 9600) -> None:
        self.url = url
        self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0)
        super().__init__(PyserialPort(self.serial), parse_pynmea2)

    def close(self) -> None:
        self.serial.close()


def from_url(url: str, machine: Any = None, ticks: Any = None) -> SerialGnss:
    if url.startswith("serial:"):
        url = url[len("serial:") :]
    base, _, query = url.partition("?")
    opts = qrengine.parse_options(query)
    baudrate = int(opts.pop("baudrate", 9600))
    if opts:
        base += "?" + "&".join("%s=%s" % kv for kv in opts.items())
    return SerialGnss(base, baudrate)


def _deg(e7: int, pos: str, neg: str) -> str:
    return "%d.%07d %s" % (abs(e7) // 10000000, abs(e7) % 10000000, neg if e7 < 0 else pos)


def check(port: Any, seconds: float, stops: str = "", radius_m: int = 40, out: Any = None) -> int:
    """A technician's check of a receiver: every position sentence for `seconds`, then a
    verdict. 0: a valid fix was seen; 1: none (or only bad lines). `port` is a GnssReceiver."""
    import sys
    import time

    from firmware.gate import bus

    out = out or sys.stdout
    route = bus.Route(0, bus.parse_stops(stops), radius_m, 0) if stops else None
    end = time.monotonic() + seconds
    seen = valid = 0
    last = None
    while time.monotonic() < end:
        fixes = port.fixes()
        if not fixes:
            time.sleep(0.05)
            continue
        for f in fixes:
            seen += 1
            t = "%s:%s:%s" % (f.time[:2], f.time[2:4], f.time[4:6]) if f.time else "--:--:--"
            if not f.valid:
                print("%s %s  no fix" % (f.kind, t), file=out)
                continue
            valid += 1
            last = f
            extra = " quality %d, %d satellites" % (f.quality, f.sats) if f.kind == "GGA" else ""
            print(
                "%s %s  fix %s %s%s"
                % (f.kind, t, _deg(f.lat_e7, "N", "S"), _deg(f.lon_e7, "E", "W"), extra),
                file=out,
            )
    stats = port.stats
    print(
        "%d position sentences, %d with a fix; %d lines dropped (checksum %d, malformed %d, "
        "overlong %d)"
        % (
            seen,
            valid,
            port.bad,
            stats["nmea_checksum"],
            stats["nmea_malformed"],
            stats["overlong"],
        ),
        file=out,
    )
    if route is not None and last is not None:
        best = min(route.stops, key=lambda s: bus.distance_m(s[1], s[2], last.lat_e7, last.lon_e7))
        d = bus.distance_m(best[1], best[2], last.lat_e7, last.lon_e7)
        where = "inside" if d <= radius_m else "outside"
        print(
            "nearest stop %d at %.0f m (%s its %d m geofence)" % (best[0], d, where, radius_m),
            file=out,
        )
    print("fix: %s" % ("yes" if valid else "NO"), file=out)
    return 0 if valid else 1


def main(argv: Any = None) -> int:
    """`python -m drivers.linux.gnss_serial PORT`: is the receiver wired and does it have a fix?"""
    import argparse
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m drivers.linux.gnss_serial",
        description="Read a GNSS receiver's NMEA sentences (RMC, GGA) for a few seconds and say "
        "whether it has a fix (docs/technician-guide.md, bus validators). Exit 0: a fix; 1: no "
        "fix; 3: the port cannot be opened.",
    )
    ap.add_argument("port", help="the receiver's serial port, e.g. /dev/ttyUSB3 (or a URL)")
    ap.add_argument("--baudrate", type=int, default=9600, help="default 9600 (8N1)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to listen (default 5)")
    ap.add_argument("--stops", default="", help='the route\'s bus.stops ("id:lat:lon;...")')
    ap.add_argument("--radius", type=int, default=40, help="geofence radius, m (default 40)")
    args = ap.parse_args(argv)
    try:
        rx = SerialGnss(args.port, args.baudrate)
    except (OSError, serial.SerialException) as e:
        print("gnss: cannot open %s: %s" % (args.port, e), file=sys.stderr)
        return 3
    try:
        return check(rx, args.seconds, args.stops, args.radius)
    finally:
        rx.close()


if __name__ == "__main__":
    raise SystemExit(main())
