"""Issue 16, attacks on who holds authority over a gate and its back office: each finding tried
as an attacker would, against real files, real sockets and the real console reader, and refused.

- secret files: every private key the gate or the tools write is owner-only (mode 0600)
  through one primitive, firmware/storage/fs.Storage.write_secret (the device key was 0644)
- the service console's frame reader: a forged header announcing a length that never comes
  holds the console buffers.console_frame_ms, no longer
- the back office before AUTH: a stranger's HELLO writes nothing about the device it names
  (no sequence_reset anomaly, no device row change) and every device id gets the same replies

(The clock and the replay cache are another helper's part of issue 16.)
"""

import os
import stat
import subprocess
import time

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
    deny = denylist.build_snapshot(1, t, [], root)
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


# -- the service console's frame reader ----------------------------------------------------------


class _Ticks:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


def _console(tmp_path, config=None):  # type: ignore[no-untyped-def]
    """A gate's service console (firmware/maintenance/console.py) on real files, its ticks
    passed in."""
    import json

    from firmware.maintenance.console import ServiceConsole
    from firmware.storage.device_store import DeviceStore
    from firmware.storage.eventlog import EventLog
    from firmware.storage.journal import Journal
    from protocol import service
    from tests.portable import console_kit as kit

    d = str(tmp_path / "gate")
    os.makedirs(d)
    DISK.write_atomic(d + "/factory.json", b'{"device_id": %d, "model": "t"}' % kit.DEVICE_ID)
    store = DeviceStore(d, kit.HashKeys())
    if config:
        store.write_blob(service.BLOB_CONFIG, json.dumps(dict(kit.CONFIG, **config)).encode())
    ticks = _Ticks()
    clock = kit.Clock()
    log = EventLog(d, clock)
    console = ServiceConsole(
        store,
        Journal(d, kit.DEVICE_ID),
        clock,
        kit.Hardware(),
        kit.Verifier(),
        kit.Rng(),
        log,
        ticks_ms=ticks,
    )
    return console, ticks, log


def _forged_header(n: int) -> bytes:
    """A well-formed header (good CRC) announcing an n-byte HELLO whose body never comes."""
    from protocol import frames, service

    return frames.encode(service.HELLO, bytes(n))[: frames.HEADER_LEN]


def _hello_answered(out: bytes) -> bool:
    from protocol import frames, service

    got = frames.FrameDecoder().feed(out)
    return [f.type for f in got] == [service.IDENTITY]


@pytest.mark.parametrize(
    "config, announced",
    [({"buffers": {"console_frame": 65536}}, 60000), (None, 8000)],
    ids=["60000-under-a-64k-limit", "8000-under-the-default-limit"],
)
def test_a_forged_frame_header_holds_the_console_no_longer_than_its_deadline(
    tmp_path, config, announced
):
    from firmware.compose import gate_config
    from protocol import frames, service

    console, ticks, log = _console(tmp_path, config)
    limit = gate_config.get(console.config, "buffers.console_frame_ms")
    hello = frames.encode(service.HELLO, service.hello(b"n" * 16))
    assert console.feed(_forged_header(announced)) == b""
    ticks.ms = limit  # within the deadline: still waiting (an honest slow frame is not cut)
    assert console.poll() == b""
    ticks.ms = limit + 1  # past it: the next command is answered
    assert _hello_answered(console.feed(hello))
    dropped = [e for e in log.since(1, 100) if e["ev"] == "frame_dropped"]
    assert dropped and dropped[-1]["reason"] == "frame_timeout"
    assert dropped[-1]["announced"] == announced and dropped[-1]["buffered"] == frames.HEADER_LEN


def test_a_command_sent_behind_a_forged_header_is_served_at_the_deadline(tmp_path):
    """The laptop's HELLO went out while the console sat in the forged frame's body: at the
    deadline the console drops the header, finds the HELLO in what it buffered, and answers."""
    from protocol import frames, service

    console, ticks, log = _console(tmp_path, {"buffers": {"console_frame": 65536}})
    hello = frames.encode(service.HELLO, service.hello(b"n" * 16))
    assert console.feed(_forged_header(60000)) == b""
    ticks.ms = 50
    assert console.feed(hello) == b""  # swallowed as the forged frame's body, for now
    ticks.ms = 50 + 10000  # 10 s after the HELLO, but 10.05 s after the header's first byte
    assert _hello_answered(console.poll())
    assert console.feed(hello) != b""  # and the console serves frames as usual after it


# -- the back office before a device authenticated -----------------------------------------------


def _forged_session(link, device_id: int, host_pub: bytes):  # type: ignore[no-untyped-def]
    """A stranger's session over `link`: a HELLO naming `device_id` (last seq 0), and an AUTH
    signed with the stranger's own key if challenged. Returns the message types received and
    the (name, text) of the ERROR that ended it."""
    from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
    from protocol import messages as m
    from protocol import sync

    conn = sync.DeviceConnection(
        device_id, OpenSSLSigner(generate_key()), OpenSSLVerifier(), host_pub
    )
    link.send(conn.send(sync.Hello(device_id, b"s" * m.NONCE_LEN, 0)))
    got: list[str] = []
    for _ in range(50):
        data = link.recv(5)
        if not data:
            break
        conn.receive_data(data)
        while True:
            try:
                ev = conn.next_event()
            except sync.RemoteProtocolError as e:
                return got, ("remote_protocol_error", str(e))
            if ev is sync.NEED_DATA:
                break
            got.append(m.NAMES[ev.TYPE])
            if ev.TYPE == m.CHALLENGE:
                link.send(conn.send(sync.Auth(device_id)))
            elif ev.TYPE == m.ERROR:
                return got, (ev.name(), ev.text)
    return got, None


def test_a_strangers_hello_writes_nothing_and_tells_nothing(tmp_path):
    """Over real TLS: HELLOs naming a registered gate (ahead of the HELLO's seq, which used to
    log a sequence_reset anomaly), a revoked one and an unknown one, each from a stranger with
    the back office's public sync key and a client certificate. Every one is challenged and
    refused after its AUTH with the same error; nothing names a device in the store."""
    from drivers.linux.link_tcp import TcpLink, client_context
    from firmware.sync.client import run_session
    from host_sim.backoffice.sync_server import BackOfficeThread, server_context
    from tests.synclab import DEVICE_ID, NOW, Lab

    lab = Lab(tmp_path)
    revoked = DEVICE_ID + 1
    lab.store.add_device(revoked, lab.device_signer.public_key, NOW, "lane 2")
    lab.store.revoke_device(revoked, NOW)
    ca, srv, cli = lab.tls_files()
    events: list[dict] = []
    bo = BackOfficeThread(lab.db, lab.keys, server_context(srv[0], srv[1], ca), lab.clock,
                          events.append)  # fmt: skip

    def connect():  # type: ignore[no-untyped-def]
        return TcpLink.connect("127.0.0.1", bo.port, client_context(ca, *cli))

    try:
        lab.passages(3)
        with connect() as link:
            run_session(lab.client(), link, 5)  # the real gate: the office holds seq 1..3
        before = lab.store.db.execute("SELECT * FROM devices ORDER BY device_id").fetchall()
        replies = {}
        for dev in (DEVICE_ID, revoked, 999):
            with connect() as link:
                replies[dev] = _forged_session(link, dev, lab.host_signer.public_key)
        deadline = time.monotonic() + 10
        while len(events) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        after = lab.store.db.execute("SELECT * FROM devices ORDER BY device_id").fetchall()
        anomalies = lab.store.anomalies()
        auth = lab.store.db.execute(
            "SELECT device_id, outcome FROM auth_log ORDER BY id"
        ).fetchall()
        sessions = lab.store.db.execute(
            "SELECT device_id, outcome, reason FROM sessions ORDER BY id"
        ).fetchall()
    finally:
        bo.stop()
        lab.close()
    want = (["CHALLENGE", "ERROR"], ("bad_signature", "AUTH signature does not verify"))
    assert replies == {DEVICE_ID: want, revoked: want, 999: want}
    assert anomalies == [] and after == before
    assert auth == [(DEVICE_ID, "ok")] + [(None, "refused bad_signature")] * 3
    assert sessions == [(DEVICE_ID, "ok", "")] + [(None, "refused", "bad_signature")] * 3
    assert [e["device_id"] for e in events] == [DEVICE_ID, None, None, None]


def test_the_real_gate_behind_the_office_is_still_a_sequence_reset_once_authenticated(tmp_path):
    """What the anomaly is for: the gate itself (its device key) with its journal replaced."""
    from firmware.storage.journal import Journal
    from firmware.sync.client import SyncError, run_session
    from tests.synclab import DEVICE_ID, Lab

    lab = Lab(tmp_path)
    try:
        lab.passages(3)
        run_session(lab.client(), lab.link("pipe"), 5)
        lab.journal.close()
        (tmp_path / "new-journal").mkdir()
        lab.journal = Journal(str(tmp_path / "new-journal"), DEVICE_ID)  # a replaced journal
        with pytest.raises(SyncError) as e:
            run_session(lab.client(), lab.link("pipe"), 5)
        assert e.value.reason == "sequence_reset"
        assert [(a["kind"], a["device_id"]) for a in lab.store.anomalies()] == [
            ("sequence_reset", DEVICE_ID)
        ]
    finally:
        lab.close()
