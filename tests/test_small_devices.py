"""RTC conversion against CPython's calendar, the character display, GPIO indicator timing,
a GPIO barrier without limit switches, and the simulated RTC and barrier timing."""

import calendar
import io
import random

from drivers.portable import display, gpio, rtc
from host_sim.hardware.devices import ManualClock, SimBarrier, SimRTC
from tests.portable.fake_machine import FakeMachine, Ticks


def test_rtc_calendar_conversion_matches_cpython():
    rng = random.Random(11)
    samples = [0, 951_782_400, 4_102_444_799] + [rng.randrange(0, 2**32) for _ in range(2000)]
    for t in samples:
        dt = rtc.from_unix(t)
        tm = __import__("time").gmtime(t)
        assert dt[:3] == tm[:3] and dt[4:7] == tm[3:6] and dt[3] == tm.tm_wday
        assert rtc.to_unix(dt) == calendar.timegm(tm) == t


def test_system_rtc_refuses_to_be_set_from_the_gate():
    import pytest

    with pytest.raises(OSError, match="timedatectl"):
        rtc.SystemRTC().set(0)


def test_line_display_wraps_and_clears():
    out = io.BytesIO()
    d = display.LineDisplay(out.write, width=16, rows=2)
    d.show("Code expired - refresh app")
    assert out.getvalue() == b"\x0cCode expired -\r\nrefresh app"
    d.show("Welcome")
    assert out.getvalue().endswith(b"\x0cWelcome") and d.last == "Welcome"
    s = io.StringIO()
    display.StreamDisplay(s).show("Gate closed")
    assert s.getvalue() == "Gate closed\n"


def test_gpio_indicator_patterns_and_their_timing():
    m = FakeMachine()
    ticks = Ticks(0)
    ind = gpio.indicator_from_url("gpio:green=1&red=2&buzzer=3", m, ticks)
    levels = lambda: (m.pins[1].level, m.pins[2].level, m.pins[3].level)  # noqa: E731
    ind.signal("accept")
    assert levels() == (1, 0, 1)
    ticks.advance(149)
    ind.poll()
    assert levels() == (1, 0, 1)
    ticks.advance(1)
    ind.poll()
    assert levels() == (0, 0, 0)  # back to steady "ready"
    ind.signal("alarm")
    ticks.advance(10_000)
    ind.poll()
    assert levels() == (0, 1, 1)  # an alarm sounds until told otherwise
    ind.signal("alarm_off")
    assert levels() == (0, 0, 0)
    ind.signal("no such pattern")
    assert ind.current == "alarm_off"


def test_gpio_barrier_without_switches_assumes_arrival_after_travel():
    m = FakeMachine()
    ticks = Ticks(0)
    b = gpio.barrier_from_url("gpio:relay=9&travel_ms=500&active_low=1", m, ticks)
    assert m.pins[9].level == 1  # active low: released = high
    b.open()
    assert m.pins[9].level == 0 and b.poll() == []
    ticks.advance(500)
    assert b.poll() == ["barrier_opened"] and b.poll() == []
    b.close()
    ticks.advance(500)
    assert b.poll() == ["barrier_closed"] and b.openings == 1


def test_sim_rtc_drifts_and_can_be_set():
    clock = ManualClock(1_000_000)
    r = SimRTC(clock, drift_ppm=100)  # 100 ppm fast: 8.64 s a day
    clock.advance(86_400)
    assert r.now() == 1_000_000 + 86_400 + 8
    r.set(5)
    clock.advance(10)
    assert r.now() == 15


def test_sim_barrier_travel_times_and_seeded_jams():
    clock = ManualClock(0)
    b = SimBarrier(clock.ticks_ms, open_ms=300, close_ms=500)
    b.open()
    assert b.state == "opening" and b.poll() == []
    clock.advance_ms(300)
    assert b.poll() == ["barrier_opened"] and b.is_open()
    b.close()
    clock.advance_ms(499)
    assert b.poll() == [] and b.state == "closing"
    clock.advance_ms(1)
    assert b.poll() == ["barrier_closed"]
    jams = [
        _cycle(SimBarrier(clock.ticks_ms, rng=random.Random(seed), jam_rate=0.2))
        for seed in range(3)
    ]
    assert all(40 <= n <= 120 for n in jams)  # about 20 % of 400 movements
    assert _cycle(SimBarrier(clock.ticks_ms, rng=random.Random(0), jam_rate=0.2)) == jams[0]


def _cycle(b: SimBarrier, times: int = 200) -> int:
    """Open and close `times` times, clearing every jam; return how many jams there were."""
    for _ in range(times):
        for move in (b.open, b.close):
            move()
            b.poll()
            if b.state == "jammed":
                b.clear_jam()
    return b.jams
