"""The car park by plate and the unattended store (host_sim/station/unattended.py): the shipped
scenarios run through `faregate sim run` with every invariant holding, the money invariant
catches a door that forgets its baskets and a lane that lets the wrong account through, the
same seed writes the same report, and docs/scenarios.md lists the runner's keys."""

import json
import os
import re

import pytest

from firmware.gate import baskets as baskets_mod
from firmware.gate import plates as plates_mod
from host_sim.station import unattended
from provisioning.cli.main import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARPARK = os.path.join(ROOT, "host_sim", "scenarios", "carpark.toml")
STORE = os.path.join(ROOT, "host_sim", "scenarios", "store.toml")


def _small(path, **over):
    sc = unattended.load(path)
    sc["duration_s"] = 14400
    sc[sc["kind"]].update(over)
    return sc


def test_the_car_park_runs_through_faregate_sim_run(tmp_path, capsys):
    out = tmp_path / "cp"
    code = cli_main(["sim", "run", CARPARK, "--seed", "3", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    rep = json.loads((out / "report.json").read_text())
    c = rep["counts"]
    assert rep["ok"] and rep["money"]["riders_charged_wrong"] == 0
    assert c["by_plate"] > 0 and c["qr_fallback"] > 0 and c["misread"] > 0
    assert c["review_fell_back"] + c["review_open"] == (
        rep["events"].get("plate_unknown", 0) + rep["events"].get("plate_low_confidence", 0)
    )
    assert rep["clearing"]["revenue"]["parking"] > 0
    assert "invariants: 6 checked, all hold" in text


def test_the_store_runs_through_faregate_sim_run(tmp_path, capsys):
    out = tmp_path / "st"
    assert cli_main(["sim", "run", STORE, "--seed", "3", "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    c = rep["counts"]
    assert rep["ok"] and c["finals"] == c["by_button"] > 0 and c["groups"] > 0
    assert rep["events"]["exit_button"] == c["by_button"]
    assert rep["clearing"]["revenue"]["store"] > 0


def test_a_door_that_drops_the_exit_basket_breaks_the_money_invariant(tmp_path, monkeypatch):
    def forgetful(self, rec):  # the exit scan's value is never set from the basket
        return None

    monkeypatch.setattr(baskets_mod.Baskets, "stamp", forgetful)
    rep = unattended.run(_small(STORE, shoppers=20, button_share=0.0), 5, str(tmp_path / "s"))
    assert not rep["ok"] and rep["money"]["riders_charged_wrong"] > 0
    bad = {i["name"] for i in rep["invariants"] if not i["ok"]}
    assert "honest_riders_pay_true_fares" in bad


def test_a_lane_that_lets_a_misread_through_as_another_account_is_caught(tmp_path, monkeypatch):
    real = plates_mod.PlateCode

    class Wrong(real):
        def __init__(self, issuer, cred_id, image_tag):
            super().__init__(issuer, cred_id + (999 << 24), image_tag)

    monkeypatch.setattr(plates_mod, "PlateCode", Wrong)
    rep = unattended.run(_small(CARPARK, cars=20), 5, str(tmp_path / "c"))
    bad = {i["name"] for i in rep["invariants"] if not i["ok"]}
    assert {"plates_pass_only_their_own_account", "honest_riders_pay_true_fares"} <= bad


def test_a_lane_that_charges_plate_passages_to_issuer_0_is_caught(tmp_path, monkeypatch):
    """Issue 17's bug: a plate list without the issuer charged a plate passage to issuer 0's
    account of that number. The car park's codes are issuer 7's, so such a passage is another
    rider's: a car in by plate and out by its code is two accounts, and the invariants say so."""
    real = plates_mod.PlateCode

    class IssuerLess(real):
        def __init__(self, _issuer, cred_id, image_tag):
            super().__init__(0, cred_id, image_tag)

    rep = unattended.run(_small(CARPARK, cars=20), 5, str(tmp_path / "ok"))
    assert rep["ok"]
    monkeypatch.setattr(plates_mod, "PlateCode", IssuerLess)
    rep = unattended.run(_small(CARPARK, cars=20), 5, str(tmp_path / "c"))
    bad = {i["name"] for i in rep["invariants"] if not i["ok"]}
    assert {"plates_pass_only_their_own_account", "honest_riders_pay_true_fares"} <= bad


def test_the_same_seed_gives_the_same_report(tmp_path):
    a = unattended.run(_small(CARPARK, cars=30), 9, str(tmp_path / "a"))
    b = unattended.run(_small(CARPARK, cars=30), 9, str(tmp_path / "b"))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_bad_keys_are_refused(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[carpark]\ncars = 3\nplates = 2\n")
    with pytest.raises(unattended.ScenarioError):
        unattended.load(str(p))
    assert unattended.site_kind(str(p)) == "carpark"
    assert unattended.site_kind(os.path.join(ROOT, "host_sim", "scenarios", "bus.toml")) is None


def test_docs_list_the_runners_keys():
    with open(os.path.join(ROOT, "docs", "scenarios.md")) as f:
        text = f.read()
    m = re.search(r"<!-- unattended:keys -->\n(.*?)\n<!-- /unattended:keys -->", text, re.S)
    assert m and m.group(1) == unattended.doc_table()
    assert "`carpark.toml`" in text and "`store.toml`" in text
