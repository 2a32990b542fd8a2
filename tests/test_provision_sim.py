"""The technician's tools against `faregate sim device`, over real ptys through pyserial.

Happy path, idempotent re-run, port auto-detection, wrong port, a gate not answering, an
unplug mid-flow then a re-run, a bad site file, unauthenticated and replayed commands, and the
`faregate device` commands. Every failure must be one line with a remedy and its exit code.
"""

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier
from host_sim.hardware.devices import PtyQREngine
from protocol import certs, reasons, records, service
from provisioning import ports
from provisioning.console import DeviceRefused, ServiceClient
from provisioning.operator_keys import Credential, read_pub
from provisioning.transport import Transport
from tests.conftest import faregate_argv
from tests.simgate import Field


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    base = tmp_path_factory.mktemp("operator")

    def cli(*args):
        subprocess.run(faregate_argv(*args), check=True, capture_output=True, cwd=str(base))

    cli("keys", "init", "--dir", "op", "--operator", "Metro Test")
    cli("keys", "technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "alice")
    cli(
        "keys",
        "technician",
        "--dir",
        "op",
        "--name",
        "bob",
        "--id",
        "8",
        "--role",
        "maintain",
        "--out",
        "bob",
    )
    cli("keys", "init", "--dir", "other")
    cli("keys", "technician", "--dir", "other", "--name", "eve", "--id", "7", "--out", "eve")
    return str(base / "op"), {n: str(base / n) for n in ("alice", "bob", "eve")}


@pytest.fixture
def field(tmp_path, operator):
    f = Field(tmp_path, *operator)
    yield f
    f.close()


def _one_error_line(proc, code, *words):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("faregate: error: ") and " (fix: " in line, line
    for w in words:
        assert w in line, (w, line)
    return line


def test_happy_path_blank_to_in_service_then_idempotent_rerun(field):
    gate = field.gate()
    # no --port: the one simulated gate in the simulator directory is found
    if ports.usb_ports():
        pytest.skip("a USB serial adapter is plugged in; auto-detection would see it")
    p = field.run("provision", "--site", field.site)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith("[ 1/12] connect      gate 1017 on %s" % gate.link), out[0]
    assert "blank" in out[0]
    assert "claimed for operator root" in out[1]
    assert out[-1] == "gate 1017 (A1) is in service."
    # this site file has no [sync]: provision says so instead of waiting for a first sync
    assert out[-2] == (
        "first sync: none: no sync.host_key in its config (the site file's [sync] table sets it)"
    )
    assert not p.stderr

    # a re-run changes nothing but the clock and the self-test, and says so (JSON events)
    p = field.run("provision", "--site", field.site, "--port", gate.port, "--json")
    assert p.returncode == 0, p.stderr
    ev = field.events(p)
    steps = {e["step"]: e["status"] for e in ev if e["event"] == "step"}
    assert steps == {
        "connect": "done",
        "session": "unchanged",
        "clock": "unchanged",
        "device_key": "unchanged",
        "certificate": "unchanged",
        "register": "skipped",
        "config": "unchanged",
        "trust_list": "unchanged",
        "deny_list": "unchanged",
        "fare_table": "skipped",
        "selftest": "done",
        "verify": "done",
    }
    assert [e["name"] for e in ev if e["event"] == "check"] == [
        "storage",
        "clock",
        "crypto",
        "scanner",
        "barrier",
        "sensors",
    ]
    assert ev[-1]["event"] == "result" and ev[-1]["ok"] and ev[-1]["state"] == "in_service"
    assert ev[-1]["first_sync"] == {"status": "blocked", "reason": "no sync.host_key in its config"}

    # the certificate kept for the back office's registry verifies against the root
    raw = open(os.path.join(field.operator, "devices", "1017.cert"), "rb").read()
    cert = certs.parse(raw)
    root = read_pub(os.path.join(field.operator, "root.pub"))
    assert certs.verify(cert, root, OpenSSLVerifier()) and cert.subject_id == 1017
    p = field.run("device", "status", "--port", gate.port, "--json")
    st = json.loads(p.stdout.splitlines()[-1])
    assert st["state"] == "in_service" and st["missing"] == []
    assert st["device_key"] == cert.public_key.hex()
    assert st["lists"]["deny_list"] == {"bytes": field.deny_bytes}
    # the private key is in the gate's state and never crossed the wire: it is not the
    # public key's partner on any file of the laptop's side
    secret = open(field.tmp / "gate" / "device.key", "rb").read()
    assert len(secret) == 32
    for root_dir, _dirs, files in os.walk(field.operator):
        for f in files:
            assert secret not in open(os.path.join(root_dir, f), "rb").read()


def test_autodetect_refuses_to_guess(field):
    if ports.usb_ports():
        pytest.skip("a USB serial adapter is plugged in")
    p = field.run("device", "identify")
    _one_error_line(p, 3, "no gate found", "plug in the service cable")
    a = field.gate("gate-a", device_id=1017)
    b = field.gate("gate-b", device_id=1018)
    p = field.run("device", "identify", "--json")
    line = _one_error_line(p, 3, "2 possible gates", a.link, b.link, "pass --port")
    assert "not guessing" in line
    *_, err, result = field.events(p)
    assert err["event"] == "error" and err["exit_code"] == 3 and err["remedy"]
    assert result["event"] == "result" and not result["ok"] and result["exit_code"] == 3
    assert result["command"] == "device identify"
    # the error names the gate on each path (each asked with HELLO, as `faregate ports` does)
    assert "%s: gate 1017 (blank)" % a.link in line and "%s: gate 1018 (blank)" % b.link in line
    p = field.run("device", "identify", "--port", b.link)
    assert p.returncode == 0 and p.stdout.startswith("gate 1018: blank"), p.stdout
    # a gate that was unplugged (its simulator gone) is no longer a candidate
    a.proc.kill()
    a.wait_exit()
    p = field.run("device", "identify")
    assert p.returncode == 0 and p.stdout.startswith("gate 1018: blank"), p.stderr
    assert not os.path.exists(a.link)


def test_wrong_port(field, tmp_path):
    p = field.run("provision", "--site", field.site, "--port", "/dev/ttyNOPE9")
    _one_error_line(p, 3, "port /dev/ttyNOPE9 does not exist")
    p = field.run("device", "identify", "--port", field.site)
    _one_error_line(p, 3, "is not a serial port")
    # the gate's QR scanner port instead of its service port: it talks, but not our language
    scanner = PtyQREngine()
    stop = threading.Event()

    def riders():  # codes keep arriving while the technician's tool listens
        while not stop.wait(0.05):
            scanner.show("FG1:NOT-A-FRAME")

    t = threading.Thread(target=riders)
    t.start()
    try:
        p = field.run("device", "identify", "--port", scanner.path, "--timeout", "0.3")
        _one_error_line(p, 3, "no faregate service console on", "not faregate frames")
    finally:
        stop.set()
        t.join()
        scanner.close()


def test_gate_not_answering(field):
    gate = field.gate(faults=["mute"])
    p = field.run(
        "provision", "--site", field.site, "--port", gate.port, "--timeout", "0.3", "--retries", "1"
    )
    line = _one_error_line(p, 3, "is not answering (2 tries, 0.3 s each)")
    assert "SERVICE port" in line
    assert "in_service" not in p.stdout


@pytest.mark.parametrize("unplug_after", [3, 6, 20])
def test_unplug_mid_flow_then_rerun_continues(field, unplug_after):
    """The cable is pulled right after the gate ran command N, before it answered:
    3 = generating the key, 6 = installing the certificate, 20 = the 6th chunk of the deny
    list. The re-run (gate plugged in again: same state) finishes and repeats nothing."""
    gate = field.gate(faults=["unplug-after=%d" % unplug_after])
    p = field.run("provision", "--site", field.site, "--port", gate.port, "--json")
    _one_error_line(p, 3, "lost the gate on %s" % gate.port, "run the same command again")
    assert gate.wait_exit() == 0
    gate = field.gate()  # plugged in again
    p = field.run("provision", "--site", field.site, "--port", gate.port, "--json")
    assert p.returncode == 0, p.stderr
    steps = {e["step"]: e for e in field.events(p) if e["event"] == "step"}
    assert steps["session"]["status"] == "unchanged"  # claimed in the first run
    if unplug_after == 3:
        assert steps["device_key"]["status"] == "unchanged"  # the key made before the unplug
    if unplug_after == 6:
        assert steps["certificate"]["status"] == "unchanged"
    if unplug_after == 20:
        assert steps["deny_list"]["message"].startswith("resumed deny.bin"), steps
    p = field.run("device", "status", "--port", gate.port, "--json")
    assert json.loads(p.stdout.splitlines()[-1])["state"] == "in_service"


def test_bad_site_file_stops_before_touching_the_gate(field):
    gate = field.gate()
    text = open(field.site).read().replace('direction = "entry"', 'direction = "sideways"')
    bad = field.write_site(text, name="bad.toml")
    p = field.run("provision", "--site", bad, "--port", gate.port)
    line = _one_error_line(p, 2, "bad.toml:21: gate[1].direction", "'sideways' is not one of")
    assert line.endswith("(fix: use one of: entry, exit, both)")
    text = open(field.site).read().replace("id = 12", "id = 12\nid = 13")
    p = field.run("provision", "--site", field.write_site(text, name="dup.toml"), "--json")
    _one_error_line(p, 2, "dup.toml:7: syntax")
    assert field.events(p)[-1]["exit_code"] == 2
    # two bad values: both named, each on its own line, the last one fatal
    text = open(field.site).read().replace("lane = 1", "lane = -1").replace("scope = 1", "scop=1")
    p = field.run("provision", "--site", field.write_site(text, name="two.toml"))
    assert p.returncode == 2
    errs = p.stderr.splitlines()
    assert len(errs) == 3, errs  # scope missing, scop unknown, lane
    assert errs[0].startswith("faregate: error: ") and "two.toml:5: station.scope" in errs[0]
    assert "two.toml:9: station.scop: unknown key" in errs[1]
    assert "(and 2 more above)" in errs[-1]
    assert not [e for e in gate.lines() if e.get("event") == "log"]  # the gate saw nothing


def test_unauthenticated_and_replayed_commands_are_refused(field):
    gate = field.gate()
    assert field.run("provision", "--site", field.site, "--port", gate.port).returncode == 0
    # another operator's credential
    p = field.run("device", "status", "--port", gate.port, cred="eve")
    _one_error_line(p, 4, "belongs to operator root", "only that operator can reset it")
    # a maintain-only credential may read but not reset
    assert field.run("device", "status", "--port", gate.port, cred="bob").returncode == 0
    p = field.run("device", "reset", "--port", gate.port, "--yes", cred="bob")
    _one_error_line(p, 4, "svc_forbidden", "use one with role full")

    cred = Credential(field.creds["alice"])
    with Transport(gate.port, timeout=1) as link:
        # a command with no session at all
        fake = service.request_head(1, service.RESET, service.reset_body(False, bytes(32)))
        client = ServiceClient(link)
        client.hello()
        fr = link.exchange(service.REQUEST, fake + bytes(64), client._want(1))
        assert service.parse_response(fr.payload)[2] == 100  # svc_unauthenticated
        # a proper session; record one request, then replay it
        client.authenticate(cred.signer, cred.raw, cred.anchor, claim=False)
        now = int(time.time())
        client.set_time(now)
        head = service.request_head(client.seq, service.SET_TIME, now.to_bytes(4, "big"))
        msg = service.request_signing_input(client.ident.raw.device_nonce, head)
        recorded = head + cred.signer.sign(msg)
        client.status()
        fr = link.exchange(service.REQUEST, recorded, client._want(1))
        assert service.parse_response(fr.payload)[2] == 101  # svc_replayed
        # the same recorded request in a new session does not verify
        client.hello()
        client.authenticate(cred.signer, cred.raw, cred.anchor, claim=False)
        fr = link.exchange(service.REQUEST, recorded, client._want(1))
        assert service.parse_response(fr.payload)[2] == 102  # svc_bad_signature
        with pytest.raises(DeviceRefused) as e:
            client.call(service.PUT_BLOB, b"\x09" + bytes(40))
        assert e.value.reason == "svc_bad_request" and not e.value.is_auth
    refused = gate.log_events("refused", 5)
    assert [e["reason"] for e in refused] == [
        "svc_forbidden",
        "svc_unauthenticated",
        "svc_replayed",
        "svc_bad_signature",
        "svc_bad_request",
    ]
    # revoking technician 7 in the site file and re-provisioning locks alice out afterwards
    revoked = field.write_site(revoked="[7]", name="revoked.toml")
    assert field.run("provision", "--site", revoked, "--port", gate.port).returncode == 0
    p = field.run("device", "status", "--port", gate.port)
    _one_error_line(p, 4, "svc_revoked", "ask the operator for a new one")


def test_device_commands(field, tmp_path):
    gate = field.gate(passages=70, faults=["barrier-jam"])
    # a blank gate: commands that need a session say to provision first
    p = field.run("device", "status", "--port", gate.port)
    _one_error_line(p, 1, "is blank", "faregate provision --site")
    p = field.run("provision", "--site", field.site, "--port", gate.port)
    _one_error_line(p, 1, "self-test failed: barrier: barrier did not open")
    assert "barrier  FAIL" in p.stdout
    p = field.run("device", "selftest", "--port", gate.port, "--json")
    assert p.returncode == 1
    checks = {e["name"]: e["ok"] for e in field.events(p) if e["event"] == "check"}
    assert checks == {
        "storage": True,
        "clock": True,
        "crypto": True,
        "scanner": True,
        "barrier": False,
        "sensors": True,
    }
    *_, err, result = field.events(p)  # the error, then the one closing result
    assert err["event"] == "error" and result["event"] == "result" and not result["ok"]
    assert result["command"] == "device selftest" and result["exit_code"] == 1
    assert [c["name"] for c in result["checks"] if not c["ok"]] == ["barrier"]
    behind = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
    p = field.run("device", "set-time", "--port", gate.port, "--time", behind)
    _one_error_line(p, 1, "svc_clock_bound", "--root-key")
    root = os.path.join(field.operator, "root.key")
    p = field.run("device", "set-time", "--port", gate.port, "--time", behind, "--root-key", root)
    shown = behind.replace("T", " ").replace("Z", " UTC")
    assert p.returncode == 0 and "clock set to %s" % shown in p.stdout, p.stderr
    assert "signed by the operator root" in p.stdout
    p = field.run("device", "set-time", "--port", gate.port, "--time", "yesterday")
    _one_error_line(p, 2, "not a UTC time")
    p = field.run("device", "status", "--port", gate.port)
    assert p.returncode == 0
    assert "missing:       selftest" in p.stdout and "unsynced:      72 passages" in p.stdout
    p = field.run("device", "logs", "--port", gate.port, "--json")
    evs = [e["ev"] for e in field.events(p) if e["event"] == "log"]
    assert evs[:2] == ["claimed", "session_open"] and "set_time" in evs and "installed" in evs

    # reset: with no terminal to confirm on, only with --yes; nothing sent without it
    p = field.run("device", "reset", "--port", gate.port)
    _one_error_line(
        p, 2, "gate 1017 on %s is claimed, named A1" % gate.port, "no terminal", "--yes"
    )
    # refused while 72 records are unsynced (70 passages, the two clock events), unless exported
    p = field.run("device", "reset", "--port", gate.port, "--yes")
    _one_error_line(p, 1, "svc_unsynced", "72 unsynced passages", "--export FILE --force")
    p = field.run("device", "reset", "--port", gate.port, "--force")
    _one_error_line(p, 2, "--force needs --export FILE")
    export = str(tmp_path / "unsynced.bin")
    p = field.run("device", "reset", "--port", gate.port, "--export", export, "--force", "--yes")
    assert p.returncode == 0, p.stderr
    assert "exported 72 unsynced passages" in p.stdout
    assert "72 exported passages dropped" in p.stdout
    data = open(export, "rb").read()
    recs = [records.decode(r) for r in records.split(data)]
    assert [r.seq for r in recs] == list(range(1, 73)) and {r.device_id for r in recs} == {1017}
    assert [reasons.by_number(r.reason) for r in recs[70:]] == ["svc_clock_bound", "clock_set"]
    assert hashlib.sha256(data).hexdigest()[:16] in p.stdout
    p = field.run("device", "reset", "--port", gate.port, "--export", export, "--force")
    _one_error_line(p, 2, "already exists")
    p = field.run("device", "identify", "--port", gate.port)
    assert p.stdout.startswith("gate 1017: blank")


def test_keys_cli_is_idempotent_and_guards_its_inputs(field, tmp_path):
    p = field.run("keys", "init", "--dir", field.operator)
    assert p.returncode == 0 and p.stdout.count("kept") == 5 and "created" not in p.stdout
    p = field.run("keys", "show", "--dir", field.operator, "--json")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["name"] for r in rows if r["event"] == "key"] == ["root", "issuer", "release", "sync"]
    assert rows[-1]["event"] == "result" and rows[-1]["command"] == "keys show"
    p = field.run(
        "keys",
        "technician",
        "--dir",
        str(tmp_path / "none"),
        "--name",
        "x",
        "--id",
        "1",
        "--out",
        str(tmp_path / "x"),
    )
    _one_error_line(p, 2, "root.key not found")
    p = field.run(
        "keys",
        "technician",
        "--dir",
        field.operator,
        "--name",
        "a" * 17,
        "--id",
        "1",
        "--out",
        str(tmp_path / "x"),
    )
    _one_error_line(p, 2, "--name is over 16 bytes")
    p = field.run(
        "keys",
        "tls",
        "--dir",
        field.operator,
        "--name",
        "backoffice",
        "--server",
        "--out",
        str(tmp_path / "bo"),
    )
    assert p.returncode == 0 and os.path.exists(str(tmp_path / "bo.pem"))
    # a missing credential directory is a usage error naming the fix
    p = field.run("device", "status", "--port", "/dev/null", "--cred", str(tmp_path / "nobody"))
    _one_error_line(p, 2, "credential directory", "faregate keys technician")


def test_the_first_sync_line_says_where_it_went_or_why_it_failed():
    """provision's last word on sync, from the gate's status (firmware/compose/app.py
    Syncer.state): the session that went well, or the failure after it, and as values."""
    from provisioning.cli.provision import _first_sync_line

    base = {"host": "bo.example:7700", "blocked": "", "sessions": 1, "failures": 0,
            "busy": False, "pending": 3, "next_in_s": 60, "last_ok": None, "last": None,
            "last_error": None}  # fmt: skip
    failed = dict(
        base,
        failures=1,
        next_in_s=5,
        last_error={"time": 1_767_254_400, "reason": "connect", "message": "refused"},
    )
    line, values = _first_sync_line(failed)
    assert line == "FAILED (connect): refused; the gate tries again in 5 s"
    assert values == {
        "status": "failed",
        "host": "bo.example:7700",
        "time": "2026-01-01T08:00:00Z",
        "reason": "connect",
        "message": "refused",
    }
    refused = [["trust_list", 2, "x"]]
    last = {"time": 1_767_254_460, "acked": 12, "installed": [], "refused": refused}
    ok = dict(failed, last_ok=1_767_254_460, last=last)
    line, values = _first_sync_line(ok)
    assert line == (
        "bo.example:7700 at 2026-01-01 08:01:00 UTC, 12 records acknowledged, 3 waiting; "
        "refused trust_list v2 (x)"
    )
    assert values["status"] == "ok" and values["acknowledged"] == 12
    none = _first_sync_line(dict(base, sessions=0))[1]
    assert none == {"status": "none", "host": "bo.example:7700"}
    assert _first_sync_line(None)[1] == {"status": "off"}
