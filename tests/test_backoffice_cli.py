"""`faregate backoffice ...` as an operator runs it: real subprocesses, a real TCP session."""

import json
import os
import signal
import subprocess

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.link_tcp import sync_once
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient, SyncError
from host_sim.hardware.devices import ManualClock
from protocol import records
from provisioning import pki
from tests.conftest import faregate_argv

NOW = 1_767_254_400


def run(*args, ok=True, cwd=None, group="backoffice"):
    p = subprocess.run(
        faregate_argv(group, *args), capture_output=True, text=True, timeout=60, cwd=cwd
    )
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def lines(p):
    return [json.loads(line) for line in p.stdout.splitlines()]


def rows(p):
    """The rows of a --json listing: the lines before its closing result event."""
    *out, result = lines(p)
    assert result["event"] == "result" and result["count"] == len(out), result
    return out


@pytest.fixture
def served(tmp_path, store_target):  # the operator's commands on SQLite and on PostgreSQL
    db = store_target
    out = run("init", "--dir", str(tmp_path / "operator"), group="keys").stdout
    host_pub = bytes.fromhex(out.split()[-1])  # "the sync key's public key ...: HEX"
    key = str(tmp_path / "operator" / "sync.key")
    assert OpenSSLSigner(pki.load_key(key)).public_key == host_pub
    assert (tmp_path / "operator" / "sync.pub").read_text().strip() == host_pub.hex()
    dev = OpenSSLSigner(generate_key())
    assert (
        "registered device 31"
        in run(
            "devices",
            "add",
            "31",
            "--pubkey",
            dev.public_key.hex(),
            "--label",
            "Central 3",
            "--db",
            db,
        ).stdout
    )
    srv = subprocess.Popen(  # its sync key by default: operator/sync.key
        faregate_argv("backoffice", "serve", "--db", db, "--port", "0"),
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    line = srv.stdout.readline()
    assert "listening on 127.0.0.1:" in line, line
    port = int(line.split("127.0.0.1:")[1].split()[0])
    yield db, port, dev, host_pub, tmp_path
    srv.send_signal(signal.SIGINT)
    srv.wait(10)


def test_operator_workflow(served):
    db, port, dev, host_pub, tmp = served
    os.makedirs(tmp / "gate")
    j = Journal(str(tmp / "gate"), 31)
    taps = [(NOW, 1, records.DIR_ENTRY), (NOW + 600, 8, records.DIR_EXIT), (NOW + 900, 2, 1)]
    for n, (t, station, direction) in enumerate(taps):
        j.append(
            records.Record(records.KIND_PASSAGE, 0, 0, 0, t, 1, direction, station, 4242, 1, n)
        )
    client = SyncClient(j, dev, OpenSSLVerifier(), host_pub, ManualClock(NOW + 1000))
    assert sync_once(client, "127.0.0.1", port) == 3
    j.close()

    [d] = rows(run("devices", "--db", db, "--json"))
    assert (d["device_id"], d["label"], d["high_seq"]) == (31, "Central 3", 3)
    assert "Central 3" in run("devices", "--db", db).stdout
    [q] = rows(run("queues", "--db", db, "--json"))
    assert q["stored_up_to"] == 3 and q["waiting_on_gate"] == 0 and q["gaps"] == 0
    [a] = rows(run("devices", "--auth-log", "--db", db, "--json"))
    assert a["outcome"] == "ok" and a["device_id"] == 31
    js = rows(run("journeys", "--db", db, "--json", "--as-of", str(NOW + 86400)))
    assert [(x["status"], x["fare"]) for x in js] == [("complete", 400), ("missing_exit", 600)]
    [c] = rows(run("charges", "--db", db, "--json", "--as-of", str(NOW + 86400)))
    assert (c["account_id"], c["journeys"], c["charged"]) == (4242, 2, 1000)
    table = run("charges", "--db", db, "--as-of", str(NOW + 86400)).stdout
    assert "10.00" in table and "2026-01-01" in table
    assert run("anomalies", "--db", db).stdout.strip() == "no anomalies"

    # a stolen gate: revoked, its next session is refused and logged; its records stay
    assert "revoked device 31" in run("devices", "revoke", "31", "--db", db).stdout
    j = Journal(str(tmp / "gate"), 31)
    client = SyncClient(j, dev, OpenSSLVerifier(), host_pub, ManualClock(NOW + 2000))
    with pytest.raises(SyncError) as e:
        sync_once(client, "127.0.0.1", port)
    assert e.value.reason == "unknown_device" and "revoked" in str(e.value)
    last = rows(run("devices", "--auth-log", "--db", db, "--json"))[-1]
    assert last["outcome"] == "refused unknown_device" and last["detail"] == "device 31 is revoked"
    [d] = rows(run("devices", "--db", db, "--json"))
    assert d["revoked"] is not None and d["high_seq"] == 3
    p = run("devices", "revoke", "32", "--db", db, ok=False)
    assert p.returncode == 2 and "not registered" in p.stderr
    # back from the police and re-provisioned: its new key lifts the revocation
    assert "re-keyed device 31" in run("devices", "add", "31", "--pubkey", dev.public_key.hex(),
                                       "--db", db).stdout  # fmt: skip
    client = SyncClient(j, dev, OpenSSLVerifier(), host_pub, ManualClock(NOW + 3000))
    assert sync_once(client, "127.0.0.1", port) == 0
    j.close()

    blob = tmp / "fares.bin"
    blob.write_bytes(b"fare table v2")
    assert (
        "published fare_table version 2"
        in run("publish", "fare_table", str(blob), "--version", "2", "--db", db).stdout
    )


def test_errors_are_one_line_with_a_remedy(tmp_path):
    p = run("queues", "--db", "postgresql://bo:secret@/nodb?host=%s" % tmp_path, ok=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "cannot open the back office database" in p.stderr and "secret" not in p.stderr
    p = run("queues", "--db", str(tmp_path / "none.sqlite"), ok=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "fix:" in p.stderr
    p = run("serve", "--db", str(tmp_path / "x.sqlite"), ok=False, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "operator/sync.key not found" in p.stderr and "faregate keys init" in p.stderr
    assert run("sync-key", "--out", str(tmp_path / "k.pem"), ok=False).returncode == 2  # gone
    p = run("devices", "add", "5", "--pubkey", "zz", "--db", str(tmp_path / "x.sqlite"), ok=False)
    assert p.returncode == 2 and "hex" in p.stderr
    p = run("devices", "add", "5", "--pubkey", "0102", "--db", str(tmp_path / "x.sqlite"), ok=False)
    assert p.returncode == 2 and "SEC1" in p.stderr


def test_keys_init_adds_the_sync_key_to_an_older_operator_directory(tmp_path):
    """One way to make every operator key: a directory made before the sync key was one of
    them gets it from `keys init`, keeping the others; `keys show` lists it."""
    op = tmp_path / "op"
    run("init", "--dir", str(op), group="keys")
    root_pub = (op / "root.pub").read_text()
    (op / "sync.key").unlink()
    (op / "sync.pub").unlink()
    rows = [r for r in lines(run("init", "--dir", str(op), "--json", group="keys"))]
    assert rows[-1]["event"] == "result" and rows[-1]["command"] == "keys init"
    rows = [r for r in rows if r["event"] == "key"]
    assert [(r["name"], r["action"]) for r in rows] == [
        ("root", "kept"),
        ("issuer", "kept"),
        ("release", "kept"),
        ("sync", "created"),
        ("ca", "kept"),
    ]
    assert (op / "root.pub").read_text() == root_pub
    shown = {
        r["name"]: r
        for r in lines(run("show", "--dir", str(op), "--json", group="keys"))
        if r["event"] == "key"
    }
    assert shown["sync"]["public_key"] == (op / "sync.pub").read_text().strip()
    assert shown["sync"]["action"] == "present"


def test_serve_with_encrypted_operator_keys(tmp_path):
    """With FAREGATE_PASSPHRASE, keys init and keys tls write encrypted keys; serve opens the
    sync key and the TLS key with it (never a passphrase prompt), and says what is missing."""
    env = dict(os.environ, FAREGATE_PASSPHRASE="correct horse")
    keys = ["--dir", str(tmp_path / "operator")]
    for args in (["init"], ["tls", "--name", "backoffice", "--server", "--out", "bo"]):
        p = subprocess.run(faregate_argv("keys", *args, *keys), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "bo.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")
    tls = ["--tls-cert", "bo.pem", "--tls-key", "bo.key", "--tls-ca", "operator/ca.pem"]
    serve = faregate_argv("backoffice", "serve", "--port", "0", *tls)
    srv = subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "(TLS), storing into backoffice.sqlite" in srv.stdout.readline()
    finally:
        srv.send_signal(signal.SIGINT)
        srv.wait(10)
    env.pop("FAREGATE_PASSPHRASE")
    p = subprocess.run(serve, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    assert p.returncode == 2 and "operator/sync.key is encrypted" in p.stderr, p.stderr
    run("init", "--dir", str(tmp_path / "plain"), group="keys")  # a sync key in clear
    p = subprocess.run(
        [*serve, "--sync-key", "plain/sync.key"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 2 and "TLS files" in p.stderr and "FAREGATE_PASSPHRASE" in p.stderr
