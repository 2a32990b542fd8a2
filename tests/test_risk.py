"""The risk engine (host_sim/backoffice/risk.py): rules over stored passages, findings, the
policy's deny entries, operator review, and the signed deny deltas every gate installs. Each
test on SQLite and on PostgreSQL; the deltas are checked by the gate's own deny store."""

import pytest

from firmware.verify.denystore import DenyStore
from host_sim.backoffice import risk
from host_sim.backoffice.store import Store
from host_sim.wallet import Operator
from protocol import denylist, records
from protocol import messages as m
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_METRO
from tests.portable.codes import VERIFIER

DAY0 = 1_767_254_400
OP = Operator()


@pytest.fixture
def store(store_target):
    s = Store(store_target)
    for dev in (1, 2, 3):
        s.add_device(dev, b"\x02" + bytes(32), DAY0)
    s.publish(m.KIND_DENY_DELTA, 1, OP.deny_snapshot(1, [], DAY0 - 60), DAY0)
    yield s
    s.close()


class Gates:
    """Stores passages through the real ingest path, each device's in seq order."""

    def __init__(self, store):
        self.store = store
        self.seq = {}
        self.prev = {}

    def tap(
        self, device, account, t, station, direction, counter, cred_no=1, mode=MODE_METRO, issuer=0
    ):
        seq = self.seq.get(device, 0) + 1
        self.seq[device] = seq
        raw = records.Record(
            records.KIND_PASSAGE,
            0,
            device,
            seq,
            t,
            mode,
            direction,
            station,
            account,
            cred_no,
            counter,
            0,
            0,
            self.prev.get(device, records.ZERO_HASH),
            issuer=issuer,
        ).to_bytes()
        self.prev[device] = records.record_hash(raw)
        self.store.store_batch(device, [raw], t)


def _gate_list(store):
    """A gate's deny store with every published version installed, in order."""
    gate = DenyStore(None, OP.roots(), VERIFIER)
    newest = dict((k, v) for k, v, _n in store.offers())[m.KIND_DENY_DELTA]
    for v in range(1, newest + 1):
        assert gate.install(store.publication(m.KIND_DENY_DELTA, v))
    return gate


def test_a_copied_code_is_found_denied_and_published_to_the_gates(store):
    g = Gates(store)
    cfg = risk.load_config()
    g.tap(1, 500, DAY0, 1, DIR_ENTRY, counter=7)
    g.tap(2, 500, DAY0 + 30, 1, DIR_ENTRY, counter=7)  # the screenshot, at the next gate
    g.tap(1, 600, DAY0 + 40, 1, DIR_ENTRY, counter=3)  # an honest rider
    out = risk.scan(store, cfg, DAY0 + 60)
    assert [f["rule"] for f in out["findings"]] == ["copied_code"]
    f = out["findings"][0]
    assert f["account_id"] == 500 and f["state"] == "denied" and f["score"] == 100
    assert "presentation 7 passed 2 times" in f["detail"] and "gate 2 (station 1)" in f["detail"]
    assert f["deny_key"] == denylist.credential_key(0, 500, 1) and f["first_use"] == DAY0 + 30
    assert risk.scan(store, cfg, DAY0 + 61)["findings"] == []  # nothing new: found once
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 62)
    assert pub["version"] == 2 and pub["adds"] == [denylist.credential_key(0, 500, 1)]
    gate = _gate_list(store)
    assert (
        gate.is_denied(0, 500, 1)
        and not gate.is_denied(0, 500, 2)
        and not gate.is_denied(0, 600, 1)
    )
    assert risk.publish(store, cfg, OP.signer, DAY0 + 63) is None  # nothing changed
    # the operator takes it back: the next delta removes the entry
    risk.undo(store, f["id"], "ana", "the rider showed both phones", DAY0 + 100)
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 101)
    assert pub["removes"] == [denylist.credential_key(0, 500, 1)] and pub["adds"] == []
    assert not _gate_list(store).is_denied(0, 500, 1)
    got = store.risk_finding(f["id"])
    assert (got["state"], got["operator"], got["note"]) == (
        "undone",
        "ana",
        "the rider showed both phones",
    )
    with pytest.raises(risk.RiskError):
        risk.undo(store, f["id"], "ana", "again", DAY0 + 102)


def test_interleaved_counters_from_two_places_are_a_cloned_key(store):
    g = Gates(store)
    g.tap(1, 700, DAY0, 1, DIR_ENTRY, counter=10)
    g.tap(2, 700, DAY0 + 600, 1, DIR_ENTRY, counter=11)  # the clone counts on its own
    g.tap(1, 700, DAY0 + 1200, 1, DIR_ENTRY, counter=11 - 0 + 0)  # same counter: a copy too
    g.tap(3, 700, DAY0 + 1800, 1, DIR_ENTRY, counter=9)  # behind both: interleaving
    out = risk.scan(store, risk.load_config(), DAY0 + 1900)
    rules = sorted(f["rule"] for f in out["findings"])
    assert rules == ["cloned_key", "copied_code"]
    clone = [f for f in out["findings"] if f["rule"] == "cloned_key"][0]
    assert "counter 9 at gate 3" in clone["detail"] and clone["state"] == "denied"
    # a counter going back within the presentation window at another gate is not a clone
    g.tap(1, 701, DAY0 + 2000, 1, DIR_ENTRY, counter=5)
    g.tap(2, 701, DAY0 + 2030, 1, DIR_ENTRY, counter=4)
    assert risk.scan(store, risk.load_config(), DAY0 + 2100)["findings"] == []


def test_an_impossible_journey_waits_for_review_then_an_operator_accepts(store):
    g = Gates(store)
    cfg = risk.load_config(data={"network": {"min_s_per_station": 120, "travel_s": {"1-9": 600}}})
    assert risk.travel_s(cfg["network"], 9, 1) == 600 and risk.travel_s(cfg["network"], 2, 5) == 360
    g.tap(1, 800, DAY0, 1, DIR_ENTRY, counter=1)
    g.tap(2, 800, DAY0 + 300, 9, DIR_EXIT, counter=2)  # 300 s for a 600 s ride
    g.tap(1, 801, DAY0, 1, DIR_ENTRY, counter=1)
    g.tap(2, 801, DAY0 + 700, 9, DIR_EXIT, counter=2)  # an honest ride
    out = risk.scan(store, cfg, DAY0 + 800)
    assert [(f["rule"], f["account_id"]) for f in out["findings"]] == [("impossible_journey", 800)]
    f = out["findings"][0]
    assert f["state"] == "review" and f["score"] == 75
    assert "300 s apart, the fastest ride takes 600 s" in f["detail"]
    assert risk.publish(store, cfg, OP.signer, DAY0 + 801) is None  # nothing until reviewed
    risk.accept(store, f["id"], "ben", "CCTV confirms two people", DAY0 + 900)
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 901)
    assert pub["adds"] == [denylist.credential_key(0, 800, 1)]
    # its expiry (7 days from the decision) removes it again
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 900 + 7 * 86400)
    assert pub["removes"] == [denylist.credential_key(0, 800, 1)]
    assert not _gate_list(store).is_denied(0, 800, 1)


def test_velocity_missing_taps_and_debt(store):
    g = Gates(store)
    cfg = risk.load_config(
        data={
            "rules": {
                "velocity": {"max": 3, "per_s": 600},
                "missing_taps": {"action": "auto", "max": 1},
                "debt": {"max": 1000},
            }
        }
    )
    for i in range(5):  # five entries in four minutes at one station: passed back
        g.tap(1 + i % 2, 900, DAY0 + 60 * i, 1, DIR_ENTRY, counter=i + 1)
    for i in range(3):  # three journeys, each entry never followed by an exit
        g.tap(1, 901, DAY0 + 86400 * i, 1, DIR_ENTRY, counter=i + 1)
    g.tap(1, 902, DAY0, 1, DIR_ENTRY, counter=1)  # an honest round trip
    g.tap(2, 902, DAY0 + 3600, 1, DIR_EXIT, counter=2)
    store.risk_note_unpaid(903, 20454, 1200, DAY0)
    store.risk_note_unpaid(904, 20454, 300, DAY0)
    out = risk.scan(store, cfg, DAY0 + 3 * 86400)
    got = {(f["rule"], f["account_id"]): f for f in out["findings"]}
    assert set(got) == {
        ("velocity", 900),
        ("missing_taps", 900),  # five entries: four exits missing
        ("missing_taps", 901),
        ("debt", 903),
    }
    assert got[("velocity", 900)]["state"] == "review"
    assert "5 passages within 600 s" in got[("velocity", 900)]["detail"]
    m901 = got[("missing_taps", 901)]
    assert m901["state"] == "denied" and m901["deny_key"] == denylist.account_key(0, 901)
    assert "2 journeys with a tap missing" in m901["detail"]
    assert "unpaid charges of 12.00" in got[("debt", 903)]["detail"]
    risk.dismiss(store, got[("debt", 903)]["id"], "ana", "paid at the office", DAY0)
    assert store.risk_finding(got[("debt", 903)]["id"])["state"] == "dismissed"
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 3 * 86400)
    assert pub["adds"] == [denylist.account_key(0, 900), denylist.account_key(0, 901)]
    gate = _gate_list(store)
    assert gate.is_denied(0, 901, 7) and not gate.is_denied(0, 902, 1)


def test_published_deltas_carry_valid_until_and_are_refreshed_before_it(store):
    cfg = risk.load_config(data={"deny_valid_s": 600, "refresh_before_s": 180})
    pub = risk.publish(store, cfg, OP.signer, DAY0)  # nothing to add: a heartbeat
    assert pub["version"] == 2 and pub["adds"] == [] and pub["removes"] == []
    gate = _gate_list(store)
    assert gate.valid_until == DAY0 + 600 and not gate.stale(DAY0 + 599) and gate.stale(DAY0 + 600)
    assert risk.publish(store, cfg, OP.signer, DAY0 + 400) is None  # still 200 s to go
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 421)
    assert pub["version"] == 3 and _gate_list(store).valid_until == DAY0 + 1021


def test_bad_settings_are_named():
    with pytest.raises(risk.RiskError, match="unknown rule 'speed'"):
        risk.load_config(data={"rules": {"speed": {}}})
    with pytest.raises(risk.RiskError, match="unknown knob"):
        risk.load_config(data={"rules": {"velocity": {"maximum": 3}}})
    with pytest.raises(risk.RiskError, match="action must be one of"):
        risk.load_config(data={"rules": {"velocity": {"action": "maybe"}}})


def test_the_operator_commands(tmp_path, store_target):
    """`faregate backoffice risk ...` end to end: a real key file signs the delta the gates'
    store then installs; review, accept and undo from the command line, --json and tables."""
    import json
    import subprocess

    from provisioning import operator_keys
    from tests.conftest import faregate_argv

    def run(*args, group="backoffice", ok=True):
        p = subprocess.run(faregate_argv(group, *args), capture_output=True, text=True, timeout=60)
        assert (p.returncode == 0) == ok, p.stderr
        return p

    run("init", "--dir", str(tmp_path / "operator"), group="keys")
    key = str(tmp_path / "operator" / "root.key")
    root = operator_keys.load_signer(key)
    s = Store(store_target)
    for dev in (1, 2):
        s.add_device(dev, b"\x02" + bytes(32), DAY0)
    first = denylist.build_snapshot(1, DAY0 - 60, [], root)
    s.publish(m.KIND_DENY_DELTA, 1, first, DAY0)
    g = Gates(s)
    g.tap(1, 500, DAY0, 1, DIR_ENTRY, counter=7)
    g.tap(2, 500, DAY0 + 30, 1, DIR_ENTRY, counter=7)
    for i in range(10):
        g.tap(1, 501, DAY0 + 30 * i, 1, DIR_ENTRY if i % 2 else DIR_EXIT, counter=20 + i)
    s.close()
    db = ("--db", store_target)
    assert "scan" in run("risk", "--help").stdout
    p = run("risk", "run", *db, "--key", key, "--now", str(DAY0 + 400), "--json")
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [(e["event"], e.get("rule")) for e in out[:-1]] == [
        ("finding", "copied_code"),
        ("finding", "velocity"),
    ]
    assert out[-1]["published"]["version"] == 2 and out[-1]["findings"] == 2
    table = run("risk", "findings", *db, "--state", "review").stdout
    assert "velocity" in table and "copied_code" not in table and "10 passages" in table
    vel = out[1]["id"]
    assert "needs --operator" in run("risk", "accept", str(vel), *db, ok=False).stderr
    p = run("risk", "accept", str(vel), *db, "--operator", "ana", "--reason", "passback")
    assert "is denied" in p.stdout
    run("risk", "publish", *db, "--key", key, "--now", str(DAY0 + 500))
    entries = run("risk", "entries", *db, "--json").stdout.splitlines()
    listed = [json.loads(line) for line in entries[:-1]]
    assert [(e["account_id"], e["listed"], e["version"]) for e in listed] == [
        (500, 1, 2),
        (501, 1, 3),
    ]
    run("risk", "undo", str(out[0]["id"]), *db, "--operator", "ben", "--now", str(DAY0 + 600))
    p = run("risk", "publish", *db, "--key", key, "--now", str(DAY0 + 601))
    assert "version 4 (+0 -1)" in p.stdout
    s = Store(store_target)
    gate = DenyStore(None, {1: root.public_key}, VERIFIER)
    for v in range(1, 5):
        assert gate.install(s.publication(m.KIND_DENY_DELTA, v))
    assert gate.is_denied(0, 501, 1) and not gate.is_denied(0, 500, 1)
    s.close()
    p = run("risk", "accept", "99", *db, "--operator", "ana", ok=False)
    assert "no finding 99" in p.stderr


def test_the_documented_deny_list_format_3_vector():
    import os
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "ridecode.md")) as f:
        text = f.read()
    want = re.search(r"<!-- deny-v3-vector -->\n`([0-9a-f]+)`\n", text).group(1)
    body = denylist.encode_body(
        denylist.KIND_DELTA,
        7,
        8,
        1767254400,
        [denylist.credential_key(1, 4711, 1), denylist.account_key(2, 42)],
        [denylist.account_key(1, 42)],
        1767256200,
    )
    assert body.hex() == want
    dl = denylist.parse(body + b"\x01" + bytes(4) + OP.signer.sign(body))
    assert (dl.valid_until, dl.issuers(), dl.entries(), dl.entries("removes")) == (
        1767256200,
        [1, 2],
        [denylist.credential_key(1, 4711, 1), denylist.account_key(2, 42)],
        [denylist.account_key(1, 42)],
    )


def test_a_finding_denies_the_account_of_its_own_issuer_only(store):
    """Issuer 1's account 500 copies its code; issuer 2's account 500 rides honestly: the entry
    is issuer 1's, and a gate refuses issuer 1's account 500 and lets issuer 2's through."""
    g = Gates(store)
    cfg = risk.load_config()
    g.tap(1, 500, DAY0, 1, DIR_ENTRY, counter=7, issuer=1)
    g.tap(2, 500, DAY0 + 30, 1, DIR_ENTRY, counter=7, issuer=1)  # the copy
    g.tap(3, 500, DAY0 + 40, 1, DIR_ENTRY, counter=7, issuer=2)  # another issuer's rider
    out = risk.scan(store, cfg, DAY0 + 60)
    assert [(f["rule"], f["account_id"]) for f in out["findings"]] == [
        ("copied_code", records.account_key(1, 500))
    ]
    pub = risk.publish(store, cfg, OP.signer, DAY0 + 60)
    assert pub["adds"] == [denylist.credential_key(1, 500, 1)]
    assert [(e["issuer"], e["deny_key"]) for e in store.risk_deny_entries()] == [
        (1, (500 << 24) | 1)
    ]
    gate = _gate_list(store)
    assert gate.is_denied(1, 500, 1) and not gate.is_denied(2, 500, 1)
    assert not gate.is_denied(0, 500, 1)
    blob = store.publication(m.KIND_DENY_DELTA, 2)
    assert denylist.parse(blob).issuers() == [1]


def test_a_gate_with_a_stale_deny_list_says_so_at_sync(tmp_path):
    """A provisioned gate (firmware/compose/device.py) holding a format-2 deny list: fresh, then
    past its valid_until: its decisions carry the policy, its STATUS at a real sync session
    says stale, and the fleet raises the alarm; a fresh delta from the risk engine clears it."""
    from drivers.linux import crypto_openssl as es256
    from firmware.compose.device import Device
    from host_sim.backoffice import fleet
    from host_sim.hardware.devices import ManualClock
    from host_sim.station import gatedir
    from host_sim.wallet import Issuer, Rider
    from protocol import trustlist
    from tests.test_dashboard import _sync

    root = es256.OpenSSLSigner(es256.generate_key())
    host = es256.OpenSSLSigner(es256.generate_key())
    issuer = Issuer(1)
    rid = trustlist.root_key_id(root.public_key)
    clock = ManualClock(DAY0)
    store = Store(str(tmp_path / "bo.sqlite"))
    secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
    config = {
        "version": 1,
        "device_id": 501,
        "name": "Central entry 1",
        "station": 1,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
        "sync": {"host_key": host.public_key.hex()},
        "validation": {"stale_deny": "refuse"},
    }
    first = denylist.build_snapshot(1, DAY0 - 60, [], root, DAY0 + 600)
    trust = trustlist.build(
        1, DAY0 - 3600, DAY0 + 7 * 86400, [issuer.trust_entry()], root.sign, rid
    )
    gatedir.provision(str(tmp_path / "g"), 501, root, secret, config, trust, first, DAY0)
    dev = Device.open(str(tmp_path / "g"), None, clock, crypto=es256, device={"profile": "linux"})
    store.add_device(501, es256.signer(secret).public_key, DAY0, "Central entry 1")
    store.publish(m.KIND_DENY_DELTA, 1, first, DAY0)
    keys = (host, es256.verifier())
    rider = Rider()
    issuer.issue(rider, 4711, DAY0 - 86400, DAY0 + 86400)
    assert dev.validator.check(rider.present(clock.now()), clock.now()).accept
    clock.advance(700)  # past valid_until, no sync in between
    d = dev.validator.check(rider.present(clock.now()), clock.now())
    assert not d.accept and d.reason == "deny_list_stale"
    _sync(dev, store, keys, clock, "10.0.0.1:40000")
    (gate,) = fleet.gates(store, clock.now())
    assert gate["deny_state"] == "stale" and gate["deny_valid_until"] == DAY0 + 600
    assert "deny list stale" in gate["alarms"]
    # the engine's refresh: an empty delta with a new valid_until, installed at the next sync
    cfg = risk.load_config(data={"deny_valid_s": 1800, "refresh_before_s": 600})
    pub = risk.publish(store, cfg, root, clock.now())
    assert pub["version"] == 2 and pub["adds"] == []
    _sync(dev, store, keys, clock, "10.0.0.1:40000")
    assert dev.validator.deny.valid_until == DAY0 + 700 + 1800  # published at DAY0 + 700
    clock.advance(60)
    _sync(dev, store, keys, clock, "10.0.0.1:40000")  # a STATUS tells the session's start
    (gate,) = fleet.gates(store, clock.now())
    assert gate["deny_state"] == "fresh" and "deny list stale" not in gate["alarms"]
    assert dev.validator.check(rider.present(clock.now()), clock.now()).accept
    dev.close()
    store.close()
