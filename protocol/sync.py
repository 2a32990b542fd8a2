"""The sync protocol as two sans-IO state machines, one per side (h11's shape).

    conn = DeviceConnection(device_id, signer, verifier, host_pub)  # host: protocol/synchost
    wire = conn.send(Hello(...))        # an event in, bytes for the link out
    conn.receive_data(bytes_from_link)  # bytes in ...
    ev = conn.next_event()              # ... events out, or NEED_DATA

No sockets, no clock, no randomness: nonces and times come in inside the events the
application sends. Signing and verifying go through objects handed in (`signer.sign(msg) ->
r||s`, `verifier.verify(pub, msg, sig) -> bool`), so the same machines run over an in-memory
pipe, a serial line and TLS, and on MicroPython with its own ES256 backend.

Authentication. HELLO (device) carries a fresh device nonce; CHALLENGE (host) a fresh host
nonce and the host's time. Both sides then derive

    session_id = SHA-256("FGSYNC2 session" | HELLO payload | CHALLENGE body)

and every later message is `body | u32 counter | ES256 signature` over
`"FGSYNC2" | session_id | u8 type | u32 counter | body`: the host signs with the operator's
sync key (the gate holds its public key in config), the device with its device key (the back
office holds it in its registry). CHALLENGE is thus the host's proof, AUTH the device's, and
nothing from another session or another direction can be replayed. Counters run from 0 in each
direction: a lower counter is a duplicated frame and is dropped; a higher one means a frame was
lost, and the session fails (the device starts a new one; nothing is trimmed without an ACK).
A HELLO always starts a new session on the host (serial links have no connections).

Every state change lives in TRANSITIONS below, one protocol.fsm table per role:
(state, ("send"|"recv", message type)) -> (state, ()).
Flow control (how many batches may be unacknowledged, which fetch is outstanding) is checked
by the small guards next to it. Errors: LocalProtocolError when this side's application asks
for something the table forbids; RemoteProtocolError (with an ERRORS name as reason) when the
peer's bytes are wrong. After a RemoteProtocolError the connection is FAILED; the application
sends `Error` if it can and drops the link.
"""

import hashlib
import struct

from protocol import frames, records
from protocol import messages as m
from protocol.errors import FormatError, UsageError
from protocol.fsm import ANY, fire

DEVICE = "device"
HOST = "host"

# states
IDLE = "IDLE"
HELLO_SENT = "HELLO_SENT"  # device
CHALLENGED = "CHALLENGED"  # device: host proved itself; AUTH to send
AUTH_SENT = "AUTH_SENT"  # device
HELLO_RECEIVED = "HELLO_RECEIVED"  # host: decide whether the device is known
CHALLENGE_SENT = "CHALLENGE_SENT"  # host
AUTHENTICATED = "AUTHENTICATED"  # host: device proved itself; WELCOME to send
READY = "READY"  # both: batches, acks, status, fetches
CLOSING = "CLOSING"  # BYE sent (device) or received (host), BYE to come / to send
CLOSED = "CLOSED"
FAILED = "FAILED"

SEND = "send"
RECV = "recv"

TRANSITIONS = {
    DEVICE: {
        (IDLE, (SEND, m.HELLO)): (HELLO_SENT, ()),
        (HELLO_SENT, (RECV, m.CHALLENGE)): (CHALLENGED, ()),
        (CHALLENGED, (SEND, m.AUTH)): (AUTH_SENT, ()),
        (AUTH_SENT, (RECV, m.WELCOME)): (READY, ()),
        (READY, (SEND, m.BATCH)): (READY, ()),
        (READY, (RECV, m.ACK)): (READY, ()),
        (READY, (SEND, m.STATUS)): (READY, ()),
        (READY, (SEND, m.FETCH)): (READY, ()),
        (READY, (RECV, m.BLOB)): (READY, ()),
        (READY, (SEND, m.BYE)): (CLOSING, ()),
        (CLOSING, (RECV, m.BYE)): (CLOSED, ()),
        (ANY, (SEND, m.ERROR)): (FAILED, ()),  # in any state
        (ANY, (RECV, m.ERROR)): (FAILED, ()),
    },
    HOST: {
        (IDLE, (RECV, m.HELLO)): (HELLO_RECEIVED, ()),
        (HELLO_RECEIVED, (SEND, m.CHALLENGE)): (CHALLENGE_SENT, ()),
        (CHALLENGE_SENT, (RECV, m.AUTH)): (AUTHENTICATED, ()),
        (AUTHENTICATED, (SEND, m.WELCOME)): (READY, ()),
        (READY, (RECV, m.BATCH)): (READY, ()),
        (READY, (SEND, m.ACK)): (READY, ()),
        (READY, (RECV, m.STATUS)): (READY, ()),
        (READY, (RECV, m.FETCH)): (READY, ()),
        (READY, (SEND, m.BLOB)): (READY, ()),
        (READY, (RECV, m.BYE)): (CLOSING, ()),
        (CLOSING, (SEND, m.BYE)): (CLOSED, ()),
        (ANY, (SEND, m.ERROR)): (FAILED, ()),  # in any state
        (ANY, (RECV, m.ERROR)): (FAILED, ()),
    },
}
# HELLO received by a host in any state restarts the session (protocol/synchost.py).

NEED_DATA = "NEED_DATA"
DOMAIN = b"FGSYNC2"


class LocalProtocolError(UsageError):
    reason = "local_protocol_error"


class RemoteProtocolError(FormatError):
    reason = "bad_message"


# -- events --------------------------------------------------------------------------------
class Event:
    """A message as a value: small, comparable, printable. `body()` is its wire body."""

    TYPE = 0
    FIELDS: tuple = ()

    def values(self) -> tuple:
        return tuple(self.__dict__[f] for f in self.FIELDS)

    def __eq__(self, other):
        return type(self) is type(other) and self.values() == other.values()

    def __repr__(self):
        return "%s%r" % (type(self).__name__, self.values())

    def body(self) -> bytes:
        return b""


class Hello(Event):
    TYPE = m.HELLO
    FIELDS = ("device_id", "nonce", "last_seq", "version")

    def __init__(self, device_id: int, nonce: bytes, last_seq: int, version: int = m.VERSION):
        self.device_id = device_id
        self.nonce = nonce
        self.last_seq = last_seq
        self.version = version

    def body(self):
        return m.hello(self.device_id, self.nonce, self.last_seq, self.version)


class Challenge(Event):
    TYPE = m.CHALLENGE
    FIELDS = ("nonce", "host_time", "version")

    def __init__(self, nonce: bytes, host_time: int, version: int = m.VERSION):
        self.nonce = nonce
        self.host_time = host_time
        self.version = version

    def body(self):
        return m.challenge(self.nonce, self.host_time, self.version)


class Auth(Event):
    TYPE = m.AUTH
    FIELDS = ("device_id",)

    def __init__(self, device_id: int):
        self.device_id = device_id

    def body(self):
        return m.auth(self.device_id)


class Welcome(Event):
    TYPE = m.WELCOME
    FIELDS = ("high_seq", "offers")

    def __init__(self, high_seq: int, offers: list):
        self.high_seq = high_seq
        self.offers = offers  # [(kind, version, size)]

    def body(self):
        return m.welcome(self.high_seq, self.offers)


class Batch(Event):
    TYPE = m.BATCH

    FIELDS = ("records", "sig")

    def __init__(self, records: list, sig: bytes = b""):
        self.records = records  # raw records (either version), consecutive seqs
        self.sig = sig  # the batch signature; the DeviceConnection signs it when sent

    def body(self):
        return m.batch(self.records, self.sig)


class Ack(Event):
    TYPE = m.ACK
    FIELDS = ("up_to_seq",)

    def __init__(self, up_to_seq: int):
        self.up_to_seq = up_to_seq

    def body(self):
        return m.ack(self.up_to_seq)


class Status(Event):
    TYPE = m.STATUS
    FIELDS = (
        "time",
        "unsynced",
        "oldest_age_s",
        "last_seq",
        "rejects_not_journaled",
        "versions",
        "extra",
        "refused",
    )

    def __init__(
        self,
        time: int,
        unsynced: int,
        oldest_age_s: int,
        last_seq: int,
        rejects_not_journaled: int,
        versions: list,
        extra: bytes,
        refused: list = (),
    ):
        self.time = time
        self.unsynced = unsynced
        self.oldest_age_s = oldest_age_s
        self.last_seq = last_seq
        self.rejects_not_journaled = rejects_not_journaled
        self.versions = versions  # [(kind, version)]
        self.extra = extra  # UTF-8 JSON
        self.refused = list(refused)  # [(kind, version, reason, text)] blobs the gate refused

    def body(self):
        return m.status(*self.values())


class Fetch(Event):
    TYPE = m.FETCH
    FIELDS = ("kind", "version", "offset", "max_len")

    def __init__(self, kind: int, version: int, offset: int, max_len: int):
        self.kind = kind
        self.version = version
        self.offset = offset
        self.max_len = max_len

    def body(self):
        return m.fetch(self.kind, self.version, self.offset, self.max_len)


class Blob(Event):
    TYPE = m.BLOB
    FIELDS = ("kind", "version", "total", "offset", "data")

    def __init__(self, kind: int, version: int, total: int, offset: int, data: bytes):
        self.kind = kind
        self.version = version
        self.total = total
        self.offset = offset
        self.data = data

    def body(self):
        return m.blob(self.kind, self.version, self.total, self.offset, self.data)


class Bye(Event):
    TYPE = m.BYE


class Error(Event):
    TYPE = m.ERROR
    FIELDS = ("code", "text")

    def __init__(self, code: int, text: str):
        self.code = code
        self.text = text

    @classmethod
    def named(cls, name, text=""):
        return cls(m.ERRORS[name][0], text or m.ERRORS[name][1])

    def name(self):
        return m.error_name(self.code)

    def body(self):
        return m.error(self.code, self.text)


_PARSE = {
    m.HELLO: (Hello, m.parse_hello),
    m.CHALLENGE: (Challenge, m.parse_challenge),
    m.AUTH: (Auth, lambda p: (m.parse_auth(p),)),
    m.WELCOME: (Welcome, m.parse_welcome),
    m.BATCH: (Batch, m.parse_batch),
    m.ACK: (Ack, lambda p: (m.parse_ack(p),)),
    m.STATUS: (Status, m.parse_status),
    m.FETCH: (Fetch, m.parse_fetch),
    m.BLOB: (Blob, m.parse_blob),
    m.BYE: (Bye, m.parse_bye),
    m.ERROR: (Error, m.parse_error),
}


def parse_event(ftype, body):
    entry = _PARSE.get(ftype)
    if entry is None:
        raise FormatError("unknown message type %d" % ftype, "bad_message")
    cls, parse = entry
    fields = parse(body)
    if cls is Hello:  # wire order is version first
        fields = (fields[1], fields[2], fields[3], fields[0])
    elif cls is Challenge:
        fields = (fields[1], fields[2], fields[0])
    return cls(*fields)


BATCH_DOMAIN = b"FGBATCH2"


def record_digest(raw) -> bytes:
    """SHA-256 of one record's bytes, as a batch signature covers it."""
    return hashlib.sha256(bytes(raw)).digest()


def batch_digest(items) -> bytes:
    """SHA-256 of the batch's record digests, concatenated in upload order."""
    h = hashlib.sha256()
    for d in items:
        h.update(d)
    return h.digest()


def batch_hash(raws) -> bytes:
    """What a batch signature covers of the records: SHA-256 of their SHA-256s, so that one
    record's part in a signed batch is shown with the other records' digests alone (an issuer
    sees its records, not another issuer's: docs/settlement.md)."""
    return batch_digest(record_digest(raw) for raw in raws)


def batch_signed(device_id: int, count: int, digest: bytes) -> bytes:
    return BATCH_DOMAIN + struct.pack(">IH", device_id, count) + digest


def batch_signing_input(device_id: int, raws) -> bytes:
    """What the gate's device key signs for a BATCH, apart from the session's signature, so
    that the signature stays evidence after the session is gone (anyone with the device's
    public key checks it): "FGBATCH2" | u32 device_id | u16 count | SHA-256(SHA-256(record 1)
    | ... | SHA-256(record n))."""
    return batch_signed(device_id, len(raws), batch_hash(raws))


def session_id(hello_payload, challenge_body) -> bytes:
    return hashlib.sha256(b"FGSYNC2 session" + hello_payload + challenge_body).digest()


def signing_input(sid, ftype, counter, body) -> bytes:
    return DOMAIN + sid + struct.pack(">BI", ftype, counter) + body


SIG_LEN = 64  # ES256 r || s
TRAILER_LEN = 4 + SIG_LEN  # after every signed body: u32 counter | signature


def signed(body, counter: int, sig) -> bytes:
    """The payload of a signed message: `body | u32 counter | signature`."""
    return body + struct.pack(">I", counter) + sig


def split_signed(payload):
    """-> (body, counter, signature) of a signed message's payload, or None if too short."""
    end = len(payload) - TRAILER_LEN
    if end < 0:
        return None
    (counter,) = struct.unpack_from(">I", payload, end)
    return payload[:end], counter, payload[end + 4 :]


# -- the machines --------------------------------------------------------------------------
class _Connection:
    ROLE = ""

    def __init__(self, signer, verifier, max_payload=frames.DEFAULT_MAX_PAYLOAD):
        self.signer = signer  # this side's key: .sign(msg) -> r||s
        self.verifier = verifier  # .verify(pub, msg, sig) -> bool
        self.peer_pub = None
        self.state = IDLE
        self._dec = frames.FrameDecoder(max_payload)
        self._frames = []
        self._sid = None
        self._hello = None  # HELLO payload of this session
        self._out_ctr = 0
        self._in_ctr = 0
        self.stats = {"duplicates": 0, "ignored": 0}

    # table ---------------------------------------------------------------------------------
    def _step(self, direction, ftype):
        hit = fire(TRANSITIONS[self.ROLE], self.state, (direction, ftype))
        if hit is None:
            msg = "%s %s %s in state %s" % (self.ROLE, direction, m.NAMES[ftype], self.state)
            if direction == SEND:
                raise LocalProtocolError(msg)
            self.state = FAILED
            raise RemoteProtocolError(msg, "unexpected_message")
        self.state = hit[0]

    # sending -------------------------------------------------------------------------------
    def send(self, event) -> bytes:
        ftype = event.TYPE
        if ftype != m.ERROR:
            self._guard_send(event)
        body = event.body()
        self._step(SEND, ftype)
        if ftype in (m.HELLO, m.ERROR):
            return frames.encode(ftype, body)
        if ftype == m.CHALLENGE:
            self._sid = session_id(self._hello, body)
        counter = self._out_ctr
        self._out_ctr += 1
        sig = self.signer.sign(signing_input(self._sid, ftype, counter, body))
        self._sent(event)
        return frames.encode(ftype, signed(body, counter, sig))

    def _guard_send(self, event):
        pass

    def _sent(self, event):
        pass

    # receiving -----------------------------------------------------------------------------
    def receive_data(self, data) -> None:
        self._frames.extend(self._dec.feed(data))

    def next_event(self):
        """The next event from the peer, or NEED_DATA. Raises RemoteProtocolError."""
        while self._frames:
            fr = self._frames.pop(0)
            ev = self._receive_frame(fr.type, fr.payload)
            if ev is not None:
                return ev
        return NEED_DATA

    def _fail(self, reason, text):
        self.state = FAILED
        raise RemoteProtocolError(text, reason)

    def _unwrap(self, ftype, payload):
        """Check counter and signature; return the body, or None for a duplicate."""
        parts = split_signed(payload)
        if parts is None:
            self._fail("bad_message", "%s too short to be signed" % m.NAMES.get(ftype, ftype))
        body, counter, sig = parts
        if counter < self._in_ctr:
            self.stats["duplicates"] += 1
            return None
        if counter > self._in_ctr:
            self._fail("sequence_gap", "message %d expected, %d arrived" % (self._in_ctr, counter))
        if not self.verifier.verify(
            self.peer_pub, signing_input(self._sid, ftype, counter, body), sig
        ):
            self._fail("bad_signature", "%s signature does not verify" % m.NAMES[ftype])
        self._in_ctr += 1
        return body

    def _parse(self, ftype, body):
        try:
            return parse_event(ftype, body)
        except FormatError as e:
            self._fail("bad_message", str(e))

    def _receive_frame(self, ftype, payload):
        if self.state in (FAILED, CLOSED):
            self.stats["ignored"] += 1
            return None
        if ftype == m.ERROR:
            ev = self._parse(ftype, payload)
            self._step(RECV, ftype)
            return ev
        if ftype not in _PARSE:
            self._fail("bad_message", "unknown message type %d" % ftype)
        body = self._unwrap(ftype, payload)
        if body is None:
            return None
        ev = self._parse(ftype, body)
        self._step(RECV, ftype)
        self._received(ev)
        return ev

    def _received(self, ev):
        pass


class DeviceConnection(_Connection):
    """The gate's side. `host_pub` is the operator's sync public key, or a list of them (the
    sync role's keys of the gate's root metadata): the CHALLENGE picks the one that signed it,
    and the session holds to that key."""

    ROLE = DEVICE

    def __init__(self, device_id, signer, verifier, host_pub, window=4, **kw):
        super().__init__(signer, verifier, **kw)
        self.device_id = device_id
        self.host_keys = list(host_pub) if isinstance(host_pub, (list, tuple)) else [host_pub]
        self.peer_pub = self.host_keys[0] if self.host_keys else b""
        self.window = window
        self.in_flight = []  # last seq of each BATCH sent and not yet acknowledged, in order
        self.fetching = None  # (kind, version, offset) of the FETCH awaiting its BLOB
        self.stats["stale_challenges"] = 0

    def can_send_batch(self) -> bool:
        return self.state == READY and len(self.in_flight) < self.window

    def _guard_send(self, ev):
        if ev.TYPE == m.HELLO:
            if ev.device_id != self.device_id:
                raise LocalProtocolError("HELLO for another device id")
            self._hello = ev.body()
        elif ev.TYPE == m.BATCH:
            if not ev.records:
                raise LocalProtocolError("an empty BATCH")
            if len(self.in_flight) >= self.window:
                raise LocalProtocolError("%d batches already unacknowledged" % self.window)
            if not ev.sig:  # the gate's evidence, beside the session's signature
                ev.sig = self.signer.sign(batch_signing_input(self.device_id, ev.records))
        elif ev.TYPE == m.FETCH and self.fetching is not None:
            raise LocalProtocolError("a FETCH is already outstanding")
        elif ev.TYPE == m.BYE and (self.in_flight or self.fetching):
            raise LocalProtocolError("BYE before every batch and fetch was answered")

    def _sent(self, ev):
        if ev.TYPE == m.BATCH:
            self.in_flight.append(records.seq_of(ev.records[-1]))
        elif ev.TYPE == m.FETCH:
            self.fetching = (ev.kind, ev.version, ev.offset)

    def _unwrap(self, ftype, payload):
        if ftype == m.CHALLENGE and self.state == HELLO_SENT:
            # The session id needs the CHALLENGE body; a CHALLENGE that does not verify is a
            # stale one (for an earlier HELLO) or a forgery: dropped, counted, never obeyed.
            parts = split_signed(payload)
            body = parts[0] if parts is not None else b""
            self._sid = session_id(self._hello, bytes(body))
            signer = None
            if parts is not None and parts[1] == self._in_ctr:
                msg = signing_input(self._sid, ftype, self._in_ctr, body)
                for pub in self.host_keys:
                    if self.verifier.verify(pub, msg, parts[2]):
                        signer = pub
                        break
            if signer is None:
                self.stats["stale_challenges"] += 1
                return None
            self.peer_pub = signer
            self._in_ctr += 1
            return body
        return super()._unwrap(ftype, payload)

    def _received(self, ev):
        if ev.TYPE == m.CHALLENGE and ev.version != m.VERSION:
            self._fail("bad_version", "host speaks sync version %d" % ev.version)
        elif ev.TYPE == m.ACK:
            if not self.in_flight or ev.up_to_seq != self.in_flight[0]:
                self._fail(
                    "unexpected_message",
                    "ACK %d does not match the oldest batch in flight %r"
                    % (ev.up_to_seq, self.in_flight[:1]),
                )
            self.in_flight.pop(0)
        elif ev.TYPE == m.BLOB:
            f = self.fetching
            if (
                f is None
                or (ev.kind, ev.version) != f[:2]
                or (ev.total != m.NOT_AVAILABLE and ev.offset != f[2])
            ):
                self._fail("unexpected_message", "BLOB that answers no FETCH")
            self.fetching = None
