"""The car park by plate and the unattended store (host_sim/station/unattended.py): the shipped
scenarios run through `faregate sim run` with every invariant holding, the money invariant
catches a door that forgets its baskets and a lane that lets the wrong account through, the
same seed writes the same report, docs/scenarios.md lists the runner's keys, and every record
reaches the back office only through a sync session: in a BATCH its gate's device key signed,
acknowledged, resent after the site's uplink was down, and left on the gate (the report says
so) when the uplink never comes back."""

import json
import os
import re

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.gate import baskets as baskets_mod
from firmware.gate import plates as plates_mod
from host_sim.backoffice.store import Store
from host_sim.station import unattended
from protocol import records, sync
from provisioning.cli.main import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARPARK = os.path.join(ROOT, "host_sim", "scenarios", "carpark.toml")
STORE = os.path.join(ROOT, "host_sim", "scenarios", "store.toml")


def _small(path, link=None, **over):
    sc = unattended.load(path)
    sc["duration_s"] = 14400
    sc[sc["kind"]].update(over)
    sc["backoffice"].update(link or {"link_down": []})
    return sc


def _failed(rep):
    return sum(s["failed"] for s in rep["sync"].values())


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
    # the file's uplink outage failed sessions; everything went up after it, acknowledged
    assert _failed(rep) > 0 and set(rep["records_on_gates"].values()) == {0}
    assert sum(s["acked"] for s in rep["sync"].values()) == rep["records_held"]
    assert "records left on the gates (never synced): carpark-0 0, carpark-1 0" in text


def test_the_store_runs_through_faregate_sim_run(tmp_path, capsys):
    out = tmp_path / "st"
    assert cli_main(["sim", "run", STORE, "--seed", "3", "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    c = rep["counts"]
    assert rep["ok"] and c["finals"] == c["by_button"] > 0 and c["groups"] > 0
    assert rep["events"]["exit_button"] == c["by_button"]
    assert rep["clearing"]["revenue"]["store"] > 0
    assert _failed(rep) > 0 and rep["records_on_gates"] == {"shop-0": 0}
    assert rep["sync"]["shop-0"]["acked"] == rep["records_held"]


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


@pytest.mark.parametrize("path", [CARPARK, STORE])
def test_every_record_held_came_in_a_batch_its_gate_signed(tmp_path, path):
    """A record stored any other way than by a sync session (the old direct ingest) has no
    batch signature: this fails on it."""
    sc = _small(path, cars=25, shoppers=20, link={"link_down": [[3600, 5400]]})
    rep = unattended.run(sc, 4, str(tmp_path / "run"))
    assert rep["ok"] and rep["records_held"] > 0 and _failed(rep) > 0
    v = OpenSSLVerifier()
    db = Store(str(tmp_path / "run" / "backoffice.sqlite"))
    try:
        held = db.records()
        assert len(held) == rep["records_held"]
        for dev, seq, raw in held:
            ev = db.passage_evidence(dev, seq)
            assert ev is not None and ev["batch_sig"] is not None, (dev, seq)
            parts = records.split(ev["batch"])
            assert raw in parts and ev["batch_signed"] == sync.batch_signing_input(dev, parts)
            assert v.verify(ev["device_pub"], ev["batch_signed"], ev["batch_sig"])
    finally:
        db.close()


@pytest.mark.parametrize("path", [CARPARK, STORE])
def test_a_site_whose_uplink_never_comes_back_keeps_its_records_and_says_so(tmp_path, path):
    sc = _small(path, cars=15, shoppers=10, link={"link_down": [[0, 10**7]]})
    rep = unattended.run(sc, 6, str(tmp_path / "run"))
    left = sum(rep["records_on_gates"].values())
    assert not rep["ok"] and rep["records_held"] == 0 and left > 0
    assert all(s["ok"] == 0 and s["failed"] > 0 for s in rep["sync"].values())
    bad = {i["name"]: i for i in rep["invariants"] if not i["ok"]}
    assert "records_reach_backoffice_once" in bad
    assert bad["records_reach_backoffice_once"]["violations"] >= left
    assert "never synced" in unattended.summary(rep)


def test_a_plate_bound_during_the_day_reaches_the_lanes_by_sync(tmp_path):
    """Cars bound half an hour before they come pass by plate: the delta came down in the
    lanes' sessions (no bound-later car passes by plate if the uplink is down all day)."""
    up = unattended.run(
        _small(CARPARK, cars=40, bound_share=0.0, bound_later_share=1.0, misread_rate=0.0,
               low_confidence_rate=0.0, no_read_rate=0.0), 7, str(tmp_path / "up"),
    )  # fmt: skip
    down = unattended.run(
        _small(CARPARK, link={"link_down": [[0, 10**7]]}, cars=40, bound_share=0.0,
               bound_later_share=1.0, misread_rate=0.0, low_confidence_rate=0.0,
               no_read_rate=0.0), 7, str(tmp_path / "down"),
    )  # fmt: skip
    assert up["ok"] and up["counts"]["by_plate"] > 0
    assert down["counts"]["by_plate"] == 0 and down["counts"]["qr_fallback"] > 0


def test_the_store_gives_the_same_report_for_the_same_seed(tmp_path):
    sc = _small(STORE, shoppers=25, link={"link_down": [[3600, 5400]]})
    a = unattended.run(sc, 3, str(tmp_path / "a"))
    b = unattended.run(sc, 3, str(tmp_path / "b"))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_bad_keys_are_refused(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[carpark]\ncars = 3\nplates = 2\n")
    with pytest.raises(unattended.ScenarioError):
        unattended.load(str(p))
    assert unattended.site_kind(str(p)) == "carpark"
    q = tmp_path / "y.toml"
    q.write_text("[shop]\n[backoffice]\nlink_down = [[5, 2]]\n")
    with pytest.raises(unattended.ScenarioError, match="link_down"):
        unattended.load(str(q))
    q.write_text("[backoffice]\nretry_s = 5\n")
    assert unattended.site_kind(str(q)) is None
    assert unattended.site_kind(os.path.join(ROOT, "host_sim", "scenarios", "bus.toml")) is None


def test_docs_list_the_runners_keys():
    with open(os.path.join(ROOT, "docs", "scenarios.md")) as f:
        text = f.read()
    m = re.search(r"<!-- unattended:keys -->\n(.*?)\n<!-- /unattended:keys -->", text, re.S)
    assert m and m.group(1) == unattended.doc_table()
    assert "`carpark.toml`" in text and "`store.toml`" in text
