"""The risk engine on arrival (host_sim/backoffice/risk_live.py): `faregate backoffice serve
--risk-key` scans each batch once it is committed and publishes the deny delta it leads to,
so a copied code found in one gate's upload is denied at another gate's next sync. Real
`serve` processes on loopback TCP, real gate journals and sync clients, the gate's own deny
store checking the delta's signature; on SQLite and on PostgreSQL."""

import json
import os
import signal
import subprocess
import time

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.link_tcp import TcpLink
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient, run_session
from firmware.verify.denystore import DenyStore
from host_sim.backoffice import risk
from host_sim.backoffice.risk_live import RiskLive, RiskWorker
from host_sim.backoffice.store import Store
from host_sim.hardware.devices import ManualClock
from protocol import denylist, records
from protocol import messages as m
from protocol.records import DIR_ENTRY, MODE_METRO
from provisioning.operator_keys import load_signer
from tests.conftest import faregate_argv
from tests.test_backoffice_cli import run

VERIFIER = OpenSSLVerifier()


class Sink:
    """The gate's deny store as a sync sink (firmware/compose/device.py's shape)."""

    def __init__(self, deny: DenyStore) -> None:
        self.deny = deny

    def version(self) -> int:
        return self.deny.version

    def apply(self, version: int, data: bytes) -> None:
        self.deny.install(data)


class Gate:
    def __init__(self, tmp, device_id: int, roots: dict[int, bytes], host_pub: bytes) -> None:
        self.device_id = device_id
        self.signer = OpenSSLSigner(generate_key())
        path = os.path.join(str(tmp), "gate%d" % device_id)
        os.makedirs(path)
        self.journal = Journal(path, device_id)
        self.deny = DenyStore(None, roots, VERIFIER)
        self.host_pub = host_pub
        self.clock = ManualClock(int(time.time()))

    def tap(self, account: int, counter: int, t: int, station: int = 3) -> None:
        self.journal.append(
            records.Record(
                records.KIND_PASSAGE, 0, 0, 0, t, MODE_METRO, DIR_ENTRY, station, account, 1,
                counter, 250,
            )
        )  # fmt: skip

    def sync(self, port: int) -> SyncClient:
        client = SyncClient(
            self.journal,
            self.signer,
            VERIFIER,
            self.host_pub,
            self.clock,
            sinks={m.KIND_DENY_DELTA: Sink(self.deny)},
        )
        link = TcpLink.connect("127.0.0.1", port)
        try:
            return run_session(client, link, idle_timeout_s=10)
        finally:
            link.close()


def _log(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in open(path).read().splitlines() if x.endswith("}")]


def _wait_for(path, pred, what: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in _log(path):
            if pred(event):
                return event
        time.sleep(0.05)
    raise AssertionError("no %s in the log within %d s: %s" % (what, timeout_s, _log(path)))


@pytest.fixture
def office(tmp_path, store_target):
    """Operator keys, a store with two gates registered and the first deny list published."""
    run("init", "--dir", str(tmp_path / "op"), group="keys")
    root = load_signer(str(tmp_path / "op" / "root.key"))
    sync = load_signer(str(tmp_path / "op" / "sync.key"))
    roots = {1: root.public_key}
    gates = [Gate(tmp_path, d, roots, sync.public_key) for d in (101, 102)]
    store = Store(store_target)
    now = int(time.time())
    for g in gates:
        store.add_device(g.device_id, g.signer.public_key, now)
    store.publish(m.KIND_DENY_DELTA, 1, denylist.build_snapshot(1, now, [], root), now)
    store.close()
    yield store_target, gates, root
    for g in gates:
        g.journal.close()


def _serve(tmp_path, db: str, *extra: str) -> subprocess.Popen:
    argv = faregate_argv(
        "backoffice", "serve", "--db", db, "--sync-key", "op/sync.key", "--port", "0",
        "--log", "bo.log", *extra,
    )  # fmt: skip
    return subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(srv: subprocess.Popen) -> bytes:
    srv.send_signal(signal.SIGTERM)
    _out, err = srv.communicate(timeout=30)
    assert srv.returncode == 0, err
    return err


def test_a_copy_found_on_arrival_is_denied_at_the_next_sync_of_another_gate(tmp_path, office):
    db, (a, b), _root = office
    srv = _serve(tmp_path, db, "--risk-key", "op/root.key")
    log = tmp_path / "bo.log"
    try:
        start = _wait_for(log, lambda e: e["event"] == "start", "start")
        assert start["risk"] == "on arrival" and "risk engine on arrival" in start["msg"]
        port = int(start["listen"][0].rsplit(":", 1)[1])
        t = int(time.time()) - 120
        a.tap(500, counter=7, t=t)  # the owner's presentation at gate 101
        a.tap(600, counter=3, t=t + 5)  # an honest rider
        assert a.sync(port).acked == 2
        assert a.deny.version == 1
        b.tap(500, counter=7, t=t + 30)  # the screenshot of it, at gate 102
        assert b.sync(port).acked == 1
        # the engine ran after that batch's commit, in serve, with no command run
        found = _wait_for(log, lambda e: e["event"] == "risk_finding", "finding")
        assert (found["rule"], found["account_id"], found["cred_no"]) == ("copied_code", 500, 1)
        assert found["state"] == "denied" and "presentation 7 passed 2 times" in found["detail"]
        pub = _wait_for(log, lambda e: e["event"] == "risk_published", "published delta")
        assert (pub["version"], pub["adds"], pub["removes"]) == (2, 1, 0)
        # the other gate's next sync installs it (its signature checked by the gate's store)
        a.sync(port)
        assert a.deny.version == 2
        assert a.deny.is_denied(0, 500, 1) and not a.deny.is_denied(0, 600, 1)
        b.sync(port)
        assert b.deny.version == 2 and b.deny.is_denied(0, 500, 1)
    finally:
        _stop(srv)
    # what the operator sees: the finding, decided by "auto", and the entry listed in v2
    p = run("risk", "findings", "--db", db, "--json", cwd=tmp_path)
    rows = [json.loads(x) for x in p.stdout.splitlines()][:-1]
    assert [(r["rule"], r["state"], r["operator"]) for r in rows] == [
        ("copied_code", "denied", "auto")
    ]
    entries = Store(db)
    try:
        got = entries.risk_deny_entries()
        assert [(e["deny_key"], e["listed"], e["version"]) for e in got] == [
            (denylist.credential_key(0, 500, 1), 1, 2)
        ]
        assert entries.device(102).high_seq == 1  # every record stored, acknowledged once
    finally:
        entries.close()


def test_a_failing_engine_never_costs_a_record_and_catches_up(tmp_path, office):
    """No deny list yet to add to: publish fails (risk_error), the session is acknowledged
    as usual; the finding waits, and the run after the operator's first list publishes it."""
    db, (a, b), root = office
    store = Store(db)
    store.b.execute("DELETE FROM publications")  # as if no list had been published yet
    store.close()
    srv = _serve(tmp_path, db, "--risk-key", "op/root.key")
    log = tmp_path / "bo.log"
    try:
        start = _wait_for(log, lambda e: e["event"] == "start", "start")
        port = int(start["listen"][0].rsplit(":", 1)[1])
        t = int(time.time()) - 120
        a.tap(700, counter=4, t=t)
        b.tap(700, counter=4, t=t + 20)
        assert a.sync(port).acked == 1 and b.sync(port).acked == 1
        err = _wait_for(log, lambda e: e["event"] == "risk_error", "engine error")
        assert err["reason"] == "bad_risk" and "no deny list is published yet" in err["msg"]
        assert srv.poll() is None  # serve goes on
        assert a.deny.version == 0  # nothing to fetch
        now = int(time.time())
        s = Store(db)
        s.publish(m.KIND_DENY_DELTA, 1, denylist.build_snapshot(1, now, [], root), now)
        s.close()
        a.tap(800, counter=1, t=t + 40)  # the next arrival runs the engine again
        a.sync(port)
        pub = _wait_for(log, lambda e: e["event"] == "risk_published", "published delta")
        assert pub["version"] == 2 and pub["adds"] == 1
        b.sync(port)
        assert b.deny.version == 2 and b.deny.is_denied(0, 700, 1)
    finally:
        _stop(srv)
    s = Store(db)
    try:
        assert s.device(101).high_seq == 2 and s.device(102).high_seq == 1
        assert [f["rule"] for f in s.risk_findings()] == ["copied_code"]
    finally:
        s.close()


def test_a_scan_that_fails_leaves_its_records_for_the_next_run(tmp_path):
    """The store fails under the scan: nothing of it is kept, the cursor stays, and the next
    run finds what the failed one would have (RiskLive in the caller's thread)."""
    from host_sim.wallet import Operator

    op = Operator()
    store = Store(str(tmp_path / "bo.sqlite"))
    now = 1_767_254_400
    for dev in (1, 2):
        store.add_device(dev, b"\x02" + bytes(32), now)
    store.publish(m.KIND_DENY_DELTA, 1, op.deny_snapshot(1, [], now - 60), now)
    prev = {}
    for dev, t in ((1, now), (2, now + 30)):
        raw = records.Record(
            records.KIND_PASSAGE, 0, dev, 1, t, MODE_METRO, DIR_ENTRY, 1, 900, 1, 5, 0, 0,
            prev.get(dev, records.ZERO_HASH),
        ).to_bytes()  # fmt: skip
        store.store_batch(dev, [raw], t)
    events: list[dict] = []
    clock = ManualClock(now + 60)
    live = RiskLive(store, risk.load_config(), op.signer, clock, events.append)
    real = store.risk_passages

    def broken(*a, **k):
        raise store.errors[0]("disk I/O error")

    store.risk_passages = broken  # type: ignore[method-assign]
    assert live.run() is None
    assert [e["event"] for e in events] == ["risk_error"] and "disk I/O error" in events[0]["msg"]
    assert store.risk_findings() == [] and live.errors == 1
    store.risk_passages = real  # type: ignore[method-assign]
    live.arrived(1)
    assert [e["event"] for e in events[1:]] == ["risk_finding", "risk_published"]
    assert live.last is not None and live.last["published"]["version"] == 2
    store.close()


def test_the_worker_runs_off_the_callers_thread_and_coalesces_arrivals(tmp_path):
    from host_sim.wallet import Operator

    op = Operator()
    path = str(tmp_path / "bo.sqlite")
    store = Store(path)
    now = int(time.time())
    store.publish(m.KIND_DENY_DELTA, 1, op.deny_snapshot(1, [], now - 60), now)
    store.close()
    events: list[dict] = []
    worker = RiskWorker(
        lambda: Store(path), risk.load_config(), op.signer, log=events.append, every_s=3600
    )
    try:
        for _ in range(50):
            worker.arrived(10)
        assert worker.settled(30)
        assert 1 <= worker.runs <= 50 and worker.errors == 0
        runs = worker.runs
        worker.arrived(0)  # nothing stored: nothing to run
        assert worker.settled(5) and worker.runs == runs
    finally:
        worker.close()
    assert events == []  # nothing found, nothing published


def test_the_documented_serve_settings_load(tmp_path):
    """docs/fraud.md's [risk] table for backoffice.toml is what `serve --config` reads."""
    from host_sim.backoffice import config

    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "fraud.md")).read()
    block = doc.split("or, in backoffice.toml")[1].split("```toml\n")[1].split("```")[0]
    (tmp_path / "bo.toml").write_text(block)
    values = config.load(str(tmp_path / "bo.toml"))
    assert values == {
        "risk.deny_key": str(tmp_path / "operator/root.key"),
        "risk.root_key_id": 1,
        "risk.rules": str(tmp_path / "risk.toml"),
        "risk.every_s": 30,
    }
