"""The same sync tests over an in-memory pipe, a pty read with pyserial, and TCP with TLS,
with real ES256 keys, the real back office session and its SQLite file."""

import sqlite3

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, generate_key
from firmware.sync.client import SyncError, run_session
from protocol import messages as m
from protocol import records
from tests.synclab import DEVICE_ID, NOW, Lab

LINKS = ["pipe", "pty", "tls"]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


class Sink:
    def __init__(self, version):
        self.v = version
        self.got: list = []

    def version(self):
        return self.v

    def apply(self, version, data):
        self.got.append((version, data))
        self.v = version


@pytest.mark.parametrize("kind", LINKS)
def test_upload_download_status(lab, kind):
    lab.passages(1100)
    lab.store.publish(m.KIND_TRUST_LIST, 4, b"T" * 150_000, NOW)
    lab.store.publish(m.KIND_DENY_DELTA, 8, b"delta-8", NOW)
    lab.store.publish(m.KIND_DENY_DELTA, 9, b"delta-9", NOW)
    trust, deny = Sink(3), Sink(7)
    times: list = []
    c = lab.client(
        sinks={m.KIND_TRUST_LIST: trust, m.KIND_DENY_DELTA: deny},
        on_time=times.append,
        counters={"replayed": 2},
    )
    link = lab.link(kind)
    run_session(c, link, idle_timeout_s=10)
    assert c.acked == 1100 and lab.journal.pending_count() == 0
    db = sqlite3.connect(lab.db)
    assert db.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM records").fetchone() == (
        1100,
        1,
        1100,
    )
    assert trust.got == [(4, b"T" * 150_000)]
    assert deny.got == [(8, b"delta-8"), (9, b"delta-9")]
    assert times == [NOW]
    status = db.execute("SELECT status FROM devices WHERE device_id=?", (DEVICE_ID,)).fetchone()[0]
    assert '"trust_list": 4' in status and '"replayed": 2' in status
    assert lab.store.anomalies() == []
    # a second session has nothing to send and trims nothing
    lab.passages(3)
    c2 = lab.client()
    run_session(
        c2, link if kind == "pty" else lab.link(kind), idle_timeout_s=10
    )  # serial: same line
    assert c2.acked == 3 and lab.store.count() == 1103


@pytest.mark.parametrize("kind", LINKS)
def test_unknown_device_is_refused_and_logged(lab, kind):
    lab.passages(2)
    lab.store.db.execute("DELETE FROM devices")
    with pytest.raises(SyncError) as e:
        run_session(lab.client(), lab.link(kind), idle_timeout_s=10)
    # challenged like any device, refused at its AUTH (issue 16: a stranger learns nothing of
    # the registry); the auth log says why, naming no device
    assert e.value.reason == "bad_signature"
    assert lab.journal.pending_count() == 2
    [(dev, outcome, detail)] = lab.store.db.execute(
        "SELECT device_id, outcome, detail FROM auth_log"
    ).fetchall()
    assert (dev, outcome) == (None, "refused bad_signature") and "not registered" in detail


@pytest.mark.parametrize("kind", LINKS)
def test_wrong_device_key_is_refused_and_logged(lab, kind):
    lab.passages(2)
    impostor = OpenSSLSigner(generate_key())
    with pytest.raises(SyncError) as e:
        run_session(lab.client(signer=impostor), lab.link(kind), idle_timeout_s=10)
    assert e.value.reason == "bad_signature"
    assert lab.journal.pending_count() == 2 and lab.store.count() == 0
    rows = lab.store.db.execute("SELECT device_id, outcome FROM auth_log").fetchall()
    assert rows == [(None, "refused bad_signature")]  # not authenticated: names no device


@pytest.mark.parametrize("kind", LINKS)
def test_gate_does_not_talk_to_a_back_office_without_the_operator_key(lab, kind):
    lab.passages(2)
    other = OpenSSLSigner(generate_key()).public_key
    c = lab.client(host_pub=other)
    with pytest.raises(SyncError) as e:
        run_session(c, lab.link(kind), idle_timeout_s=0.5)
    assert e.value.reason == "timeout" and c.conn.stats["stale_challenges"] == 1
    assert lab.journal.pending_count() == 2 and lab.store.count() == 0


def test_tls_refuses_a_client_without_a_certificate(lab):
    import ssl

    from drivers.linux.link_tcp import TcpLink, client_context
    from host_sim.backoffice.sync_server import BackOfficeThread, server_context

    ca, srv, _cli = lab.tls_files()
    bo = BackOfficeThread(lab.db + "2", lab.keys, server_context(srv[0], srv[1], ca))
    try:
        lab.passages(1)
        with pytest.raises((ssl.SSLError, ConnectionError, SyncError)):
            link = TcpLink.connect("127.0.0.1", bo.port, client_context(ca))
            run_session(lab.client(), link, idle_timeout_s=2)
        assert lab.journal.pending_count() == 1
    finally:
        bo.stop()


def test_replay_gap_and_chain_break_are_flagged(lab):
    lab.passages(3)
    run_session(lab.client(), lab.link("pipe"))
    # a second gate shows the same presentation (account 1000, cred 1, counter 1)
    other = OpenSSLSigner(generate_key())
    lab.store.add_device(18, other.public_key, NOW)
    rec = records.Record(records.KIND_PASSAGE, 0, 18, 1, NOW, 1, 1, 4, 1000, 1, 1, 250)
    lab.store.store_batch(18, [rec.to_bytes()], NOW)
    # device 18 then skips seqs 2..4 and breaks its chain
    rec5 = records.Record(records.KIND_REJECT, 43, 18, 5, NOW, prev_hash=b"\x01" * 16)
    lab.store.store_batch(18, [rec5.to_bytes()], NOW)
    kinds = sorted((a["kind"], a["device_id"], a["seq"]) for a in lab.store.anomalies())
    assert kinds == [("replay", 18, 1), ("sequence_gap", 18, 5)]
    rec6 = records.Record(records.KIND_REJECT, 43, 18, 6, NOW, prev_hash=b"\x02" * 16)
    lab.store.store_batch(18, [rec6.to_bytes()], NOW)
    assert ("chain_break", 18, 6) in [
        (a["kind"], a["device_id"], a["seq"]) for a in lab.store.anomalies()
    ]
    # uploading the same batch again changes nothing
    lab.store.store_batch(18, [rec6.to_bytes()], NOW)
    assert lab.store.count() == 6 and len(lab.store.anomalies()) == 3
