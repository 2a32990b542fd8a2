"""The gate's periodic sync as firmware/compose/app.py runs it: the Syncer opens the link the Linux
entry point chooses (here a serial port: a pty read through pyserial, the back office serving
the other end into its SQLite file), pumps the session from the main loop, logs one line per
session, and backs off when the back office is not there. Over TCP the link opens in a worker
thread: a back office that never answers the TLS handshake does not keep riders waiting."""

import datetime
import os
import socket
import threading
import time
import tty

import pytest
from cryptography.hazmat.primitives import serialization

from drivers.linux import crypto_openssl as es256
from drivers.linux import entry as linux_gate
from firmware.compose import app
from firmware.compose.device import Device
from firmware.maintenance import boot
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostKeys, serve_link
from host_sim.hardware.devices import ManualClock
from host_sim.station import gatedir
from protocol import denylist, records, trustlist
from provisioning import pki
from tests.portable import codes
from tests.portable import console_kit as kit
from tests.synclab import FdLink

NOW = 1_767_254_400
DEVICE_ID = 1201


class Ticks:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def gate(tmp_path, store_target):  # on SQLite and on PostgreSQL
    root = es256.OpenSSLSigner(es256.generate_key())
    host = es256.OpenSSLSigner(es256.generate_key())
    issuer = es256.OpenSSLSigner(es256.generate_key())
    secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
    rid = trustlist.root_key_id(root.public_key)
    key = trustlist.IssuerKey(1, issuer.public_key, 0xFFFF, NOW - 86400, NOW + 86400)
    config = {
        "version": 1,
        "device_id": DEVICE_ID,
        "name": "S1",
        "station": 3,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
        "sync": {"host_key": host.public_key.hex(), "interval_s": 30},
    }
    d = str(tmp_path / "gate")
    gatedir.provision(
        d,
        DEVICE_ID,
        root,
        secret,
        config,
        trustlist.build(1, NOW, NOW + 86400, [key], root.sign, rid),
        denylist.build_snapshot(1, NOW, [], root),
        NOW,
    )
    dev = Device.open(d, None, ManualClock(NOW), crypto=es256)
    for i in range(30):
        dev.journal.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, NOW + i, account_id=i))
    store = Store(store_target)
    store.add_device(DEVICE_ID, es256.signer(secret).public_key, NOW)
    yield dev, store, HostKeys(host, es256.verifier())
    dev.close()
    store.close()


def test_the_syncer_runs_sessions_over_a_serial_line_and_backs_off_without_one(gate):
    dev, store, keys = gate
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    server = threading.Thread(
        target=serve_link, args=(store, keys, FdLink(master), stop, ManualClock(NOW)), daemon=True
    )
    server.start()
    ticks, lines = Ticks(), []
    connect = linux_gate.connector({"sync_serial": os.ttyname(slave)})
    syncer = app.Syncer(dev, connect, lines.append, ticks_ms=ticks)
    try:
        syncer.poll()
        assert not syncer.busy  # the first sync waits a moment after boot
        ticks.ms += app.FIRST_SYNC_S * 1000
        deadline = time.monotonic() + 20  # the back office thread answers when the CPU lets it
        while time.monotonic() < deadline:
            syncer.poll()
            if not syncer.busy:
                break
            time.sleep(0.002)
        assert lines == ["sync: 30 records acknowledged, 0 pending"], lines
        assert store.count() == 30 and dev.journal.pending_count() == 0
        ticks.ms += 29_000
        syncer.poll()
        assert not syncer.busy and syncer.sessions == 1  # next one after interval_s
    finally:
        stop.set()
        server.join(5)
        os.close(master)
        os.close(slave)
    # no back office on the line any more: one line per failure, retried after 5 s, then 10 s
    syncer.connect = linux_gate.connector({"sync_serial": "/dev/faregate-no-such-port"})
    ticks.ms += 1000
    syncer.poll()
    assert syncer.sessions == 2 and "sync: failed" in lines[-1] and "again in 5 s" in lines[-1]
    ticks.ms += 5000
    syncer.poll()
    assert syncer.sessions == 3 and "again in 10 s" in lines[-1]


# -- a back office that takes the TCP connection and never answers the TLS handshake ----------


class Barrier:
    def __init__(self, events: list) -> None:
        self.events = events
        self.state = False

    def open(self) -> None:
        self.events.append(("gate", "barrier opens"))
        self.state = True

    def close(self) -> None:
        self.state = False

    def is_open(self) -> bool:
        return self.state


class Reader:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def read(self, timeout_s: float) -> str | None:
        return self.texts.pop(0) if self.texts else None


class Beams:
    def read(self) -> tuple[bool, bool]:
        return (False, False)


class Hardware:
    def __init__(self, events: list) -> None:
        self.barrier = Barrier(events)
        self.reader = Reader()
        self.beams = Beams()

    def readers(self) -> list:
        return [(self.reader, None)]

    def inputs(self) -> list:
        return []


class Board:
    """The gate's RTC (stays at NOW) and its tick counter, moved by the test."""

    def __init__(self) -> None:
        self.ms = 1000

    def now(self) -> int:
        return codes.NOW

    def set(self, t: int) -> None:
        pass

    def ticks_ms(self) -> int:
        return self.ms


def _tls_gate(directory: str, port: int) -> None:
    """A gate in service, provisioned for TLS sync to 127.0.0.1:port (its client certificate
    for its device key, then the operator CA's: tls_cert.bin, as provisioning installs it)."""
    root = codes.ROOT
    rid = trustlist.root_key_id(root.public_key)
    secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
    config = dict(kit.CONFIG)
    config["sync"] = {"host": "127.0.0.1", "port": port, "host_key": "02" + "11" * 32}
    gatedir.provision(
        directory,
        kit.DEVICE_ID,
        root,
        secret,
        config,
        codes.trust_blob(1, root_key_id=rid),
        denylist.build_snapshot(1, codes.NOW - 60, [], root),
        codes.NOW,
    )
    now = datetime.datetime.now(datetime.UTC)
    ca_key = pki.new_key()
    ca = pki.make_ca(ca_key, "test operator CA", now)
    device_key = es256.signer(secret).key.public_key()
    cert = pki.issue_cert(ca_key, ca, device_key, "gate", now, server=False)
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "tls_cert.bin"), "wb") as f:
        f.write(cert.public_bytes(pem) + ca.public_bytes(pem))


def test_a_code_opens_the_barrier_while_the_tls_handshake_hangs(tmp_path, monkeypatch):
    """The back office accepts the TCP connection and never answers the TLS ClientHello (the
    worst case: connect succeeds, then nothing). The main loop (app.serve) must serve a rider
    while the sync link is still opening; the order of events shows it, not a stopwatch."""
    events: list[tuple[str, str]] = []
    server = socket.create_server(("127.0.0.1", 0))
    hello, hang_up = threading.Event(), threading.Event()

    def back_office() -> None:
        conn, _ = server.accept()
        conn.recv(1)  # the ClientHello is here; it never gets an answer
        events.append(("back office", "ClientHello unanswered"))
        hello.set()
        hang_up.wait(60)
        events.append(("back office", "hangs up"))
        conn.close()

    thread = threading.Thread(target=back_office, daemon=True)
    thread.start()
    d = str(tmp_path / "gate")
    _tls_gate(d, server.getsockname()[1])
    hw, board, lines = Hardware(events), Board(), []
    dev = Device.open(d, hw, board, crypto=es256)
    assert dev.in_service
    # only the back office hanging up ends the handshake (not the 2 s socket timeout, which a
    # loaded CI machine could reach first) and the Syncer's own limit is out of reach
    monkeypatch.setattr(linux_gate, "CONNECT_TIMEOUT_S", 60.0)
    code = codes.code(time=codes.NOW)

    class ServicePort:
        """Each read is one turn of the main loop; the test plays its part from here."""

        def __init__(self) -> None:
            self.turns = 0
            self.shown_at = 0
            self.opened_at = 0
            self.deadline = time.monotonic() + 60

        def read(self, timeout_s: float | None = None) -> bytes | None:
            self.turns += 1
            assert time.monotonic() < self.deadline, (self.turns, events, lines)
            if self.turns == 1:
                board.ms += app.FIRST_SYNC_S * 1000  # this turn's sync poll starts opening
            elif not self.shown_at:
                if hello.is_set():  # the handshake hangs: a rider shows a code now
                    hw.reader.texts.append(code)
                    self.shown_at = self.turns
                else:
                    time.sleep(0.001)
            elif not self.opened_at:
                if hw.barrier.state:
                    self.opened_at = self.turns
                    hang_up.set()
                assert self.turns < self.shown_at + 100, "the barrier did not open"
            elif any(line.startswith("sync: failed") for line in lines):
                return b""  # the service port closes: serve() returns
            else:
                time.sleep(0.001)
            return None

        def write(self, data: bytes) -> None:
            pass

    port = ServicePort()
    try:
        assert app.serve(port, dev, lines.append, linux_gate.connector({})) == boot.EXIT_HALT
    finally:
        hang_up.set()
        thread.join(5)
        server.close()
        dev.close()
    assert events == [
        ("back office", "ClientHello unanswered"),
        ("gate", "barrier opens"),
        ("back office", "hangs up"),
    ]
    assert port.opened_at == port.shown_at + 1  # the very next turn, as with no sync at all
    assert lines[-1].startswith("sync: failed (connect)") and "again in 5 s" in lines[-1]
    assert dev.journal.pending_count() == 1  # the passage, journaled before it opened
