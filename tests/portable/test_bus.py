"""The bus validator on both interpreters: the NMEA 0183 parser on real receivers' sentences
(tests/vectors/nmea_real.txt), stop detection by geofence and dwell, the mode's table with a
GNSS fix coming and going, and every record stamped with its stop (flagged when stale)."""

from drivers.portable.gnss import GnssReceiver
from firmware.gate import bus, modes
from firmware.gate.gate import Gate
from firmware.gate.loop import GateLoop
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from protocol import nmea, reasons, records
from tests.portable import codes
from tests.portable.fake_machine import Ticks
from tests.portable.harness import mkdtemp, raises, rmtree

VECTORS = "tests/vectors/nmea_real.txt"
# three stops 400 m apart along a street (lat, lon in 1e-7 degrees)
STOPS = "101:48.1173:11.5166;102:48.1209:11.5166;103:48.1245:11.5166"


def _vectors():
    good, bad = [], []
    with open(VECTORS) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("! "):
                bad.append(line[2:])
            else:
                good.append(line)
    return good, bad


def test_real_sentences_parse_exactly():
    good, bad = _vectors()
    fixes = [nmea.parse(s) for s in good]
    f = fixes[0]  # $GPRMC,123519,A,4807.038,N,01131.000,E,...
    assert (f.kind, f.talker, f.time, f.date, f.valid) == ("RMC", "GP", "123519", "230394", True)
    assert (f.lat_e7, f.lon_e7) == (481173000, 115166667)
    g = fixes[1]  # the GGA of the same second
    assert (g.kind, g.quality, g.sats, g.lat_e7) == ("GGA", 1, 8, 481173000)
    w = fixes[2]  # 4916.45,N,12311.12,W: west is negative
    assert (w.lat_e7, w.lon_e7) == (492741667, -1231853333)
    assert [x.valid for x in fixes if x is not None].count(False) == 3  # the no-fix lines
    assert fixes[-1] is None  # GSA: not a position sentence
    for s in bad:
        e = raises(nmea.NmeaError, nmea.parse, s)
        assert e.reason == "nmea_checksum" and reasons.number(e.reason) == 323


def test_broken_lines_are_typed_errors():
    rmc = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
    for line in (
        rmc[:-1] + "B",  # one checksum digit off
        rmc.replace("4807", "4817"),  # a flipped digit in the text
        rmc[:-3],  # no checksum
        "GPRMC,123519*00",
        "$" + "A" * 90 + "*00",
        b"\xff\xfe*00",
        nmea.sentence("GPRMC,123519,A,4860.000,N,01131.000,E,0,0,230394,,"),  # 60 minutes
        nmea.sentence("GPRMC,123519,A,4807.038,X,01131.000,E,0,0,230394,,"),
        nmea.sentence("GPRMC,123519,Q,4807.038,N,01131.000,E,0,0,230394,,"),
        nmea.sentence("GPGGA,123519,4807.038,N"),
    ):
        e = raises(nmea.NmeaError, nmea.parse, line)
        assert e.reason in ("nmea_checksum", "nmea_malformed")


def test_formatted_sentences_round_trip():
    for lat, lon in ((481173000, 115166667), (-338688000, 1512093000), (0, -1), (899999999, 0)):
        f = nmea.parse(nmea.format_rmc("101500", "020126", lat, lon))
        assert f.valid and abs(f.lat_e7 - lat) <= 2 and abs(f.lon_e7 - lon) <= 2
    f = nmea.parse(nmea.format_rmc("101500", "020126"))
    assert not f.valid and f.lat_e7 is None


class Port:
    """The recv adapter over bytes the test pushes (what a UART delivers, in any chunks)."""

    def __init__(self):
        self.data = b""

    def push(self, data):
        self.data += data

    def recv(self, n, timeout_s):
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_receiver_splits_lines_and_counts_bad_ones():
    good, bad = _vectors()
    port = Port()
    rx = GnssReceiver(port)
    stream = ("\r\n".join(good + bad) + "\r\n").encode()
    for i in range(0, len(stream), 7):  # bytes arrive a few at a time
        port.push(stream[i : i + 7])
    port.push(b"\x00\x13garbage without end" * 8)
    fixes = rx.fixes()
    assert [f.kind for f in fixes] == ["RMC", "GGA", "RMC", "GGA", "RMC", "RMC", "GGA", "GGA"]
    assert rx.stats["nmea_checksum"] == 1 and rx.stats["overlong"] == 1
    assert rx.stats["sentences"] == len(good) and rx.bad == 2
    assert rx.fixes() == []


def test_route_stops_and_distance():
    stops = bus.parse_stops(STOPS + "; 9:-33.8688:151.2093")
    assert stops[0] == (101, 481173000, 115166000) and stops[-1] == (9, -338688000, 1512093000)
    d = bus.distance_m(481173000, 115166000, 481209000, 115166000)
    assert 399 < d < 402  # 0.0036 degrees of latitude
    route = bus.Route(7, stops, 40, 5000)
    assert route.stop_at(481174000, 115166000) == 101  # 11 m away
    assert route.stop_at(481191000, 115166000) == 0  # half way
    for text in ("101:48.1:", "x:1:2", "101:48.1173.2:11", "0:1:1", "101:91:0"):
        raises(bus.RouteError, bus.parse_stops, text)


class Clock:
    def __init__(self, ticks):
        self.ticks = ticks

    def now(self):
        return codes.NOW + self.ticks() // 1000


class Feed:
    """A GNSS source the test drives: the receiver over a Port, fed RMC sentences."""

    def __init__(self):
        self.port = Port()
        self.rx = GnssReceiver(self.port)
        self.bad = 0

    def at(self, lat_e7, lon_e7=115166000):
        self.port.push((nmea.format_rmc("101500", "020126", lat_e7, lon_e7) + "\r\n").encode())

    def no_fix(self):
        self.port.push((nmea.format_rmc("101500", "020126") + "\r\n").encode())

    def noise(self):
        self.port.push(b"$GPRMC,101500,A,4807.0,N,01130.9,E,0,0,020126,,,A*00\r\n")

    def fixes(self):
        out = self.rx.fixes()
        self.bad = self.rx.bad
        return out


def _bus_gate(d, ticks, feed):
    v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
    j = Journal(d, device_id=31)
    g = Gate(
        v,
        j,
        bus.NoBarrier(),
        None,
        Clock(ticks),
        station=0,
        mode=modes.MODE_BUS,
        direction=records.DIR_ENTRY,
        config={"show_ms": 1000, "passback_s": 60},
        ticks=ticks,
    )
    route = bus.Route(31, bus.parse_stops(STOPS), 40, 5000)
    pos = bus.Position(feed, route, vehicle=7, fix_timeout_ms=3000)
    pos.attach(g)
    loop = GateLoop(g, [], pollers=[pos])
    return g, pos, loop


def _code(account, counter, ticks):
    cred = codes.credential(account_id=account)
    return codes.code(cred, time=codes.NOW + ticks() // 1000, counter=counter)


def _drive(loop, ticks, feed, lat, seconds, fix=True):
    for _ in range(seconds):
        if fix:
            feed.at(lat)
        else:
            feed.no_fix()
        ticks.advance(1000)
        loop.step(0)


def test_a_trip_along_the_route_journals_stops_and_stamps_every_tap():
    d = mkdtemp("bus")
    ticks = Ticks(0)
    feed = Feed()
    try:
        g, pos, loop = _bus_gate(d, ticks, feed)
        assert g.state == "idle"
        # before any fix: a tap is accepted, stop unknown (0), flagged stale
        assert g.on_scan(_code(1, 1, ticks)).accept
        _drive(loop, ticks, feed, 481191000, 2)  # a fix half way to stop 102
        assert g.state == "moving" and pos.stop == 0
        _drive(loop, ticks, feed, 481209000, 4)  # at 102, but not yet for the dwell
        assert g.state == "moving"
        _drive(loop, ticks, feed, 481209000, 2)
        assert g.state == "at_stop" and pos.stop == 102
        assert g.on_scan(_code(2, 1, ticks)).accept
        assert g.on_scan(_code(2, 2, ticks)).reason == "anti_passback"  # tapped on twice
        g.direction = records.DIR_EXIT
        assert g.on_scan(_code(1, 2, ticks)).accept  # rider 1 taps off at 102
        _drive(loop, ticks, feed, 481227000, 3)  # leaves
        assert g.state == "moving" and pos.stop == 102
        # the receiver loses its fix between stops (a tunnel): still accepting, flagged
        _drive(loop, ticks, feed, 0, 4, fix=False)
        feed.noise()
        loop.step(0)
        assert g.state == "idle" and not pos.fixed and feed.bad == 1
        g.direction = records.DIR_ENTRY
        assert g.on_scan(_code(3, 1, ticks)).accept
        _drive(loop, ticks, feed, 481245000, 7)  # fix again, at 103
        assert g.state == "at_stop" and pos.stop == 103
        recs = [records.decode(r) for r in g.journal.pending()]
        rows = [
            (
                r.kind,
                reasons.by_number(r.reason),
                r.account_id,
                r.direction,
                r.station,
                bool(r.flags & bus.FLAG_STOP_STALE),
            )
            for r in recs
        ]
        P, E, R = records.KIND_PASSAGE, records.KIND_EVENT, records.KIND_REJECT
        assert rows == [
            (P, "accepted", 1, 1, 0, True),
            (E, "gnss_fix", 0, 1, 0, False),
            (E, "stop_reached", 0, 1, 102, False),
            (P, "accepted", 2, 1, 102, False),
            (R, "anti_passback", 2, 1, 102, False),
            (P, "accepted", 1, 2, 102, False),
            (E, "gnss_lost", 0, 2, 102, True),
            (P, "accepted", 3, 1, 102, True),
            (E, "gnss_fix", 0, 1, 102, False),
            (E, "stop_reached", 0, 1, 103, False),
        ]
        assert all(r.mode == modes.MODE_BUS for r in recs)
        g.journal.close()
    finally:
        rmtree(d)


def test_an_emergency_leaves_the_position_alone_and_it_is_found_again():
    d = mkdtemp("bus2")
    ticks = Ticks(0)
    feed = Feed()
    try:
        g, pos, loop = _bus_gate(d, ticks, feed)
        _drive(loop, ticks, feed, 481173000, 7)
        assert g.state == "at_stop" and pos.stop == 101
        g.on_event("fire_alarm")
        _drive(loop, ticks, feed, 481173000, 3)
        assert g.state == "emergency"
        g.on_event("fire_clear")
        _drive(loop, ticks, feed, 481173000, 2)
        assert g.state == "at_stop"  # re-announced: fix_ok, then the stop again
        assert g.on_scan(_code(4, 1, ticks)).accept
        ticks.advance(1500)
        g.tick()
        assert g.display.last == modes.PROMPTS["ready"]
        g.journal.close()
    finally:
        rmtree(d)


def test_a_config_with_unreadable_stops_is_refused():
    from firmware.compose import gate_config
    from firmware.settings import SettingError

    cfg = {
        "version": 1,
        "device_id": 31,
        "name": "V7",
        "station": 0,
        "lane": 1,
        "mode": "bus",
        "direction": "both",
        "scope": 1,
        "bus": {"vehicle": 7, "route": 31, "stops": STOPS},
    }
    gate_config.validate(cfg, 31)
    cfg["bus"]["stops"] = STOPS + ";104:48.13"
    e = raises(SettingError, gate_config.validate, cfg, 31)
    assert e.setting == "bus.stops" and e.reason == "bad_config"
