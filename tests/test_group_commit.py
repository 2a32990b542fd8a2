"""The group commit (host_sim/backoffice/group_commit.py) on both backends, with real stores.

The writer thread is held inside a transaction (a store whose `hold` method waits for an
event) while jobs queue behind it, so the next transaction takes them all: deterministic, no
timing. Each job's future resolves only after the COMMIT (a second connection sees its rows
then); a batch the store refuses (FormatError) fails alone; a job the database rejects (its
error type) fails alone while the others of its transaction are committed on their own;
jobs run in submission order (the second batch of a gate continues the first: no anomaly)."""

import threading

import pytest

from bench.bench_fleet import NOW, chain
from host_sim.backoffice.group_commit import GroupCommit
from host_sim.backoffice.store import Store
from protocol.errors import FormatError

PUB = b"\x02" + b"\x11" * 32


class HeldStore(Store):
    def hold(self, entered: threading.Event, release: threading.Event) -> str:
        entered.set()
        assert release.wait(30), "the test never released the writer"
        return "held"


def _setup(target: str, devices: int) -> None:
    s = Store(target)
    for d in range(1, devices + 1):
        s.add_device(d, PUB, NOW)
    s.close()


def _held(target: str) -> tuple[GroupCommit, threading.Event, object]:
    commit = GroupCommit(lambda: HeldStore(target))
    entered, release = threading.Event(), threading.Event()
    first = commit.submit("hold", entered, release)
    assert entered.wait(30)  # the writer is inside its first transaction: the rest queue
    return commit, release, first


def test_queued_batches_commit_together_and_resolve_after_the_commit(store_target):
    _setup(store_target, 4)
    commit, release, first = _held(store_target)
    raws = {d: chain(d, 6) for d in range(1, 5)}
    try:
        futs = [commit.submit("store_batch_in_transaction", d, raws[d][:3], NOW) for d in raws]
        futs += [commit.submit("store_batch_in_transaction", d, raws[d][3:], NOW) for d in raws]
        futs.append(commit.submit("log_auth", NOW, 1, "test", "ok", ""))
        reader = Store(store_target)
        assert reader.count() == 0 and not any(f.done() for f in futs)
        release.set()
        assert first.result(30) == "held"
        assert [f.result(30) for f in futs] == [3, 3, 3, 3, 6, 6, 6, 6, None]
        assert commit.transactions == 2 and commit.jobs == 10  # the hold's, then all nine
        assert reader.count() == 24  # seen from another connection: committed
        assert reader.anomaly_counts() == {}  # in order: each second batch continues the first
        assert [reader.device(d).high_seq for d in raws] == [6, 6, 6, 6]
        reader.close()
    finally:
        release.set()
        commit.close()


def test_a_refused_batch_fails_alone_in_its_transaction(store_target):
    _setup(store_target, 2)
    commit, release, _first = _held(store_target)
    try:
        good = commit.submit("store_batch_in_transaction", 1, chain(1, 3), NOW)
        wrong_device = commit.submit("store_batch_in_transaction", 2, chain(1, 3), NOW)
        unknown = commit.submit("store_batch_in_transaction", 9, chain(9, 2), NOW)
        release.set()
        assert good.result(30) == 3
        with pytest.raises(FormatError, match="record of device 1 in a batch from 2"):
            wrong_device.result(30)
        with pytest.raises(FormatError, match="device 9 is not registered"):
            unknown.result(30)
        assert commit.transactions == 2  # the refusals did not break the shared transaction
        reader = Store(store_target)
        assert [(d, s) for d, s, _ in reader.records()] == [(1, 1), (1, 2), (1, 3)]
        reader.close()
    finally:
        release.set()
        commit.close()


def test_a_job_the_database_rejects_fails_alone_and_the_rest_commit(store_target):
    _setup(store_target, 2)
    commit, release, _first = _held(store_target)
    try:
        a = commit.submit("store_batch_in_transaction", 1, chain(1, 2), NOW)
        bad = commit.submit("anomaly", NOW, None, 1, 1, "kind is NOT NULL")  # rejected by the DB
        b = commit.submit("store_batch_in_transaction", 2, chain(2, 2), NOW)
        release.set()
        assert a.result(30) == 2 and b.result(30) == 2
        with pytest.raises(commit.errors):
            bad.result(30)
        reader = Store(store_target)
        assert reader.count() == 4 and reader.anomaly_counts() == {}
        reader.close()
    finally:
        release.set()
        commit.close()


def test_close_commits_what_is_queued(store_target):
    _setup(store_target, 1)
    commit, release, _first = _held(store_target)
    fut = commit.submit("store_batch_in_transaction", 1, chain(1, 5), NOW)
    release.set()
    commit.close()
    assert fut.result(0) == 5
    reader = Store(store_target)
    assert reader.count() == 5
    reader.close()


def test_a_store_that_cannot_open_is_said_by_the_constructor(tmp_path):
    with pytest.raises(Exception, match="unable to open|cannot open"):
        GroupCommit(lambda: Store(str(tmp_path / "no" / "such" / "dir" / "bo.sqlite")))


def test_a_job_cancelled_before_its_transaction_is_dropped(store_target):
    """A session cancelled while it waits (the server stopping) cancels its batch's future:
    the writer skips it and goes on with the others."""
    _setup(store_target, 2)
    commit, release, _first = _held(store_target)
    try:
        dropped = commit.submit("store_batch_in_transaction", 1, chain(1, 3), NOW)
        kept = commit.submit("store_batch_in_transaction", 2, chain(2, 3), NOW)
        assert dropped.cancel()
        release.set()
        assert kept.result(30) == 3
        reader = Store(store_target)
        assert [(d, s) for d, s, _ in reader.records()] == [(2, 1), (2, 2), (2, 3)]
        reader.close()
    finally:
        release.set()
        commit.close()


def test_a_sessions_window_of_batches_shares_one_commit_and_is_acked_in_order(store_target):
    """The sync server's group-commit path reads on while a batch commits: a gate's window
    of BATCHes all reach the writer before the first is committed, go into one transaction,
    and their ACKs go out in order once it landed (through on_ready: the session is not
    waiting in receive_async); the gate then trims its journal once for all of them."""
    import asyncio

    from bench.bench_fleet import MemJournal
    from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
    from firmware.sync.client import SyncClient
    from host_sim.backoffice.sync_server import HostSession
    from host_sim.hardware.devices import ManualClock

    gate, host = OpenSSLSigner(generate_key()), OpenSSLSigner(generate_key())
    verifier = OpenSSLVerifier()
    s = Store(store_target)
    s.add_device(1, gate.public_key, NOW)
    s.close()
    journal = MemJournal(1, chain(1, 12), [])
    trims: list[int] = []
    ack = journal.ack
    journal.ack = lambda up_to: trims.append(up_to) or ack(up_to)  # type: ignore[method-assign]
    client = SyncClient(journal, gate, verifier, host.public_key, ManualClock(NOW), batch_size=3)
    commit, release, _first = _held(store_target)
    reader = Store(store_target)

    async def run() -> None:
        session = HostSession(reader, host, verifier, ManualClock(NOW), commit=commit)
        sent: list[bytes] = []
        session.on_ready = sent.append
        out = await session.receive_async(client.start())  # HELLO -> CHALLENGE
        out = await session.receive_async(client.receive(out))  # AUTH -> WELCOME
        batches = client.receive(out)  # four BATCHes: the window
        assert client.conn.in_flight == [3, 6, 9, 12]
        assert await session.receive_async(batches) == b""  # nothing committed: no ACK yet
        assert sent == [] and commit.transactions == 0
        release.set()
        for _ in range(3000):  # until the four ACKs went out (no timing asserted)
            if session._unacked == 0:
                break
            await asyncio.sleep(0.01)
        assert session._unacked == 0 and sent
        client.receive(b"".join(sent))  # the four ACKs -> STATUS, BYE
        assert trims == [12] and journal.acked_seq == 12

    try:
        asyncio.run(run())
        # the hold's transaction, then the AUTH's log row and the four batches in one
        assert commit.transactions == 2 and commit.jobs == 6
        assert reader.count() == 12 and reader.device(1).high_seq == 12
    finally:
        release.set()
        commit.close()
        reader.close()
