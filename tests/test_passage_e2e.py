"""One passage through every real layer: wallet -> QR PNG and pty/pyserial -> firmware ->
fsync'd journal -> barrier -> TCP sync -> SQLite back office -> trim.

The gate is built as a real one is: a provisioned state directory (host_sim/station/gatedir.py),
its hardware wired by URL (drivers/portable/wiring.build: the QR engine's pty through pyserial,
the barrier and display on a simulated bus, `sim:` URLs) and the firmware composed over it by
firmware/compose/device.Device.open; the test reads it through Device.snapshot().

Each assertion below would fail if its layer were bypassed: a forged code must not open the
barrier, and records the back office did not acknowledge must stay on the gate.
"""

import socket
import sqlite3
import threading
from types import SimpleNamespace

import pytest

from drivers.linux import crypto_openssl
from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.decode import decode_image
from drivers.linux.link_tcp import sync_once
from drivers.portable import wiring
from firmware.compose.device import Device
from firmware.storage.journal import Journal
from firmware.sync.client import SyncError
from host_sim.backoffice.sync_server import BackOfficeThread, HostKeys
from host_sim.hardware import simbus, simhw
from host_sim.hardware.devices import ManualClock, PtyQREngine
from host_sim.station import demand, gatedir
from host_sim.wallet import Issuer, Operator, Rider, render_png
from protocol import records, trustlist

NOW = 1_767_254_400
DEVICE = 17


@pytest.fixture
def world(tmp_path):
    """A metro entry gate built as a real one is: provisioned state directory, hardware wired
    by URL (the QR engine on a pty through pyserial, the rest on a simulated bus), and the
    firmware composed over it by Device.open."""
    issuer = Issuer(key_id=1)
    rider = Rider()
    issuer.issue(rider, account_id=4242, valid_from=NOW - 60, valid_until=NOW + 3600)
    root = OpenSSLSigner(generate_key())
    operator = Operator(root, trustlist.root_key_id(root.public_key))
    host = OpenSSLSigner(generate_key())
    device_key = demand.keys(1, "passage-e2e")
    config = {
        "version": 1,
        "device_id": DEVICE,
        "name": "e2e",
        "station": 3,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
        "sync": {"host_key": bytes(host.public_key).hex()},
    }
    state = str(tmp_path / "gate")
    gatedir.provision(
        state,
        DEVICE,
        operator.signer,
        device_key.secret_bytes(),
        config,
        operator.trust_list(1, [issuer.trust_entry()], NOW - 60, NOW + 86400),
        operator.deny_snapshot(1, [], NOW - 60),
        NOW,
    )
    clock = ManualClock(NOW)
    bus = simbus.Bus("passage-e2e-%d" % id(tmp_path))
    bus.add(simhw.SimHardware("gate", "metro", clock, 600, 800, 0.0))
    engine = PtyQREngine()
    spec = dict(bus.spec("gate"), readers=[{"url": engine.path}])  # a real serial reader
    hw = wiring.build(spec)
    dev = Device.open(state, hw, clock, crypto=crypto_openssl)
    w = SimpleNamespace(
        issuer=issuer,
        rider=rider,
        dev=dev,
        sim=bus.gates["gate"],
        engine=engine,
        host=host,
        device_key=device_key,
        tmp=tmp_path,
    )
    dev.step(0)  # the reader opens at its first read, as at a gate's boot
    yield w
    dev.close()
    hw.close()
    engine.close()


def _scan(w, text):
    """A phone held up to the QR engine; one turn of the gate's loop reads it."""
    w.engine.show(text)
    before = w.dev.snapshot()["gate"]["counts"]
    w.dev.step(2.0)
    after = w.dev.snapshot()["gate"]["counts"]
    [reason] = [r for r, n in after.items() if n != before.get(r, 0)]
    return reason


def test_one_passage_through_every_layer(world):
    w = world
    text = w.rider.present(NOW)

    # The code as an image: a QR PNG decoded by zxing-cpp gives the text back...
    png = render_png(text, str(w.tmp / "code.png"))
    assert decode_image(png) == [text]
    # ...and as a line from a QR engine on a pty, read by the gate through pyserial.
    assert _scan(w, text) == "accepted"
    assert w.sim.barrier.openings == 1
    assert w.sim.display.last == "Welcome"

    # Committed before it opened: a fresh reader of the journal file sees the record.
    on_disk = Journal(w.dev.dir, device_id=DEVICE)
    [raw] = on_disk.pending()
    on_disk.close()
    rec = records.decode(raw)
    assert (rec.kind, rec.account_id, rec.seq) == (records.KIND_PASSAGE, 4242, 1)

    # A second showing of the same code is a replay: the barrier stays shut.
    assert _scan(w, text) == "replayed"
    # A forged code (right key id, wrong key) never opens the barrier.
    forger = Issuer(key_id=1)
    mallory = Rider()
    forger.issue(mallory, account_id=666, valid_from=NOW - 60, valid_until=NOW + 3600)
    assert _scan(w, mallory.present(NOW)) == "bad_issuer_signature"
    assert w.sim.barrier.openings == 1
    assert w.dev.snapshot()["pending"] == 3  # one passage, two audited rejects

    # Sync over real TCP to the back office's SQLite file; only then is the journal trimmed.
    db = w.tmp / "bo.sqlite"
    bo = BackOfficeThread(str(db), HostKeys(w.host, OpenSSLVerifier()))
    bo.store.add_device(DEVICE, w.device_key.public_key, NOW)
    try:
        assert sync_once(w.dev.sync_client(), "127.0.0.1", bo.port) == 3
    finally:
        bo.stop()
    assert w.dev.snapshot()["pending"] == 0
    rows = (
        sqlite3.connect(db)
        .execute("SELECT device_id, seq, kind, issuer, account_id FROM records ORDER BY seq")
        .fetchall()
    )
    # the issuer in every record; the store keeps the account under it (records.account_key)
    issuer = records.decode(
        sqlite3.connect(db).execute("SELECT raw FROM records WHERE seq = 1").fetchone()[0]
    ).issuer
    assert [(d, q, k, i, records.split_account_key(a)) for d, q, k, i, a in rows] == [
        (DEVICE, 1, records.KIND_PASSAGE, issuer, (issuer, 4242)),
        (DEVICE, 2, records.KIND_REJECT, issuer, (issuer, 4242)),
        (DEVICE, 3, records.KIND_REJECT, issuer, (issuer, 666)),
    ]
    assert issuer != 0


def test_records_stay_when_the_back_office_does_not_acknowledge(world):
    w = world
    assert _scan(w, w.rider.present(NOW)) == "accepted"
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
        sync_once(w.dev.sync_client(), "127.0.0.1", port)
    t.join()
    srv.close()
    assert w.dev.snapshot()["pending"] == 1


def test_ack_for_records_never_sent_fails_the_session(world):
    from protocol import frames, messages

    w = world
    assert _scan(w, w.rider.present(NOW)) == "accepted"
    client = w.dev.sync_client()
    client.start()
    # an unsigned ACK injected on the link is never obeyed
    with pytest.raises(SyncError):
        client.receive(frames.encode(messages.ACK, messages.ack(1)))
    assert w.dev.snapshot()["pending"] == 1
