"""The GNSS receiver of a bus validator: the hand-written NMEA parser (protocol/nmea.py, what
MCU validators run) held to pynmea2 on real receivers' sentences, then real sentences over a
pty through pyserial (drivers/linux/gnss_serial.py), then a Linux bus validator wired from URLs
alone: a rider's code on a pty QR engine, the position on a pty receiver, the stop in the
record."""

import random
import time

import pynmea2
import pytest

from drivers.linux.gnss_serial import check, from_url, main, parse_pynmea2
from drivers.portable import wiring
from firmware.compose.device import gate_loop
from firmware.gate import bus, modes
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from host_sim.hardware.devices import ManualClock, PtyGnss, PtyQREngine
from protocol import nmea, reasons, records
from tests.portable import codes
from tests.portable.test_bus import STOPS, VECTORS, _vectors

FIELDS = ("kind", "talker", "time", "date", "valid", "lat_e7", "lon_e7", "quality", "sats")


def fields(fix):
    return None if fix is None else tuple(getattr(fix, f) for f in FIELDS)


def until(cond, timeout_s=3.0):
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.002)


def test_the_hand_written_parser_agrees_with_pynmea2_on_real_sentences():
    good, bad = _vectors()
    assert len(good) >= 9, VECTORS
    for line in good:
        ours, theirs = nmea.parse(line), parse_pynmea2(line)
        assert fields(ours) == fields(theirs), line
        msg = pynmea2.parse(line, check=True)
        if ours is not None and ours.valid:  # and with pynmea2's own float degrees
            assert abs(ours.lat_e7 / 1e7 - msg.latitude) < 1e-7
            assert abs(ours.lon_e7 / 1e7 - msg.longitude) < 1e-7
    for line in bad:
        with pytest.raises(pynmea2.ChecksumError):
            pynmea2.parse(line, check=True)
        for parse in (nmea.parse, parse_pynmea2):
            with pytest.raises(nmea.NmeaError) as e:
                parse(line)
            assert e.value.reason == "nmea_checksum"


def test_both_parsers_agree_on_many_positions():
    rnd = random.Random(17)
    for _ in range(2000):
        lat, lon = rnd.randint(-899999999, 899999999), rnd.randint(-1799999999, 1799999999)
        line = nmea.format_rmc("%06d" % rnd.randint(0, 235959), "020126", lat, lon)
        ours = nmea.parse(line)
        assert fields(ours) == fields(parse_pynmea2(line)), line
        assert abs(ours.lat_e7 - lat) <= 2 and abs(ours.lon_e7 - lon) <= 2


def test_real_sentences_over_a_pty_through_pyserial():
    good, bad = _vectors()
    rx = PtyGnss()
    gnss = from_url("serial:%s?baudrate=9600" % rx.path)
    try:
        stream = ("\r\n".join(good[:4] + bad + good[4:]) + "\r\n").encode()
        rnd = random.Random(3)
        i = 0
        while i < len(stream):  # the bytes cross in pieces of any size
            n = rnd.randint(1, 40)
            rx.write(stream[i : i + n])
            i += n
        got: list = []
        until(lambda: got.extend(gnss.fixes()) or len(got) == 8)
        want = [nmea.parse(s) for s in good]
        assert [fields(f) for f in got] == [fields(f) for f in want if f is not None]
        assert gnss.stats["nmea_checksum"] == 1 and gnss.bad == 1
        assert gnss.stats["sentences"] == len(good)
    finally:
        gnss.close()
        rx.close()


def test_a_linux_bus_validator_wired_from_urls(tmp_path):
    engine = PtyQREngine(suffix=b"\r")
    rx = PtyGnss()
    clock = ManualClock(codes.NOW)
    journal = Journal(str(tmp_path), device_id=77)
    hardware = {
        "readers": [{"url": "serial:%s?suffix=%%0D" % engine.path}],
        "gnss": "serial:%s" % rx.path,
    }
    loop = gate_loop(
        wiring.build(hardware, ticks=clock.ticks_ms),
        Validator(codes.VERIFIER, {1: codes.issuer_key()}),
        journal,
        clock,
        mode=modes.MODE_BUS,
        direction=records.DIR_ENTRY,
        ticks=clock.ticks_ms,
        bus={"vehicle": 7, "route": 31, "stops": STOPS, "radius_m": 30, "dwell_s": 2},
    )
    gate = loop.gate
    try:
        loop.step(0)
        for _ in range(4):  # the receiver reports the vehicle standing at stop 102
            rx.send(nmea.format_rmc("101500", "020126", 481209500, 115166000))
            until(lambda: loop.step(0) or gate.snapshot()["last_step"] is not None, 1)
            clock.advance_ms(1000)
        until(lambda: loop.step(0) or gate.state == "at_stop")
        engine.show(codes.code(time=clock.now()))
        until(lambda: loop.step(0.01) or gate.counts.get("accepted"))
        rx.send("$GPRMC,101504,A,4807.257,N,01130.996,E,0.0,0.0,020126,,,A*00")  # noise
        until(lambda: loop.step(0) or loop.pollers[-1].status()["bad_sentences"] == 1)
        recs = [records.decode(r) for r in journal.pending()]
        assert [(reasons.by_number(r.reason), r.station, r.mode) for r in recs] == [
            ("gnss_fix", 0, modes.MODE_BUS),
            ("stop_reached", 102, modes.MODE_BUS),
            ("accepted", 102, modes.MODE_BUS),
        ]
        assert not recs[-1].flags & bus.FLAG_STOP_STALE and recs[-1].account_id == 42
    finally:
        for reader, _d in loop.readers:
            reader.close()
        loop.pollers[-1].gnss.close()
        engine.close()
        rx.close()
        journal.close()


def test_the_technicians_fix_check_over_a_pty(capsys):
    good, bad = _vectors()
    rx = PtyGnss()
    gnss = from_url("serial:%s" % rx.path)  # open first: pyserial flushes what came before
    try:
        for line in [good[-2], bad[0], good[0], good[1]]:  # a no-fix line, a bad one, a fix
            rx.send(line)
        rc = check(gnss, 0.5, STOPS)
        out = capsys.readouterr().out.splitlines()
        assert rc == 0
        assert out == [
            "GGA 12:35:19  no fix",
            "RMC 12:35:19  fix 48.1173000 N 11.5166667 E",
            "GGA 12:35:19  fix 48.1173000 N 11.5166667 E quality 1, 8 satellites",
            "3 position sentences, 2 with a fix; 1 lines dropped (checksum 1, malformed 0, "
            "overlong 0)",
            "nearest stop 101 at 5 m (inside its 40 m geofence)",
            "fix: yes",
        ]
        rx.send(good[-3])  # only "no fix" now
        assert check(gnss, 0.3) == 1
        assert capsys.readouterr().out.splitlines()[-2:] == [
            "1 position sentences, 0 with a fix; 1 lines dropped (checksum 1, malformed 0, "
            "overlong 0)",
            "fix: NO",
        ]
    finally:
        gnss.close()
    assert main([rx.path, "--seconds", "0.2"]) == 1  # the command: nothing heard, no fix
    rx.close()
    assert main(["/dev/nonexistent-gnss", "--seconds", "0.1"]) == 3
