"""`faregate backoffice serve --workers 2`: two pre-forked front ends on one port, for real.

The real command in a subprocess, with TLS (client certificates required) on loopback and
the group commit on (serve's default), on each backend; gates (the gate's own SyncClient over
asyncio TLS, bench P11's load generator) sync twice each. Every record is stored once, every
gate's second session resumes the TLS session of its first whichever worker takes it (the
workers share the ticket key), both workers say they started and stopped, and SIGTERM to the
parent stops them all with exit status 0."""

import asyncio
import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from bench import bench_fleet
from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from firmware.sync.client import SyncClient
from host_sim.backoffice.store import Store
from host_sim.hardware.devices import ManualClock
from provisioning import pki
from provisioning.cli.kit import load_signer
from tests.conftest import faregate_argv

GATES = 8
RECORDS = 5


def _started(proc: subprocess.Popen, log: str, n: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()
        if os.path.exists(log):
            lines = [json.loads(x) for x in open(log).read().splitlines() if x.strip()]
            starts = [x for x in lines if x["event"] == "start"]
            if len(starts) >= n:
                return starts
        time.sleep(0.1)
    raise AssertionError("the workers did not start within %d s" % timeout)


def _listening(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (Linux /proc/net/tcp, state 0A)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return sum(1 for x in f.read().splitlines()[1:] if x.split()[1:4:2] == [want, "0A"])


@pytest.mark.parametrize("reuse_port", [False, True], ids=["one-socket", "reuse-port"])
def test_two_workers_share_the_port_the_store_and_the_tls_tickets(
    tmp_path, store_target, reuse_port
):
    """Both ways of sharing the port: one socket both workers accept on, or (--reuse-port)
    a socket each on the same port, SO_REUSEPORT."""
    subprocess.run(faregate_argv("keys", "init", "--dir", "op"), cwd=tmp_path, check=True,
                   capture_output=True)  # fmt: skip
    host_pub = load_signer(str(tmp_path / "op" / "sync.key")).public_key
    ca, srv, cli = pki.tls_files(str(tmp_path / "tls"), datetime.datetime.now(datetime.UTC))
    signers = [OpenSSLSigner(generate_key()) for _ in range(GATES)]
    bench_fleet.register(store_target, 1, [s.public_key for s in signers])
    log = str(tmp_path / "bo.log")
    argv = faregate_argv(
        "backoffice", "serve", "--db", store_target, "--port", "0", "--workers", "2",
        "--sync-key", "op/sync.key",
        "--tls-cert", srv[0], "--tls-key", srv[1], "--tls-ca", ca, "--log", log,
    ) + (["--reuse-port"] if reuse_port else [])  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        starts = _started(proc, log, 2)
        assert sorted(s["worker"] for s in starts) == [0, 1]
        ports = {s["listen"][0] for s in starts}
        assert len(ports) == 1  # one port, both workers on it
        port = int(ports.pop().rsplit(":", 1)[1])
        assert _listening(port) == (2 if reuse_port else 1)
        raws = {i: bench_fleet.chain(i, 2 * RECORDS) for i in range(1, GATES + 1)}
        journals = [bench_fleet.MemJournal(i, raws[i], []) for i in raws]
        ctx = bench_fleet.gate_context(ca, cli[0], cli[1])
        tickets: dict = {}

        def clients() -> list[SyncClient]:
            return [
                SyncClient(j, signers[j.device_id - 1], OpenSSLVerifier(), host_pub,
                           ManualClock(int(time.time())))
                for j in journals
            ]  # fmt: skip

        for j in journals:
            j.last_seq = RECORDS
        asyncio.run(bench_fleet._drive(clients(), port, ctx, 4, tickets))
        assert len(tickets) == GATES
        bench_fleet.RESUMED[0] = 0
        for j in journals:
            j.last_seq = 2 * RECORDS
        second = clients()
        asyncio.run(bench_fleet._drive(second, port, ctx, 4, tickets))
        assert bench_fleet.RESUMED[0] == GATES  # on either worker
        assert [c.acked for c in second] == [RECORDS] * GATES
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in open(log).read().splitlines()]
    assert sorted(x["worker"] for x in lines if x["event"] == "stop") == [0, 1]
    sessions = [x for x in lines if x["event"] == "session"]
    assert len(sessions) == 2 * GATES and {x["outcome"] for x in sessions} == {"ok"}
    store = Store(store_target)
    try:
        got = sorted((d, s, bytes(r)) for d, s, r in store.records())
        assert got == sorted((d, s, r) for d, rs in raws.items() for s, r in enumerate(rs, 1))
        assert store.anomaly_counts() == {}
        assert len(store.sessions()) == 2 * GATES  # recorded by the group commit, then closed
    finally:
        store.close()
