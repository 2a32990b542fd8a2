"""One simulated gate's hardware for the station simulator, on the virtual clock.

The pieces come from host_sim/hardware/devices.py and host_sim/hardware/passage.py; this module
adds what a whole-station run needs around them:

    ScanReader   a reader whose scans arrive after a decode latency drawn per scan
    Barrier      a SimBarrier that tells observers about every command (the invariant checks)
    the disk     the gate's storage object (firmware/storage/fs.py), a PowerDisk
                 (host_sim/hardware/powerdisk.py): real files that lose, at a power cut, what
                 was not made durable, and a `full` switch under which every write of every
                 store fails with ENOSPC (as a full volume reports it); a sync reaches the host's
                 disk only with host_fsync (a scenario key: to measure the host disk)
    SimHardware  everything one gate has: readers, barrier, display, indicator, beams or loops
                 or door and exit button, an RTC that drifts, the disk

A SimHardware is the physical side (what riders, cars and faults act on), not what the firmware
is handed: the firmware gets its devices as a real gate does, through `sim:` URLs
(host_sim/hardware/simbus.py) and drivers/portable/wiring.build.

Power is the simulator's business: the hardware outlives the firmware, and a power cut drops
the device object, what the reader had not delivered, and what the disk had not made durable.
"""

from collections.abc import Callable
from typing import Any

from host_sim.hardware import passage
from host_sim.hardware.devices import (
    ManualClock,
    SimBarrier,
    SimDisplay,
    SimIndicator,
    SimInput,
    SimRTC,
)
from host_sim.hardware.powerdisk import PowerDisk

# decode latency of one scan, ms: (low, high) drawn uniformly
READER_LATENCY_MS = {"qr_engine": (40, 120), "camera": (60, 260)}


class ScanReader:
    """A code reader: `show(text, latency_ms)` is a phone held up; `read()` hands the text to
    the gate once the decode latency has passed."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.queue: list[tuple[int, str]] = []

    def show(self, text: str, latency_ms: int) -> None:
        self.queue.append((self.clock.ticks_ms() + latency_ms, text))

    def read(self, timeout_s: float = 0.0) -> str | None:
        if self.queue and self.queue[0][0] <= self.clock.ticks_ms():
            return self.queue.pop(0)[1]
        return None

    def clear(self) -> None:
        self.queue = []

    @property
    def waiting(self) -> bool:
        return bool(self.queue)


class Barrier(SimBarrier):
    """A SimBarrier whose commands are seen by `observers` (callables taking "open"/"close")
    before the barrier acts on them."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.observers: list[Callable[[str], None]] = []

    def open(self) -> None:
        for fn in self.observers:
            fn("open")
        super().open()

    def close(self) -> None:
        for fn in self.observers:
            fn("close")
        super().close()

    @property
    def moving(self) -> bool:
        return self.state in ("opening", "closing") or bool(self._events)


class SimHardware:
    """The hardware of one gate. `kind` is metro, parking or store."""

    def __init__(
        self,
        name: str,
        kind: str,
        clock: ManualClock,
        open_ms: int,
        close_ms: int,
        drift_ppm: float,
        host_fsync: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.clock = clock
        self.reader = ScanReader(clock)
        self.exit_reader = ScanReader(clock) if kind == "store" else None
        self.barrier = Barrier(clock.ticks_ms, open_ms, close_ms)
        self.display = SimDisplay()
        self.indicator = SimIndicator()
        self.rtc = SimRTC(clock, drift_ppm)
        self.disk = PowerDisk(host_fsync=host_fsync)
        self.beams = passage.Beams() if kind == "metro" else None
        self.loops = passage.Loops() if kind == "parking" else None
        self.door = passage.Door() if kind == "store" else None
        self.button = SimInput() if kind == "store" else None

    def power_lost(self) -> None:
        """Codes being decoded are lost with the power."""
        self.reader.clear()
        if self.exit_reader is not None:
            self.exit_reader.clear()

    def power_restored(self) -> None:
        """The barrier controller homes to closed when it gets power back (fail secure)."""
        if self.barrier.state != "jammed":
            self.barrier.state = "closed"
            self.barrier._target = "closed"
            self.barrier._events = []

    @property
    def busy(self) -> bool:
        """Something is moving or waiting: the gate's loop must turn every step."""
        if self.reader.waiting or (self.exit_reader is not None and self.exit_reader.waiting):
            return True
        if self.barrier.moving:
            return True
        for lane in (self.beams, self.loops):
            if lane is not None and not lane.empty:
                return True
        return self.door is not None and (self.door.is_open or self.button.level)  # type: ignore[union-attr]
