"""The same generated day (tests/clearing_day.py: every mode, flag and policy) cleared several
ways gives the same charges, every one of them compared with its explanation: on SQLite and on
PostgreSQL, by `clearing.run` in one full run and incrementally as the gates' batches arrive
late, and against the journeys of `clearing.clear` (the per-journey path the reports use)."""

import os
from collections import defaultdict

import pytest

from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from tests import clearing_day as cd

AS_OF = cd.DAY0 + 3 * 86400
VARIANTS = {
    "default": (None, {}),
    "bus-by-stops": ("bus.toml", {}),
    "tight-caps": (None, {"daily_cap": 700, "weekly_cap": 2000, "max_fare_counts_to_cap": True}),
}


def _incremental(store, day, tariff):
    """The day arriving in three parts, cleared after each; then a run that finds nothing."""
    for i, upto in enumerate((0.5, 0.8, 1.0)):
        cd.store_day(store, day, upto)
        clearing.run(store, tariff, cd.DAY0 + (i + 1) * 86400)
    again = clearing.run(store, tariff, cd.DAY0 + 3 * 86400)
    assert (again["new"], again["revised"]) == (0, 0), again
    return cd.charges_of(store)


def _from_journeys(store, tariff):
    """Each account-day's charge from clearing.clear's journeys (amount and explanation)."""
    by: dict[tuple[int, int], list] = defaultdict(list)
    for j in clearing.clear(store, tariff, AS_OF):
        by[(j["account_id"], j["day"])].append(j)
    out = {}
    for key, js in by.items():
        js.sort(key=lambda j: (j["time"], j["mode"], j["records"][0]))
        c = clearing.day_charge(js)
        out[key] = (c["cleared"], c["fingerprint"], c["explanation"])
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_generated_day_clears_alike_on_both_backends_full_and_incremental(
    variant, pg_url, tmp_path
):
    name, metro = VARIANTS[variant]
    tariff = cd.tariff(name, **metro)
    day = cd.generated_day(7, accounts=150)
    got = {}
    for label, target in (
        ("sqlite", str(tmp_path / "inc.sqlite")),
        ("postgresql", pg_url),
    ):
        s = Store(target)
        try:
            got[label] = _incremental(s, day, tariff)
            if label == "sqlite":
                full = clearing.run(s, tariff, AS_OF, full=True)
                assert (full["new"], full["revised"]) == (0, 0), full
                journeys = _from_journeys(s, tariff)
        finally:
            s.close()
    s = Store(str(tmp_path / "full.sqlite"))
    try:
        cd.store_day(s, day)
        clearing.run(s, tariff, AS_OF)
        got["sqlite, one full run"] = cd.charges_of(s)
    finally:
        s.close()
    first = got["sqlite"]
    assert len(first) > 150
    for label, charges in got.items():
        assert charges == first, label
    # every charge is the day's journeys of clearing.clear, explained alike
    assert {(c[0], c[1]): (c[2], c[8], c[9]) for c in first} == journeys


def test_the_generated_day_has_every_policy_in_it(tmp_path):
    s = Store(os.path.join(str(tmp_path), "d.sqlite"))
    try:
        cd.store_day(s, cd.generated_day(7, accounts=150))
        seen = set()
        for name, _metro in VARIANTS.values():
            for j in clearing.clear(s, cd.tariff(name, **_metro), AS_OF):
                seen.add((j["mode"], j["status"]))
                seen.update(j["flags"])
    finally:
        s.close()
    want = {
        ("metro", "complete"),
        ("metro", "missing_exit"),
        ("metro", "missing_entry"),
        ("metro", "unknown_station"),
        ("metro", "voided"),
        ("metro", "fraud_copy"),
        ("metro", "held_clock"),
        ("metro", "emergency"),
        ("parking", "complete"),
        ("parking", "open"),
        ("store", "complete"),
        ("store", "open_session"),
        ("bus", "complete"),
        ("bus", "tap_off_only"),
        ("bus", "missing_exit"),
        "capped",
        "transfer",
        "by_plate",
        "over_limit",
        "emergency_exit",
        "stop_unknown",
    }
    assert want <= seen, want - seen
