"""P6: the deny-list store with 1,000,000 entries: lookup time, memory, atomic 10k-entry delta.

References measured in the same run: a Python `set` of the same keys (the obvious store: fast,
but about 8x the memory), and a durable append of the delta's bytes (write + fsync, the part of
applying a delta no store can skip).
"""

import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc

from bench.util import rate, row
from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.verify.denystore import DenyStore
from host_sim.wallet import Operator
from protocol import denylist

N = 1_000_000
DELTA = 10_000
LOOKUPS = 200_000
NOW = 1_767_254_400
ISSUER = 1  # every entry in one issuer's section (the lookup searches that section)


def _keys(rng: random.Random, n: int) -> list[int]:
    out: set[int] = set()
    while len(out) < n:
        account = rng.getrandbits(40)
        # one entry in five denies a single credential, the rest whole accounts
        cred_no = rng.randint(1, 50) if rng.random() < 0.2 else 0
        out.add(denylist.credential_key(ISSUER, account, cred_no))
    return sorted(out)


def p6() -> list[dict]:
    rng = random.Random(6)
    keys = _keys(rng, N)
    op = Operator()
    roots = op.roots()
    snapshot = op.deny_snapshot(1, keys, NOW)
    with tempfile.TemporaryDirectory() as d:
        store = DenyStore(d, roots, OpenSSLVerifier())
        store.install(snapshot)
        assert len(store) == N

        # lookups: half denied (accounts and credentials), half not
        probes = []
        for i in range(LOOKUPS):
            if i % 2:
                k = keys[rng.randrange(N)] & denylist.KEY_MASK
                probes.append((k >> 24, (k & 0xFFFFFF) or rng.randint(1, 50)))
            else:
                probes.append((rng.getrandbits(40), rng.randint(1, 50)))
        look = store.is_denied
        hits = sum(look(ISSUER, a, c) for a, c in probes)
        assert hits >= LOOKUPS // 2

        def lookups(_n: int) -> None:
            _ = [look(ISSUER, a, c) for a, c in probes]

        # microseconds per lookup: 1 / the median rate over rounds (bench.util.rate)
        lookup_us = 1e6 / rate(lookups, len(probes))
        as_set = set(k & denylist.KEY_MASK for k in keys)

        def set_lookup(_n: int) -> None:
            for a, c in probes:
                ak = a << 24
                _ = ak in as_set or (ak | c) in as_set

        set_us = 1e6 / rate(set_lookup, len(probes))
        store_mb = sys.getsizeof(store.keys) / 1e6
        set_mb = (sys.getsizeof(as_set) + sum(sys.getsizeof(k) for k in keys)) / 1e6
        as_set.clear()  # free it before the deltas

        # deltas: 8,000 adds and 2,000 removes each, applied atomically (signature checked,
        # logged with fsync, merged)
        times = []
        append_times = []
        peak = 0
        version = 1
        for i in range(6):
            adds = _keys(rng, DELTA - 2000)
            removes = [
                denylist.entry(ISSUER, k) for k in rng.sample(list(store.keys[:200_000]), 2000)
            ]
            blob = op.deny_delta(version, version + 1, NOW, adds, removes)
            if i == 5:  # the last one under tracemalloc (which slows it): the memory it needs
                tracemalloc.start()
                assert store.install(blob)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                version += 1
                break
            t0 = time.perf_counter()
            assert store.install(blob)
            times.append(time.perf_counter() - t0)
            version += 1
            path = os.path.join(d, "raw-append")
            t0 = time.perf_counter()
            with open(path, "ab") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            append_times.append(time.perf_counter() - t0)
        delta_ms = statistics.median(times) * 1000
        append_ms = statistics.median(append_times) * 1000

        # reopening the store (part of P10's cold start)
        t0 = time.perf_counter()
        again = DenyStore(d, roots, OpenSSLVerifier())
        reopen_ms = (time.perf_counter() - t0) * 1000
        assert again.version == version and len(again) == len(store)
    return [
        row("P6", "deny list lookup, 1M entries", lookup_us, "us", set_us, "<= 2 us (ref: set)"),
        row("P6", "  memory of the 1M-entry store", store_mb, "MB", set_mb, "<= 12 MB (ref: set)"),
        row(
            "P6",
            "  10k-entry delta applied atomically",
            delta_ms,
            "ms",
            append_ms,
            "<= 100 ms (ref: write+fsync)",
        ),
        row("P6", "  extra memory while applying it", peak / 1e6, "MB", None, "(peak, info)"),
        row("P6", "  reopen the 1M-entry store", reopen_ms, "ms", None, "part of P10 <= 1 s"),
    ]


BENCHES = {"P6": p6}
