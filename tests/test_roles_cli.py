"""The operator's root commands (`faregate keys root-init|root-rotate|root-sign|root-show|
sign-config|release|bind`, provisioning/cli/roles.py) run as subprocesses with real ES256 keys
(OpenSSL), and what they write taken by a gate: bound at the factory, claimed by the operator's
technician only, rotated over its console, a root-signed config over sync, a release."""

import json
import os
import subprocess

from provisioning import operator_keys
from tests.conftest import faregate_argv
from tests.portable import console_kit as kit
from tests.portable.device_kit import HOST_PUB, NOW, Clock, Hardware, _open
from tests.portable.sync_kit import MiniHost

COMMANDS = ("root-init", "root-rotate", "root-sign", "root-show", "sign-config", "release", "bind")


def _run(*args, ok=True):
    p = subprocess.run(faregate_argv(*args), capture_output=True, text=True, timeout=60)
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def _result(p):
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "result"][-1]


def test_every_root_command_has_a_help_that_says_what_it_signs():
    words = {
        "root-init": "threshold",
        "root-rotate": "version N+1",
        "root-sign": "key holder",
        "root-show": "root-signed config",
        "sign-config": "config_needs_root",
        "release": "factory reset",
        "bind": "claim_foreign",
    }
    for cmd in COMMANDS:
        p = _run("keys", cmd, "--help")
        assert words[cmd] in " ".join(p.stdout.split()), cmd
    assert "root-init" in _run("keys", "--help").stdout


def test_the_root_commands_bind_rotate_configure_and_release_a_gate(tmp_path):
    op, op2 = str(tmp_path / "op"), str(tmp_path / "op2")
    _run("keys", "init", "--dir", op)
    v1 = os.path.join(op, "root-v1.meta")
    p = _run(
        "keys",
        "root-init",
        "--dir",
        op,
        "--count",
        "3",
        "--threshold",
        "2",
        "--sync-key",
        HOST_PUB.hex(),
        "--json",
    )
    res = _result(p)
    assert res["version"] == 1 and res["roles"]["root"]["threshold"] == 2
    assert len(res["signatures"]) == 3  # root.key (the claim anchor) and two root keys
    assert oct(os.stat(os.path.join(op, "root-3.key")).st_mode & 0o777) == "0o600"
    # the factory binds a gate
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "factory.json").write_text(
        json.dumps({"device_id": kit.DEVICE_ID, "model": "t", "firmware": "0.1.0"})
    )
    _run("keys", "bind", "--state", str(gate), "--root-meta", v1)
    dev = _open(str(gate), Hardware(), Clock())
    assert dev.store.root_version() == 1
    # a foreign credential cannot claim it; the operator's technician can
    signer, cert = kit.tech_cert(kit.OTHER_ROOT, valid_until=NOW + 86400)
    foreign = kit.Tech(dev.console, signer, cert, kit.OTHER_ROOT)
    foreign.hello()
    assert foreign.auth(claim=True)[2] == "claim_foreign"
    cred = str(tmp_path / "alice")
    _run("keys", "technician", "--dir", op, "--name", "alice", "--id", "7", "--out", cred)
    c = operator_keys.Credential(cred)
    tech = kit.Tech(dev.console, c.signer, c.raw, type("R", (), {"public_key": c.anchor}))
    tech.hello()
    assert tech.auth(claim=True)[2] == "accepted"
    # rotation to two new root keys, signed in turn by the old holders and the new
    _run("keys", "init", "--dir", op2)
    _run(
        "keys",
        "root-init",
        "--dir",
        op2,
        "--count",
        "2",
        "--threshold",
        "2",
        "--sync-key",
        HOST_PUB.hex(),
    )
    again = _run(
        "keys",
        "bind",
        "--state",
        str(gate),
        "--root-meta",
        os.path.join(op2, "root-v1.meta"),
        ok=False,
    )
    assert again.returncode == 2 and "is bound already" in again.stderr
    v2 = str(tmp_path / "root-v2.meta")
    new_keys = [
        "--root-key",
        os.path.join(op2, "root-1.pub"),
        "--root-key",
        os.path.join(op2, "root-2.pub"),
    ]
    res = _result(
        _run("keys", "root-rotate", "--dir", op, "--from", v1, *new_keys, "--out", v2, "--json")
    )
    assert res["version"] == 2 and res["signatures"] == []
    _run(
        "keys",
        "root-sign",
        v2,
        "--key",
        os.path.join(op, "root-1.key"),
        "--key",
        os.path.join(op, "root-3.key"),
    )
    data = open(v2, "rb").read()
    from protocol import service

    assert tech.put(service.BLOB_ROOT, data)[2] == "root_threshold"  # not its own yet
    _run(
        "keys",
        "root-sign",
        v2,
        "--key",
        os.path.join(op2, "root-1.key"),
        "--key",
        os.path.join(op2, "root-2.key"),
    )
    shown = _result(_run("keys", "root-show", v2, "--json"))
    assert len(shown["signatures"]) == 4 and shown["roles"]["sync"]["threshold"] == 1
    assert tech.put(service.BLOB_ROOT, open(v2, "rb").read())[2] == "accepted"
    assert dev.store.root_version() == 2
    # a root-signed config, by the new root keys, goes down at a sync
    cfg = dict(kit.CONFIG, validation={"window_s": 600}, sync={"host_key": HOST_PUB.hex()})
    path = tmp_path / "a1.json"
    path.write_text(json.dumps(cfg))
    signed = str(tmp_path / "a1.fgsc")
    _run(
        "keys",
        "sign-config",
        str(path),
        "--security-version",
        "1",
        "--out",
        signed,
        "--key",
        os.path.join(op2, "root-1.key"),
        "--key",
        os.path.join(op2, "root-2.key"),
    )
    plain = json.dumps(dict(cfg, validation={})).encode()  # what the technician installed
    assert tech.put(service.BLOB_CONFIG, plain)[2] == "accepted"
    tech.ok(service.GEN_KEY)
    host = MiniHost({(4, 2): open(signed, "rb").read()}, device_pub=dev.store.signer().public_key)
    client = dev.sync_client(random_bytes=lambda n: b"\x07" * n)
    out = client.start()
    while not client.done:
        out = client.receive(host.receive(out))
    assert client.applied == [(4, 2)] and dev.console.config["validation"]["window_s"] == 600
    # a release by the new root, then the reset forgets the binding
    rel = str(tmp_path / "a1.fgrl")
    _run(
        "keys",
        "release",
        "--device-id",
        str(kit.DEVICE_ID),
        "--root-version",
        "2",
        "--out",
        rel,
        "--key",
        os.path.join(op2, "root-2.key"),
    )
    assert tech.put(service.BLOB_RELEASE, open(rel, "rb").read())[2] == "release_refused"
    _run("keys", "root-sign", rel, "--key", os.path.join(op2, "root-1.key"))
    assert tech.put(service.BLOB_RELEASE, open(rel, "rb").read())[2] == "accepted"
    dev.close()


def test_a_gate_bound_over_its_port_refuses_a_foreign_claim_after_a_reset(tmp_path):
    """`faregate device root` over a real pty to `faregate sim device`: the warehouse binding,
    `device status` shows it, a factory reset keeps it, another operator's technician cannot
    claim the gate (claim_foreign), this operator's can."""
    from tests.simgate import Field

    base = tmp_path / "keys"
    base.mkdir()
    op, other = str(base / "op"), str(base / "other")
    _run("keys", "init", "--dir", op)
    _run(
        "keys",
        "technician",
        "--dir",
        op,
        "--name",
        "alice",
        "--id",
        "7",
        "--out",
        str(base / "alice"),
    )
    _run("keys", "init", "--dir", other)
    _run(
        "keys",
        "technician",
        "--dir",
        other,
        "--name",
        "eve",
        "--id",
        "7",
        "--out",
        str(base / "eve"),
    )
    _run("keys", "root-init", "--dir", op, "--count", "2", "--threshold", "2")
    field = Field(tmp_path, op, {n: str(base / n) for n in ("alice", "eve")})
    try:
        gate = field.gate()
        p = field.run("provision", "--site", field.site, "--port", gate.port)
        assert p.returncode == 0, p.stdout + p.stderr
        p = field.run("device", "root", os.path.join(op, "root-v1.meta"), "--port", gate.port)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "root metadata installed; root metadata version 1" in p.stdout
        p = field.run("device", "status", "--port", gate.port)
        assert "bound to root metadata version 1" in p.stdout, p.stdout
        p = field.run("device", "reset", "--yes", "--port", gate.port)
        assert p.returncode == 0, p.stdout + p.stderr
        from tests.simgate import SITE

        ca = os.path.relpath(os.path.join(other, "root.key"), str(tmp_path))
        theirs = field.write_site(SITE.format(ca_key=ca, revoked="[]"), name="eve.toml")
        p = field.run("provision", "--site", theirs, "--port", gate.port, cred="eve")
        assert p.returncode == 1 and "claim_foreign" in p.stdout + p.stderr, p.stdout + p.stderr
        p = field.run("provision", "--site", field.site, "--port", gate.port)
        assert p.returncode == 0, p.stdout + p.stderr
        p = field.run("device", "status", "--port", gate.port)
        assert "bound to root metadata version 1" in p.stdout
    finally:
        field.close()


def test_publish_reads_root_metadata_and_root_signed_configs():
    """host_sim/backoffice/publishing.py: the root kind's own version, one version after the
    other (a gap only with --force), a root-signed config checked by the JSON inside."""
    import pytest

    from host_sim.backoffice import publishing
    from protocol import rootmeta
    from tests.portable.test_rootmeta import R1, R2, vector, vector_root

    offer = publishing.check("root", vector(), None, None, NOW)
    assert offer.version == 1 and offer.info["signatures"] == 2
    assert publishing.detect(vector()) == "root"
    v3 = rootmeta.sign(rootmeta.encode(vector_root(3)), [R1, R2])
    with pytest.raises(publishing.PublishRefused, match="does not follow version 1"):
        publishing.check("root", v3, None, 1, NOW)
    assert publishing.check("root", v3, None, 1, NOW, force=True).warnings
    with pytest.raises(publishing.PublishRefused, match="inside says version 1"):
        publishing.check("root", vector(), 2, None, NOW)
    cfg = json.dumps(kit.CONFIG).encode()
    signed = rootmeta.sign(rootmeta.security_config(kit.DEVICE_ID, 4, cfg), [R1])
    assert publishing.detect(signed) == "config"
    offer = publishing.check("config", signed, 7, 6, NOW)
    assert offer.info["security_version"] == 4
    assert "security version below 4" in publishing.predict(
        offer, kit.DEVICE_ID, {"versions": {"config": 6}}
    )
    plain = publishing.check("config", cfg, 7, 6, NOW)
    assert "config_needs_root" in publishing.predict(
        plain, kit.DEVICE_ID, {"versions": {"config": 6}}
    )
