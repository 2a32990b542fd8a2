"""The device kit of the portable suite: a gate composed from its state directory on stand-in
hardware (reader, barrier, display, beams, clock), provisioned through its real service console
with real ES256 lists. Kept out of tests/portable/test_device.py so that the MCU suite, which
counts every byte of its heap, loads the kit and not the device tests (nor the back office of
tests/portable/sync_kit.py: a test that syncs imports MiniHost from there).
"""

import json
import struct

from firmware.compose.device import Device
from firmware.gate import modes
from protocol import denylist, service, trustlist
from tests.portable import codes
from tests.portable import console_kit as kit
from tests.portable.codes import HOST_PUB  # noqa: F401 (the device tests' host key)
from tests.portable.harness import mkdtemp, rmtree

NOW = codes.NOW
ROOT = codes.ROOT  # the operator root: claims the gate, signs its lists and certificates
RID = trustlist.root_key_id(ROOT.public_key)


class Backend:
    """Signatures for firmware.platform.crypto()'s role: real ES256 where it is real, the
    stand-in for the technician's and the device's keys."""

    @staticmethod
    def verifier():
        return Verifier()

    @staticmethod
    def signer(secret):
        return kit.HashSigner(secret)


class Verifier:
    def verify(self, pub, msg, sig):
        return kit.Verifier().verify(pub, msg, sig) or codes.VERIFIER.verify(pub, msg, sig)


class Clock:
    """The board: an RTC (now/set) and a tick counter, both moved by the test."""

    def __init__(self, t=946684800):
        self.t = t
        self.ms = 1000

    def now(self):
        return self.t

    def set(self, t):
        self.t = t

    def ticks_ms(self):
        return self.ms

    def advance(self, seconds):
        self.t += seconds
        self.ms += seconds * 1000


class Reader:
    def __init__(self):
        self.texts = []

    def read(self, timeout_s):
        return self.texts.pop(0) if self.texts else None


class Barrier:
    def __init__(self):
        self.opened = 0
        self.state = False

    def open(self):
        self.opened += 1
        self.state = True

    def close(self):
        self.state = False

    def is_open(self):
        return self.state


class Display:
    def __init__(self):
        self.lines = []

    def show(self, text):
        self.lines.append(text)


class Beams:
    def __init__(self):
        self.levels = (False, False)

    def read(self):
        return self.levels


class Hardware:
    def __init__(self):
        self.reader = Reader()
        self.barrier = Barrier()
        self.display = Display()
        self.beams = Beams()
        self.indicator = None

    def readers(self):
        return [(self.reader, None)]

    def inputs(self):
        return []


def _config(stale="accept_flagged", **sync):
    cfg = dict(kit.CONFIG)
    cfg["validation"] = {"stale_trust": stale}
    if sync:
        cfg["sync"] = sync
    return json.dumps(cfg).encode()


def _trust(version=1, valid_until=NOW + 7 * 86400):
    return codes.trust_blob(version, valid_until=valid_until, root_key_id=RID)


def _open(d, hw, clock, log=None):
    return Device.open(d, hw, clock, crypto=Backend, log=log, rng=kit.Rng())


def _provision(d, hw, clock, config=None, **sync):
    """A blank gate taken to in service over its console, as `faregate provision` does
    (`config`: the config's bytes, default `_config(**sync)`)."""
    kit.write_atomic(
        d + "/factory.json",
        json.dumps({"device_id": kit.DEVICE_ID, "model": "t", "firmware": "0.1.0"}).encode(),
    )
    dev = _open(d, hw, clock)
    assert not dev.in_service and dev.validator is None  # blank: the console only
    signer, cert = kit.tech_cert(ROOT, valid_from=NOW - 86400, valid_until=NOW + 30 * 86400)
    tech = kit.Tech(dev.console, signer, cert, ROOT)
    tech.login()
    assert dev.validator is not None  # claimed: lists can be loaded now
    tech.ok(service.SET_TIME, struct.pack(">I", NOW))
    pub = tech.ok(service.GEN_KEY)[1:34]
    for kind, data in (
        (service.BLOB_CERT, kit.device_cert(pub, root=ROOT)),
        (service.BLOB_CONFIG, config or _config(**sync)),
        (service.BLOB_TRUST, _trust()),
        (service.BLOB_DENY, denylist.build_snapshot(1, NOW - 60, [], ROOT)),
    ):
        assert tech.put(kind, data)[2] == "accepted", kind
    hw.reader.texts = ["FGTEST:card-1"]
    result = tech.ok_json(service.SELFTEST, struct.pack(">I", NOW))
    assert result["passed"], result
    assert dev.in_service and dev.gate.state == modes.IDLE
    hw.barrier.opened = 0  # the self-test cycled it once
    return dev, tech


def _scan(dev, hw, text):
    hw.reader.texts.append(text)
    dev.step(0)
    return dev.status()["counts"]


def _walk(dev, hw, clock):
    for a, b in ((1, 0), (1, 1), (0, 1), (0, 0)):
        hw.beams.levels = (a, b)
        clock.ms += 50
        dev.step(0)


def _with(fn):
    d = mkdtemp("device")
    try:
        fn(d)
    finally:
        rmtree(d)
