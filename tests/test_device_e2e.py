"""The product as its users run it, end to end, every part a real process on real links.

The operator makes its keys (the back office's sync key among them) and a TLS certificate for
the back office; the back office serves sync over TCP with TLS into its SQLite file; a
simulated gate boots the real firmware image; a technician provisions it with a site file that
names the back office (which registers the gate there). Then a rider's code from the wallet
goes through the gate's QR engine on a pty: the barrier opens (the relay pin of the board), the
rider walks through the beams, the gate syncs, and the back office shows the journey. The
operator deny-lists the rider and the back office publishes the delta; the gate fetches it at
its next sync and refuses the same rider with `denied`, and that refusal reaches the back
office too.
"""

import json
import os
import re
import subprocess
import time

import pytest

from protocol import reasons, records
from tests.conftest import faregate_argv
from tests.simgate import SimGate


class World:
    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.env = dict(os.environ)
        self.env.pop("FAREGATE_PORT", None)
        self.env["FAREGATE_SIM_DIR"] = str(tmp_path / "simdir")
        self.env["FAREGATE_CRED"] = str(tmp_path / "alice")
        self.procs: list[subprocess.Popen] = []
        self.gates: list[SimGate] = []

    def run(self, *args: str, timeout: float = 60) -> str:
        p = subprocess.run(
            faregate_argv(*args),
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    def serve(self, *args: str) -> int:
        """Start `faregate backoffice serve` on a free port; returns the port."""
        log = open(self.tmp / "backoffice.out", "w")
        proc = subprocess.Popen(
            faregate_argv("backoffice", "serve", "--port", "0", *args),
            cwd=self.tmp,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        text = wait_for(lambda: _read(self.tmp / "backoffice.out"), "listening on")
        return int(re.search(r"listening on 127\.0\.0\.1:(\d+)", text).group(1))

    def close(self) -> None:
        for g in self.gates:
            g.stop()
        for p in self.procs:
            if p.poll() is None:  # (a test may have killed it)
                p.terminate()
                p.wait(10)


def _read(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def wait_for(get, what, timeout: float = 30.0):
    """Poll `get()` until its result contains `what` (or is true, for what=None)."""
    deadline = time.monotonic() + timeout
    while True:
        got = get()
        if (what in got) if what is not None else got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("waited %.0f s for %r; last: %r" % (timeout, what, got))
        time.sleep(0.05)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


_SITE = """\
[operator]
ca_key = "op/root.key"

[station]
id = 12
name = "Central"
mode = "metro"
scope = 1

[lists]
trust_list = "demo/wallet/trust-v1.bin"
deny_list = "demo/wallet/deny-v1.bin"

[sync]
{sync}
[selftest]
scan_timeout_s = 2

[[gate]]
name = "A1"
lane = 1
direction = "entry"
"""


def demo_site(sync: str) -> str:
    """The demo station's site file (the demo kit's operator key and lists, one metro entry
    gate) with `sync` as the body of its [sync] table."""
    return _SITE.replace("{sync}", sync)


def test_a_rider_passes_the_back_office_sees_it_then_a_deny_list_stops_them(world):
    w = world
    # the operator, in the office
    w.run("keys", "init", "--dir", "op", "--operator", "Metro Test")
    w.run("keys", "technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "alice")
    w.run("keys", "tls", "--dir", "op", "--name", "localhost", "--ip", "127.0.0.1", "--server",
          "--out", "bo")  # fmt: skip
    port = w.serve(
        "--db", "bo.sqlite", "--sync-key", "op/sync.key",
        "--tls-cert", "bo.pem", "--tls-key", "bo.key", "--tls-ca", "op/ca.pem",
    )  # fmt: skip
    w.run("wallet", "init", "--state", "demo", "--operator", "op")
    w.run("wallet", "issue", "--state", "demo", "--account", "42")
    # no [sync] host_key in the site file: provisioning takes op/sync.pub, next to ca_key
    sync = 'host = "127.0.0.1"\nport = %d\ninterval_s = 1\nregistry = "bo.sqlite"\n' % port
    (w.tmp / "site.toml").write_text(demo_site(sync))

    # the technician, at the gate
    gate = SimGate(w.tmp, w.tmp / "gate", w.env, device_id=1017)
    w.gates.append(gate)
    out = w.run("provision", "--site", "site.toml", "--port", gate.port)
    assert "registered in the back office's bo.sqlite" in out, out
    assert "TLS certificate installed" in out and out.endswith("is in service.\n"), out
    board = w.tmp / "gate" / "board"

    # a rider: the code goes through the QR engine's pty; the barrier's relay pin opens
    code = w.run("wallet", "mint", "--state", "demo", "--account", "42").strip()
    with open(board / "phone", "w") as phone:
        phone.write(code + "\n")
    wait_for(lambda: _read(board / "barrier-relay").strip(), "1")
    for a, b in ((1, 0), (1, 1), (0, 1), (0, 0)):  # the rider walks through the beams
        (board / "beam-a").write_text(str(a))
        (board / "beam-b").write_text(str(b))
        time.sleep(0.1)
    wait_for(lambda: _read(board / "barrier-relay").strip(), "0")

    # the gate syncs by itself: the back office holds the passage and shows the journey
    def journeys() -> list[dict]:
        text = w.run("backoffice", "journeys", "--db", "bo.sqlite", "--json")
        *rows, result = [json.loads(line) for line in text.splitlines()]
        assert result["event"] == "result" and result["count"] == len(rows)
        return rows

    [j] = wait_for(journeys, None)
    assert (j["account_id"], j["mode"], j["entry"]["station"]) == (42, "metro", 12), j
    dev, result = [json.loads(x) for x in w.run("backoffice", "queues", "--db", "bo.sqlite",
                   "--json").splitlines()]  # fmt: skip
    assert result["event"] == "result" and result["count"] == 1
    assert dev["device_id"] == 1017 and dev["firmware_version"] == "0.1.0", dev
    assert dev["firmware_slot"] == "a" and dev["firmware_trial"] is False, dev
    assert dev["trust_list_version"] == 1 and dev["trust_list_fresh"] is True, dev
    assert dev["trust_list_valid_until"].endswith("Z") and dev["deny_list_version"] == 1, dev

    # the operator deny-lists the rider; the back office publishes the delta
    delta = json.loads(w.run("wallet", "deny", "--state", "demo", "--account", "42", "--json"))
    w.run("backoffice", "publish", "deny_delta", delta["delta"], "--version", "2",
          "--db", "bo.sqlite")  # fmt: skip
    wait_for(lambda: "\n".join(gate.console()), "installed deny_delta v2")

    # the same rider again: refused with "denied", the barrier stays shut
    code = w.run("wallet", "mint", "--state", "demo", "--account", "42").strip()
    with open(board / "phone", "w") as phone:
        phone.write(code + "\n")
    wait_for(lambda: "\n".join(gate.console()), "gate: denied account 42")
    assert _read(board / "barrier-relay").strip() == "0"

    # ... and the refusal reaches the back office with its reason, as a journaled reject
    def rejects() -> list:
        import sqlite3

        db = sqlite3.connect(w.tmp / "bo.sqlite")
        try:
            return db.execute(
                "SELECT account_id, reason FROM records WHERE device_id = 1017 AND kind = ?",
                (records.KIND_REJECT,),
            ).fetchall()
        finally:
            db.close()

    got = wait_for(rejects, None)
    # the store keeps the account under its issuer (records.account_key): issuer 1's 42
    assert (records.account_key(1, 42), reasons.number("denied")) in got, got
