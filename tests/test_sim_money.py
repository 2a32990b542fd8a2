"""The money invariants of the station simulator: commuters' true journeys against clearing.

A small line (four stations, two fare zones, park & ride at one end, a store at the other)
where commuters make their round trips in two simulated hours; then each money invariant is
broken on purpose, by a back office that charges wrong, and the run must fail naming it, with
the seed and the command that reproduces it.
"""

import json
import os

import pytest

from host_sim.station import trips
from host_sim.station.invariants import expected_charges
from host_sim.station.scenario import ScenarioError, from_dict
from host_sim.station.simulation import Tamper
from protocol import records
from provisioning.cli.sim import run_scenario

SEED = 3
LINE = """\
name = "small_line"
start = "2026-01-12T06:55:00Z"
duration_s = 5400
drain_s = 300
sample_s = 300
plots = false
tariff = { metro = { stations = { "1" = 1, "2" = 1, "3" = 2, "4" = 2 }, fares = [200, 300] } }

[trips]
commuters = 120
depart_h = [7.0, 7.25]
work_s = [900, 1800]
ride_s = 60
transfer_share = 0.3
park_share = 0.3
store_share = 0.3

[riders]
population = 2000

[mix]
valid = 0.5
screenshot = 0.5
expired = 0
forged = 0
denied = 0
tailgating = 0
clock_off = 0

[backoffice]
sync_interval_s = 60

[denylist]
initial = 0
publish_every_s = 0
"""


def _lanes(walkins: int = 0) -> str:
    out = []
    for st in (1, 2, 3, 4):
        for d in ("entry", "exit"):
            peak = walkins if st == 2 and d == "entry" else 0
            out.append(
                '[[lanes]]\nstation = %d\nkind = "metro"\ndirection = "%s"\npeak_per_hour = %d\n'
                % (st, d, peak)
            )
    for d in ("entry", "exit"):
        out.append(
            '[[lanes]]\nstation = 1\nkind = "parking"\ndirection = "%s"\npeak_per_hour = 0\n' % d
        )
    out.append('[[lanes]]\nstation = 4\nkind = "store"\npeak_per_hour = 0\nstay_s = [60, 120]\n')
    return "\n".join(out)


def write(tmp_path, walkins: int = 0, extra: str = "") -> str:
    path = tmp_path / "small_line.toml"
    path.write_text(LINE + extra + "\n" + _lanes(walkins))
    return str(path)


def run(tmp_path, tamper=None, walkins=0, capsys=None):
    path = write(tmp_path, walkins)
    out = str(tmp_path / "out")
    code = run_scenario(path, SEED, out, plots=False, tamper=tamper)
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    printed = capsys.readouterr().out if capsys is not None else ""
    return code, report, printed, path


def broken(report) -> set[str]:
    return {i["name"] for i in report["invariants"] if not i["ok"]}


def assert_fails_with(tmp_path, capsys, tamper, name: str, walkins: int = 0) -> dict:
    code, report, printed, path = run(tmp_path, tamper, walkins, capsys)
    assert code == 1, printed
    assert name in broken(report), report["invariants"]
    assert "INVARIANT BROKEN: %s" % name in printed
    cmd = "faregate sim run %s --seed %d" % (path, SEED)
    assert "seed %d; reproduce with: %s" % (SEED, cmd) in printed
    return report


def test_commuters_are_charged_the_tariff_of_their_true_journeys(tmp_path, capsys):
    code, report, printed, _path = run(tmp_path, capsys=capsys)
    assert code == 0, printed
    assert broken(report) == set()
    mo = report["money"]
    # the run really made trips: every commuter home, transfers, parking and the store
    assert mo["check"]["riders_checked"] == 120 and mo["commuters_home"] == 120
    assert mo["by_kind"]["metro complete"]["journeys"] > 240  # transfers: more than 2 each
    assert mo["by_kind"]["parking complete"]["journeys"] > 0
    assert mo["by_kind"]["store complete"]["journeys"] > 0
    assert mo["revenue"] == sum(mo["by_mode"].values()) > 0
    assert (
        "riders: 120 checked against their true journeys (120 commuters home, "
        "0 walk-ins' trips done), 0 charged wrong" in printed
    )


class Overcharge(Tamper):
    """A clearing that adds a cent to one complete metro journey."""

    def clearing(self, journeys, held):
        j = next(j for j in journeys if j["mode"] == "metro" and j["status"] == "complete")
        j["charged"] += 1
        return journeys


def test_breaking_honest_riders_pay_true_fares(tmp_path, capsys):
    report = assert_fails_with(tmp_path, capsys, Overcharge(), "honest_riders_pay_true_fares")
    first = next(i for i in report["invariants"] if i["name"] == "honest_riders_pay_true_fares")
    assert first["violations"] == 1
    assert "the tariff of the journeys really made says" in first["first"][0]["detail"]


class Undercharge(Tamper):
    """A clearing that forgets every parking charge."""

    def clearing(self, journeys, held):
        return [j for j in journeys if j["mode"] != "parking"]


def test_a_forgotten_charge_breaks_the_money_invariant(tmp_path, capsys):
    assert_fails_with(tmp_path, capsys, Undercharge(), "honest_riders_pay_true_fares")


class ChargeTheCopy(Tamper):
    """A clearing that charges the victim for each copier's passage as a missing exit."""

    def clearing(self, journeys, held):
        seen = {}
        for r in sorted(held, key=lambda r: (r.time, r.device_id, r.seq)):
            if r.kind != records.KIND_PASSAGE or not r.counter:
                continue
            pres = (r.account_id, r.cred_no, r.counter)
            if pres in seen:
                journeys.append(
                    {
                        "mode": "metro",
                        "account_id": r.account_id,
                        "status": "missing_exit",
                        "fare": 600,
                        "charged": 600,
                        "records": [[r.device_id, r.seq]],
                        "time": r.time,
                        "day": 0,
                    }
                )
            seen[pres] = r
        return journeys


def test_breaking_no_rider_pays_for_a_copier(tmp_path, capsys):
    report = assert_fails_with(
        tmp_path, capsys, ChargeTheCopy(), "no_rider_pays_for_a_copier", walkins=600
    )
    assert report["money"]["check"]["copied_passages"] > 0


def test_copiers_cost_their_victims_nothing(tmp_path, capsys):
    code, report, printed, _path = run(tmp_path, walkins=600, capsys=capsys)
    assert report["money"]["check"]["copied_passages"] > 0
    assert code == 0, printed


def _rec(kind, reason, dev, seq, t, direction, account=200, counter=5):
    return records.Record(
        kind, reason, dev, seq, t, records.MODE_PARKING, direction, 1, account, 1, counter
    )


def test_breaking_no_voided_passage_charged():
    from host_sim.station.invariants import Monitor
    from protocol import reasons

    entry = _rec(records.KIND_PASSAGE, 0, 7, 1, 1000, records.DIR_ENTRY)
    void = _rec(records.KIND_EVENT, reasons.number("passage_not_taken"), 7, 2, 1010, 1)
    lost = {"mode": "parking", "account_id": 200, "status": "missing_exit", "charged": 2000}
    lost["records"] = [[7, 1]]
    tariff = from_dict({"lanes": [{"kind": "parking"}]})["tariff"]
    for charged, ok in ((2000, False), (0, True)):
        mon = Monitor({}, {}, 30, 5, lambda: 0)
        lost["charged"] = charged
        check = mon.check_money([lost], [entry, void], trips.Truth(), tariff, 90000, 0)
        assert check["voided_passages"] == 1
        assert (mon.counts["no_voided_passage_charged"] == 0) is ok


def test_the_expected_side_applies_the_tariff_and_its_policies():
    tariff = from_dict({"lanes": [{"kind": "metro"}]})["tariff"]  # stations 1-12, 3 a zone
    book = trips.Truth()
    day = 1768200000 - 1768200000 % 86400 + 8 * 3600
    book.tap(1, "metro", 1, records.DIR_ENTRY, day, True)
    book.tap(1, "metro", 7, records.DIR_EXIT, day + 900, True)  # zones 1 -> 3: fares[2]
    book.tap(1, "metro", 7, records.DIR_ENTRY, day + 3600, True)
    book.tap(1, "metro", 1, records.DIR_EXIT, day + 4500, False)  # staff let them out: max
    book.tap(1, "metro", 1, records.DIR_ENTRY, day + 7200, True)
    book.tap(1, "metro", 12, records.DIR_EXIT, day + 8000, True)  # capped
    m = tariff["metro"]
    want = min(m["daily_cap"], m["fares"][2] + m["max_fare"] + m["fares"][3])
    assert expected_charges(book.journeys(1), tariff, day + 9000) == {"metro": want}
    book.tap(2, "metro", 1, records.DIR_ENTRY, day, True)  # still riding: nothing yet
    assert expected_charges(book.journeys(2), tariff, day + 60) == {}
    assert expected_charges(book.journeys(2), tariff, day + 86400) == {"metro": m["max_fare"]}
    # an exit staff let them through, with no tap after it: to the back office the journey is
    # still under way until max_journey_s, then the maximum fare
    book.tap(3, "metro", 1, records.DIR_ENTRY, day, True)
    book.tap(3, "metro", 4, records.DIR_EXIT, day + 900, False)
    assert expected_charges(book.journeys(3), tariff, day + 3600) == {}
    assert expected_charges(book.journeys(3), tariff, day + 86400) == {"metro": m["max_fare"]}


def test_a_line_without_a_fare_for_a_station_is_refused(tmp_path):
    import tomllib

    with open(write(tmp_path)) as f:
        text = f.read().replace('"4" = 2 }', '"5" = 2 }')
    with pytest.raises(ScenarioError, match="no zone for station"):
        from_dict(tomllib.loads(text))
    with pytest.raises(ScenarioError, match="cannot read"):
        from_dict(
            {"lanes": [{"kind": "metro"}], "tariff": "no-such-tariff.toml"}, base=str(tmp_path)
        )
    with pytest.raises(ScenarioError, match="unknown key"):
        from_dict({"lanes": [{"kind": "metro"}], "tariff": {"metro": {"fare": [1]}}})
