"""firmware.compose.app and the service console with the real update agent behind it: flashing goes
through an authenticated session, and the trial check includes the console. CPython and
MicroPython alike, with the stand-in signature scheme as the platform's backend; the same path
over a pty with real ES256 is tests/test_flash_pty.py.
"""

import hashlib
import json

from firmware import platform
from firmware.compose import app
from firmware.maintenance import boot
from firmware.maintenance.console import ServiceConsole
from firmware.maintenance.flash_service import FlashService
from firmware.platform import write_atomic
from firmware.storage.device_store import DeviceStore
from firmware.storage.eventlog import EventLog
from firmware.storage.journal import Journal
from protocol import flash, frames, image, service
from tests.portable import console_kit as kit
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, confirmed_gate, device, make


def _with_gate(fn):
    d = mkdtemp()
    try:
        fn(d)
    finally:
        rmtree(d)


def _factory(d):
    """What the factory leaves on a gate: its id, and the firmware it shipped with (0.1.0)."""
    info = {"device_id": kit.DEVICE_ID, "model": "test-gate", "firmware": "0.1.0"}
    write_atomic(d + "/factory.json", json.dumps(info).encode())


def _console(d):
    clock = kit.Clock()
    store = DeviceStore(d, kit.HashKeys())
    return ServiceConsole(
        store,
        Journal(d, kit.DEVICE_ID),
        clock,
        kit.Hardware(),
        kit.Verifier(),
        kit.Rng(),
        EventLog(d, clock),
        flash_service=FlashService(agent(d, running="a")),
    )


def _flash(console, ftype, payload=b""):
    out = frames.FrameDecoder(1 << 20).feed(console.feed(frames.encode(ftype, payload)))
    assert len(out) == 1, out
    return out[0]


def _big_image():
    """An image whose manifest alone is larger than a service-console frame (8 KiB)."""
    files = {"firmware/__init__.py": b"", "protocol/__init__.py": b""}
    for i in range(200):
        files["firmware/generated/module_%03d.py" % i] = b"X = %d\n" % i
    return make(version=(1, 1, 0), counter=2, files=files)


def test_an_update_through_an_authenticated_session():
    def body(d):
        confirmed_gate(d)
        _factory(d)
        console = _console(d)
        tech = kit.Tech(console)
        tech.login()
        ident = tech.hello()
        assert json.loads(ident.info)["firmware"] == "1.0.0"  # the running image, not 0.1.0
        tech.login(claim=False)
        st = tech.ok_json(service.STATUS)
        assert st["firmware"] == "1.0.0" and st["image"]["slot"] == "a"
        assert st["image"]["other_slot"] == {"slot": "b", "state": "empty", "version": None}

        data = _big_image()
        head_len = image.parse_header(data).head_len
        assert head_len > service.MAX_FRAME
        sha = hashlib.sha256(data).digest()
        begin = flash.begin(len(data), sha, data[:head_len])
        # over buffers.console_frame: refused, typed, before a byte of it is buffered
        fr = _flash(console, flash.BEGIN, begin)
        assert fr.type == flash.REFUSED
        assert flash.parse_refused(fr.payload)[0] == "image_head_too_large"
        # a config blob that raises the limit lets the same BEGIN in
        cfg = dict(kit.CONFIG, buffers={"console_frame": 32768})
        assert tech.put(service.BLOB_CONFIG, json.dumps(cfg).encode())[2] == "accepted"
        assert console.frame_limit() == 32768 > len(begin)
        fr = _flash(console, flash.BEGIN, begin)
        offset, _crc, chunk, _window = flash.parse_ready(fr.payload)
        while offset < len(data):
            fr = _flash(console, flash.DATA, flash.data(offset, data[offset : offset + chunk]))
            offset = flash.parse_ack(fr.payload)
        fr = _flash(console, flash.END)
        assert fr.type == flash.DONE and flash.parse_done(fr.payload)[0] == sha
        assert _flash(console, flash.END).payload == fr.payload  # a lost DONE: same answer
        fr = _flash(console, flash.ACTIVATE)
        assert fr.type == flash.STATUS and console.flash_service.reboot
        img = tech.ok_json(service.STATUS)["image"]
        assert img["other_slot"] == {"slot": "b", "state": "pending", "version": "1.1.0"}
        events = [e["ev"] for e in console.log.since(1, 100)]
        assert events.count("flash_begin") == 1 and "flash_activate" in events
        assert boot.choose(d) == ("b", True)

    _with_gate(body)


class StandIn:
    """A signature backend for firmware.platform.set_crypto: the stand-in scheme."""

    @staticmethod
    def verifier():
        return kit.Verifier()

    @staticmethod
    def signer(secret):
        return kit.HashSigner(secret)


def _run(ctx, link, logs):
    platform.set_crypto(StandIn)
    try:
        return app.run(ctx, link, kit.Hardware(), kit.Rng(), logs.append)
    finally:
        platform.set_crypto(None)


class Link:
    """A service port: the bytes a laptop sends, then the port closes."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.out = b""

    def read(self, timeout_s=None):
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data):
        self.out += data


def test_app_serves_the_console_until_the_port_closes():
    def body(d):
        confirmed_gate(d)
        _factory(d)
        logs = []
        link = Link(
            [frames.encode(service.HELLO, service.hello(b"n" * 16)), frames.encode(flash.QUERY)]
        )
        ctx = {"state_dir": d, "slot": "a", "trial": False, "device": device()}
        code = _run(ctx, link, logs)
        assert code == boot.EXIT_HALT
        got = frames.FrameDecoder().feed(link.out)
        assert [f.type for f in got] == [service.IDENTITY, flash.REFUSED]
        assert flash.parse_refused(got[1].payload)[0] == "svc_not_provisioned"
        ready = [line for line in logs if line.startswith("console: ready ")]
        info = json.loads(ready[0][len("console: ready ") :])
        assert info == {
            "device_id": kit.DEVICE_ID,
            "state": "blank",
            "slot": "a",
            "version": "1.0.0",
        }

    _with_gate(body)


def test_a_trial_whose_console_cannot_start_reverts():
    def body(d):
        confirmed_gate(d)  # no factory.json: the console cannot open the device store
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        logs = []
        ctx = {"state_dir": d, "slot": "b", "trial": True, "device": device()}
        code = _run(ctx, Link([]), logs)
        assert code == boot.EXIT_REBOOT
        last = boot.load_state(d)["last"]
        assert last["event"] == "reverted" and "service console: " in last["reason"], last
        assert boot.choose(d) == ("a", False)

    _with_gate(body)


def test_device_keys_over_the_portable_backend():
    from firmware.storage.device_store import Keys
    from protocol import p256

    draws = [b"\xff" * 32, b"\x00" * 32, bytes(range(1, 33))]  # two out of range, then one
    keys = Keys(p256, lambda n: draws.pop(0))
    secret = keys.generate()
    assert secret == bytes(range(1, 33)) and not draws
    signer = keys.signer(secret)
    sig = signer.sign(b"proof")
    assert len(signer.public_key) == 33 and p256.verifier().verify(signer.public_key, b"proof", sig)
