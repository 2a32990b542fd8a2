"""`sim:` URLs (host_sim/hardware/simbus.py): the simulator's hardware as registry backends, and
the station simulator wiring its gates through them as a real gate is wired."""

import tomllib

import pytest

from drivers.portable import registry, wiring
from host_sim.hardware import simbus, simhw
from host_sim.hardware.devices import ManualClock
from host_sim.station import scenario as scenarios
from host_sim.station.simulation import Simulation

T0 = 1_768_204_800


def _bus(name, kind="metro"):
    clock = ManualClock(T0)
    hw = simhw.SimHardware("g1", kind, clock, 300, 400, 0.0)
    bus = simbus.Bus(name)
    bus.add(hw)
    return bus, hw, clock


def test_wiring_builds_working_hardware_from_sim_urls():
    bus, world, clock = _bus("t-metro")
    spec = bus.spec("g1")
    assert spec["barrier"] == "sim:t-metro/g1/barrier"
    assert "loops" not in spec and "inputs" not in spec
    hw = wiring.build(spec)
    assert hw.barrier is world.barrier and hw.beams is world.beams
    assert hw.rtc is world.rtc and hw.disk is world.disk and hw.display is world.display
    ((reader, direction),) = hw.readers()
    assert direction is None
    world.reader.show("CODE-1", 50)  # a phone held up: decoded 50 ms later
    assert reader.read(0) is None
    clock.advance_ms(50)
    assert reader.read(0) == "CODE-1"
    hw.barrier.open()
    clock.advance_ms(300)
    assert hw.barrier.poll() == ["barrier_opened"] and world.barrier.is_open()
    assert hw.beams.read() == (False, False)


def test_a_store_door_gets_its_exit_reader_and_inputs():
    bus, world, _clock = _bus("t-store", "store")
    hw = wiring.build(bus.spec("g1"))
    assert [d for _r, d in hw.readers()] == [None, 2]
    assert hw.inputs() == [
        (world.door, "door_opened", "door_closed"),
        (world.button, "exit_request", None),
    ]
    assert hw.beams is None and hw.loops is None


def test_bad_sim_urls_are_refused():
    bus, _world, _clock = _bus("t-bad")
    with pytest.raises(ValueError, match="take no options"):
        registry.open_device("barrier", "sim:t-bad/g1/barrier?open_ms=10")
    with pytest.raises(ValueError, match="take no options"):
        wiring.build({"barrier": "sim:t-bad/g1/barrier?speed=2"})
    with pytest.raises(ValueError, match="is not a reader"):
        registry.open_device("reader", "sim:t-bad/g1/barrier")
    with pytest.raises(ValueError, match="no simulated bus 'elsewhere'"):
        registry.open_device("barrier", "sim:elsewhere/g1/barrier")
    with pytest.raises(ValueError, match="no gate 'g9'"):
        registry.open_device("barrier", "sim:t-bad/g9/barrier")
    with pytest.raises(ValueError, match="has no loops"):
        registry.open_device("pair", "sim:t-bad/g1/loops")
    with pytest.raises(ValueError, match="sim:BUS/GATE/PART"):
        registry.open_device("barrier", "sim:t-bad/barrier")
    with pytest.raises(ValueError, match="already running"):
        simbus.Bus("t-bad")
    assert simbus.bus("t-bad") is bus


SMALL = """\
name = "wired"
start = "2026-01-12T08:00:00Z"
duration_s = 60
drain_s = 30

[[lanes]]
kind = "metro"
direction = "entry"
gates = 1
peak_per_hour = 600

[[lanes]]
kind = "store"
peak_per_hour = 60
stay_s = [60, 120]
"""


def test_the_simulator_wires_its_gates_through_the_registry(tmp_path, monkeypatch):
    opened = []
    open_device = registry.open_device

    def spy(kind, url, machine=None, ticks=None):
        opened.append((kind, url))
        return open_device(kind, url, machine=machine, ticks=ticks)

    monkeypatch.setattr(registry, "open_device", spy)
    sc = scenarios.from_dict(tomllib.loads(SMALL))
    sim = Simulation(sc, 1, str(tmp_path / "work"))
    assert len(sim.slots) == 2
    for slot in sim.slots:
        spec = slot.spec
        assert ("barrier", spec["barrier"]) in opened and ("rtc", spec["rtc"]) in opened
        assert ("disk", spec["disk"]) in opened
        # the firmware runs on the very devices the lane and the faults act on
        assert slot.dev.hw.barrier is slot.hw.barrier and slot.dev.hw.rtc is slot.hw.rtc
        assert slot.dev.hw.disk is slot.hw.disk
        again = wiring.build(spec)  # the same spec wires the same hardware, as on a reboot
        assert again.barrier is slot.hw.barrier
        snap = slot.dev.snapshot()
        assert snap["in_service"] and snap["pending"] == 0 and snap["deny_version"] == 1
        assert snap["gate"]["state"] == "idle" and snap["gate"]["timer"] is None
    door = sim.slots[1]
    assert ("input", door.spec["inputs"]["door"]) in opened
    sim.finish()
