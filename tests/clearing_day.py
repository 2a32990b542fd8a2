"""A generated day of every kind of tap clearing prices, for tests that compare clearings.

`generated_day(seed, accounts)` -> {device_id: [raw records in seq order]}: riders making metro
journeys (zones, unknown stations, retaps, missing taps, exits made again), parking stays (by
code and by plate, lost tickets), store sessions (baskets, group members, open sessions), bus
rides (tap-on / tap-off, stale stops, transfers), with the flags (over-limit, emergency,
untrusted clock), voided passages (`passage_not_taken` events), copied presentations at a
second gate, across three service days and their 04:00 boundaries. Deterministic per seed.
`store_day(store, day)` puts it in a store through the real ingest (Store.store_batch).
"""

import random

from host_sim.backoffice import clearing, clearing_bus
from protocol import reasons, records
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_METRO, MODE_PARKING, MODE_STORE

DAY0 = 1_767_254_400  # 2026-01-01 08:00 UTC; the service day starts at 04:00
KEY = b"\x02" + bytes(32)
BUS = clearing_bus.MODE_BUS
GATES = {MODE_METRO: (1, 2, 3, 4), MODE_PARKING: (11, 12), MODE_STORE: (21,), BUS: (31, 32)}
STOPS = (101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 201, 202, 203, 204, 999)
FLAGS = (
    records.FLAG_OVER_LIMIT,
    records.FLAG_EMERGENCY,
    records.FLAG_CLOCK_UNTRUSTED,
    clearing_bus.FLAG_STOP_STALE,
)


def generated_day(seed: int, accounts: int = 200) -> dict[int, list[bytes]]:
    rng = random.Random(seed)
    taps: list[tuple[int, ...]] = []  # (time, device, kind, reason, mode, dir, station, acct,
    #                                    cred, counter, value, flags)
    counter = [0]

    def tap(t, mode, d, station, a, kind=1, reason=0, value=0, ctr=None, device=None):
        if ctr is None:
            counter[0] += 1
            ctr = counter[0]
        flags = 0
        if rng.random() < 0.06:
            flags = rng.choice(FLAGS)
        dev = device if device is not None else rng.choice(GATES[mode])
        taps.append((t, dev, kind, reason, mode, d, station, a, 1, ctr, value, flags))
        return dev, ctr

    for a in range(1, accounts + 1):
        t = DAY0 - 6 * 3600 + rng.randrange(3600)  # from 02:00, before the service day
        for _ in range(rng.randrange(2, 9)):
            t += rng.randrange(60, 5 * 3600)
            kind = rng.random()
            if kind < 0.5:  # metro
                st_a, st_b = rng.randrange(1, 15), rng.randrange(1, 15)
                if rng.random() > 0.05:
                    dev, ctr = tap(t, MODE_METRO, DIR_ENTRY, st_a, a)
                    if rng.random() < 0.05:  # the gate voided it
                        taps.append(
                            (
                                t + 1,
                                dev,
                                3,
                                reasons.number("passage_not_taken"),
                                MODE_METRO,
                                DIR_ENTRY,
                                st_a,
                                a,
                                1,
                                ctr,
                                0,
                                0,
                            )
                        )
                    if rng.random() < 0.04:  # a copy at another gate
                        other = GATES[MODE_METRO][(GATES[MODE_METRO].index(dev) + 1) % 4]
                        tap(t + 30, MODE_METRO, DIR_ENTRY, st_a, a, ctr=ctr, device=other)
                    if rng.random() < 0.05:  # a retap
                        tap(t + 40, MODE_METRO, DIR_ENTRY, st_a, a)
                if rng.random() > 0.08:
                    t2 = t + rng.choice((600, 1800, 4000, 5 * 3600))
                    tap(t2, MODE_METRO, DIR_EXIT, st_b, a)
                    if rng.random() < 0.04:  # the exit made again
                        tap(t2 + 20, MODE_METRO, DIR_EXIT, st_b, a)
            elif kind < 0.65:  # parking
                plate = reasons.number("plate_accepted") if rng.random() < 0.3 else 0
                if rng.random() > 0.05:
                    tap(t, MODE_PARKING, DIR_ENTRY, 50, a, reason=plate)
                if rng.random() > 0.1:
                    stay = rng.choice((300, 2000, 7200, 90000))
                    tap(t + stay, MODE_PARKING, DIR_EXIT, 50, a, reason=plate)
            elif kind < 0.8:  # store
                tap(t, MODE_STORE, DIR_ENTRY, 60, a)
                if rng.random() < 0.2:
                    tap(t + 5, MODE_STORE, DIR_ENTRY, 60, a, reason=reasons.number("group_member"))
                if rng.random() > 0.15:
                    tap(t + 900, MODE_STORE, DIR_EXIT, 60, a, value=rng.randrange(100, 5000))
            else:  # bus
                if rng.random() > 0.07:
                    tap(t, BUS, DIR_ENTRY, rng.choice(STOPS), a)
                if rng.random() > 0.2:
                    tap(t + rng.choice((300, 1200, 9000)), BUS, DIR_EXIT, rng.choice(STOPS), a)
    taps.sort()
    out: dict[int, list[bytes]] = {}
    prev: dict[int, bytes] = {}
    for t, dev, kind, reason, mode, d, st, a, cred, ctr, value, flags in taps:
        raws = out.setdefault(dev, [])
        raw = records.Record(
            kind,
            reason,
            dev,
            len(raws) + 1,
            t,
            mode,
            d,
            st,
            a,
            cred,
            ctr,
            value,
            flags,
            prev.get(dev, records.ZERO_HASH),
        ).to_bytes()
        prev[dev] = records.record_hash(raw)
        raws.append(raw)
    return out


def store_day(store, day: dict[int, list[bytes]], upto: float = 1.0) -> None:
    """Store each gate's first `upto` share of its records (all by default); called again
    with a larger share, the rest arrives as late batches."""
    for dev, raws in sorted(day.items()):
        store.add_device(dev, KEY, DAY0)
        high = store.device(dev).high_seq
        n = int(len(raws) * upto)
        if n > high:
            store.store_batch(dev, raws[high:n], DAY0)


def charges_of(store) -> list[tuple]:
    """Every published charge with the explanation of its last revision."""
    out = []
    for c in store.clearing_charges():
        revs = store.clearing_revisions(c["account_id"], c["day"])
        out.append(
            (
                c["account_id"],
                c["day"],
                c["cleared"],
                c["amount"],
                c["fares"],
                c["journeys"],
                c["open_journeys"],
                c["review"],
                c["fingerprint"],
                revs[-1]["explanation"],
            )
        )
    return out


TARIFFS = (None, "bus.toml")  # the default tariff (flat bus fares) and fares by stops


def tariff(name: str | None, **metro):
    import os

    path = None
    if name:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(here, "host_sim", "scenarios", "tariffs", name)
    t = clearing.load_tariff(path)
    t["metro"] = dict(t["metro"], **metro)
    return t
