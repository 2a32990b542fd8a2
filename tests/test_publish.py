"""Checked publishing, end to end: `faregate backoffice publish` as the operator runs it (a real
subprocess on the back office's SQLite file), two real gates (firmware/compose/device.py from
provisioned directories) syncing with the real sync server over loopback TCP, and what `queues
--json` then says. publish refuses what gates would refuse or drop and says what each gate will
do; a blob a gate refuses anyway (a trust list signed by another root) comes back in that
session's STATUS, into Store.blob_refusals and `queues`."""

import datetime
import json
import subprocess
import time

import pytest

from drivers.linux import crypto_openssl as es256
from drivers.linux.link_tcp import TcpLink
from firmware.compose.device import Device
from firmware.sync.client import run_session
from host_sim.backoffice import publishing
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import BackOfficeThread, HostKeys
from host_sim.hardware.devices import ManualClock
from host_sim.station import gatedir
from protocol import denylist, records, trustlist
from tests.conftest import faregate_argv

GATE_NOW = 1_767_254_400  # the gates' clock
DAY = 86400
GATES = (301, 302)


def faregate(*args, ok=True):
    p = subprocess.run(
        faregate_argv("backoffice", *args), capture_output=True, text=True, timeout=60
    )
    assert (p.returncode == 0) == ok, p.stdout + p.stderr
    return p


class Fleet:
    def __init__(self, tmp, db: str) -> None:
        self.root = es256.OpenSSLSigner(es256.generate_key())
        self.rid = trustlist.root_key_id(self.root.public_key)
        self.issuer = es256.OpenSSLSigner(es256.generate_key())
        host = es256.OpenSSLSigner(es256.generate_key())
        self.db = db  # a SQLite file or a PostgreSQL URL
        store = Store(self.db)
        self.gates = {}
        for dev_id in GATES:
            secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
            config = {
                "version": 1,
                "device_id": dev_id,
                "name": "S%d" % dev_id,
                "station": 3,
                "lane": dev_id - 300,
                "mode": "metro",
                "direction": "entry",
                "scope": 1,
                "sync": {"host_key": host.public_key.hex()},
            }
            d = str(tmp / str(dev_id))
            gatedir.provision(
                d,
                dev_id,
                self.root,
                secret,
                config,
                self.trust(1, GATE_NOW + DAY),
                denylist.build_snapshot(1, GATE_NOW, [], self.root),
                GATE_NOW,
            )
            dev = Device.open(d, None, ManualClock(GATE_NOW), crypto=es256)
            dev.journal.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, GATE_NOW))
            self.gates[dev_id] = dev
            store.add_device(dev_id, es256.signer(secret).public_key, GATE_NOW, "lane %d" % dev_id)
        store.close()
        self.tmp = tmp
        keys = HostKeys(host, es256.verifier())
        self.bo = BackOfficeThread(self.db, keys, None, ManualClock(GATE_NOW + 60))

    def trust(self, version: int, valid_until: int, root=None) -> bytes:
        root = root or self.root
        key = trustlist.IssuerKey(1, self.issuer.public_key, 0xFFFF, GATE_NOW - DAY, valid_until)
        rid = trustlist.root_key_id(root.public_key)
        return trustlist.build(version, GATE_NOW - 60, valid_until, [key], root.sign, rid)

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def sync_all(self) -> list:
        """One real session per gate; the clients, for what each applied and refused."""
        out = []
        for dev in self.gates.values():
            link = TcpLink.connect("127.0.0.1", self.bo.port)
            try:
                out.append(run_session(dev.sync_client(), link))
            finally:
                link.close()
        return out

    def queues(self) -> list[dict]:
        text = faregate("queues", "--db", self.db, "--json").stdout
        *rows, result = [json.loads(line) for line in text.splitlines()]
        assert result["event"] == "result" and result["count"] == len(rows)
        return rows

    def close(self) -> None:
        self.bo.stop()
        for dev in self.gates.values():
            dev.close()


@pytest.fixture
def fleet(tmp_path, store_target):  # on SQLite and on PostgreSQL
    f = Fleet(tmp_path, store_target)
    yield f
    f.close()


def test_publish_refuses_what_gates_would_refuse_and_gates_report_what_they_refused(fleet):
    fleet.sync_all()  # both gates report what they hold: trust v1, deny v1
    now = int(time.time())
    db = ["--db", fleet.db]

    # a trust list offered as a deny delta: refused, nothing stored
    trust2 = fleet.file("trust-2.bin", fleet.trust(2, now + 60 * DAY))
    p = faregate("publish", "deny_delta", trust2, "--version", "2", *db, ok=False)
    assert p.returncode == 2 and "this file is a trust list, not a deny list" in p.stderr
    assert "publish it as trust_list" in p.stderr
    assert Store(fleet.db).offers() == []

    # a deny delta that follows: published, each gate's fate from its last status
    delta = denylist.build_delta(1, 2, GATE_NOW, [denylist.account_key(1, 42)], [], fleet.root)
    p = faregate("publish", "deny_delta", fleet.file("deny-1-2.bin", delta), *db)
    assert p.stdout.splitlines() == [
        "published deny_delta version 2 (%d bytes)" % len(delta),
        "  gate 301 (lane 301) applies it at its next sync (v1 -> v2)",
        "  gate 302 (lane 302) applies it at its next sync (v1 -> v2)",
    ]
    # the same version again, or a --version that is not the list's own: refused
    p = faregate("publish", "deny_delta", fleet.file("deny-1-2.bin", delta), *db, ok=False)
    assert "version 2 is not above version 2, published now" in p.stderr
    p = faregate("publish", "trust_list", trust2, "--version", "5", *db, ok=False)
    assert "the trust_list inside says version 2" in p.stderr

    # a trust list signed by another root passes publish (signatures are the gates' to check)
    # and both gates refuse it at their next sync, and say so
    other = es256.OpenSSLSigner(es256.generate_key())
    foreign = fleet.file("trust-2-foreign.bin", fleet.trust(2, now + 60 * DAY, root=other))
    p = faregate("publish", "trust_list", foreign, "--json", *db)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert [e["event"] for e in events] == ["gate", "gate", "result"]
    assert events[0]["will"] == "installs it at its next sync (v1 -> v2)"
    assert events[-1]["version"] == 2 and events[-1]["previous"] is None
    clients = fleet.sync_all()
    for c in clients:
        assert [(k, v, why) for k, v, why, _t in c.refused] == [(2, 2, "list_unknown_root")]
        assert (1, 2) in c.applied  # the deny delta went in the same session
    store = Store(fleet.db)
    refusals = store.blob_refusals()
    assert [(r["device_id"], r["kind"], r["version"], r["reason"]) for r in refusals] == [
        (301, "trust_list", 2, "list_unknown_root"),
        (302, "trust_list", 2, "list_unknown_root"),
    ]
    assert store.blob_refusals(302) == refusals[1:]
    store.close()

    # queues --json: one JSON value per line and gate, values not display strings
    rows = fleet.queues()
    assert [r["device_id"] for r in rows] == list(GATES)
    for r in rows:
        assert r["trust_list_version"] == 1 and r["deny_list_version"] == 2
        assert r["trust_list_state"] == "fresh" and r["trust_list_fresh"] is True
        assert r["trust_list_valid_until"] == "2026-01-02T08:00:00Z"
        assert datetime.datetime.fromisoformat(r["last_sync"]).tzinfo is not None
        assert r["waiting_on_gate"] == 0 and r["stored_up_to"] == 1
        assert r["firmware_version"] is None and r["firmware_trial"] is None
        [refused] = r["refused"]
        assert (refused["kind"], refused["version"], refused["reason"]) == (
            "trust_list",
            2,
            "list_unknown_root",
        )
    table = faregate("queues", *db).stdout
    assert table.count("trust_list v2 (list_unknown_root)") == 2
    assert "v1 fresh until 2026-01-02" in table

    # an expired trust list: refused unless forced, then published with a warning
    expired = fleet.file("trust-3.bin", fleet.trust(3, now - DAY))
    p = faregate("publish", "trust_list", expired, *db, ok=False)
    assert p.returncode == 2 and "trust list 3 expired at" in p.stderr and "--force" in p.stderr
    soon = fleet.file("trust-3-soon.bin", fleet.trust(3, now + 2 * DAY))
    p = faregate("publish", "trust_list", soon, *db, ok=False)
    assert "expires at" in p.stderr and "in 2.0 days" in p.stderr
    p = faregate("publish", "trust_list", expired, "--force", *db)
    assert "warning: trust list 3 expired at" in p.stderr and "--force" in p.stderr
    assert p.stdout.startswith("published trust_list version 3 (")
    assert "replaces version 2" in p.stdout
    # a gate that refused v2 is not shown it any more: the offer now is v3
    assert all(r["refused"] == [] for r in fleet.queues())


def test_check_and_predict_follow_the_gates_rules():
    """The rules publish applies, on values: kinds by their bytes, versions, deny gaps, what a
    gate holding a given version does."""
    assert publishing.detect(b'{"device_id": 1}') == "config"
    assert publishing.detect(b"FGIM....") == "firmware" and publishing.detect(b"\x00") is None
    with pytest.raises(publishing.PublishRefused, match="is not a gate config"):
        publishing.check("config", b"fare table", 1, None, GATE_NOW)
    with pytest.raises(publishing.PublishRefused, match="needs --version"):
        publishing.check("fare_table", b"fares", None, None, GATE_NOW)
    root = es256.OpenSSLSigner(es256.generate_key())
    gap = denylist.build_delta(3, 4, GATE_NOW, [7], [], root)
    with pytest.raises(publishing.PublishRefused) as e:
        publishing.check("deny_delta", gap, None, 2, GATE_NOW)
    assert e.value.forcible and "stop at 2" in str(e.value) and e.value.exit_code == 2
    offer = publishing.check("deny_delta", gap, None, 2, GATE_NOW, force=True)
    assert offer.version == 4 and len(offer.warnings) == 1
    status = {"time": GATE_NOW, "versions": {"deny_delta": 2}, "extra": {}}
    assert publishing.predict(offer, 1, status) == (
        "holds version 2: cannot apply a delta from 3 (it fetches 3 next)"
    )
    assert publishing.predict(offer, 1, None).startswith("has not reported yet")
    cfg = json.dumps({"device_id": 9, "name": "x", "station": 1, "lane": 1, "mode": "metro",
                      "direction": "entry", "scope": 1, "version": 1}).encode()  # fmt: skip
    offer = publishing.check("config", cfg, 2, 1, GATE_NOW)
    assert publishing.predict(offer, 8, status) == "refuses it: the config is for device 9"


def test_a_config_names_several_sync_front_ends_and_a_bad_list_is_refused():
    base = {"device_id": 9, "name": "x", "station": 1, "lane": 1, "mode": "metro",
            "direction": "entry", "scope": 1, "version": 1}  # fmt: skip
    good = dict(base, sync={"hosts": "bo1.metro:7700,bo2.metro:7701"})
    offer = publishing.check("config", json.dumps(good).encode(), 2, 1, GATE_NOW)
    assert offer.version == 2
    bad = dict(base, sync={"hosts": "bo1.metro:7700,bo1.metro:7700"})
    with pytest.raises(publishing.PublishRefused, match="sync.hosts.*listed twice"):
        publishing.check("config", json.dumps(bad).encode(), 2, 1, GATE_NOW)
