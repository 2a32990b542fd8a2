"""The MCU profile: the gate modes wired by drivers/portable/wiring from uart: and gpio: URLs onto
a fake `machine` module, run on the MicroPython unix port (and on CPython).

Each test drives pins and UART bytes the way the real peripherals would and checks the relay
pin, the journal and the display; nothing calls the gate directly.
"""

from drivers.portable import rtc, wiring
from firmware.compose.device import gate_loop
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from protocol import reasons, records
from tests.portable import codes
from tests.portable.fake_machine import FakeMachine, Ticks
from tests.portable.harness import mkdtemp, rmtree

RELAY, OPENED, CLOSED, BEAM_A, BEAM_B, FIRE, GREEN, RED, BUZZER = 17, 18, 19, 4, 5, 12, 21, 22, 23
DOOR, EXIT_BUTTON, LOOP_A, LOOP_B = 13, 14, 6, 7


class Clock:
    def __init__(self, ticks):
        self.ticks = ticks

    def now(self):
        return codes.NOW + self.ticks() // 1000


class Rig:
    """One MCU gate on fake pins, plus helpers that act like its peripherals."""

    def __init__(self, mode=1, direction=1, settings=None, extra=None):
        self.m = FakeMachine()
        self.ticks = Ticks(1000)
        self.dir = mkdtemp("mcu")
        self.journal = Journal(self.dir, device_id=5)
        hw = {
            "readers": [{"url": "uart:1?baudrate=9600&prefix=%02&suffix=%0D", "direction": None}],
            "barrier": "gpio:relay=%d&opened=%d&closed=%d&travel_ms=2000" % (RELAY, OPENED, CLOSED),
            "inputs": {"fire_alarm": "gpio:pin=%d" % FIRE},
            "indicator": "gpio:green=%d&red=%d&buzzer=%d" % (GREEN, RED, BUZZER),
        }
        if extra:
            hw.update(extra)
        validator = Validator(codes.VERIFIER, {1: codes.issuer_key()})
        self.loop = gate_loop(
            wiring.build(hw, machine=self.m, ticks=self.ticks),
            validator,
            self.journal,
            Clock(self.ticks),
            mode=mode,
            direction=direction,
            station=9,
            settings=settings,
            ticks=self.ticks,
        )
        self.gate = self.loop.gate
        self.loop.readers[0][0].read(0)  # readers open at their first read
        self.uart = self.m.uarts[1]
        if CLOSED in self.m.pins:
            self.m.pins[CLOSED].level = 1  # the barrier starts closed
        self.counter = 0

    def close(self):
        self.journal.close()
        rmtree(self.dir)

    def steps(self, n=1, ms=10):
        for _ in range(n):
            self.ticks.advance(ms)
            self.loop.step(0)

    def scan(self, account=42, raw=None):
        self.counter += 1
        text = raw or codes.code(
            codes.credential(account_id=account), time=self.gate.clock.now(), counter=self.counter
        )
        self.uart.feed(b"\x02" + text.encode() + b"\r")
        self.steps()

    def relay(self):
        return self.m.pins[RELAY].level

    def limit(self, opened):
        """The arm reaches its end position: the limit switches say so."""
        self.m.pins[OPENED].level = 1 if opened else 0
        self.m.pins[CLOSED].level = 0 if opened else 1
        self.steps()

    def pins(self, a_pin, b_pin, seq):
        for a, b in seq:
            self.m.pins[a_pin].level = a
            self.m.pins[b_pin].level = b
            self.steps(3)

    def walk(self, backwards=False):
        seq = [(1, 0), (1, 1), (0, 1), (0, 0)]
        if backwards:
            seq = [(b, a) for a, b in seq]
        self.pins(BEAM_A, BEAM_B, seq)

    def events(self):
        out = []
        for raw in self.journal.pending(self.journal.pending_count()):
            r = records.decode(raw)
            out.append((r.kind, reasons.by_number(r.reason), r.flags))
        return out


def _metro(**kw):
    return Rig(1, 1, kw.get("settings"), {"beams": "gpio:a=%d&b=%d" % (BEAM_A, BEAM_B)})


def test_metro_entry_on_uart_and_gpio():
    rig = _metro()
    try:
        assert rig.relay() == 0 and rig.gate.state == "idle"
        rig.scan()
        assert rig.relay() == 1 and rig.gate.state == "authorized"
        assert rig.m.pins[GREEN].level == 1  # accept pattern
        rig.limit(True)
        rig.walk()
        assert rig.gate.state == "idle" and rig.relay() == 0
        rig.limit(False)
        assert rig.events() == [(records.KIND_PASSAGE, "accepted", 0)]
        # the same account again: anti-passback, the relay never moves
        rig.scan()
        assert rig.relay() == 0
        assert rig.events()[-1] == (records.KIND_REJECT, "anti_passback", 0)
    finally:
        rig.close()


def test_metro_tailgating_and_wrong_direction_alarms():
    rig = _metro()
    try:
        rig.scan(account=1)
        rig.limit(True)
        # two people close together: the beams never clear between them
        rig.pins(BEAM_A, BEAM_B, [(1, 0), (1, 1), (0, 1), (1, 1), (1, 0), (1, 1), (0, 1), (0, 0)])
        assert rig.gate.state == "idle" and rig.relay() == 0
        rig.walk(backwards=True)
        kinds = [e[1] for e in rig.events()]
        assert kinds == ["accepted", "tailgating", "wrong_direction"]
        assert rig.m.pins[BUZZER].level == 1 and rig.m.pins[RED].level == 1
    finally:
        rig.close()


def test_metro_barrier_timeout_voids_the_passage():
    rig = _metro(settings={"pass_ms": 1000})
    try:
        rig.scan(account=3)
        assert rig.relay() == 1
        rig.steps(120)  # 1.2 s, nobody came
        assert rig.relay() == 0 and rig.gate.state == "idle"
        assert [e[1] for e in rig.events()] == ["accepted", "passage_not_taken"]
        rig.scan(account=3)  # voided: the rider may scan again
        assert rig.relay() == 1
    finally:
        rig.close()


def test_barrier_jam_from_the_limit_switches():
    rig = _metro()
    try:
        rig.scan(account=4)
        rig.steps(210)  # 2.1 s and the opened switch never closed
        assert rig.gate.state == "jammed"
        # the pending passage is voided, then the jam is journaled
        assert [e[1] for e in rig.events()] == ["accepted", "passage_not_taken", "barrier_jam"]
        rig.scan(account=5)
        assert rig.events()[-1][1] == "barrier_fault"
        rig.limit(True)  # the arm finally got there
        assert rig.gate.state == "idle"
    finally:
        rig.close()


def test_fire_alarm_opens_and_passages_are_logged_not_charged():
    rig = _metro()
    try:
        rig.m.pins[FIRE].level = 1
        rig.steps(5)  # debounce
        assert rig.gate.state == "emergency" and rig.relay() == 1
        rig.walk()
        rig.scan(account=8)
        assert rig.relay() == 1
        rig.m.pins[FIRE].level = 0
        rig.steps(5)
        assert rig.gate.state == "idle" and rig.relay() == 0
        ev = rig.events()
        assert ev[0] == (records.KIND_EVENT, "emergency_open", 0)
        assert (records.KIND_EVENT, "emergency_passage", records.FLAG_EMERGENCY) in ev
        assert (records.KIND_PASSAGE, "accepted", records.FLAG_EMERGENCY) in ev
        assert ev[-1] == (records.KIND_EVENT, "emergency_end", 0)
    finally:
        rig.close()


def test_parking_closes_only_after_the_vehicle_cleared():
    rig = Rig(2, 1, None, {"loops": "gpio:a=%d&b=%d" % (LOOP_A, LOOP_B)})
    try:
        rig.scan(account=11)
        assert rig.relay() == 0 and rig.events()[-1][1] == "no_vehicle"
        rig.pins(LOOP_A, LOOP_B, [(1, 0)])
        rig.scan(account=11)
        assert rig.relay() == 1
        rig.limit(True)
        rig.pins(LOOP_A, LOOP_B, [(1, 1), (0, 1)])
        rig.steps(100)
        assert rig.relay() == 1  # the car is under the arm: it stays up
        rig.pins(LOOP_A, LOOP_B, [(0, 0)])
        assert rig.relay() == 0 and rig.gate.state == "closing"
        rig.limit(False)
        assert rig.gate.state == "idle"
    finally:
        rig.close()


def test_store_door_unlock_held_alarm_and_exit_button():
    rig = Rig(
        3,
        1,
        {"unlock_ms": 3000, "held_ms": 5000},
        {
            "barrier": "gpio:relay=%d&travel_ms=0" % RELAY,
            "inputs": {"door": "gpio:pin=%d" % DOOR, "exit_button": "gpio:pin=%d" % EXIT_BUTTON},
        },
    )
    try:
        rig.scan(account=21)
        assert rig.relay() == 1 and rig.gate.state == "unlocked"
        rig.m.pins[DOOR].level = 1
        rig.steps(5)
        assert rig.gate.state == "open"
        rig.steps(510)  # 5.1 s open
        assert rig.gate.state == "held"
        rig.m.pins[DOOR].level = 0
        rig.steps(5)
        assert rig.gate.state == "idle" and rig.relay() == 0
        rig.m.pins[EXIT_BUTTON].level = 1
        rig.steps(5)
        rig.m.pins[EXIT_BUTTON].level = 0
        assert rig.gate.state == "egress" and rig.relay() == 1
        rig.steps(310)
        assert rig.gate.state == "idle" and rig.relay() == 0
        assert [e[1] for e in rig.events()] == ["accepted", "door_held", "alarm_cleared"]
        assert records.account_key(1, 21) in rig.gate.policy.open  # the session started
    finally:
        rig.close()


def test_uart_line_faults_never_reach_the_gate_as_codes():
    rig = _metro()
    try:
        text = codes.code(codes.credential(account_id=77), time=rig.gate.clock.now())
        # noise, then a partial line that never finishes, then an over-long line, then the code
        rig.uart.feed(b"\xff\x00garbage\r")
        rig.steps()
        rig.uart.feed(b"\x02FG1:AB")
        rig.steps(30)  # 300 ms later the rest never came
        rig.uart.feed(b"\x02" + b"Z" * 1500 + b"\r")
        rig.steps()
        rig.uart.feed(b"\x02" + text.encode() + b"\r")
        rig.steps()
        assert rig.relay() == 1
        engine = rig.loop.readers[0][0].dev  # the QR engine behind the lazy opener
        assert engine.stats["garbage"] == 1 and engine.stats["overlong"] == 1
        assert engine.stats["partial"] == 1 and engine.stats["lines"] == 1
        assert [e[1] for e in rig.events()] == ["accepted"]
    finally:
        rig.close()


def test_machine_rtc_round_trip():
    m = FakeMachine()
    clock = rtc.MachineRTC(m.RTC())
    clock.set(codes.NOW)
    assert m.rtc.dt[:7] == (2026, 1, 1, 3, 8, 0, 0)
    assert clock.now() == codes.NOW
