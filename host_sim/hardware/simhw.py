"""One simulated gate's hardware for the station simulator, on the virtual clock.

The pieces come from host_sim/hardware/devices.py and host_sim/hardware/passage.py; this module
adds what a whole-station run needs around them:

    ScanReader   a reader whose scans arrive after a decode latency drawn per scan
    Barrier      a SimBarrier that tells observers about every command (the invariant checks)
    SimDisk      the gate's storage object (firmware/storage/fs.py): real files, and a `full`
                 switch under which every write and sync of every store fails with ENOSPC (as
                 a full volume reports it), so the firmware's own error paths run. A sync is
                 the host's fsync, or with host_fsync=False (the station simulator's default)
                 a flush to the host's page cache, counted in `syncs`: a simulated power cut
                 drops the device object, never the host's cache, so what survives it is the
                 same either way and only the wall time differs
    SimHardware  everything one gate has: readers, barrier, display, indicator, beams or loops
                 or door and exit button, an RTC that drifts, the disk

A SimHardware is the physical side (what riders, cars and faults act on), not what the firmware
is handed: the firmware gets its devices as a real gate does, through `sim:` URLs
(host_sim/hardware/simbus.py) and drivers/portable/wiring.build.

Power is the simulator's business: the hardware outlives the firmware, and a power cut drops
only the device object (and what the reader had not delivered).
"""

import errno
from collections.abc import Callable
from typing import Any

from firmware.storage.fs import FileProxy, Storage
from host_sim.hardware import passage
from host_sim.hardware.devices import (
    ManualClock,
    SimBarrier,
    SimDisplay,
    SimIndicator,
    SimInput,
    SimRTC,
)

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


class SimDisk(Storage):
    """The gate's storage object (firmware/storage/fs.py) over real files, with a `full`
    switch. Device hands this one object to every store (journal, replay cache, deny and trust
    stores, time anchor, device store, service log), so while full every write and every sync
    of each of them fails with ENOSPC, as a full volume reports it, and each store's own error
    path runs. Reading is never refused."""

    def __init__(self, host_fsync: bool = True) -> None:
        self.full = False
        self.fills = 0  # disk-full faults in progress (they may overlap)
        self.refused = 0  # writes and syncs refused while full
        self.host_fsync = host_fsync
        self.syncs = 0  # file and directory syncs the firmware asked for

    def fill(self) -> None:
        self.fills += 1
        self.full = True

    def free(self) -> None:
        self.fills = max(0, self.fills - 1)
        self.full = self.fills > 0

    def free_all(self) -> None:
        self.fills = 0
        self.full = False

    def check(self) -> None:
        """Raise ENOSPC while the disk is full."""
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_file(self, path: str, mode: str) -> Any:
        f = super().open_file(path, mode)
        return f if mode == "rb" else _SimFile(f, self)

    def sync_file(self, f: Any) -> None:
        self.check()
        self.syncs += 1
        f = f.f if isinstance(f, _SimFile) else f
        if self.host_fsync:
            super().sync_file(f)
        else:
            f.flush()

    def sync_dir(self, path: str) -> None:
        self.syncs += 1
        if self.host_fsync:
            super().sync_dir(path)

    def free_bytes(self, path: str) -> int | None:
        return 0 if self.full else super().free_bytes(path)


class _SimFile(FileProxy):
    """A file opened for writing on a SimDisk: a write while the disk is full fails."""

    def __init__(self, f: Any, disk: SimDisk) -> None:
        super().__init__(f)
        self.disk = disk

    def write(self, data: bytes) -> int:
        self.disk.check()
        return self.f.write(data)


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
        host_fsync: bool = True,
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
        self.disk = SimDisk(host_fsync)
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
