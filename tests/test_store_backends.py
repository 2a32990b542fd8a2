"""The store's interface on both backends (SQLite file, private PostgreSQL cluster), and its
ingest with several writers at once: each record stored once, no false anomaly."""

import random
import threading

import pytest

from host_sim.backoffice import backends
from host_sim.backoffice.store import Store
from protocol import records
from protocol.errors import FormatError

NOW = 1_780_000_000
KEY = b"\x02" + bytes(32)


def chain(device_id: int, n: int, account0: int) -> list[bytes]:
    """n passages of one device, a real hash chain, each a distinct presentation."""
    out, prev = [], records.ZERO_HASH
    for seq in range(1, n + 1):
        raw = records.Record(
            records.KIND_PASSAGE, 0, device_id, seq, NOW + seq, 1, 1, 3,
            account0 + seq, 1, seq, 0, 0, prev,
        ).to_bytes()  # fmt: skip
        prev = records.record_hash(raw)
        out.append(raw)
    return out


def test_the_backend_is_chosen_by_the_target(tmp_path, pg_url):
    s = Store(str(tmp_path / "a.sqlite"))
    assert s.backend == "sqlite"
    s.close()
    s = Store("sqlite:///%s" % (tmp_path / "b.sqlite"))
    assert s.backend == "sqlite" and (tmp_path / "b.sqlite").exists()
    s.close()
    s = Store(pg_url)
    assert s.backend == "postgresql"
    s.close()
    assert backends.redact("postgresql://bo:secret@db1/fare") == "postgresql://bo:***@db1/fare"
    assert backends.redact("postgresql://bo@db1/fare") == "postgresql://bo@db1/fare"


def test_the_interface_behaves_the_same_on_each_backend(store_target):
    s = Store(store_target)
    assert s.add_device(5, KEY, NOW, "lane 5") is True
    assert s.add_device(5, KEY, NOW, "") is False  # re-key keeps the label
    assert s.device(5).label == "lane 5" and s.device_count() == 1
    raws = chain(5, 6, 100)
    assert s.store_batch(5, raws[:4], NOW) == 4
    assert s.store_batch(5, raws[2:], NOW) == 6  # overlaps: the two already held are not twice
    assert s.store_batch(5, raws, NOW) == 6
    assert s.count() == 6 and s.count(records.KIND_PASSAGE) == 6
    assert [r[2] for r in s.records()] == raws
    assert s.anomaly_counts() == {}
    with pytest.raises(FormatError):
        s.store_batch(9, chain(9, 1, 0), NOW)  # unregistered: nothing stored
    assert s.count() == 6
    s.anomaly(NOW, "chain_break", 5, 3, "x")
    s.anomaly(NOW, "chain_break", 5, 3, "x")  # the same anomaly once
    assert s.anomaly_counts() == {"chain_break": 1}
    assert s.anomaly_counts_by_device() == {(5, "chain_break"): 1}
    s.publish(2, 7, b"\x00\xffblob", NOW)
    s.publish(2, 7, b"again", NOW + 1)  # republished: replaced
    s.publish(2, 6, b"old", NOW)
    assert s.offers() == [(2, 7, 5)] and s.publication(2, 7) == b"again"
    for _ in range(2):
        s.note_refusal(5, NOW, "deny_delta", 7, "bad_signature", "no")
    assert [r["count"] for r in s.blob_refusals(5)] == [2]
    s.note_status(5, NOW + 2, {"unsynced": 3})
    s.record_session(5, "peer", NOW, 0.5, "ok", 6, "", 2)
    s.record_session(5, "peer", NOW + 9, 0.5, "refused", 0, "revoked", None)
    assert [x["outcome"] for x in s.sessions(5)] == ["ok", "refused"]
    assert s.last_sessions() == [
        {"device_id": 5, "started": NOW + 9, "outcome": "refused", "reason": "revoked"}
    ]
    s.log_auth(NOW, 5, "peer", "ok", "")
    assert [a["outcome"] for a in s.auth_log()] == ["ok"]
    assert s.revoke_device(5, NOW + 10) and not s.revoke_device(6, NOW)
    [d] = s.devices()
    assert d["status"] == {"unsynced": 3} and d["revoked"] == NOW + 10 and d["pubkey"] == KEY
    assert s.devices(revoked=False) == []
    assert len(s.passages()) == 6
    s.close()
    again = Store(store_target)  # reopened: the schema is there, nothing lost
    assert again.count() == 6 and again.device(5).high_seq == 6
    again.close()


def test_a_failed_batch_stores_nothing(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    raws = chain(5, 3, 0)
    with pytest.raises(FormatError):
        s.store_batch(5, [raws[0], raws[2]], NOW)  # not consecutive
    assert s.count() == 0 and s.device(5).high_seq == 0
    s.close()


WRITERS = 4
DEVICES = 3
RECORDS = 90


def upload_concurrently(store_target: str, chains: dict[int, list[bytes]], writers: int) -> None:
    """`writers` front ends (each its own connection, as separate serve processes have) upload
    every device's records in order, each cutting its own overlapping batches, as a gate that
    fails over between front ends resends what was not acknowledged to it."""
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def writer(w: int) -> None:
        try:
            s = Store(store_target)
            rnd = random.Random(w)
            start.wait()
            for d, raws in chains.items():
                i = 0
                while i < len(raws):
                    n = rnd.randint(1, 9)
                    back = rnd.randint(0, min(i, 4))  # overlap what this writer sent last
                    batch = raws[i - back : i + n]
                    acked = s.store_batch(d, batch, NOW)
                    assert acked == records.seq_of(batch[-1])
                    i += n
            s.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_several_writers_store_each_record_once_with_no_false_anomaly(store_target):
    """WRITERS front ends upload (upload_concurrently). Every writer's batch continues what
    that writer stored, so any gap or chain break would be false."""
    setup = Store(store_target)
    chains = {d: chain(d, RECORDS, d * 10_000) for d in range(1, DEVICES + 1)}
    for d in chains:
        setup.add_device(d, KEY, NOW)
    upload_concurrently(store_target, chains, WRITERS)
    stored = setup.records()
    assert [(d, q) for d, q, _raw in stored] == [
        (d, q) for d in chains for q in range(1, RECORDS + 1)
    ]
    assert [raw for _d, _q, raw in stored] == [r for d in chains for r in chains[d]]
    assert setup.anomalies() == []
    for d, raws in chains.items():
        dev = setup.device(d)
        assert dev.high_seq == RECORDS and dev.last_hash == records.record_hash(raws[-1])
    setup.close()


def test_a_replay_across_devices_is_one_anomaly(store_target):
    s = Store(store_target)
    for d in (1, 2):
        s.add_device(d, KEY, NOW)
    a, b = chain(1, 2, 500), chain(2, 2, 500)  # the same presentations at two gates
    s.store_batch(1, a, NOW)
    s.store_batch(2, b, NOW)
    s.store_batch(2, b, NOW)  # resent: no new anomaly
    assert s.anomaly_counts() == {"replay": 2}
    s.close()


def test_a_reissued_seq_with_other_content_is_a_loud_anomaly(store_target):
    # issue 19: a gate that lost its newest record reused its seq; the office kept the old row
    # (ON CONFLICT DO NOTHING) and said nothing, and the new passage was lost without a trace
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    raws = chain(5, 3, 100)
    s.store_batch(5, raws, NOW)
    s.store_batch(5, raws[1:], NOW)  # the same records again (a lost ACK): nothing to say
    assert s.anomaly_counts() == {}
    other = records.Record(
        records.KIND_PASSAGE, 0, 5, 3, NOW + 9, 1, 1, 3, 999, 1, 1, 0, 0,
        records.record_hash(raws[1]),
    ).to_bytes()  # fmt: skip
    assert s.store_batch(5, [other], NOW) == 3
    [a] = s.anomalies("seq_conflict")
    assert a["seq"] == 3 and records.record_hash(other).hex() in a["detail"]
    assert [r[2] for r in s.records()] == raws  # the first one is kept
    s.close()


def test_a_store_reconnects_after_the_server_dropped_it(pg_url):
    """The server ends the session (a restart, a failover): the statement in flight fails with
    a driver error (nothing acknowledged), the next one runs on a new connection."""
    s = Store(pg_url)
    s.add_device(5, KEY, NOW)
    raws = chain(5, 4, 0)
    s.store_batch(5, raws[:2], NOW)
    admin = Store(pg_url)
    admin.b.execute("SELECT pg_terminate_backend(?)", (s.db.info.backend_pid,))
    admin.close()
    with pytest.raises(s.errors):
        s.store_batch(5, raws[2:], NOW)
    assert s.store_batch(5, raws[2:], NOW) == 4 and s.count() == 4
    assert s.anomaly_counts() == {}
    s.close()


def test_initdb_missing_is_a_failure_with_the_fix(monkeypatch):
    from tests import pgcluster

    monkeypatch.setattr(pgcluster.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pgcluster.shutil, "which", lambda name: None)
    with pytest.raises(pgcluster.ClusterError, match="make setup"):
        pgcluster.Cluster().start()


def test_sqlite_is_durable_unless_the_simulator_says_its_host_cache_suffices(tmp_path):
    """A back office commits with synchronous=FULL; only the station simulator without
    host_fsync (its outages never lose the host's page cache) opens it with OFF."""
    durable = Store(str(tmp_path / "a.sqlite"))
    cached = Store(str(tmp_path / "b.sqlite"), durable=False)
    try:
        assert durable.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert cached.db.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
    finally:
        durable.close()
        cached.close()
