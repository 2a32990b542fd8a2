"""The technician's day on site, against `faregate sim device` over real ptys: `faregate
ports`, `--baud`, the reset confirmation typed at a real terminal (a pty as the command's
controlling terminal), Ctrl-C's exit code, ISO 8601 times, whether key files are encrypted,
and the one `result` event every --json stream ends with.
"""

import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from provisioning import ports
from provisioning.cli import timearg
from tests.conftest import faregate_argv
from tests.simgate import Field

RESULT_KEYS = {"event", "ok", "command", "exit_code", "message"}


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    base = tmp_path_factory.mktemp("operator")

    def cli(*args):
        subprocess.run(faregate_argv(*args), check=True, capture_output=True, cwd=str(base))

    cli("keys", "init", "--dir", "op", "--operator", "Metro Test")
    cli("keys", "technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "alice")
    return str(base / "op"), {"alice": str(base / "alice")}


@pytest.fixture
def field(tmp_path, operator):
    if ports.usb_ports():
        pytest.skip("a USB serial adapter is plugged in")
    f = Field(tmp_path, *operator)
    yield f
    f.close()


def _result(events):
    last = events[-1]
    assert last["event"] == "result" and RESULT_KEYS <= set(last), last
    assert [e for e in events if e["event"] == "result"] == [last]  # exactly one, the last
    assert isinstance(last["ok"], bool) and isinstance(last["exit_code"], int)
    return last


def test_ports_lists_each_gate_with_its_device_id(field):
    p = field.run("ports")
    assert p.returncode == 3 and "no gate found" in p.stdout, p.stdout + p.stderr
    a = field.gate("gate-a", device_id=1017)
    b = field.gate("gate-b", device_id=1018)
    p = field.run("ports")
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()
    assert rows[0].split() == ["gate", "state", "model", "firmware", "name", "port"]
    assert rows[1].split() == ["1017", "blank", "faregate-sim", "0.1.0", "-", a.link]
    assert rows[2].split() == ["1018", "blank", "faregate-sim", "0.1.0", "-", b.link]
    assert rows[-1] == "2 gate(s) on 2 port(s)"
    p = field.run("ports", "--json")
    events = [json.loads(line) for line in p.stdout.splitlines()]
    found = {e["port"]: e for e in events if e["event"] == "port"}
    assert found[a.link]["device_id"] == 1017 and found[b.link]["device_id"] == 1018
    assert found[a.link]["state"] == "blank" and found[a.link]["error"] is None
    last = _result(events)
    assert (last["command"], last["ok"], last["gates"]) == ("ports", True, 2)
    assert last["device_ids"] == [1017, 1018]
    # HELLO changed nothing: each gate's service log is still empty
    assert not a.log_events("session_open", 1, timeout=0.5)
    # and the several-gates error says which gate is on each path
    p = field.run("device", "identify")
    assert p.returncode == 3
    assert "%s: gate 1017 (blank)" % a.link in p.stderr, p.stderr
    assert "%s: gate 1018 (blank)" % b.link in p.stderr and "faregate ports" in p.stderr


def test_baud_is_an_option_of_every_command_that_opens_a_port(field):
    gate = field.gate()
    p = field.run("device", "identify", "--port", gate.port, "--baud", "9600")
    assert p.returncode == 0 and p.stdout.startswith("gate 1017: blank"), p.stderr
    p = field.run("ports", "--baud", "57600")
    assert p.returncode == 0 and "1017" in p.stdout
    p = field.run("device", "identify", "--baud", "fast")
    assert p.returncode == 2 and "--baud" in p.stderr
    for cmd in (["provision"], ["flash"], ["device", "reset"], ["device", "status"], ["ports"]):
        h = field.run(*cmd, "--help")
        assert "--baud" in h.stdout and "130 interrupted (Ctrl-C)" in h.stdout, cmd


def _provisioned(field):
    gate = field.gate()
    p = field.run("provision", "--site", field.site, "--port", gate.port, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    last = _result(field.events(p))
    assert (last["command"], last["ok"], last["state"]) == ("provision", True, "in_service")
    return gate


def _on_a_terminal(field, argv, answer, timeout=60):
    """Run faregate with a pty as its terminal (stdin, stdout, stderr); type `answer` once it
    asks. Returns (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        faregate_argv(*argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=field.env,
        cwd=str(field.tmp),
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    typed = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command closed the terminal, it is done
                break
            if not chunk:
                break
            out += chunk
        if not typed and b"to reset it: " in out:
            os.write(master, answer.encode() + b"\n")
            typed = True
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(10)
    os.close(master)
    return code, out.decode(errors="replace").replace("\r\n", "\n")


def test_reset_of_an_in_service_gate_asks_for_its_device_id(field):
    gate = _provisioned(field)
    argv = ["device", "reset", "--port", gate.port]
    # no terminal (a script): --yes or nothing
    p = field.run(*argv, "--json")
    assert p.returncode == 2 and "no terminal to confirm on" in p.stderr, p.stderr
    assert "gate 1017 on %s is in service, named A1" % gate.port in p.stderr
    last = _result(field.events(p))
    assert (last["command"], last["ok"], last["exit_code"]) == ("device reset", False, 2)
    # at a terminal: a wrong answer changes nothing
    code, out = _on_a_terminal(field, argv, "1018")
    assert code == 1, out
    assert "Type its device id (1017) to reset it: " in out
    assert "reset of gate 1017 not confirmed (typed '1018'): nothing changed" in out
    p = field.run("device", "identify", "--port", gate.port)
    assert "in_service" in p.stdout, p.stdout
    # the right one resets it
    code, out = _on_a_terminal(field, argv, "1017")
    assert code == 0, out
    assert "gate 1017 reset to blank" in out
    p = field.run("device", "identify", "--port", gate.port)
    assert p.stdout.startswith("gate 1017: blank")


def test_ctrl_c_exits_130_and_ends_the_json_stream(field):
    """Ctrl-C while waiting for a gate that does not answer (a pty nobody serves)."""
    master, slave = pty.openpty()
    silent = os.ttyname(slave)
    try:
        proc = subprocess.Popen(
            faregate_argv("device", "identify", "--port", silent, "--timeout", "30", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=field.env,
            text=True,
            # a shell that starts jobs in the background (CI) leaves SIGINT ignored, and Python
            # then keeps it ignored: give the command the terminal's default, as a user has it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 130, (out, err)
    assert "faregate: interrupted" in err
    last = _result([json.loads(line) for line in out.splitlines()])
    assert (last["ok"], last["exit_code"], last["command"]) == (False, 130, "device identify")


def test_times_are_iso_8601_or_unix_seconds(field):
    assert timearg.parse_time("1767254400") == 1767254400
    assert timearg.parse_time("2026-01-01T08:00:00Z") == 1767254400
    assert timearg.parse_time("2026-01-01T09:00:00+01:00") == 1767254400
    assert timearg.parse_time("2026-01-01 08:00") == 1767254400
    gate = _provisioned(field)
    # months from the gate's time: beyond clock.set_bound_s, so only with the root's signature
    p = field.run("device", "set-time", "--port", gate.port, "--time", "1772352000", "--json")
    assert p.returncode == 1 and "svc_clock_bound" in _result(field.events(p))["message"]
    root = os.path.join(field.operator, "root.key")
    for given in ("2026-03-01T08:00:00Z", "1772352000", "2026-03-01T09:00:00+01:00"):
        p = field.run(
            "device", "set-time", "--port", gate.port, "--time", given, "--root-key", root, "--json"
        )
        assert p.returncode == 0, p.stderr
        assert _result(field.events(p))["root"] is True
        # the gate's clock after the set: the same instant, give or take the second it ticked
        assert 0 <= _result(field.events(p))["time"] - 1772352000 <= 2
    p = field.run("backoffice", "charges", "--db", str(field.tmp / "bo.sqlite"), "--as-of", "noon")
    assert p.returncode == 2 and "is not a UTC time" in p.stderr, p.stderr


def test_key_files_say_whether_they_are_encrypted(tmp_path):
    def keys(*args, passphrase=None):
        env = dict(os.environ)
        env.pop("FAREGATE_PASSPHRASE", None)
        if passphrase:
            env["FAREGATE_PASSPHRASE"] = passphrase
        return subprocess.run(
            faregate_argv("keys", *args), env=env, capture_output=True, text=True, cwd=tmp_path
        )

    p = keys("init", "--dir", "plain")
    assert p.returncode == 0
    assert p.stdout.count("NOT encrypted") == 4, p.stdout
    assert "warning: 4 operator key file(s) not encrypted (root.key, issuer.key" in p.stderr
    p = keys("show", "--dir", "plain", "--json")
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert {e["name"]: e["encrypted"] for e in events if e["event"] == "key"} == {
        "root": False,
        "issuer": False,
        "release": False,
        "sync": False,
    }
    (warning,) = [e for e in events if e["event"] == "warning"]
    assert len(warning["files"]) == 4
    last = _result(events)
    assert (last["command"], last["unencrypted"], last["keys"]) == ("keys show", 4, 4)
    p = keys("init", "--dir", "sealed", passphrase="correct horse")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert p.stdout.count("  encrypted  ") == 4 and "NOT" not in p.stdout, p.stdout
    p = keys("show", "--dir", "sealed")
    assert p.returncode == 0 and p.stdout.count("  encrypted  ") == 4 and not p.stderr
