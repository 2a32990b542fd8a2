"""P16 of TARGETS.md, the back office's part: the log fed by the store, and statements verified.

Rows (added to bench_translog's P16, which measures the log engine in memory):
- the store's log append: records' leaves appended in the store's transaction (SQLite file,
  batches of 10,000, synchronous=FULL), leaves/s; reference: the in-memory engine on the
  same leaves, same run;
- an inclusion proof from the stored tree (one SQLite lookup per node), median ms;
- verifying a day's statement (host_sim/backoffice/statements.verify: its signatures, the
  multi-leaf inclusion proof, the rider signature of every record, the gate's signature of
  every batch (batches of GATE_BATCH records) and its certificate, re-pricing, totals) of CHARGES
  charges (one metro journey each, two records: entry and exit, each with its rider's ride
  code), scaled linearly to 1,000,000 charges; reference: as many bare P-256 verifies as
  charges (TARGETS.md's), measured in the same run and scaled alike. Medians of 3, the
  three measured in turn. A charge holds two rider signatures, so the ratio cannot go below
  about 2 (the floor row: two bare verifies a charge); the same verify with the rider
  signatures taken as good shows what the rest (proofs, gates, pricing, totals) costs;
  the P-256 verifies verify makes, counted, per charge. These rows are the process's CPU
  time (time.process_time), not wall time: on a machine shared with other jobs a wall clock
  counts their turns on the core too; CPU time is what one core spends on the check.
"""

import os
import random
import shutil
import statistics
import time

from bench.util import row, scratch
from drivers.linux.crypto_openssl import OpenSSLVerifier, signer
from host_sim import wallet
from host_sim.backoffice import clearing, statements
from host_sim.backoffice.store import Store
from host_sim.backoffice.translog import MemoryNodeStore, TransLog
from protocol import certs, records, ridecode, sync

LEAVES = 200_000
BATCH = 10_000
PROOFS = 500
GATE_BATCH = 1000  # records per signed batch in the statement's store (a BATCH holds <= 1,024)
CHARGES = int(os.environ.get("BENCH_SETTLE_CHARGES", "5000"))
SCALE_TO = 1_000_000
NOW = 1_767_254_400


def _append(dirpath: str) -> tuple[float, float, float]:
    leaves = [os.urandom(64) for _ in range(LEAVES)]
    s = Store(os.path.join(dirpath, "log.sqlite"))
    t0 = time.perf_counter()
    for i in range(0, LEAVES, BATCH):
        with s.transaction():
            s._log_append([(1, i + k, d) for k, d in enumerate(leaves[i : i + BATCH])])
    rate = LEAVES / (time.perf_counter() - t0)
    mem = TransLog(MemoryNodeStore(), signer(0x16))
    t0 = time.perf_counter()
    for i in range(0, LEAVES, BATCH):
        mem.append_many(leaves[i : i + BATCH])
    ref = LEAVES / (time.perf_counter() - t0)
    log = s.translog()
    rng = random.Random(16)
    times = []
    for _ in range(PROOFS):
        i = rng.randrange(LEAVES)
        t0 = time.perf_counter()
        log.inclusion_proof(i)
        times.append(time.perf_counter() - t0)
    s.close()
    return rate, ref, statistics.median(times) * 1000


ROOT = signer(0x2007)  # the operator root, certifying gate 7's key
GATE = signer(0x6A7E)


def _statement(dirpath: str) -> tuple[bytes, bytes, list[tuple[bytes, bytes, bytes]]]:
    """A store with CHARGES journeys of issuer 1, uploaded by gate 7 in signed batches of
    GATE_BATCH records, and its statement; also the (key, message, signature) of every rider
    signature, for the reference."""
    s = Store(os.path.join(dirpath, "day.sqlite"))
    s.add_device(7, GATE.public_key, NOW)
    cert = certs.Cert(certs.KIND_DEVICE, 7, certs.key_id(ROOT.public_key), NOW - 86400,
                      NOW + 365 * 86400, GATE.public_key, 0, "gate 7")  # fmt: skip
    iss = wallet.Issuer(1)
    raws: list[bytes] = []
    sigs: list[tuple[bytes, bytes, bytes]] = []
    prev = records.ZERO_HASH
    for a in range(CHARGES):
        rider = wallet.Rider()
        iss.issue(rider, 100 + a, NOW - 86400, NOW + 86400)
        t = NOW + a % 50_000
        for station, d, dt in ((1, records.DIR_ENTRY, 0), (4 + a % 8, records.DIR_EXIT, 900)):
            code = ridecode.parse_text(rider.present(t + dt)).raw
            sigs.append((rider.public_key, code[:132], code[132:]))
            raw = records.Record(
                records.KIND_PASSAGE, 0, 7, len(raws) + 1, t + dt, records.MODE_METRO, d,
                station, prev_hash=prev, code=code,
            ).to_bytes()  # fmt: skip
            prev = records.record_hash(raw)
            raws.append(raw)
    for i in range(0, len(raws), GATE_BATCH):
        part = raws[i : i + GATE_BATCH]
        s.store_batch(7, part, NOW, GATE.sign(sync.batch_signing_input(7, part)))
    key = signer(0x5E77)
    day = clearing.service_day(NOW, clearing.DEFAULT_TARIFF)
    st = statements.build(
        s, key, 1, day, clearing.DEFAULT_TARIFF, b"", NOW + 86400, NOW * 1000, None,
        {7: certs.sign(cert, ROOT)},
    )  # fmt: skip
    s.close()
    assert st["totals"]["accounts"] == CHARGES
    return statements.encode(st), key.public_key, sigs


def _verify_times(blob: bytes, pub: bytes, sigs: list) -> tuple[float, float, float, float]:
    v = OpenSSLVerifier()
    root = ROOT.public_key

    class NoSigs:  # the same verify, the rider signatures taken as good
        def verify(self, key, msg, sig):
            return v.verify(key, msg, sig) if len(msg) != 132 else True

    class Counting:
        n = 0

        def verify(self, key, msg, sig):
            self.n += 1
            return v.verify(key, msg, sig)

    cpu = time.process_time
    full, bare, rest = [], [], []
    for _ in range(3):
        t0 = cpu()
        rep = statements.verify(blob, pub, v, b"", root_key=root)
        full.append(cpu() - t0)
        assert rep.ok, rep.failures
        t0 = cpu()
        for k, m, sg in sigs[:CHARGES]:  # as many bare verifies as charges (TARGETS.md)
            v.verify(k, m, sg)
        bare.append(cpu() - t0)
        t0 = cpu()
        assert statements.verify(blob, pub, NoSigs(), b"", root_key=root).ok
        rest.append(cpu() - t0)
    counting = Counting()
    assert statements.verify(blob, pub, counting, b"", root_key=root).ok
    med = statistics.median
    return med(full), med(bare), med(rest), counting.n / CHARGES


def rows() -> list[dict]:
    d = scratch("bench-settle-")
    try:
        rate, ref, proof_ms = _append(d)
        blob, pub, sigs = _statement(d)
        full, bare, rest, per_charge = _verify_times(blob, pub, sigs)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    k = SCALE_TO / CHARGES
    return [
        row(
            "P16",
            "  store log append (SQLite, in the ingest transaction), 200k leaves",
            rate,
            "leaves/s",
            ref,
            ">= 50,000 leaves/s",
        ),  # fmt: skip
        row(
            "P16",
            "  inclusion proof from the stored tree at 200k leaves, median",
            proof_ms,
            "ms",
            None,
            "<= 1 ms",
        ),  # fmt: skip
        row(
            "P16",
            "  statement verify, %d charges to 1M, CPU s (ref: 1M bare P-256 verifies)" % CHARGES,
            full * k,
            "s",
            bare * k,
            "<= 60 s",
        ),  # fmt: skip
        row(
            "P16",
            "  the floor: the rider signatures alone, 2 bare verifies a charge",
            2 * bare * k,
            "s",
            bare * k,
            "(no target)",
        ),  # fmt: skip
        row(
            "P16",
            "  the same without the rider signatures (proofs, gates, pricing, totals)",
            rest * k,
            "s",
            bare * k,
            "(no target)",
        ),  # fmt: skip
        row(
            "P16",
            "  P-256 verifies per charge (2 rider signatures; the rest once a batch, gate, head)",
            per_charge,
            "verifies",
            2.0,
            "(no target)",
        ),  # fmt: skip
        row(
            "P16",
            "  machine load (1-minute average) during the run",
            os.getloadavg()[0],
            "",
            None,
            "(context)",
        ),  # fmt: skip
    ]


BENCHES: dict = {}  # its rows are P16's, run by bench/bench_translog.py
