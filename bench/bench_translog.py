"""P16 of TARGETS.md, the transparency-log part: append rate and proof times at 1,000,000 leaves.

The log is host_sim/backoffice/translog.py over its in-memory NodeStore; leaves are 64 bytes
(a record's size). References, measured in the same run: for appends, raw hashlib.sha256 of the
same leaves as RFC 9162 leaf hashes (the floor: every leaf must be hashed once), rounds
interleaved and the median-ratio round reported; for proofs, verifying the proof just built
(protocol/merkle.verify_inclusion / verify_consistency).

The store-backed log, on SQLite (a file, synchronous=FULL) and PostgreSQL (a private cluster,
tests/pgcluster.py, unless FAREGATE_P16_PG names one): STORE_LEAVES leaves appended in
batches of BATCH, each batch in its own transaction as the store's ingest does (Store's
_log_append: the leaf hashes, the new nodes in runs, the leaves' record keys, the frontier),
a fresh store each round; reference: SHA-256 of the same leaves in the same round. Medians
over ROUNDS, then inclusion proofs from the stored tree (one query for a proof's nodes).
The statement part of P16 (1,000,000 charges verified <= 60 s) is bench/bench_settle.py's.
"""

import hashlib
import os
import random
import shutil
import statistics
import time

from bench import bench_settle
from bench.util import row, scratch
from drivers.linux.crypto_openssl import signer
from host_sim.backoffice.store import Store
from host_sim.backoffice.translog import MemoryNodeStore, TransLog
from protocol import merkle

N = 1_000_000
BATCH = 10_000
LEAF_LEN = 64
PROOFS = 1000
STORE_LEAVES = 200_000
ROUNDS = 3
PG = os.environ.get("FAREGATE_P16_PG")  # a PostgreSQL URL to use instead of a private cluster


def _leaves(n: int = N) -> list[bytes]:
    blob = os.urandom(n * LEAF_LEN)
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


def _store_append(target: str, leaves: list[bytes]) -> tuple[float, Store]:
    """Leaves/s of the store's log append into an empty store at `target`; the store."""
    s = Store(target)
    if s.log_size():
        raise RuntimeError("P16 needs an empty store (FAREGATE_P16_PG): %s" % target)
    t0 = time.perf_counter()
    for i in range(0, len(leaves), BATCH):
        with s.transaction():
            s._log_append([(1, i + k, d) for k, d in enumerate(leaves[i : i + BATCH])])
    return len(leaves) / (time.perf_counter() - t0), s


def _store_rows(backend: str, targets: list[str]) -> list[dict]:
    """P16's store rows for one backend: a fresh store at each of `targets` (one a round)."""
    leaves = _leaves(STORE_LEAVES)
    rounds = []
    for target in targets:
        ref = _raw_hash(leaves)
        rate, s = _store_append(target, leaves)
        rounds.append((rate, ref))
        if target != targets[-1]:
            s.close()
    rate, ref = sorted(rounds, key=lambda x: x[0] / x[1])[len(rounds) // 2]
    log = s.translog()
    root = log.root()
    rng = random.Random(16)
    build, verify = [], []
    for _ in range(PROOFS // 2):
        i = rng.randrange(STORE_LEAVES)
        t0 = time.perf_counter()
        proof = log.inclusion_proof(i)
        t1 = time.perf_counter()
        merkle.verify_inclusion(merkle.leaf_hash(leaves[i]), i, STORE_LEAVES, proof, root)
        build.append(t1 - t0)
        verify.append(time.perf_counter() - t1)
    s.close()
    return _append_and_proof(
        "  store log append (%s, a transaction a batch), 200k leaves, median of %d"
        % (backend, ROUNDS),
        (rate, ref),
        "  inclusion proof from the %s store at 200k leaves, median (ref: verifying it)" % backend,
        (build, verify),
    )


def _append_and_proof(
    append: str, rates: tuple[float, float], proof: str, times: tuple[list, list]
) -> list[dict]:
    """The two rows of a log: its append rate (against the reference's) and its proofs' time
    (median ms, against verifying them)."""
    return [
        row("P16", append, rates[0], "leaves/s", rates[1], ">= 50,000 leaves/s"),
        row("P16", proof, _median_ms(times[0]), "ms", _median_ms(times[1]), "<= 1 ms"),
    ]


def _store_benches() -> list[dict]:
    d = scratch("bench-p16-")
    try:
        out = _store_rows("SQLite", [os.path.join(d, "log%d.sqlite" % r) for r in range(ROUNDS)])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if PG:
        return out + _store_rows("PostgreSQL", [PG])
    from tests.pgcluster import Cluster

    cluster = Cluster().start()
    try:
        urls = [cluster.create_database()[1] for _ in range(ROUNDS)]
        return out + _store_rows("PostgreSQL", urls)
    finally:
        cluster.stop()


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
        *_append_and_proof(
            "transparency-log append, 1M 64-byte leaves, batches of 10k",
            (rate, ref),
            "  inclusion proof at 1M leaves, median (ref: verifying it)",
            (build, verify),
        ),
        row(
            "P16",
            "  consistency proof to 1M leaves, median (ref: verifying it)",
            _median_ms(cbuild),
            "ms",
            _median_ms(cverify),
            "(no target)",
        ),
        *_store_benches(),
        *bench_settle.rows(),
    ]


BENCHES = {"P16": p16}
