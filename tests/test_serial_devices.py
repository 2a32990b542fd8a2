"""Serial peripherals through the real pyserial path on pseudo-terminals: the QR engine (prefix,
suffix, trigger and keep-alive commands, garbage, partial and over-long lines, bytes split
anywhere) and the barrier controller; then a whole Linux gate wired from URLs alone.
"""

import random
import time

import pytest

from drivers.linux.barrier_serial import SerialBarrier
from drivers.linux.qrengine_serial import SerialQREngine, from_url, split_url
from drivers.portable import registry, wiring
from firmware.compose.device import gate_loop
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from host_sim.hardware.devices import ManualClock, PtyBarrierController, PtyQREngine, SimBarrier
from protocol import reasons, records
from tests.portable import codes

CODE = codes.code()


def until(cond, timeout_s=3.0):
    """Poll cond() until true (pty bytes take a moment to cross; never a fixed sleep)."""
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.002)


@pytest.fixture
def engine():
    e = PtyQREngine(prefix=b"\x02", suffix=b"\r")
    yield e
    e.close()


def test_code_lines_with_prefix_and_suffix(engine):
    scanner = SerialQREngine(engine.path, 9600, prefix=b"\x02", suffix=b"\r")
    try:
        engine.show(CODE)
        engine.show("SECOND")
        assert scanner.read(2.0) == CODE
        assert scanner.read(2.0) == "SECOND"
        assert scanner.read(0) is None
        assert scanner.read(0.05) is None
    finally:
        scanner.close()


def test_bytes_split_anywhere_still_make_one_line(engine):
    scanner = SerialQREngine(engine.path, prefix=b"\x02", suffix=b"\r")
    line = b"\x02" + CODE.encode() + b"\r"
    rng = random.Random(5)
    try:
        for _ in range(5):
            cuts = sorted(rng.sample(range(1, len(line)), 6))
            for a, b in zip([0] + cuts, cuts + [len(line)]):
                engine.write(line[a:b])
                time.sleep(0.001)
            assert scanner.read(2.0) == CODE
    finally:
        scanner.close()


def test_garbage_partial_and_overlong_lines_are_dropped_and_counted(engine):
    scanner = SerialQREngine(engine.path, prefix=b"\x02", suffix=b"\r", max_line=400, gap_ms=100)
    try:
        engine.garbage(b"\x00\xff\xfe noise \r")  # no prefix: not a code line
        engine.garbage(b"\x02caf\xe9\r")  # not ASCII
        engine.partial(CODE, 40)  # the engine reset mid-line...
        assert scanner.read(0.05) is None
        time.sleep(0.25)  # ...and nothing more came for 250 ms
        assert scanner.read(0.05) is None
        engine.overlong(2000)  # far longer than any code, never a code
        engine.write(b"junk before the prefix")
        engine.show(CODE)  # the good line: everything before the last prefix is dropped
        assert scanner.read(2.0) == CODE
        assert scanner.read(0.1) is None
        assert scanner.stats["garbage"] == 2
        assert scanner.stats["partial"] == 1
        assert scanner.stats["overlong"] == 1
        assert scanner.stats["lines"] == 1
        assert scanner.dropped_lines == 4
    finally:
        scanner.close()


def test_an_overlong_line_never_leaks_its_tail_as_a_code(engine):
    scanner = SerialQREngine(engine.path, suffix=b"\r", max_line=320)
    try:
        engine.write(b"X" * 330 + CODE.encode() + b"\r")  # a code glued to junk, over the limit
        engine.write(b"OK\r")
        assert scanner.read(1.0) == "OK"
    finally:
        scanner.close()


def test_trigger_mode_sends_the_trigger_and_gets_the_code():
    e = PtyQREngine(suffix=b"\r\n", trigger=b"\x16T\r")
    clock = ManualClock(0)
    scanner = from_url("serial:%s?trigger=%%16T%%0D&trigger_ms=1000" % e.path, ticks=clock.ticks_ms)
    try:
        e.show(CODE)  # command mode: the engine holds it until triggered
        assert scanner.read(0) is None  # the read sent the trigger...
        until(lambda: e.serve() or e.triggers == 1)  # ...the engine answers with the code
        assert scanner.read(2.0) == CODE
        scanner.read(0)  # a new read after a code: a new trigger at once
        until(lambda: e.serve() or e.triggers == 2)
        scanner.read(0)  # within trigger_ms: no repeat
        clock.advance(1.0)
        scanner.read(0)  # trigger_ms later: the engine's scan timed out, trigger again
        until(lambda: e.serve() or e.triggers == 3)
        time.sleep(0.05)
        e.serve()
        assert e.triggers == 3 and e.commands == b"\x16T\r" * 3
    finally:
        scanner.close()
        e.close()


def test_keepalive_answers_are_consumed_and_silence_is_noticed():
    e = PtyQREngine(suffix=b"\r\n", keepalive=b"?\r", keepalive_ack=b"ALIVE")
    clock = ManualClock(0)
    url = "serial:%s?keepalive=%%3F%%0D&keepalive_ack=ALIVE&keepalive_ms=1000" % e.path
    scanner = from_url(url, ticks=clock.ticks_ms)
    try:
        for i in range(5):
            scanner.poll()
            until(lambda n=i + 1: e.serve() or e.keepalives == n)
            until(lambda n=i + 1: scanner.poll() or scanner.stats["acks"] == n)
            assert scanner.read(0) is None  # the ack is consumed, never a code
            clock.advance(1.0)
        assert scanner.alive
        e.mute = True  # the engine died
        for i in range(4):
            scanner.poll()
            until(lambda n=6 + i: e.serve() or e.keepalives == n)
            clock.advance(1.0)
            assert scanner.alive == (i < 2)
        assert scanner.stats["acks"] == 5
    finally:
        scanner.close()
        e.close()


def test_url_options_split_from_the_pyserial_url():
    base, opts = split_url("serial:socket://localhost:7000?logging=debug&suffix=%0D&baudrate=9600")
    assert base == "socket://localhost:7000?logging=debug"
    assert opts == {"suffix": b"\r", "baudrate": 9600}
    assert split_url("/dev/ttyUSB0") == ("/dev/ttyUSB0", {})
    loop = from_url("serial:loop://?suffix=%0A&prefix=%02")
    try:
        loop.serial.write(b"\x02HELLO\n")
        assert loop.read(1.0) == "HELLO"
    finally:
        loop.close()


def test_serial_barrier_controller_over_a_pty():
    clock = ManualClock(0)
    ctl = PtyBarrierController(SimBarrier(clock.ticks_ms, open_ms=500, close_ms=500))
    bar = SerialBarrier(ctl.path)
    try:
        events: list[str] = []

        def polled(n):
            events.extend(bar.poll())
            return len(events) >= n

        bar.open()
        until(lambda: ctl.pump() or ctl.received == [b"OPEN"])
        assert ctl.barrier.state == "opening"
        clock.advance_ms(600)
        ctl.pump()
        until(lambda: polled(1))
        assert events == ["barrier_opened"] and bar.is_open()
        ctl.barrier.jam_next()
        bar.close()
        bar.request_status()
        until(lambda: ctl.pump() or len(ctl.received) == 3)
        clock.advance_ms(600)
        ctl.pump()
        until(lambda: polled(2))
        assert events == ["barrier_opened", "barrier_jam"] and bar.state == "CLOSING"
        ctl.barrier.clear_jam()
        ctl.pump()
        until(lambda: polled(4))
        assert events[2:] == ["barrier_ok", "barrier_closed"] and not bar.is_open()
    finally:
        bar.close_port()
        ctl.close()


def test_registry_picks_backends_by_url_and_says_what_it_knows():
    assert registry.scheme_of("/dev/ttyUSB0") == "serial"
    assert registry.scheme_of("loop://") == "serial"
    assert registry.scheme_of("gpio:relay=4") == "gpio"
    with pytest.raises(registry.NoBackend, match="known schemes: gpio, serial"):
        registry.open_device("barrier", "cam:0")
    with pytest.raises(registry.NoBackend):
        registry.open_device("reader", "nonsense")


def test_linux_gate_wired_from_urls_scans_over_pty_and_drives_the_barrier_over_pty(tmp_path):
    engine = PtyQREngine(prefix=b"\x02", suffix=b"\r")
    clock = ManualClock(codes.NOW)
    ctl = PtyBarrierController(SimBarrier(clock.ticks_ms, open_ms=300, close_ms=300))
    journal = Journal(str(tmp_path), device_id=12)
    hardware = {
        "readers": [{"url": "serial:%s?prefix=%%02&suffix=%%0D" % engine.path}],
        "barrier": "serial:%s" % ctl.path,
    }
    validator = Validator(codes.VERIFIER, {1: codes.issuer_key()})
    loop = gate_loop(
        wiring.build(hardware, ticks=clock.ticks_ms),
        validator,
        journal,
        clock,
        mode=1,
        direction=1,
        ticks=clock.ticks_ms,
    )
    try:
        loop.step(0)  # the reader opens at its first read (pyserial flushes what came before)
        engine.show(codes.code())
        for _ in range(50):
            loop.step(0.02)
            ctl.pump()
            if ctl.received:
                break
        assert ctl.received == [b"OPEN"]
        assert loop.gate.state == "authorized"
        clock.advance_ms(400)
        ctl.pump()
        until(lambda: loop.step(0) or loop.gate.machine.log[-1][2] == "barrier_opened")
        [raw] = journal.pending()
        rec = records.decode(raw)
        assert (rec.kind, reasons.by_number(rec.reason), rec.account_id) == (1, "accepted", 42)
    finally:
        for reader, _d in loop.readers:
            reader.close()
        loop.gate.barrier.close_port()
        engine.close()
        ctl.close()
        journal.close()


def test_wiring_refuses_unknown_keys_and_inputs():
    with pytest.raises(ValueError, match="unknown hardware key 'beam'"):
        wiring.build({"barrier": "loop://", "beam": "x"})
    with pytest.raises(ValueError, match="unknown input 'smoke'"):
        wiring.build({"barrier": "loop://", "inputs": {"smoke": "gpio:pin=1"}})


def test_aim_identifiers_are_checked_and_stripped_over_a_pty():
    e = PtyQREngine(prefix=b"\x02", suffix=b"\r", aim=b"]Q1")
    scanner = from_url("serial:%s?baudrate=9600&prefix=%%02&suffix=%%0D&aim=1" % e.path)
    try:
        e.show(CODE)  # a QR Code read, model 2: "]Q1" stripped
        e.show(CODE, symbology=b"]C0")  # the same text read as a Code 128: kept for the gate
        e.show(CODE, symbology=b"")  # the engine's AIM setting off: dropped, counted
        e.show(CODE, symbology=b"]Q3")  # QR with FNC1 (GS1): still a QR Code
        got = [scanner.read(2.0) for _ in range(3)]
        assert got == [CODE, "]C0" + CODE, CODE]
        s = scanner.stats
        assert (s["lines"], s["symbology"], s["no_aim"], s["garbage"]) == (3, 1, 1, 0)
    finally:
        scanner.close()
        e.close()


def test_the_gate_refuses_a_code_read_as_another_symbology(tmp_path):
    from firmware.gate.gate import Gate

    class Shown:
        last = ""

        def show(self, text):
            self.last = text

    clock = ManualClock(codes.NOW)
    journal = Journal(str(tmp_path), device_id=3)
    validator = Validator(codes.VERIFIER, {1: codes.issuer_key()})
    gate = Gate(validator, journal, SimBarrier(clock.ticks_ms), Shown(), clock, mode=1)
    e = PtyQREngine(suffix=b"\r\n", aim=b"]Q1")
    scanner = from_url("serial:%s?aim=1" % e.path)
    try:
        e.show(CODE, symbology=b"]d1")  # a Data Matrix carrying a ride code's text
        d = gate.on_scan(scanner.read(2.0))
        assert (d.accept, d.reason) == (False, "wrong_symbology")
        assert gate.display.last == "Code not readable"
        [raw] = journal.pending()
        rec = records.decode(raw)
        assert (rec.kind, rec.reason) == (records.KIND_REJECT, 340)
        e.show(CODE)  # the same code as a QR Code passes
        assert gate.on_scan(scanner.read(2.0)).accept
    finally:
        scanner.close()
        e.close()
        journal.close()


def test_baud_rate_reaches_the_line_and_a_trigger_answer_never_sticks_to_a_code():
    import termios

    # the "7E 00" command protocol many turnstile modules speak: a trigger frame, answered by
    # 02 00 00 01 00 33 31 without a line end, then the code's line
    trigger, ack = b"\x7e\x00\x08\x01\x00\x02\x01\xab\xcd", b"\x02\x00\x00\x01\x00\x33\x31"
    e = PtyQREngine(suffix=b"\r", trigger=trigger, trigger_ack=ack)
    url = "serial:%s?baudrate=9600&suffix=%%0D&trigger=%s&trigger_ack=%s" % (
        e.path,
        "".join("%%%02X" % b for b in trigger),
        "".join("%%%02X" % b for b in ack),
    )
    scanner = from_url(url)
    try:
        attrs = termios.tcgetattr(scanner.serial.fileno())
        assert attrs[4] == attrs[5] == termios.B9600  # ispeed, ospeed as pyserial set them
        e.show(CODE)
        assert scanner.read(0) is None  # the trigger went out
        until(lambda: e.serve() or e.triggers == 1)
        assert scanner.read(2.0) == CODE
        assert scanner.stats["trigger_acks"] == 1 and scanner.dropped_lines == 0
        # an answer split across reads is held back until it is whole
        e.write(ack[:3])
        assert scanner.read(0.2) is None
        e.write(ack[3:] + CODE.encode() + b"\r")
        assert scanner.read(2.0) == CODE and scanner.stats["trigger_acks"] == 2
    finally:
        scanner.close()
        e.close()
