"""A gate's service console and a technician, both in memory, for portable tests.

Signatures use the stand-in scheme of tests/portable/codes.py (HashVerifier): MicroPython has
no ES256 signer here. The real ES256 path is tested over a pty in tests/test_provision_sim.py.
"""

import hashlib
import json

from firmware.maintenance import trial_selftest as selftest
from firmware.maintenance.console import ServiceConsole
from firmware.platform import write_atomic
from firmware.storage.device_store import DeviceStore
from firmware.storage.eventlog import EventLog
from firmware.storage.journal import Journal
from protocol import certs, frames, reasons, service
from tests.portable.codes import HashVerifier, fake_sig

NOW = 1767254400
DEVICE_ID = 1017
CONFIG = {  # a gate config (firmware/compose/gate_config.py) for DEVICE_ID
    "version": 1,
    "device_id": DEVICE_ID,
    "name": "A1",
    "station": 12,
    "lane": 1,
    "mode": "metro",
    "direction": "entry",
    "scope": 1,
}


class Verifier(HashVerifier):
    """The stand-in scheme, plus the one real ES256 signature of the self-test's known-answer
    test (firmware.maintenance.trial_selftest.KAT_*), which a gate's real backend accepts."""

    def verify(self, pub, message, sig):
        if bytes(pub) == selftest.KAT_PUB and bytes(message) == selftest.KAT_MSG:
            return bytes(sig) == selftest.KAT_SIG
        return HashVerifier.verify(self, pub, message, sig)


class HashSigner:
    def __init__(self, secret):
        self.secret = bytes(secret)
        self.public_key = b"\x02" + hashlib.sha256(self.secret).digest()

    def sign(self, msg):
        return fake_sig(self.public_key, msg)


class HashKeys:
    """The key backend a gate is handed: generate a secret, make a signer from one."""

    def __init__(self):
        self.n = 0

    def generate(self):
        self.n += 1
        return hashlib.sha256(b"device key %d" % self.n).digest()

    def signer(self, secret):
        return HashSigner(secret)


class Clock:
    def __init__(self, t=946684800):  # an unset RTC reads 2000-01-01
        self.t = t

    def now(self):
        return self.t

    def set(self, t):
        self.t = t


class Scanner:
    def __init__(self, texts=("FGTEST:card-1",)):
        self.texts = list(texts)

    def read(self, timeout_s):
        return self.texts.pop(0) if self.texts else None


class Barrier:
    def __init__(self, jammed=False):
        self.jammed = jammed
        self.state = False
        self.cycles = 0

    def open(self):
        if not self.jammed:
            self.state = True
            self.cycles += 1

    def close(self):
        self.state = False

    def is_open(self):
        return self.state


class Beams:
    """A pair of passage beams (drivers/portable/interfaces.py Pair): .read() -> (a, b)."""

    def __init__(self, a=False, b=False):
        self.levels = (a, b)

    def read(self):
        return self.levels


class Hardware:
    """What firmware.compose.device.Device takes as `hw` (drivers/portable/wiring.Hardware's
    shape)."""

    def __init__(self):
        self.scanner = Scanner()
        self.barrier = Barrier()
        self.beams = Beams()

    def readers(self):
        return [(self.scanner, None)]


class Rng:
    def __init__(self):
        self.n = 0

    def __call__(self, n):
        self.n += 1
        return hashlib.sha256(b"rng %d" % self.n).digest()[:n]


ROOT = HashSigner(b"operator root")
OTHER_ROOT = HashSigner(b"another operator")


def tech_cert(
    root=ROOT, perms=certs.PERM_ALL, valid_from=NOW - 86400, valid_until=NOW + 86400, kind=2
):
    tech = HashSigner(b"technician %d" % perms)
    c = certs.Cert(
        kind, 7, certs.key_id(root.public_key), valid_from, valid_until, tech.public_key, perms
    )
    c.label = "alice"
    return tech, certs.sign(c, root)


def device_cert(pub, device_id=DEVICE_ID, root=ROOT, valid_until=NOW + 86400 * 365):
    c = certs.Cert(1, device_id, certs.key_id(root.public_key), NOW - 60, valid_until, pub)
    return certs.sign(c, root)


def make_gate(directory, hw=None):
    write_atomic(
        directory + "/factory.json",
        json.dumps({"device_id": DEVICE_ID, "model": "test-gate", "firmware": "0.1.0"}).encode(),
    )
    return open_gate(directory, hw)


def open_gate(directory, hw=None, clock=None):
    clock = clock or Clock()
    store = DeviceStore(directory, HashKeys())
    journal = Journal(directory, DEVICE_ID)
    console = ServiceConsole(
        store,
        journal,
        clock,
        hw or Hardware(),
        Verifier(),
        Rng(),
        EventLog(directory, clock),
    )
    return console


class Tech:
    """The laptop's side, hand-rolled here so tests can also misbehave on purpose."""

    def __init__(self, console, signer=None, cert=None, root=ROOT):
        self.console = console
        if signer is None:
            signer, cert = tech_cert(root)
        self.signer = signer
        self.cert = cert
        self.root = root
        self.seq = 0
        self.ident = None
        self.host_nonce = b""
        self.sent = []  # every REQUEST payload sent, for replay tests

    def exchange(self, ftype, payload):
        out = self.console.feed(frames.encode(ftype, payload))
        dec = frames.FrameDecoder()
        got = dec.feed(out)
        assert len(got) == 1, got
        return got[0]

    def hello(self, nonce=b"h" * 16):
        self.host_nonce = nonce
        fr = self.exchange(service.HELLO, service.hello(nonce))
        assert fr.type == service.IDENTITY
        self.ident = service.parse_identity(fr.payload)
        self.seq = 0
        return self.ident

    def auth(self, claim=True, anchor=None):
        anchor = anchor or self.root.public_key
        body = service.auth_body(service.AUTH_CLAIM if claim else 0, anchor, self.cert)
        msg = service.auth_signing_input(
            self.ident.device_nonce, self.host_nonce, self.ident.device_id, body
        )
        return self.response(self.exchange(service.AUTH, body + self.signer.sign(msg)))

    def login(self, claim=True):
        self.hello()
        seq, cmd, reason, body = self.auth(claim)
        assert reason == "accepted", body
        return body

    def request_payload(self, cmd, body=b"", seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        head = service.request_head(seq, cmd, body)
        msg = service.request_signing_input(self.ident.device_nonce, head)
        return head + self.signer.sign(msg)

    def request(self, cmd, body=b"", seq=None):
        payload = self.request_payload(cmd, body, seq)
        self.sent.append(payload)
        return self.send_raw(payload)

    def send_raw(self, payload):
        return self.response(self.exchange(service.REQUEST, payload))

    def response(self, fr):
        assert fr.type == service.RESPONSE
        seq, cmd, status, body = service.parse_response(fr.payload)
        return seq, cmd, reasons.by_number(status), body

    def ok(self, cmd, body=b""):
        seq, c, reason, out = self.request(cmd, body)
        assert reason == "accepted", (reason, out)
        return out

    def ok_json(self, cmd, body=b""):
        return json.loads(self.ok(cmd, body))

    def put(self, kind, data, chunk=service.CHUNK):
        digest = hashlib.sha256(data).digest()
        last = None
        for off in range(0, max(len(data), 1), chunk):
            body = service.put_blob_body(kind, len(data), off, digest, data[off : off + chunk])
            last = self.request(service.PUT_BLOB, body)
            if last[2] != "accepted":
                return last
        return last
