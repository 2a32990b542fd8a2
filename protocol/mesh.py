"""Station mesh messages: a gate tells the other gates of its station what it accepted.

Pure functions over bytes (docs/mesh.md has the layout, the rules and a test vector). Every
message is one UDP datagram, signed by the sender's device key and carrying the sender's device
certificate (protocol/certs.py), so a peer checks it with the operator root alone.

    offset size field
      0     2   magic        b"FM"
      2     1   version      = 2 (1: entries of 32 bytes without the issuer, refused)
      3     1   type         1 ANNOUNCE (entries; none: a heartbeat), 2 ASK (catch-up request)
      4     4   sender       device_id of the sender (= the certificate's subject)
      8     2   station      the sender's station
     10     1   count        entries that follow the certificate (ASK: 0), at most MAX_ENTRIES
     11     1   reserved     = 0
     12     4   time         the sender's gate time, unix seconds
     16     4   msg          the sender's message number since its boot (with time: newer is
                             greater; a message not newer than the last one is a replay)
     20     8   from_seq     ANNOUNCE: the entries are every announcement of the sender after
                             from_seq up to the last entry's seq; ASK: send me everything
                             after this seq
     28     8   head         ANNOUNCE: the sender's newest announced seq; ASK: 0
     36     4   target       ASK: the device asked (0: every peer); ANNOUNCE: 0
     40   137   cert         the sender's device certificate
    177  34*n   entries      below
      .    64   signature    ES256 raw r||s by the sender's device key over every byte before

Entry (34 bytes): one passage the sender accepted (or voided afterwards):

      0     8   seq          the passage record's journal seq at the sender
      8     1   kind         1 accepted, 2 voided (passage_not_taken: the rider never passed)
      9     1   mode         the sender's gate mode (protocol/records.py)
     10     1   direction    0 none, 1 entry, 2 exit
     11     1   flags        bit 0: an emergency passage (no anti-passback)
     12     4   time         gate time of the passage, unix seconds
     16     8   account_id
     24     4   cred_no
     28     4   counter      presentation counter: with account_id, cred_no the presentation
     32     2   issuer       the credential's issuer key id (0: none, a version 1 record): with
                             the credential it is the replay key (firmware/verify/replay.py
                             presentation_key) and with the account the anti-passback key
                             (protocol.records.account_key), so another issuer's account 42
                             is another rider

`parse` is strict (magic, version, type, lengths, reserved bytes, entry kinds) and raises
FormatError with reason "mesh_malformed"; `check` verifies the certificate and the signature and
returns a reason name of protocol/reasons.py (300-309), or None.
"""

import struct

from protocol import certs
from protocol.errors import FormatError

MAGIC = b"FM"
VERSION = 2
TYPE_ANNOUNCE = 1
TYPE_ASK = 2
TYPES = (TYPE_ANNOUNCE, TYPE_ASK)
KIND_ACCEPTED = 1
KIND_VOIDED = 2
FLAG_EMERGENCY = 1

HEAD_LEN = 40
CERT_AT = HEAD_LEN
ENTRIES_AT = HEAD_LEN + certs.CERT_LEN  # 177
ENTRY_LEN = 34
SIG_LEN = 64
# a UDP datagram of at most 1,472 bytes (an Ethernet MTU) never fragments: 32 entries fill 1,329
MAX_ENTRIES = 32
MIN_LEN = ENTRIES_AT + SIG_LEN
MAX_LEN = MIN_LEN + MAX_ENTRIES * ENTRY_LEN
_HEAD = ">2sBBIHBBIIQQI"  # 40 bytes
_ENTRY = ">QBBBBIQIIH"  # 34 bytes
MALFORMED = "mesh_malformed"
# reasons (protocol/reasons.py adds them to REASONS on Linux gates): name -> (number, display,
# explanation); never shown to riders; docs/mesh.md, section 3
REASONS = {
    "mesh_malformed": (
        300,
        "",
        "A station-mesh datagram that is not a well-formed message (length, magic, version, "
        "type, count, entry order): dropped.",
    ),
    "mesh_bad_signature": (
        301,
        "",
        "A mesh message whose signature does not verify with its certificate's key (forged or "
        "altered on the way): dropped.",
    ),
    "mesh_foreign_cert": (
        302,
        "",
        "A mesh message whose certificate is not signed by this gate's operator root (another "
        "operator's gate, or a self-made certificate): dropped.",
    ),
    "mesh_bad_cert": (
        303,
        "",
        "A mesh message whose certificate does not parse, is not a device certificate, names "
        "another device than the sender, or is outside its validity: dropped.",
    ),
    "mesh_replayed": (
        304,
        "",
        "A mesh message not newer (time, msg) than the last one taken from its sender: a replay "
        "or a late duplicate, dropped (catch-up repairs what a reordering lost).",
    ),
    "mesh_stale": (
        305,
        "",
        "A mesh message whose time is further than mesh.max_age_s from the gate's time: "
        "dropped (a recording replayed later, or a peer with a wrong clock).",
    ),
    "mesh_other_station": (
        306,
        "",
        "A mesh message from a gate of another station (mesh.peers lists a wrong address): "
        "dropped.",
    ),
    "mesh_catchup": (
        307,
        "",
        "The gate asked a peer for the announcements it missed (a gap in the peer's sequence, "
        "a boot, a partition healed).",
    ),
}


class Entry:
    __slots__ = (
        "seq",
        "kind",
        "mode",
        "direction",
        "flags",
        "time",
        "account_id",
        "cred_no",
        "counter",
        "issuer",
    )

    def __init__(
        self, seq, kind, mode, direction, flags, time, account_id, cred_no, counter, issuer=0
    ):
        self.seq = seq
        self.kind = kind
        self.mode = mode
        self.direction = direction
        self.flags = flags
        self.time = time
        self.account_id = account_id
        self.cred_no = cred_no
        self.counter = counter
        self.issuer = issuer

    def to_bytes(self) -> bytes:
        if self.kind not in (KIND_ACCEPTED, KIND_VOIDED):
            raise FormatError("unknown mesh entry kind %d" % self.kind, MALFORMED)
        return struct.pack(
            _ENTRY,
            self.seq,
            self.kind,
            self.mode,
            self.direction,
            self.flags,
            self.time,
            self.account_id,
            self.cred_no,
            self.counter,
            self.issuer,
        )

    def __eq__(self, other):
        return isinstance(other, Entry) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "Entry(seq=%d, kind=%d, account=%d:%d/%d, counter=%d)" % (
            self.seq,
            self.kind,
            self.issuer,
            self.account_id,
            self.cred_no,
            self.counter,
        )


class Message:
    __slots__ = (
        "type",
        "sender",
        "station",
        "time",
        "msg",
        "from_seq",
        "head",
        "target",
        "cert",
        "entries",
        "signature",
        "raw",
    )

    def __init__(
        self,
        type,
        sender,
        station,
        time,
        msg,
        from_seq=0,
        head=0,
        target=0,
        cert=b"",
        entries=(),
        signature=b"",
        raw=b"",
    ):
        self.type = type
        self.sender = sender
        self.station = station
        self.time = time
        self.msg = msg
        self.from_seq = from_seq
        self.head = head
        self.target = target
        self.cert = bytes(cert)
        self.entries = list(entries)
        self.signature = bytes(signature)
        self.raw = bytes(raw)

    def body(self) -> bytes:
        """The signed bytes (everything but the signature)."""
        if self.type not in TYPES:
            raise FormatError("unknown mesh message type %d" % self.type, MALFORMED)
        n = len(self.entries)
        if n > MAX_ENTRIES or (self.type == TYPE_ASK and n):
            raise FormatError("%d entries in one mesh message" % n, MALFORMED)
        if len(self.cert) != certs.CERT_LEN:
            raise FormatError("the certificate must be %d bytes" % certs.CERT_LEN, MALFORMED)
        head = struct.pack(
            _HEAD,
            MAGIC,
            VERSION,
            self.type,
            self.sender,
            self.station,
            n,
            0,
            self.time,
            self.msg,
            self.from_seq,
            self.head,
            self.target,
        )
        return head + self.cert + b"".join(e.to_bytes() for e in self.entries)

    def __repr__(self):
        return "Message(type=%d, sender=%d, msg=%d/%d, %d entries)" % (
            self.type,
            self.sender,
            self.time,
            self.msg,
            len(self.entries),
        )


def encode(message: Message, signer) -> bytes:
    """Sign `message` with `signer.sign(msg) -> raw r||s` (the device key); the datagram."""
    body = message.body()
    message.signature = bytes(signer.sign(body))
    message.raw = body + message.signature
    return message.raw


def parse(raw) -> Message:
    """Strict parse of one datagram; no signature check (see `check`)."""
    raw = bytes(raw)
    size = len(raw)
    if size < MIN_LEN or size > MAX_LEN or (size - MIN_LEN) % ENTRY_LEN:
        raise FormatError("a mesh message of %d bytes" % size, MALFORMED)
    f = struct.unpack(_HEAD, raw[:HEAD_LEN])
    magic, version, mtype, sender, station, n, reserved = f[:7]
    if magic != MAGIC:
        raise FormatError("not a mesh message (magic)", MALFORMED)
    if version != VERSION:
        raise FormatError("unknown mesh version %d" % version, MALFORMED)
    if mtype not in TYPES:
        raise FormatError("unknown mesh message type %d" % mtype, MALFORMED)
    if reserved != 0:
        raise FormatError("reserved byte is not zero", MALFORMED)
    if ENTRIES_AT + n * ENTRY_LEN + SIG_LEN != size or (mtype == TYPE_ASK and n):
        raise FormatError("count %d does not match the length %d" % (n, size), MALFORMED)
    time, msg, from_seq, head, target = f[7:]
    if mtype == TYPE_ANNOUNCE and target:
        raise FormatError("an announcement names no target", MALFORMED)
    entries = []
    at = ENTRIES_AT
    last = from_seq
    for _ in range(n):
        e = Entry(*struct.unpack(_ENTRY, raw[at : at + ENTRY_LEN]))
        if e.kind not in (KIND_ACCEPTED, KIND_VOIDED) or e.flags & ~FLAG_EMERGENCY:
            raise FormatError("unknown mesh entry kind or flags", MALFORMED)
        if e.seq <= last or e.seq > head:  # in order, after from_seq, none past the head
            raise FormatError("mesh entries out of order", MALFORMED)
        last = e.seq
        entries.append(e)
        at += ENTRY_LEN
    cert = raw[CERT_AT:ENTRIES_AT]
    return Message(
        mtype,
        sender,
        station,
        time,
        msg,
        from_seq,
        head,
        target,
        cert,
        entries,
        raw[-SIG_LEN:],
        raw,
    )


def parse_cert(message: Message):
    """The sender's certificate (protocol.certs.Cert), or FormatError (reason mesh_bad_cert)."""
    try:
        return certs.parse(message.cert)
    except FormatError:
        raise FormatError("the sender's certificate does not parse", "mesh_bad_cert") from None


def check_cert(cert, message: Message, root_pub: bytes, verifier, now: int):
    """None if `cert` is a device certificate of this operator root for the sender, valid at
    `now`; else the reason (mesh_foreign_cert, mesh_bad_cert)."""
    if not certs.verify(cert, root_pub, verifier):
        return "mesh_foreign_cert"
    return cert_fits(cert, message, now)


def cert_fits(cert, message: Message, now: int):
    """None if the (verified) `cert` is a device certificate of the sender, valid at `now`;
    else "mesh_bad_cert". What a receiver checks again for a certificate it remembers."""
    if cert.kind != certs.KIND_DEVICE or cert.subject_id != message.sender:
        return "mesh_bad_cert"
    if not cert.check_time(now):
        return "mesh_bad_cert"
    return None


def check_signature(cert, message: Message, verifier) -> bool:
    """True if the sender's device key signed exactly these bytes."""
    return bool(verifier.verify(cert.public_key, message.raw[:-SIG_LEN], message.signature))


def check(message: Message, root_pub: bytes, verifier, now: int):
    """Certificate, then signature: None if both hold, else the reason name."""
    try:
        cert = parse_cert(message)
    except FormatError as e:
        return e.reason
    why = check_cert(cert, message, root_pub, verifier, now)
    if why is not None:
        return why
    return None if check_signature(cert, message, verifier) else "mesh_bad_signature"
