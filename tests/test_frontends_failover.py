"""Two sync front ends on one database; a gate configured with both; the one it uses is SIGKILLed
in the middle of a batch. Every part is a real process on real links: two `faregate backoffice
serve` processes with TLS on loopback TCP, on ONE database; a simulated gate booting the real
firmware image, provisioned by `faregate provision` with a site file whose [sync] hosts names
both front ends, and 300 passages in its journal.

The first front end freezes at the gate's third BATCH (tests/frontend_proc.py: `before` its
records are stored, or `after` they are committed with the ACK not yet sent, the case where the
gate still holds what the database already has) and the test SIGKILLs it there: the trigger is
that front end saying it holds the batch, not a timer. Then, with no operator action, the gate
must fail over to the second front end and finish: the database holds each of the gate's
records exactly once, by (device_id, seq), from 1 to its last with none missing, the gate has
nothing pending, and the back office reports no anomaly.

The database is the `backoffice_db` fixture's `--db` value: an SQLite file (WAL: both processes
write to it), or a postgresql:// URL (see the fixture); the test reads it with the driver of
each (`stored`).
"""

import json
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import faregate_argv
from tests.simgate import SimGate
from tests.test_device_e2e import World, _read, demo_site, wait_for

PASSAGES = 300
BATCH_RECORDS = 16
HELD_BATCH = 3  # the first front end freezes at the gate's third BATCH, with more to come
DEVICE_ID = 1017


@pytest.fixture
def backoffice_db(store_target):
    """The `--db` both front ends serve (and the site file's registry): conftest's
    `store_target`, an SQLite file (WAL) and then a fresh database on the run's private
    PostgreSQL cluster."""
    return store_target


def stored(db: str) -> list[tuple[int, int, int]]:
    """(device_id, seq, copies) of every record the back office holds."""
    sql = "SELECT device_id, seq, COUNT(*) FROM records GROUP BY device_id, seq ORDER BY 1, 2"
    if db.startswith("postgresql:"):
        import psycopg

        with psycopg.connect(db) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


class Site(World):
    """test_device_e2e's world (keys, processes, gates) with front ends on one database."""

    def __init__(self, tmp_path, db: str) -> None:
        super().__init__(tmp_path)
        self.db = db

    def front_end(self, name: str, hold: tuple[str, int, str] | None = None) -> tuple[int, str]:
        """A front end on the shared database, TLS on 127.0.0.1; (its port, its output file)."""
        args = (
            "backoffice", "serve", "--port", "0", "--db", self.db, "--sync-key", "op/sync.key",
            "--tls-cert", "bo.pem", "--tls-key", "bo.key", "--tls-ca", "op/ca.pem",
        )  # fmt: skip
        if hold is None:
            argv = faregate_argv(*args)
        else:
            marker, nth, phase = hold
            argv = [sys.executable, "-m", "tests.frontend_proc", marker, str(nth), phase, "--"]
            argv += list(args)
        out = str(self.tmp / (name + ".out"))
        with open(out, "w") as log:
            proc = subprocess.Popen(
                argv, cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        text = wait_for(lambda: _read(out), "listening on")
        return int(re.search(r"listening on 127\.0\.0\.1:(\d+)", text).group(1)), out


@pytest.fixture
def site(tmp_path, backoffice_db):
    s = Site(tmp_path, backoffice_db)
    yield s
    s.close()


def sessions(out_path: str) -> list[dict]:
    """The JSON-lines session events a front end logged."""
    evs = []
    for line in _read(out_path).splitlines():
        if line.startswith("{"):
            ev = json.loads(line)
            if ev.get("event") == "session":
                evs.append(ev)
    return evs


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_front_end_killed_mid_batch_the_gate_fails_over_and_nothing_is_lost_or_doubled(
    site, phase
):
    s = site
    s.run("keys", "init", "--dir", "op", "--operator", "Metro Test")
    s.run("keys", "technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "alice")
    s.run("keys", "tls", "--dir", "op", "--name", "localhost", "--ip", "127.0.0.1", "--server",
          "--out", "bo")  # fmt: skip
    s.run("wallet", "init", "--state", "demo", "--operator", "op")
    marker = str(s.tmp / "held")
    port_a, out_a = s.front_end("frontend-a", hold=(marker, HELD_BATCH, phase))
    port_b, out_b = s.front_end("frontend-b")
    front_a = s.procs[0]
    sync = (
        'hosts = "127.0.0.1:%d,127.0.0.1:%d"\ninterval_s = 1\nbatch_records = %d\n'
        'registry = "%s"\n' % (port_a, port_b, BATCH_RECORDS, s.db)
    )
    (s.tmp / "site.toml").write_text(demo_site(sync))

    gate = SimGate(s.tmp, s.tmp / "gate", s.env, device_id=DEVICE_ID, passages=PASSAGES)
    s.gates.append(gate)
    # the technician provisions the gate; it enters service and syncs with the first front
    # end at once (provisioning waits a little for that first sync, which is held)
    provision = subprocess.Popen(
        faregate_argv("provision", "--site", "site.toml", "--port", gate.port),
        cwd=s.tmp, env=s.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        held = wait_for(lambda: _read(marker), "held BATCH", timeout=60)
        first, last = map(int, re.search(r"seq (\d+)\.\.(\d+)", held).groups())
        assert last - first + 1 == BATCH_RECORDS and first > BATCH_RECORDS, held
        front_a.send_signal(signal.SIGKILL)  # in the middle of the batch
        assert front_a.wait(10) == -signal.SIGKILL
        got = stored(s.db)
        if phase == "before":  # what it held is not in the database; the ACKed batches are
            assert all(seq < first for _dev, seq, _n in got), got[-3:]
        else:  # committed, never acknowledged: the gate still has it and will send it again
            assert [seq for _dev, seq, _n in got if seq >= first][:BATCH_RECORDS] == list(
                range(first, last + 1)
            )
        out, _ = provision.communicate(timeout=120)
    finally:
        if provision.poll() is None:
            provision.kill()
            provision.wait()
    assert provision.returncode == 0, out
    assert "registered in the back office" in out, out

    # no operator action: the gate moves on to the second front end and finishes there
    console = wait_for(
        lambda: "\n".join(gate.console()), "records acknowledged, 0 pending", timeout=60
    )
    assert re.search(r"sync: failed \(\w+\) at 127\.0\.0\.1:%d: .*; trying 127\.0\.0\.1:%d now"
                     % (port_a, port_b), console), console  # fmt: skip
    ok_b = wait_for(lambda: [e for e in sessions(out_b) if e["outcome"] == "ok"], None)
    assert ok_b[0]["device_id"] == DEVICE_ID, ok_b

    rows = stored(s.db)
    assert {n for _dev, _seq, n in rows} == {1}, "stored twice: %r" % [r for r in rows if r[2] > 1]
    seqs = [seq for dev, seq, _n in rows if dev == DEVICE_ID]
    assert len(seqs) >= PASSAGES and seqs == list(range(1, len(seqs) + 1)), "gaps in %r" % seqs
    status = json.loads(s.run("device", "status", "--port", gate.port, "--json").splitlines()[0])
    assert status["sync"]["pending"] == 0 and status["sync"]["host"] == "127.0.0.1:%d" % port_b
    queue = s.run("backoffice", "queues", "--db", s.db, "--json").splitlines()
    dev = json.loads(queue[0])
    assert (dev["device_id"], dev["stored_up_to"], dev["waiting_on_gate"]) == (
        DEVICE_ID,
        len(seqs),
        0,
    ), dev
    assert (dev["gaps"], dev["chain_breaks"], dev["replays"]) == (0, 0, 0), dev
    lines = s.run("backoffice", "anomalies", "--db", s.db, "--json").splitlines()
    *anomalies, result = [json.loads(x) for x in lines]
    assert result["event"] == "result" and anomalies == [], anomalies
