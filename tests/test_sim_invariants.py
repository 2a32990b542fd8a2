"""Every invariant of the station simulator, broken on purpose.

Each test swaps one deliberately buggy component into an otherwise healthy station (a
validator that waves forged codes through, a gate that opens before its journal write, a back
office that acknowledges a batch it never stored, ...) and checks that the run fails: exit code
1, the broken invariant named, the seed and the exact command that reproduces it printed, and
a failing test case in junit.xml. The healthy station itself must hold every invariant.
"""

import json
import os

import pytest

from firmware.verify.validator import Decision
from host_sim.station.invariants import INVARIANTS
from host_sim.station.simulation import Tamper
from protocol import records
from provisioning.cli.sim import run_scenario

# A small, busy station: every behaviour and a deny-list delta every two minutes, so each
# broken component shows within a few simulated minutes.
SMALL = """\
name = "small"
start = "2026-01-12T08:00:00Z"
duration_s = 900
drain_s = 120
sample_s = 60
plots = false

[[lanes]]
kind = "metro"
direction = "entry"
gates = 2
peak_per_hour = 2400

[[lanes]]
kind = "metro"
direction = "exit"
gates = 1
peak_per_hour = 900

[[lanes]]
kind = "parking"
peak_per_hour = 120

[[lanes]]
kind = "store"
peak_per_hour = 200
stay_s = [60, 300]

[riders]
population = 5000

[mix]
valid = 0.7
expired = 0.05
forged = 0.05
screenshot = 0.05
denied = 0.05
tailgating = 0.05
clock_off = 0.05

[backoffice]
sync_interval_s = 30

[denylist]
initial = 50
publish_every_s = 120
per_delta = 20
"""
SEED = 7


def small(tmp_path, extra: str = "") -> str:
    path = tmp_path / "small.toml"
    path.write_text(SMALL + extra)
    return str(path)


def run(tmp_path, tamper=None, extra: str = "", seed: int = SEED, capsys=None):
    path = small(tmp_path, extra)
    out = str(tmp_path / "out")
    code = run_scenario(path, seed, out, plots=False, tamper=tamper)
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, "junit.xml")) as f:
        junit = f.read()
    printed = capsys.readouterr().out if capsys is not None else ""
    return code, report, junit, printed, path


def broken(report) -> set[str]:
    return {i["name"] for i in report["invariants"] if not i["ok"]}


def assert_fails_with(tmp_path, capsys, tamper, name: str, extra: str = "") -> dict:
    code, report, junit, printed, path = run(tmp_path, tamper, extra, capsys=capsys)
    assert code == 1, printed
    assert name in broken(report), report["invariants"]
    assert "INVARIANT BROKEN: %s" % name in printed
    cmd = "faregate sim run %s --seed %d" % (path, SEED)
    assert "seed %d; reproduce with: %s" % (SEED, cmd) in printed
    assert 'name="%s" time="0">\n      <failure' % name in junit
    assert cmd in junit
    return report


def test_a_healthy_station_holds_every_invariant(tmp_path, capsys):
    code, report, junit, printed, _path = run(tmp_path, capsys=capsys)
    assert code == 0, printed
    assert broken(report) == set()
    assert "invariants: %d checked, all hold" % len(INVARIANTS) in printed
    assert "<failure" not in junit
    t = report["totals"]
    # the run really exercised what the invariants are about
    assert t["accepted"] > 300 and t["records_committed"] == t["backoffice_records"]
    for reason in ("bad_issuer_signature", "credential_expired", "denied"):
        assert report["rejects"].get(reason, 0) > 0, reason
    assert report["backoffice"]["check"]["replayed_presentations"] > 0
    assert report["events"].get("tailgating", 0) > 0
    assert report["checked"]["openings"] >= t["accepted"]


class ForgedCodesPass(Tamper):
    """A validator that lets a forged credential through (as if the issuer check were gone)."""

    def device(self, name, dev):
        check = dev.validator.check

        def buggy(text, now, leaving=False):
            d = check(text, now, leaving)
            if d.reason == "bad_issuer_signature":
                return Decision(True, "accepted", d.code, 5000, ())
            return d

        dev.validator.check = buggy


def test_breaking_never_open_without_valid_code(tmp_path, capsys):
    report = assert_fails_with(tmp_path, capsys, ForgedCodesPass(), "never_open_without_valid_code")
    first = report["invariants"][0]["first"][0]
    assert "forged" in first["detail"] and first["gate"]


class OpensBeforeJournaling(Tamper):
    """A gate that opens for an accepted code without making its passage record durable."""

    def device(self, name, dev):
        append = dev.journal.append

        def buggy(rec):
            if rec.kind == records.KIND_PASSAGE:
                return rec  # "written later": never
            return append(rec)

        dev.journal.append = buggy


def test_breaking_every_opening_has_a_record(tmp_path, capsys):
    assert_fails_with(tmp_path, capsys, OpensBeforeJournaling(), "every_opening_has_a_record")


class AcksWithoutStoring(Tamper):
    """A back office that acknowledges one batch it never committed."""

    def __init__(self):
        self.dropped = False

    def backoffice(self, store):
        store_batch = store.store_batch

        def buggy(device_id, raws, now, *rest):  # rest: the batch's signature (sync v3)
            if not self.dropped and len(raws) > 3:
                self.dropped = True
                return records.decode(raws[-1]).seq  # "stored" (it was not)
            return store_batch(device_id, raws, now, *rest)

        store.store_batch = buggy


def test_breaking_records_reach_backoffice_once(tmp_path, capsys):
    report = assert_fails_with(
        tmp_path, capsys, AcksWithoutStoring(), "records_reach_backoffice_once"
    )
    assert report["backoffice"]["check"]["missing"] > 3


class ForgetsTheDenyList(Tamper):
    """A deny store that installs every list and then never finds anyone on it."""

    def device(self, name, dev):
        dev.validator.deny.is_denied = lambda issuer, account_id, cred_no: False


def test_breaking_denied_codes_refused(tmp_path, capsys):
    report = assert_fails_with(tmp_path, capsys, ForgetsTheDenyList(), "denied_codes_refused")
    assert "denied since list version" in report["invariants"][3]["first"][0]["detail"]


class LosesTheReason(Tamper):
    """A validator that refuses expired credentials without saying why."""

    def device(self, name, dev):
        check = dev.validator.check

        def buggy(text, now, leaving=False):
            d = check(text, now, leaving)
            if d.reason == "credential_expired":
                return Decision(False, "accepted", d.code)
            return d

        dev.validator.check = buggy


def test_breaking_every_reject_has_a_reason(tmp_path, capsys):
    report = assert_fails_with(tmp_path, capsys, LosesTheReason(), "every_reject_has_a_reason")
    details = [v["detail"] for v in report["invariants"][4]["first"]]
    assert any("reason 'accepted'" in d for d in details)
    assert any("reason number 0" in d for d in details)  # the journaled record too


class NoCentralReplayCheck(Tamper):
    """A back office that no longer notices one presentation passing at two gates."""

    def backoffice(self, store):
        anomaly = store._anomaly

        def buggy(now, kind, device_id, seq, detail):
            if kind != "replay":
                anomaly(now, kind, device_id, seq, detail)

        store._anomaly = buggy


def test_breaking_replays_caught_centrally(tmp_path, capsys):
    report = assert_fails_with(tmp_path, capsys, NoCentralReplayCheck(), "replays_caught_centrally")
    assert report["backoffice"]["check"]["replays_not_flagged"] > 0


class CrashesOnJams(Tamper):
    """Firmware whose handler for a barrier jam raises (a bug on a rare path)."""

    def device(self, name, dev):
        on_event = dev.gate.on_event

        def buggy(event):
            if event == "barrier_jam":
                raise KeyError("barrier_jam handler")
            return on_event(event)

        dev.gate.on_event = buggy


def test_breaking_firmware_never_crashes(tmp_path, capsys):
    extra = "\n[faults]\nbarrier_jams = 2\njam_clear_s = [30, 60]\n"
    report = assert_fails_with(
        tmp_path, capsys, CrashesOnJams(), "firmware_never_crashes", extra=extra
    )
    assert "KeyError" in report["invariants"][6]["first"][0]["detail"]
    # the watchdog rebooted the gate and nothing it had committed was lost
    assert "records_reach_backoffice_once" not in broken(report)


@pytest.mark.parametrize("name", [n for n, _ in INVARIANTS])
def test_every_invariant_has_a_breaking_test(name):
    from tests import test_sim_money  # the money invariants' breaking tests live there

    names = set(globals()) | set(vars(test_sim_money))
    tests = {k for k in names if k.startswith("test_breaking_")}
    assert "test_breaking_" + name in tests


SETTLE = "\n[faults]\ntampering = 3\n"


class IssuerSkipsProofs(Tamper):
    """An issuer whose verify never checks the records against the log or the gates'
    signatures: it only signs off."""

    def issuer_verify(self, verify):
        def lax(blob, *args):
            rep = verify(blob, *args)
            skip = ("leaf_not_included", "gate_signature_bad")
            rep.failures = [f for f in rep.failures if f[0] not in skip]
            return rep

        return lax


def test_breaking_tampering_caught_by_issuer(tmp_path, capsys):
    report = assert_fails_with(
        tmp_path, capsys, IssuerSkipsProofs(), "tampering_caught_by_issuer", extra=SETTLE
    )
    [inv] = [i for i in report["invariants"] if i["name"] == "tampering_caught_by_issuer"]
    assert "alter of record" in inv["first"][0]["detail"]
