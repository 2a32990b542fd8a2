"""P12 of TARGETS.md: clearing 1,000,000 taps <= 10 s; 10 new taps re-clear only the
account-days they touch, <= 50 ms, on either backend.

Measured on both backends in one run: SQLite (a new file under /tmp, removed afterwards) and
PostgreSQL (`FAREGATE_P12_PG`: the URL of an EMPTY database; unset: a database on a private
cluster started for the run, as the tests do: tests/pgcluster.py). `FAREGATE_P12_STORE`
instead measures that one store only (a SQLite path or a PostgreSQL URL). Each is filled
through the real ingest (Store.store_batch): 20,000 (`FAREGATE_P12_ACCOUNTS` for fewer)
accounts making 25 metro round trips each over 14 days at 400 gates (each gate its own seq and
hash chain), 1,000,000 passages. Then `clearing.run` publishes every charge (first run: full).
Then 10 late taps of 10 accounts arrive from one more gate and `clearing.run` re-clears.
References, measured in the same run on the same store: for the full run, the Python
reference of TARGETS.md (`_reference`: the same SELECT, then only the pairing of each entry
with the next exit, the zone fare and the daily cap, summed per account-day in one loop, none
of clearing's other policies, explanations or writes; the bare SELECT's time is in the row's
text); for the incremental run, the SELECT of the 10 accounts' taps that it reads.
"""

import os
import random
import time

from bench.util import row
from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from protocol import records
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_METRO

ACCOUNTS = 20_000
TRIPS = 25
GATES = 400
DAYS = 14
T0 = 1_767_254_400  # 2026-01-01 08:00 UTC
KEY = b"\x02" + bytes(32)
STORE = os.environ.get("FAREGATE_P12_STORE") or None
PG = os.environ.get("FAREGATE_P12_PG") or None
ACCOUNTS = int(os.environ.get("FAREGATE_P12_ACCOUNTS", str(ACCOUNTS)))


def _fill(store: Store, rng: random.Random) -> int:
    taps: list[tuple[int, ...]] = []  # time, gate, account, direction, counter, station
    for a in range(1, ACCOUNTS + 1):
        for k in range(TRIPS):
            t = T0 + rng.randrange(DAYS) * 86400 + rng.randrange(14 * 3600)
            a_st, b_st = rng.randrange(1, 13), rng.randrange(1, 13)
            taps.append((t, rng.randrange(GATES) + 1, a, DIR_ENTRY, 2 * k + 1, a_st))
            taps.append((t + 1200, rng.randrange(GATES) + 1, a, DIR_EXIT, 2 * k + 2, b_st))
    taps.sort()
    per_gate: dict[int, list[bytes]] = {}
    prev: dict[int, bytes] = {}
    for t, gate, a, d, ctr, st in taps:
        raws = per_gate.setdefault(gate, [])
        raw = records.Record(
            records.KIND_PASSAGE,
            0,
            gate,
            len(raws) + 1,
            t,
            MODE_METRO,
            d,
            st,
            a,
            1,
            ctr,
            0,
            0,
            prev.get(gate, records.ZERO_HASH),
        ).to_bytes()
        prev[gate] = records.record_hash(raw)
        raws.append(raw)
    for gate, raws in per_gate.items():
        store.add_device(gate, KEY, T0)
        for i in range(0, len(raws), 5000):
            store.store_batch(gate, raws[i : i + 5000], T0)
    return len(taps)


def _reference(rows: list[tuple], tariff: dict) -> int:
    """TARGETS.md's Python reference: rows sorted per account by (time, device, seq) (they
    come sorted), each entry paired with the next exit (a lone tap: the maximum fare), fare
    by zones crossed, capped per account and service day; returns the account-days."""
    m = tariff["metro"]
    zones = {int(k): v for k, v in m["stations"].items()}
    fares, top, cap, max_fare = m["fares"], len(m["fares"]) - 1, m["daily_cap"], m["max_fare"]
    shift = tariff["tz_offset_s"] - tariff["day_start_s"]
    spent: dict[tuple[int, int], int] = {}
    entry = None
    for r in rows:  # account_id, mode, device_id, seq, kind, reason, time, station, direction
        account, t, station, direction = r[0], r[6], r[7], r[8]
        if entry is not None and entry[0] != account:
            entry = None
        if direction == DIR_ENTRY:
            entry = (account, t, station)
            continue
        if entry is None:
            fare, t0 = max_fare, t
        else:
            fare, t0 = fares[min(abs(zones[entry[2]] - zones[station]), top)], entry[1]
            entry = None
        key = (account, (t0 + shift) // 86400)
        got = spent.get(key, 0)
        spent[key] = got + max(0, min(fare, cap - got))
    return len(spent)


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def p12() -> list[dict]:
    """Both backends (or FAREGATE_P12_STORE alone)."""
    if STORE:
        return _p12(STORE)
    out = _p12(None)
    if PG:
        return out + _p12(PG)
    from tests.pgcluster import Cluster

    cluster = Cluster().start()
    try:
        return out + _p12(cluster.create_database()[1])
    finally:
        cluster.stop()


def _p12(store_arg: str | None) -> list[dict]:
    rng = random.Random(12)
    path = None
    if store_arg is None:  # our own SQLite file, removed afterwards
        path = store_arg = os.path.join("/tmp", "bench-p12-%d.sqlite" % os.getpid())
        _remove(path)
    store = Store(store_arg)
    try:
        if store.count():
            raise RuntimeError("P12 needs an empty store (FAREGATE_P12_STORE): %s" % store_arg)
        backend = "SQLite" if store.b.name == "sqlite" else "PostgreSQL"
        n = _fill(store, rng)
        tariff = clearing.load_tariff(None)
        as_of = T0 + (DAYS + 1) * 86400
        t0 = time.perf_counter()
        store.clearing_all_taps()
        t_select = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref_days = _reference(store.clearing_all_taps(), tariff)
        ref_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = clearing.run(store, tariff, as_of)
        t_full = time.perf_counter() - t0
        assert full["new"] > 0 and full["revised"] == 0

        gate = GATES + 1
        store.add_device(gate, KEY, T0)
        accounts = rng.sample(range(1, ACCOUNTS + 1), 10)
        prev, raws = records.ZERO_HASH, []
        for i, a in enumerate(accounts):  # a late exit on the first day, 10 accounts
            raw = records.Record(
                records.KIND_PASSAGE,
                0,
                gate,
                i + 1,
                T0 + 50_000,
                MODE_METRO,
                DIR_EXIT,
                5,
                a,
                1,
                1000 + i,
                0,
                0,
                prev,
            ).to_bytes()
            prev = records.record_hash(raw)
            raws.append(raw)
        store.store_batch(gate, raws, as_of)
        t0 = time.perf_counter()
        for a in accounts:
            store.clearing_taps(a, T0 - 40 * 86400).fetchall()
        ref_inc = time.perf_counter() - t0
        t0 = time.perf_counter()
        inc = clearing.run(store, tariff, as_of)
        t_inc = time.perf_counter() - t0
        assert inc["accounts"] == 10 and inc["revised"] >= 1, inc
        again = clearing.run(store, tariff, as_of)
        assert again["days"] == 0, again  # idempotent: nothing left to re-clear
    finally:
        store.close()
        if path is not None:
            _remove(path)
    return [
        row(
            "P12",
            "clear %d taps, %s (%d charges published; ref: Python pairing, zone fares and "
            "cap, %d account-days; the bare SELECT took %.2f s)"
            % (n, backend, full["new"], ref_days, t_select),
            t_full,
            "s",
            ref_full,
            "<= 10 s",
        ),
        row(
            "P12",
            "10 new taps, %s: %d accounts, %d account-days recomputed, %d revised (ref: "
            "SELECT of their taps)" % (backend, inc["accounts"], inc["days"], inc["revised"]),
            t_inc * 1000,
            "ms",
            ref_inc * 1000,
            "<= 50 ms",
        ),
    ]


BENCHES = {"P12": p12}
