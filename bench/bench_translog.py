"""P16 of TARGETS.md, the transparency-log part: append rate and proof times at 1,000,000 leaves.

The log is host_sim/backoffice/translog.py over its in-memory NodeStore; leaves are 64 bytes
(a record's size). References, measured in the same run: for appends, raw hashlib.sha256 of the
same leaves as RFC 9162 leaf hashes (the floor: every leaf must be hashed once), rounds
interleaved and the median-ratio round reported; for proofs, verifying the proof just built
(protocol/merkle.verify_inclusion / verify_consistency). The statement part of P16 (1,000,000
charges verified <= 60 s) and the store-backed log are bench/bench_settle.py's rows.
"""

import hashlib
import os
import random
import statistics
import time

from bench import bench_settle
from bench.util import row
from drivers.linux.crypto_openssl import signer
from host_sim.backoffice.translog import MemoryNodeStore, TransLog
from protocol import merkle

N = 1_000_000
BATCH = 10_000
LEAF_LEN = 64
PROOFS = 1000


def _leaves() -> list[bytes]:
    blob = os.urandom(N * LEAF_LEN)
    return [blob[i : i + LEAF_LEN] for i in range(0, len(blob), LEAF_LEN)]


def _append_all(leaves: list[bytes]) -> tuple[float, TransLog]:
    log = TransLog(MemoryNodeStore(), signer(0x16))
    t0 = time.perf_counter()
    for i in range(0, len(leaves), BATCH):
        log.append_many(leaves[i : i + BATCH])
    return len(leaves) / (time.perf_counter() - t0), log


def _raw_hash(leaves: list[bytes]) -> float:
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for i in range(0, len(leaves), BATCH):
        [sha(b"\x00" + d).digest() for d in leaves[i : i + BATCH]]
    return len(leaves) / (time.perf_counter() - t0)


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def p16() -> list[dict]:
    leaves = _leaves()
    rounds: list[tuple[float, float]] = []
    log = None
    for _ in range(3):
        ref = _raw_hash(leaves)
        rate, log = _append_all(leaves)
        rounds.append((rate, ref))
    assert log is not None and log.size == N
    rate, ref = sorted(rounds, key=lambda x: x[0] / x[1])[len(rounds) // 2]

    rng = random.Random(16)
    root = log.root()
    build, verify = [], []
    for _ in range(PROOFS):
        i = rng.randrange(N)
        t0 = time.perf_counter()
        proof = log.inclusion_proof(i)
        t1 = time.perf_counter()
        merkle.verify_inclusion(log.leaf_hash(i), i, N, proof, root)
        t2 = time.perf_counter()
        build.append(t1 - t0)
        verify.append(t2 - t1)
    cbuild, cverify = [], []
    for _ in range(PROOFS):
        old = rng.randrange(1, N)
        old_root = log.root(old)
        t0 = time.perf_counter()
        proof = log.consistency_proof(old)
        t1 = time.perf_counter()
        merkle.verify_consistency(old, N, proof, old_root, root)
        t2 = time.perf_counter()
        cbuild.append(t1 - t0)
        cverify.append(t2 - t1)
    return [
        row(
            "P16",
            "transparency-log append, 1M 64-byte leaves, batches of 10k",
            rate,
            "leaves/s",
            ref,
            ">= 50,000 leaves/s",
        ),
        row(
            "P16",
            "  inclusion proof at 1M leaves, median (ref: verifying it)",
            _median_ms(build),
            "ms",
            _median_ms(verify),
            "<= 1 ms",
        ),
        row(
            "P16",
            "  consistency proof to 1M leaves, median (ref: verifying it)",
            _median_ms(cbuild),
            "ms",
            _median_ms(cverify),
            "(no target)",
        ),
        *bench_settle.rows(),
    ]


BENCHES = {"P16": p16}
