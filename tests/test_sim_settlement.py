"""The simulator's settlement day (host_sim/station/settlement.py): several issuers, each with a
statement per service day that verifies and reconciles, and a tampering operator each of whose
changes (alter, drop, invent, forge, after the fact) the issuer catches."""

import json
import os

from host_sim.station.invariants import INVARIANTS
from provisioning.cli.sim import run_scenario
from tests.test_sim_invariants import SEED, SMALL, broken

SCENARIO = SMALL.replace("population = 5000", "population = 5000\nissuers = 3") + (
    "\n[faults]\ntampering = 8\n"
)


def test_every_tampering_is_caught_and_honest_statements_pass(tmp_path, capsys):
    path = tmp_path / "settle.toml"
    path.write_text(SCENARIO)
    out = str(tmp_path / "out")
    code = run_scenario(str(path), SEED, out, plots=False)
    printed = capsys.readouterr().out
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert code == 0, printed
    assert broken(report) == set()
    assert "invariants: %d checked, all hold" % len(INVARIANTS) in printed
    results = report["settlement"]["statements"]
    honest = [r for r in results if r["kind"] == "honest"]
    tampered = [r for r in results if r["kind"] != "honest"]
    assert honest and all(r["verified"] and not r["findings"] for r in honest)
    assert [r["kind"] for r in tampered] == ["alter", "drop", "invent", "forge"] * 2
    assert all(r["caught"] for r in tampered)
    for r in tampered:
        if r["kind"] == "alter":  # the stored bytes are not the log's leaf any more
            assert r["by"] == "verify" and "leaf_not_included" in r["reasons"], r
        if r["kind"] == "drop":  # consistent in itself: the issuer's phones say what is missing
            assert r["by"] == "reconcile" and r["findings"] == ["missing"], r
        if r["kind"] == "invent":  # neither the rider nor a gate signed it
            assert r["by"] == "verify", r
            assert {"rider_signature_bad", "gate_signature_bad"} <= set(r["reasons"]), r
        if r["kind"] == "forge":  # a real rider signature; the batch is not the gate's
            assert r["by"] == "verify" and r["reasons"] == ["gate_signature_bad"], r
    assert {1, 2, 3} <= {r["issuer"] for r in honest}  # every issuer got its statement
