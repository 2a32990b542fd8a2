"""Issue 16, attacks on who holds authority over a gate and its back office: each finding tried
as an attacker would, against real files, real sockets and the real console reader, and refused.

- secret files: every private key the gate or the tools write is owner-only (mode 0600)
  through one primitive, firmware/storage/fs.Storage.write_secret (the device key was 0644)

(The clock and the replay cache are another helper's part of issue 16.)
"""

import os
import stat
import subprocess

import pytest

from drivers.linux import crypto_openssl
from firmware.storage import device_store
from firmware.storage.fs import DISK
from tests.conftest import faregate_argv


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask0():
    """The worst umask a process can run under: nothing masked."""
    old = os.umask(0)
    yield
    os.umask(old)


# -- secret files --------------------------------------------------------------------------------


def test_write_secret_creates_owner_only_even_with_umask_0(tmp_path, umask0):
    p = str(tmp_path / "k.key")
    DISK.write_secret(p, b"secret")
    assert _mode(p) == 0o600 and open(p, "rb").read() == b"secret"
    # over a key file an older tool left world-readable: the new file has the mode, not the old one
    q = str(tmp_path / "old.key")
    DISK.write_atomic(q, b"old")
    assert _mode(q) == 0o666  # the ordinary write, under this umask
    DISK.write_secret(q, b"new")
    assert _mode(q) == 0o600 and open(q, "rb").read() == b"new"
    # a link planted at the temp path is not written through
    target = tmp_path / "elsewhere"
    target.write_bytes(b"untouched")
    os.symlink(str(target), q + ".tmp")
    DISK.write_secret(q, b"newer")
    assert target.read_bytes() == b"untouched" and open(q, "rb").read() == b"newer"
    assert _mode(q) == 0o600 and not os.path.lexists(q + ".tmp")


def test_the_gates_device_key_is_owner_only(tmp_path, umask0):
    """GEN_KEY on a provisioned gate (the device store under the service console's GEN_KEY)."""
    d = tmp_path / "gate"
    d.mkdir()
    (d / "factory.json").write_text('{"device_id": 1017, "model": "sim"}')
    store = device_store.DeviceStore(str(d), device_store.Keys(crypto_openssl, os.urandom))
    assert store.generate_key()
    assert _mode(d / "device.key") == 0o600
    assert store.signer() is not None


def test_a_gate_provisioned_for_the_simulator_keeps_its_key_owner_only(tmp_path, umask0):
    """host_sim/station/gatedir.py: what `faregate provision` leaves, written directly."""
    from host_sim.station import gatedir
    from protocol import denylist, trustlist

    t = 1_767_254_400
    root = crypto_openssl.OpenSSLSigner(crypto_openssl.generate_key())
    issuer = crypto_openssl.OpenSSLSigner(crypto_openssl.generate_key())
    rid = trustlist.root_key_id(root.public_key)
    key = trustlist.IssuerKey(1, issuer.public_key, 0xFFFF, t - 86400, t + 86400)
    trust = trustlist.build(1, t - 60, t + 86400, [key], root.sign, rid)
    deny = denylist.build_snapshot(1, t, [], root.sign, rid)
    config = {
        "version": 1,
        "device_id": 301,
        "name": "S301",
        "station": 3,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
        "sync": {"host_key": issuer.public_key.hex()},
    }
    secret = crypto_openssl.OpenSSLSigner(crypto_openssl.generate_key()).secret_bytes()
    gatedir.provision(str(tmp_path / "g"), 301, root, secret, config, trust, deny, t)
    assert _mode(tmp_path / "g" / "device.key") == 0o600


def _faregate(tmp_path, *args):
    p = subprocess.run(
        faregate_argv(*args),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0),
    )
    assert p.returncode == 0, p.stderr
    return p


def test_the_operators_tools_write_every_key_owner_only(tmp_path):
    """`faregate keys init`, `keys technician` and `keys tls` under umask 0, and `keys tls` over a
    key file left world-readable: every private key is 0600."""
    _faregate(tmp_path, "keys", "init", "--dir", "op")
    _faregate(
        tmp_path, "keys", "technician", "--dir", "op", "--name", "Ana", "--id", "7", "--out", "tech"
    )
    (tmp_path / "bo.key").write_bytes(b"an old key")
    os.chmod(tmp_path / "bo.key", 0o644)
    _faregate(tmp_path, "keys", "tls", "--dir", "op", "--name", "bo", "--server", "--out", "bo")
    _faregate(tmp_path, "keys", "tls", "--dir", "op", "--name", "A1", "--client", "--out", "g")
    keys = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.key"))
    assert keys == [
        "bo.key",
        "g.key",
        "op/issuer.key",
        "op/release.key",
        "op/root.key",
        "op/sync.key",
        "tech/technician.key",
    ]
    assert {k: _mode(tmp_path / k) for k in keys} == {k: 0o600 for k in keys}
