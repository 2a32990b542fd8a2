"""Small helpers shared by the benchmarks: medians of repeated rounds, scratch directories."""

import os
import statistics
import tempfile
import time
from collections.abc import Callable


def rate(fn: Callable[[int], None], n: int, rounds: int = 5) -> float:
    """Median operations per second of `fn(n)` (which performs n operations) over rounds."""
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def row(
    bid: str,
    what: str,
    value: float,
    unit: str,
    reference: float | None,
    target: str,
    ratio: float | None = None,
) -> dict:
    if ratio is None and reference:
        ratio = value / reference
    return {
        "id": bid,
        "what": what,
        "value": round(value, 3),
        "unit": unit,
        "reference": None if reference is None else round(reference, 3),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
    }


def scratch(prefix: str = "bench-") -> str:
    """A new directory under the repository's build/ (the caller removes it): on the
    repository's disk, not a tmpfs, so fsync costs what it costs on a gate."""
    base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)
