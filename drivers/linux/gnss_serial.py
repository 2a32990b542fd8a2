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
