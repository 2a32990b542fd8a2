"""A copied presentation stored by two sessions at once is still flagged as a replay.

The back office's replay check (host_sim/backoffice/store.py, store_batch) compares each new
passage with the others of its presentation. On PostgreSQL two sessions run at once: a check
that only reads would miss a copy whose other use is in a transaction not yet committed. Here
two real writers (two Store connections, two threads) store the two uses of one presentation
from two gates, and both transactions are held open until they commit together: a trigger,
created by the test on this test's database only, makes each batch's last statement wait on
an advisory lock the test holds. The test waits until both sessions are blocked (whatever on),
releases the lock, and the copy must be flagged once. On SQLite the writers serialize (BEGIN
IMMEDIATE): two threads, the copy flagged once.
"""

import threading
import time

import pytest

from host_sim.backoffice.store import Store
from protocol import records
from protocol.records import DIR_ENTRY, MODE_METRO

T0 = 1_767_254_400
KEY = b"\x02" + bytes(32)
HOLD = 4242  # the advisory lock the trigger waits on


def _passage(device, seq, t, account=7, cred=1, counter=5):
    return records.Record(
        records.KIND_PASSAGE,
        0,
        device,
        seq,
        t,
        MODE_METRO,
        DIR_ENTRY,
        device,
        account,
        cred,
        counter,
        0,
        0,
        records.ZERO_HASH,
    ).to_bytes()


def _writers(target, n=2):
    stores = [Store(target) for _ in range(n)]
    for d in range(1, n + 1):
        stores[0].add_device(d, KEY, T0)
    return stores


def _run(jobs):
    """Run each (store, device, raw) store_batch in its own thread; returns the threads and
    the list their exceptions go to."""
    errors: list[BaseException] = []

    def go(store, device, raw):
        try:
            store.store_batch(device, [raw], T0)
        except BaseException as e:  # re-raised by the test
            errors.append(e)

    threads = [threading.Thread(target=go, args=job) for job in jobs]
    return threads, errors


def _wait_blocked(conn, n, deadline_s=60.0):
    """Until n other sessions of this database wait on a lock (a sync point, not a timing
    assertion: the deadline only turns a hang into a failure)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        (k,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid != pg_backend_pid()"
        ).fetchone()
        if k >= n:
            return
        time.sleep(0.02)
    pytest.fail("the two writers never both blocked")


def test_two_gates_storing_a_copy_at_once_is_flagged_on_postgresql(pg_url):
    import psycopg

    a, b = _writers(pg_url)
    hold = psycopg.connect(pg_url, autocommit=True)
    try:
        hold.execute(
            "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(%d); RETURN NEW; END $$" % HOLD
        )
        hold.execute(
            "CREATE TRIGGER hold_commit BEFORE UPDATE ON devices FOR EACH ROW "
            "EXECUTE FUNCTION hold_commit()"
        )
        hold.execute("SELECT pg_advisory_lock(%d)" % HOLD)
        threads, errors = _run([(a, 1, _passage(1, 1, T0)), (b, 2, _passage(2, 1, T0 + 60))])
        threads[0].start()
        _wait_blocked(hold, 1)  # gate 1's transaction is open, its passage stored
        threads[1].start()
        _wait_blocked(hold, 2)  # and gate 2's: neither has committed
        hold.execute("SELECT pg_advisory_unlock(%d)" % HOLD)
        for t in threads:
            t.join(60)
        assert not errors, errors
        replays = a.anomalies("replay")
        assert [(r["device_id"], r["seq"]) for r in replays] == [(2, 1)], replays
        assert "7/1/5 also passed at device 1 seq 1" in replays[0]["detail"]
        assert a.count(records.KIND_PASSAGE) == 2  # both stored: real passages
    finally:
        hold.close()
        a.close()
        b.close()


def test_two_writers_of_a_copy_flag_it_once_on_sqlite(tmp_path):
    a, b = _writers(str(tmp_path / "bo.sqlite"))
    threads, errors = _run([(a, 1, _passage(1, 1, T0)), (b, 2, _passage(2, 1, T0 + 60))])
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    replays = a.anomalies("replay")
    assert len(replays) == 1 and "7/1/5 also passed at device" in replays[0]["detail"]
    a.close()
    b.close()


def test_claims_of_a_database_from_before_them_are_filled_in(store_target):
    s = _writers(store_target, 1)[0]
    s.add_device(2, KEY, T0)
    s.store_batch(1, [_passage(1, 1, T0)], T0)
    s.b.execute("DROP TABLE presentations")  # as a database made before the table
    s.close()
    s = Store(store_target)
    s.store_batch(2, [_passage(2, 1, T0 + 60)], T0)
    assert [(r["device_id"], r["seq"]) for r in s.anomalies("replay")] == [(2, 1)]
    s.close()
