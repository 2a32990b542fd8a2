"""The gate's periodic sync as firmware/app.py runs it: the Syncer opens the link the Linux
entry point chooses (here a serial port: a pty read through pyserial, the back office serving
the other end into its SQLite file), pumps the session from the main loop, logs one line per
session, and backs off when the back office is not there."""

import os
import threading
import time
import tty

import pytest

from drivers import crypto_openssl as es256
from drivers import linux_gate
from firmware import app
from firmware.device import Device
from host_sim import gatedir
from host_sim.backoffice import Store
from host_sim.hardware import ManualClock
from host_sim.sync_server import HostKeys, serve_link
from protocol import denylist, records, trustlist
from tests.synclab import FdLink

NOW = 1_767_254_400
DEVICE_ID = 1201


class Ticks:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def gate(tmp_path):
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
        denylist.build_snapshot(1, NOW, [], root.sign, rid),
        NOW,
    )
    dev = Device.open(d, None, ManualClock(NOW), crypto=es256)
    for i in range(30):
        dev.journal.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, NOW + i, account_id=i))
    store = Store(str(tmp_path / "bo.sqlite"))
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
