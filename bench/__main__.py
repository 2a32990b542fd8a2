"""`make bench` / `python -m bench [--only P1,P4]`: run the benchmarks of TARGETS.md.

Each `bench/bench_*.py` module has `BENCHES = {"P1": fn, ...}`; `fn()` returns a list of rows
    {"id", "what", "value", "unit", "reference", "ratio", "target"}
with the reference measured in the same run. Rows go to bench/results.json and a table.
"""

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = ("id", "what", "value", "unit", "reference", "ratio", "target")


def discover() -> dict[str, Any]:
    benches: dict[str, Any] = {}
    for f in sorted(os.listdir(HERE)):
        if f.startswith("bench_") and f.endswith(".py"):
            mod = importlib.import_module("bench." + f[:-3])
            for bid, fn in mod.BENCHES.items():
                benches[bid] = fn
    return benches


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "{:,.0f}".format(v)
    if isinstance(v, int):
        return "{:,}".format(v)
    return str(v)


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ("id", "what", "value", "unit", "reference", "ratio", "target")
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P4")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    args = ap.parse_args(argv)
    benches = discover()
    wanted = [b.strip() for b in args.only.split(",") if b.strip()] or sorted(
        benches, key=lambda b: (b[0], int(b[1:]) if b[1:].isdigit() else 0)
    )
    unknown = [b for b in wanted if b not in benches]
    if unknown:
        print(
            "bench: unknown id(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(benches))),
            file=sys.stderr,
        )
        return 2
    rows: list[dict[str, Any]] = []
    for bid in wanted:
        t0 = time.monotonic()
        print("bench: running %s ..." % bid, file=sys.stderr, flush=True)
        for row in benches[bid]():
            rows.append({k: row.get(k) for k in FIELDS})
        print("bench: %s took %.1f s" % (bid, time.monotonic() - t0), file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    print_table(rows)
    print("\nwritten to %s" % os.path.relpath(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
