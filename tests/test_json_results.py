"""Every `--json` stream ends with one `result` event of one shape (provisioning/cli/events.py).

Each subcommand that takes --json is run here, for success and for a failure where one is
cheap: every line of its standard output is a JSON object, the last one is the only `result`,
with `ok` (bool), `command` (the subcommand as typed), `exit_code` (the command's) and
`message` (str); a time field holds a number or an ISO 8601 UTC time, never a display string.
The last test checks that CHECKED lists every subcommand with --json (but those run on a
simulated gate by other tests).
"""

import datetime
import json
import os
import re
import subprocess
import time

import pytest

from provisioning.cli.main import build_parser, main
from tests.conftest import faregate_argv

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TIME_KEYS = re.compile(r"(^|_)(time|at|until|before|after|sync|seen)$")
T = "2026-01-01T08:00:00Z"
NOW_S = 1767254400
# every subcommand with --json that the tests below run (the last test keeps it complete)
CHECKED = {
    "keys init", "keys show", "keys technician", "keys tls",
    "wallet init", "wallet issue", "wallet mint", "wallet deny", "wallet rotate", "wallet trust",
    "wallet add-issuer",
    "decode", "image build", "image verify", "sim run", "sim device", "ports",
    "backoffice devices", "backoffice queues", "backoffice anomalies", "backoffice journeys",
    "backoffice charges", "backoffice publish", "backoffice refund", "backoffice adjust",
    "backoffice dispute", "backoffice audit", "backoffice import", "backoffice risk",
    "backoffice log", "settle statement", "settle verify", "settle reconcile",
    "keys root-init", "keys root-rotate", "keys root-sign", "keys root-show", "keys sign-config",
    "keys release", "keys bind", "backoffice plates",
}  # fmt: skip


def check(text: str, command: str, exit_code: int) -> list[dict]:
    """The stream's lines; asserts its shape and returns the lines before the result."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(o, dict) for o in lines), text
    results = [o for o in lines if o.get("event") == "result"]
    assert len(results) == 1 and lines[-1] is results[0], text
    r = results[0]
    assert isinstance(r["ok"], bool) and r["ok"] == (exit_code == 0), r
    assert r["command"] == command and r["exit_code"] == exit_code, r
    assert isinstance(r["message"], str) and r["message"], r
    if not r["ok"] and len(lines) > 1 and lines[-2].get("event") == "error":
        assert lines[-2]["exit_code"] == exit_code
    for o in lines:
        for k, v in o.items():
            if TIME_KEYS.search(k) and v is not None:
                assert isinstance(v, int) or ISO.match(v), (k, v)
    assert command in CHECKED
    return lines[:-1]


def run(capsys, command: str, *args: str, code: int = 0) -> list[dict]:
    """`faregate COMMAND ARGS --json` in this process; the lines before its result."""
    capsys.readouterr()
    got = main([*command.split(), *args, "--json"])
    out = capsys.readouterr().out
    assert got == code, out
    return check(out, command, code)


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAREGATE_PASSPHRASE", raising=False)
    return tmp_path


def test_keys(world, capsys):
    rows = run(capsys, "keys init", "--dir", "op")
    assert {r["name"] for r in rows if r["event"] == "key"} >= {"root", "sync"}
    run(capsys, "keys show", "--dir", "op")
    run(capsys, "keys show", "--dir", "nope", code=2)
    run(capsys, "keys technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "t")
    run(
        capsys,
        "keys tls",
        "--dir",
        "op",
        "--name",
        "bo",
        "--ip",
        "127.0.0.2",
        "--server",
        "--out",
        "b",
    )
    run(capsys, "keys tls", "--dir", "op", "--name", "bo", "--server", "--out", "bo")
    run(
        capsys,
        "keys tls",
        "--dir",
        "op",
        "--name",
        "g",
        "--ip",
        "1.2.3.4",
        "--client",
        "--out",
        "g",
        code=2,
    )


def test_root_commands(world, capsys):
    run(capsys, "keys init", "--dir", "op")
    run(capsys, "keys init", "--dir", "op2")
    sync = ["--sync-key", "op/sync.pub"]
    run(capsys, "keys root-init", "--dir", "op", "--count", "2", "--threshold", "2", *sync)
    run(capsys, "keys root-init", "--dir", "op", "--count", "2", "--threshold", "9", code=2)
    run(capsys, "keys root-show", "op/root-v1.meta")
    run(capsys, "keys root-show", "nope.meta", code=2)
    run(capsys, "keys root-init", "--dir", "op2", "--count", "1", "--threshold", "1", *sync)
    new = ["--root-key", "op2/root-1.pub"]
    rotate = ["--from", "op/root-v1.meta", *new, "--threshold", "1", "--out", "v2"]
    run(capsys, "keys root-rotate", "--dir", "op", *rotate)
    run(capsys, "keys root-sign", "v2", "--key", "op/root-1.key", "--key", "op/root-2.key")
    run(capsys, "keys root-sign", "v2", "--key", "nope.key", code=2)
    config = {"version": 1, "device_id": 1017, "name": "A1", "station": 12, "lane": 1}
    config.update(mode="metro", direction="entry", scope=1, validation={"window_s": 600})
    (world / "c.json").write_text(json.dumps(config))
    two = ["--key", "op/root-1.key", "--key", "op/root-2.key"]
    run(capsys, "keys sign-config", "c.json", "--security-version", "1", *two, "--out", "c.fgsc")
    run(capsys, "keys sign-config", "c.json", "--security-version", "0", *two, "--out", "x", code=2)
    release = ["--device-id", "1017", "--root-version", "1", *two, "--out", "r.fgrl"]
    run(capsys, "keys release", *release)
    (world / "gate").mkdir()
    (world / "gate" / "factory.json").write_text('{"device_id": 1017, "model": "t"}')
    run(capsys, "keys bind", "--state", "gate", "--root-meta", "op/root-v1.meta")
    run(capsys, "keys bind", "--state", "gate", "--root-meta", "op2/root-v1.meta", code=2)


def test_plates(world, capsys):
    from host_sim.backoffice.store import Store

    Store("bo.sqlite").close()
    run(capsys, "keys init", "--dir", "op")
    base = ["--db", "bo.sqlite"]
    run(capsys, "backoffice plates", "bind", "B AB 1234", "4711", *base)
    run(capsys, "backoffice plates", "publish", "--key", "op/root.key", *base)
    rows = run(capsys, "backoffice plates", "list", *base)
    assert any(r.get("account_id") == 4711 for r in rows), rows
    run(capsys, "backoffice plates", "bind", "only-one-arg", *base, code=2)


def test_wallet_decode_and_backoffice(world, capsys):
    w = ("--state", "demo", "--now", T)
    run(capsys, "wallet issue", *w, "--account", "42", code=2)  # no wallet yet
    run(capsys, "wallet init", *w)
    run(capsys, "wallet issue", *w, "--account", "42")
    codes = run(capsys, "wallet mint", *w, "--account", "42", "--count", "2", "--png", "png")
    assert [c["counter"] for c in codes] == [1, 2]
    run(capsys, "wallet deny", *w, "--account", "7")
    run(capsys, "wallet rotate", *w)
    run(capsys, "wallet trust", *w)
    run(capsys, "wallet add-issuer", *w, "--issuer-id", "9")
    run(capsys, "wallet add-issuer", *w, "--issuer-id", "9", code=2)  # taken
    files = run(capsys, "decode", codes[0]["png"], codes[1]["png"])
    assert [f["texts"] for f in files] == [[codes[0]["text"]], [codes[1]["text"]]]
    run(capsys, "decode", "missing.png", code=2)

    db = ("--db", "bo.sqlite")
    run(capsys, "backoffice queues", *db, code=2)  # no database yet
    pub = "02" + "11" * 32
    run(capsys, "backoffice devices", *db, "add", "101", "--pubkey", pub)
    [dev] = run(capsys, "backoffice devices", *db)
    assert dev["device_id"] == 101 and dev["last_seen"] is None
    assert run(capsys, "backoffice devices", *db, "--auth-log") == []
    [q] = run(capsys, "backoffice queues", *db)
    assert q["device_id"] == 101 and q["last_sync"] is None
    assert run(capsys, "backoffice anomalies", *db) == []
    assert run(capsys, "backoffice journeys", *db, "--as-of", T) == []
    assert run(capsys, "backoffice charges", *db, "--as-of", T) == []
    who = ("--operator", "ana", "--reason", "test")
    run(capsys, "backoffice refund", *db, "7", "2026-01-01", "--amount", "1", *who, code=2)
    run(capsys, "backoffice adjust", *db, "7", "2026-01-01", "--delta", "-1", *who, code=2)
    run(capsys, "backoffice dispute", *db, "open", "7", "2026-01-01", *who, code=2)
    assert run(capsys, "backoffice audit", *db) == []
    open("empty.bin", "wb").close()
    assert run(capsys, "backoffice import", *db, "empty.bin") == []
    trust = os.path.join("demo", "wallet", "trust-v3.bin")
    *warnings, gate = run(capsys, "backoffice publish", *db, "trust_list", trust, "--force")
    assert gate["event"] == "gate" and gate["device_id"] == 101
    assert warnings and all(w["event"] == "warning" for w in warnings)  # expired: --force
    run(capsys, "backoffice publish", *db, "deny_delta", trust, code=2)  # wrong kind
    assert run(capsys, "backoffice risk", "scan", *db) == []  # nothing to find
    assert run(capsys, "backoffice risk", "findings", *db) == []
    assert run(capsys, "backoffice risk", "entries", *db) == []
    run(capsys, "backoffice risk", "accept", "1", *db, "--operator", "ana", code=2)  # none
    run(capsys, "backoffice risk", "publish", *db, code=2)  # no --key
    run(capsys, "backoffice devices", *db, "revoke", "101")
    run(capsys, "backoffice devices", *db, "revoke", "102", code=2)


def test_log_and_settle(world, capsys):
    from provisioning.cli.kit import load_signer
    from tests.test_statements import CERTS, DAY, ROOT, World

    w = World(str(world / "bo.sqlite"))
    w.day_of_journeys()
    w.store.close()
    run(capsys, "keys init", "--dir", "op")
    db = ("--db", "bo.sqlite")
    run(capsys, "backoffice log", "head", *db, code=1)  # none signed yet
    run(capsys, "backoffice log", "sign", *db, "--key", "op/sync.key")
    [head] = run(capsys, "backoffice log", "heads", *db)
    assert head["tree_size"] == 12
    run(capsys, "backoffice log", "prove", "7", "3", *db)
    run(capsys, "backoffice log", "prove", "7", "99", *db, code=1)
    run(capsys, "backoffice log", "consistency", "5", *db)
    day = str(datetime.date(1970, 1, 1) + datetime.timedelta(days=DAY))
    with open("op/devices/7.cert", "wb") as f:  # as provisioning keeps gate 7's certificate
        f.write(CERTS[7])
    root = ("--root-key", ROOT.public_key.hex())
    out = ("--out", "st.json", "--as-of", str(NOW_S + 86400))
    run(capsys, "settle statement", *db, "--issuer", "1", "--day", day, "--key", "op/sync.key",
        *out)  # fmt: skip
    pub = load_signer("op/sync.key").public_key.hex()
    run(capsys, "settle verify", "st.json", "--log-key", pub, *root)
    failures = run(capsys, "settle verify", "st.json", "--log-key", "02" + "11" * 32, *root,
                   code=1)  # fmt: skip
    assert [f["reason"] for f in failures] == ["statement_bad_signature"]
    failures = run(capsys, "settle verify", "st.json", "--log-key", pub, "--root-key", pub, code=1)
    assert {f["reason"] for f in failures} == {"gate_certificate_bad"}  # not the gates' root
    run(capsys, "settle verify", "nope.json", "--log-key", pub, *root, code=2)
    with open("view.json", "w") as f:
        json.dump({"presentations": w.reported[1][1:]}, f)
    [extra] = run(capsys, "settle reconcile", "st.json", "--log-key", pub, *root, "--view",
                  "view.json", code=1)  # fmt: skip
    assert extra["finding"] == "extra" and extra["counter"] == 1


def test_image(world, capsys):
    run(capsys, "keys init", "--dir", "op")
    run(capsys, "image build", "--out", "g.fgi", "--key", "op/release.key", "--build-time", "1")
    key = ("--key", "op/release.pub")
    run(capsys, "image verify", "g.fgi", *key)
    [err] = run(capsys, "image verify", "g.fgi", *key, "--floor", "9", code=1)
    assert err["event"] == "error"
    run(capsys, "image build", "--out", "u.fgi", "--version", "1.x", code=2)


def test_sim_run(world, capsys):
    from tests.test_sim_run import SMALL, _scenario

    path = _scenario(world, SMALL.replace("duration_s = 900", "duration_s = 120"))
    [report] = run(capsys, "sim run", path, "--out", "o", "--no-plots")
    assert report["ok"] is True
    run(capsys, "sim run", "nope.toml", code=2)


def test_sim_device_and_ports(world):
    env = dict(os.environ, FAREGATE_SIM_DIR=str(world / "simdir"))
    env.pop("FAREGATE_PORT", None)
    out, err = world / "gate.out", world / "gate.err"
    argv = faregate_argv("sim", "device", "--state", "gate", "--device-id", "77", "--json")
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env, cwd=str(world))
    try:
        deadline = time.monotonic() + 30
        while '"ready"' not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        p = subprocess.run(faregate_argv("ports", "--json"), env=env, capture_output=True)
        [port] = check(p.stdout.decode(), "ports", p.returncode)
        assert port["device_id"] == 77
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, err.read_text()
    events = check(out.read_text(), "sim device", 0)
    assert [e["event"] for e in events][:2] == ["programmed", "ready"]
    p = subprocess.run(
        faregate_argv("sim", "device", "--state", "gate", "--image", "x", "--json"),
        env=env,
        cwd=str(world),
        capture_output=True,
    )
    check(p.stdout.decode(), "sim device", 2)


# run elsewhere, on a simulated gate: tests/test_provision_sim.py, test_technician_day.py,
# test_flash_pty.py, test_device_e2e.py check their result events (events.py's shape)
ELSEWHERE = {"provision", "flash", "device"}


def json_commands() -> set[str]:
    """Every subcommand of `faregate` that takes --json, as typed ("keys tls")."""
    found = set()

    def walk(parser, prefix):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if any("--json" in a.option_strings for a in parser._actions):
            found.add(prefix)
        for a in subs:
            for name, p in a.choices.items():
                walk(p, (prefix + " " + name).strip())

    walk(build_parser(), "")
    return found


def test_every_json_command_is_checked():
    """A subcommand that gains --json is added to CHECKED, and run above."""
    assert {c for c in json_commands() if c.split()[0] not in ELSEWHERE} == CHECKED
