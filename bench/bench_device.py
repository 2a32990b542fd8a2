"""P10 of TARGETS.md: cold start to ready-to-scan of the whole gate (firmware/compose/device.py).

A provisioned gate's state directory holds a deny list of 1,000,000 entries and 100,000
records waiting for sync; `Device.open` on it (device store, time anchor, journal check,
service console, trust and deny stores, replay cache, offline limits rebuilt from the queue,
gate, mode table and loop) must reach "in service" within 1 s. The reference, measured in the
same run and on the same (warm) files: reading every byte of that directory, the floor any
start that looks at its state has to pay. The parts are measured on their own as well.
"""

import os
import shutil
import statistics
import time

from bench.util import row, scratch
from drivers.linux import crypto_openssl as es256
from firmware.compose.device import Device
from firmware.storage.journal import Journal
from firmware.verify import gatestate
from firmware.verify.denystore import DenyStore
from firmware.verify.limits import OfflineLimits
from host_sim.hardware.devices import ManualClock, SimBarrier, SimDisplay, SimReader
from host_sim.station import gatedir
from protocol import denylist, records, trustlist

NOW = 1_767_254_400
DEVICE_ID = 1001
DENY = 1_000_000
QUEUED = 100_000
ROUNDS = 5


class Hardware:
    def __init__(self, clock: ManualClock) -> None:
        self.reader = SimReader()
        self.barrier = SimBarrier(clock.ticks_ms)
        self.display = SimDisplay()
        self.indicator = None
        self.beams = None
        self.loops = None

    def readers(self) -> list:
        return [(self.reader, None)]

    def inputs(self) -> list:
        return []


def provisioned_gate(d: str) -> None:
    """What `faregate provision` leaves on a gate, then a big deny list and a long queue."""
    root = es256.OpenSSLSigner(es256.generate_key())
    issuer = es256.OpenSSLSigner(es256.generate_key())
    rid = trustlist.root_key_id(root.public_key)
    config = {
        "version": 1,
        "device_id": DEVICE_ID,
        "name": "B1",
        "station": 1,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
    }
    key = trustlist.IssuerKey(1, issuer.public_key, 0xFFFF, NOW - 86400, NOW + 365 * 86400)
    trust = trustlist.build(1, NOW, NOW + 30 * 86400, [key], root.sign, rid)
    keys = [denylist.account_key(1, a) for a in range(1, DENY + 1)]
    deny = denylist.build_snapshot(1, NOW, keys, root)
    secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
    gatedir.provision(d, DEVICE_ID, root, secret, config, trust, deny, NOW)
    j = Journal(d, DEVICE_ID)
    for i in range(0, QUEUED, 10000):
        j.append_many(
            [
                records.Record(records.KIND_PASSAGE, 0, 0, 0, NOW + k, 1, 1, 1, 1000 + k % 5000)
                for k in range(i, i + 10000)
            ]
        )
    j.close()


def _read_all(d: str) -> int:
    n = 0
    for base, _dirs, files in os.walk(d):
        for f in files:
            with open(os.path.join(base, f), "rb") as fh:
                n += len(fh.read())
    return n


def p10() -> list[dict]:
    d = scratch()
    try:
        provisioned_gate(d)
        starts, floor, deny_ms, journal_ms = [], [], [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            size = _read_all(d)
            floor.append(time.perf_counter() - t0)

            clock = ManualClock(NOW)
            t0 = time.perf_counter()
            dev = Device.open(d, Hardware(clock), clock, crypto=es256)
            starts.append(time.perf_counter() - t0)
            assert dev.in_service and dev.journal.pending_count() == QUEUED
            assert len(dev.validator.deny) == DENY and dev.limits.unsynced() == QUEUED
            dev.close()

            t0 = time.perf_counter()
            DenyStore(os.path.join(d, gatestate.DENY), readonly=True)
            deny_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            j = Journal(d, DEVICE_ID)
            OfflineLimits().load(j)
            journal_ms.append((time.perf_counter() - t0) * 1000)
            j.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    start, ref = statistics.median(starts), statistics.median(floor)
    return [
        row(
            "P10",
            "cold start to ready-to-scan, whole gate: 1,000,000 deny entries, 100,000 queued "
            "(ref: read the same %.1f MB)" % (size / 1e6),
            start,
            "s",
            ref,
            "<= 1 s",
        ),
        row("P10", "  part: deny store load", statistics.median(deny_ms), "ms", None, "(part)"),
        row(
            "P10",
            "  part: journal check + offline limits rebuilt",
            statistics.median(journal_ms),
            "ms",
            None,
            "(part)",
        ),
    ]


BENCHES = {"P10": p10}
