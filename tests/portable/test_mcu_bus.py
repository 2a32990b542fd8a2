"""An MCU bus validator in an MCU's memory (make test-mcu: 512 KB heap): the QR engine on UART 1,
the GNSS receiver on UART 2 (drivers/mcu/gnss_uart.py), both wired by drivers/portable/wiring from
uart: URLs onto a fake `machine`, no barrier. The test plays the receiver: RMC sentences once a
second along the route, a tunnel without fix, line noise; riders tap on and off."""

from drivers.portable import wiring
from firmware.compose.device import gate_loop
from firmware.gate import bus, modes
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from protocol import nmea, reasons, records
from tests.portable import codes
from tests.portable.fake_machine import FakeMachine, Ticks
from tests.portable.harness import mkdtemp, rmtree

STOPS = "101:48.1173:11.5166;102:48.1209:11.5166;103:48.1245:11.5166"
LON = 115166000


class Clock:
    def __init__(self, ticks):
        self.ticks = ticks

    def now(self):
        return codes.NOW + self.ticks() // 1000


def test_an_mcu_bus_validator_on_two_uarts():
    m = FakeMachine()
    ticks = Ticks(1000)
    d = mkdtemp("mcubus")
    journal = Journal(d, device_id=41)
    hw = {
        "readers": [{"url": "uart:1?baudrate=9600&suffix=%0D", "direction": 1}],
        "gnss": "uart:2?baudrate=9600",
        "indicator": "gpio:green=21&red=22&buzzer=23",
    }
    loop = gate_loop(
        wiring.build(hw, machine=m, ticks=ticks),
        Validator(codes.VERIFIER, {1: codes.issuer_key()}),
        journal,
        Clock(ticks),
        mode=modes.MODE_BUS,
        direction=records.DIR_ENTRY,
        settings={"passback_s": 60},
        ticks=ticks,
        bus={"vehicle": 7, "route": 31, "stops": STOPS, "radius_m": 30, "dwell_s": 3},
    )
    gate = loop.gate
    loop.readers[0][0].read(0)
    qr, gnss = m.uarts[1], m.uarts[2]
    n = [0]

    def second(lat_e7=None):
        gnss.feed((nmea.format_rmc("101500", "020126", lat_e7, LON if lat_e7 else None)).encode())
        gnss.feed(b"\r\n")
        ticks.advance(1000)
        loop.step(0)

    def tap(account, direction=1):
        n[0] += 1
        cred = codes.credential(account_id=account)
        text = codes.code(cred, time=gate.clock.now(), counter=n[0])
        loop.readers[0] = (loop.readers[0][0], direction)
        qr.feed(text.encode() + b"\r")
        loop.step(0)

    try:
        for _ in range(5):
            second(481173000)  # standing at stop 101
        assert gate.state == "at_stop"
        tap(1)
        tap(2)
        for lat in range(481180000, 481209001, 3000):  # to 102, 11 s
            second(lat)
        for _ in range(4):
            second(481209000)
        tap(1, records.DIR_EXIT)
        for _ in range(8):
            second()  # a tunnel: the receiver reports no fix
        gnss.feed(b"$GPRMC,101500,A,4807,N*00\r\n\xff\xfe noise\r\n")
        tap(3)
        for _ in range(5):
            second(481245000)  # out of the tunnel at 103
        tap(2, records.DIR_EXIT)
        recs = [records.decode(r) for r in journal.pending()]
        got = [
            (reasons.by_number(r.reason), r.account_id, r.station, r.flags & bus.FLAG_STOP_STALE)
            for r in recs
        ]
        assert got == [
            ("gnss_fix", 0, 0, 0),
            ("stop_reached", 0, 101, 0),
            ("accepted", 1, 101, 0),
            ("accepted", 2, 101, 0),
            ("stop_reached", 0, 102, 0),
            ("accepted", 1, 102, 0),
            ("gnss_lost", 0, 102, 8),
            ("accepted", 3, 102, 8),
            ("gnss_fix", 0, 102, 0),
            ("stop_reached", 0, 103, 0),
            ("accepted", 2, 103, 0),
        ]
        pos = loop.pollers[-1]
        assert pos.status()["bad_sentences"] == 2 and pos.status()["no_fix"] == 8
    finally:
        journal.close()
        rmtree(d)
