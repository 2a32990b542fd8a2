"""P2: scan to open. Bytes from the QR engine in, the open command to the barrier out.

Everything real on the way: the engine's line arrives on a pseudo-terminal and is read through
pyserial (drivers/linux/qrengine_serial), the gate verifies the ride code with OpenSSL (two ES256
signatures), applies the metro entry policy, appends the passage to the journal on disk with
fsync, and the barrier controller receives "OPEN" on its own pty (drivers/linux/barrier_serial).
Each of 10,000 passages is timed from just before the engine's bytes are written to just
after the open command was written; the rider then walks through (untimed) so the gate is
idle for the next one. Reference in the same run: one raw write+fsync of a journal entry
(median and p99): the tail of scan-to-open is the disk's fsync tail.
"""

import os
import shutil
import statistics
import time

from bench.util import row, scratch
from drivers.linux.barrier_serial import SerialBarrier
from drivers.linux.crypto_openssl import OpenSSLVerifier
from drivers.linux.qrengine_serial import SerialQREngine
from firmware.gate.gate import Gate
from firmware.storage.journal import Journal
from firmware.verify.validator import IssuerKey, Validator
from host_sim.hardware.devices import ManualClock, PtyBarrierController, PtyQREngine, SimDisplay
from host_sim.wallet import Issuer, Rider

NOW = 1_767_254_400


class TimedBarrier(SerialBarrier):
    """The serial barrier, noting when each open command has been written."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.opened_at = 0

    def open(self) -> None:
        super().open()
        self.opened_at = time.perf_counter_ns()


def _fsync_reference(d: str, n: int = 3000) -> tuple[float, float]:
    """Median and p99 of one raw write+fsync of a journal-entry-sized record, in ms."""
    path = os.path.join(d, "raw.bin")
    times = []
    with open(path, "ab") as f:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            f.write(b"\xa5" + bytes(68))
            f.flush()
            os.fsync(f.fileno())
            times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1e6, times[int(len(times) * 0.99) - 1] / 1e6


def p2(passages: int = 10_000, riders: int = 2000) -> list[dict]:
    work = scratch("p2-")
    issuer = Issuer(key_id=1)
    people = [Rider() for _ in range(riders)]
    for i, r in enumerate(people):
        issuer.issue(r, account_id=10_000 + i, valid_from=NOW - 60, valid_until=NOW + 86_400)
    # one passage a second; each rider comes back every `riders` seconds (> anti-passback window)
    lines = [
        b"\x02" + people[i % riders].present(NOW + i).encode() + b"\r" for i in range(passages)
    ]
    clock = ManualClock(NOW)
    engine = PtyQREngine(prefix=b"\x02", suffix=b"\r")
    controller = PtyBarrierController()
    scanner = SerialQREngine(engine.path, prefix=b"\x02", suffix=b"\r")
    barrier = TimedBarrier(controller.path)
    journal = Journal(work, device_id=2)
    gate = Gate(
        Validator(OpenSSLVerifier(), {1: IssuerKey(1, issuer.public_key)}),
        journal,
        barrier,
        SimDisplay(),
        clock,
        station=1,
        mode=1,
        direction=1,
        config={"passback_s": 1200},
        ticks=clock.ticks_ms,
    )
    lat = []
    try:
        ref50, ref99 = _fsync_reference(work)
        for line in lines:
            t0 = time.perf_counter_ns()
            engine.write(line)
            text = scanner.read(2.0)
            if text is None or not gate.on_scan(text).accept:
                raise AssertionError("benchmark passage refused")
            lat.append(barrier.opened_at - t0)
            for event in ("occupied", "passage_fwd", "clear"):  # the rider walks through
                gate.on_event(event)
            controller.pump()  # the controller takes OPEN and CLOSE off the line...
            for event in barrier.poll():  # ...and reports OPENED and CLOSED
                gate.on_event(event)
            clock.advance(1)
    finally:
        scanner.close()
        barrier.close_port()
        engine.close()
        controller.close()
        journal.close()
        shutil.rmtree(work, ignore_errors=True)
    lat.sort()
    p50 = statistics.median(lat) / 1e6
    p99 = lat[int(len(lat) * 0.99) - 1] / 1e6
    what = "scan to open over %d passages (pty in, verify, fsync'd journal, pty out)" % len(lat)
    return [
        row("P2", what + ": median", p50, "ms", ref50, "p50 <= 1 ms (ref: fsync median)"),
        row("P2", what + ": p99", p99, "ms", ref99, "p99 <= 5 ms (ref: fsync p99)"),
    ]


BENCHES = {"P2": p2}
