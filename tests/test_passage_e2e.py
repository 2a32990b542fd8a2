"""One passage through every real layer: wallet -> QR PNG and pty/pyserial -> firmware ->
fsync'd journal -> barrier -> TCP sync -> SQLite back office -> trim.

Each assertion below would fail if its layer were bypassed: a forged code must not open the
barrier, and records the back office did not acknowledge must stay on the gate.
"""

import socket
import sqlite3
import threading

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.decode import decode_image
from drivers.linux.link_tcp import sync_once
from drivers.linux.qrengine_serial import SerialQREngine
from firmware.gate.gate import Gate
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient, SyncError
from firmware.verify.validator import IssuerKey, Validator
from host_sim.backoffice.sync_server import BackOfficeThread, HostKeys
from host_sim.hardware.devices import ManualClock, PtyQREngine, SimBarrier, SimDisplay
from host_sim.wallet import Issuer, Rider, render_png
from protocol import records

NOW = 1_767_254_400


@pytest.fixture
def world(tmp_path):
    issuer = Issuer(key_id=1)
    rider = Rider()
    issuer.issue(rider, account_id=4242, valid_from=NOW - 60, valid_until=NOW + 3600)
    clock = ManualClock(NOW)
    (tmp_path / "gate").mkdir()
    journal = Journal(str(tmp_path / "gate"), device_id=17)
    gate = Gate(
        Validator(OpenSSLVerifier(), {1: IssuerKey(1, issuer.public_key)}),
        journal,
        SimBarrier(),
        SimDisplay(),
        clock,
        station=3,
        direction=1,
    )
    gate.device_key = OpenSSLSigner(generate_key())
    gate.operator_key = OpenSSLSigner(generate_key())
    yield issuer, rider, gate, tmp_path
    journal.close()


def _client(gate):
    return SyncClient(
        gate.journal,
        gate.device_key,
        OpenSSLVerifier(),
        gate.operator_key.public_key,
        gate.clock,
    )


def test_one_passage_through_every_layer(world):
    issuer, rider, gate, tmp = world
    text = rider.present(NOW)

    # The code reaches the gate twice over: a QR image decoded by zxing-cpp...
    png = render_png(text, str(tmp / "code.png"))
    assert decode_image(png) == [text]
    # ...and a line from a QR engine on a pty, read through pyserial.
    engine = PtyQREngine()
    scanner = SerialQREngine(engine.path)
    try:
        engine.show(text)
        from_serial = scanner.read(timeout_s=2.0)
    finally:
        scanner.close()
        engine.close()
    assert from_serial == text

    d = gate.on_scan(from_serial)
    assert d.accept, d.reason
    assert gate.barrier.openings == 1
    assert gate.display.last == "Welcome"

    # Committed before it opened: a fresh reader of the journal file sees the record.
    on_disk = Journal(gate.journal.dir, device_id=17)
    [raw] = on_disk.pending()
    on_disk.close()
    rec = records.decode(raw)
    assert (rec.kind, rec.account_id, rec.seq) == (records.KIND_PASSAGE, 4242, 1)

    # A second showing of the same code is a replay: the barrier stays shut.
    assert gate.on_scan(text).reason == "replayed"
    # A forged code (right key id, wrong key) never opens the barrier.
    forger = Issuer(key_id=1)
    mallory = Rider()
    forger.issue(mallory, account_id=666, valid_from=NOW - 60, valid_until=NOW + 3600)
    assert gate.on_scan(mallory.present(NOW)).reason == "bad_issuer_signature"
    assert gate.barrier.openings == 1
    assert gate.journal.pending_count() == 3  # one passage, two audited rejects

    # Sync over real TCP to the back office's SQLite file; only then is the journal trimmed.
    db = tmp / "bo.sqlite"
    bo = BackOfficeThread(str(db), HostKeys(gate.operator_key, OpenSSLVerifier()))
    bo.store.add_device(17, gate.device_key.public_key, NOW)
    try:
        assert sync_once(_client(gate), "127.0.0.1", bo.port) == 3
    finally:
        bo.stop()
    assert gate.journal.pending_count() == 0
    rows = (
        sqlite3.connect(db)
        .execute("SELECT device_id, seq, kind, account_id FROM records ORDER BY seq")
        .fetchall()
    )
    assert rows == [
        (17, 1, records.KIND_PASSAGE, 4242),
        (17, 2, records.KIND_REJECT, 4242),
        (17, 3, records.KIND_REJECT, 666),
    ]


def test_records_stay_when_the_back_office_does_not_acknowledge(world):
    issuer, rider, gate, tmp = world
    assert gate.on_scan(rider.present(NOW)).accept
    # A "back office" that swallows the upload and hangs up without an ACK.
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def swallow():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.close()

    t = threading.Thread(target=swallow)
    t.start()
    with pytest.raises(SyncError):
        sync_once(_client(gate), "127.0.0.1", port)
    t.join()
    srv.close()
    assert gate.journal.pending_count() == 1


def test_ack_for_records_never_sent_fails_the_session(world):
    from protocol import frames, messages

    issuer, rider, gate, tmp = world
    gate.on_scan(rider.present(NOW))
    client = _client(gate)
    client.start()
    # an unsigned ACK injected on the link is never obeyed
    with pytest.raises(SyncError):
        client.receive(frames.encode(messages.ACK, messages.ack(1)))
    assert gate.journal.pending_count() == 1
