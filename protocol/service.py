"""Service console messages: what a technician's laptop and a gate say over the serial cable.

Carried in link frames (protocol.frames), frame types 0x50..0x5F. Big-endian; every layout
and a worked session are in docs/service-console.md.

    HELLO     0x50 host->gate  u16 version | 16B host_nonce
    IDENTITY  0x51 gate->host  u16 version | u8 state | u8 flags | u32 device_id |
                               16B device_nonce | u32 anchor_id | 33B device_pub |
                               64B device_sig | JSON info
    AUTH      0x52 host->gate  u8 flags | 33B anchor | 137B technician cert | 64B tech_sig
    REQUEST   0x53 host->gate  u32 seq | u8 command | body | 64B tech_sig
    RESPONSE  0x54 gate->host  u32 seq | u8 command | u16 status | body

A session is one HELLO/IDENTITY exchange (two fresh nonces) and one AUTH. Every REQUEST is
signed by the technician's key over the device nonce, so a request from another session
does not verify, and carries seq = previous + 1, so one from this session cannot be replayed.
An exact retransmission of the last request gets the same response again, not a second run.
"""

import struct

from protocol import certs
from protocol.errors import FormatError

VERSION = 1
HELLO = 0x50
IDENTITY = 0x51
AUTH = 0x52
REQUEST = 0x53
RESPONSE = 0x54
FRAME_TYPES = (HELLO, IDENTITY, AUTH, REQUEST, RESPONSE)

NONCE_LEN = 16
SIG_LEN = 64
PUB_LEN = 33
MAX_FRAME = 8192  # the gate's default decoder limit (buffers.console_frame): one frame in RAM
CHUNK = 4096  # upload/export chunk size that fits in MAX_FRAME with its header
PUT_HEAD = 1 + 4 + 4 + 32  # PUT_BLOB before its chunk: u8 kind | u32 total | u32 offset | sha
# the largest REQUEST a laptop sends (PUT_BLOB with a whole CHUNK): no gate's limit may be below it
MAX_REQUEST = 4 + 1 + PUT_HEAD + CHUNK + SIG_LEN

# Gate lifecycle, as IDENTITY reports it.
# a technician's test card: a QR code whose text starts so (faregate device test-card); the
# gate only acknowledges it (firmware/gate/gate.py, firmware/maintenance/hardware_selftest.py)
TEST_CARD_PREFIX = "FGTEST:"
EARLIEST_TIME = 1704067200  # 2024-01-01: a clock before this was never set (SET_TIME refuses it)

STATE_BLANK = 0  # no operator root: only the first-time flow (AUTH with CLAIM) is accepted
STATE_CLAIMED = 1  # has an operator root; provisioning not complete
STATE_IN_SERVICE = 2  # certificate, config, trust list, clock and a passed self-test
STATE_NAMES = {STATE_BLANK: "blank", STATE_CLAIMED: "claimed", STATE_IN_SERVICE: "in_service"}

ID_HAS_KEY = 1
ID_HAS_CERT = 2
AUTH_CLAIM = 1

# Commands: number -> (name, permission bit needed). The body layouts are below.
STATUS = 1  # -> JSON
LOGS = 2  # u32 first | u16 max -> JSON {"entries": [...], "next": n}
BLOB_INFO = 3  # u8 kind -> JSON {"installed": {...} | null, "partial": {...} | null}
EXPORT = 4  # u32 index | u16 count -> u32 pending | u32 index | 64-byte records
SET_TIME = 5  # u32 unix time [| 64B root signature] -> JSON {"time", "was", "root"}
SELFTEST = 6  # u32 host time -> JSON {"passed": bool, "checks": [...]}
GEN_KEY = 7  # (empty) -> u8 new | 33B pub | 64B proof of possession
PUT_BLOB = 8  # u8 kind | u32 total | u32 offset | 32B sha256 | chunk -> JSON
RESET = 9  # u8 force | 32B sha256 of the exported unsynced records -> JSON
JOURNAL_INSPECT = 10  # (empty) -> JSON: what the journal found when it opened
JOURNAL_REPAIR = 11  # u64 seq_floor (0: none) -> JSON {"before", "after", "event_seq"}

COMMANDS = {
    STATUS: ("status", certs.PERM_READ),
    LOGS: ("logs", certs.PERM_READ),
    BLOB_INFO: ("blob_info", certs.PERM_READ),
    EXPORT: ("export", certs.PERM_READ),
    SET_TIME: ("set_time", certs.PERM_MAINTAIN),
    SELFTEST: ("selftest", certs.PERM_MAINTAIN),
    GEN_KEY: ("gen_key", certs.PERM_PROVISION),
    PUT_BLOB: ("put_blob", certs.PERM_PROVISION),
    RESET: ("reset", certs.PERM_RESET),
    JOURNAL_INSPECT: ("journal_inspect", certs.PERM_READ),
    JOURNAL_REPAIR: ("journal_repair", certs.PERM_MAINTAIN),
}

# What PUT_BLOB can write: kind -> (name, maximum bytes).
BLOB_CERT = 1
BLOB_CONFIG = 2
BLOB_TRUST = 3
BLOB_DENY = 4
BLOB_FARES = 5
BLOB_TLS = 6  # PEM: the gate's X.509 client certificate for its device key, then the CA's
BLOB_ROOT = 7  # root metadata (protocol/rootmeta.py): the next version, or a warehouse binding
BLOB_RELEASE = 8  # a root-signed release: the next factory reset forgets the binding
BLOBS = {
    BLOB_CERT: ("cert", certs.CERT_LEN),
    BLOB_CONFIG: ("config", 16 * 1024),
    BLOB_TRUST: ("trust_list", 64 * 1024),
    BLOB_DENY: ("deny_list", 16 * 1024 * 1024),
    BLOB_FARES: ("fare_table", 256 * 1024),
    BLOB_TLS: ("tls_cert", 16 * 1024),
    BLOB_ROOT: ("root_meta", 4096),
    BLOB_RELEASE: ("release", 2048),
}

# Domain separation: every signature says what it is for.
CTX_IDENTITY = b"FGSV-ID1"
CTX_AUTH = b"FGSV-AU1"
CTX_REQUEST = b"FGSV-RQ1"
CTX_KEY = b"FGSV-PK1"
CTX_TIME = b"FGSV-TM1"


def _need(p: bytes, n: int, what: str) -> None:
    if len(p) < n:
        raise FormatError("%s is %d bytes, at least %d expected" % (what, len(p), n), "bad_message")


# -- HELLO -------------------------------------------------------------------------------
def hello(host_nonce: bytes) -> bytes:
    if len(host_nonce) != NONCE_LEN:
        raise FormatError("nonce must be 16 bytes", "bad_message")
    return struct.pack(">H", VERSION) + bytes(host_nonce)


def parse_hello(p: bytes) -> bytes:
    if len(p) != 2 + NONCE_LEN:
        raise FormatError("HELLO is %d bytes, expected 18" % len(p), "bad_message")
    if struct.unpack(">H", p[:2])[0] != VERSION:
        raise FormatError("unknown service console version", "bad_version")
    return bytes(p[2:])


# -- IDENTITY ----------------------------------------------------------------------------
ID_HEAD = 61  # bytes covered by the device signature, before it


class Identity:
    __slots__ = (
        "state",
        "flags",
        "device_id",
        "device_nonce",
        "anchor_id",
        "device_pub",
        "sig",
        "info",
        "head",
    )

    def __init__(self, state, flags, device_id, device_nonce, anchor_id, device_pub, sig, info):
        self.state = state
        self.flags = flags
        self.device_id = device_id
        self.device_nonce = device_nonce
        self.anchor_id = anchor_id
        self.device_pub = device_pub
        self.sig = sig
        self.info = info
        self.head = b""

    def head_bytes(self) -> bytes:
        return (
            struct.pack(">HBBI", VERSION, self.state, self.flags, self.device_id)
            + self.device_nonce
            + struct.pack(">I", self.anchor_id)
            + (self.device_pub or bytes(PUB_LEN))
        )


def identity_signing_input(host_nonce: bytes, head: bytes) -> bytes:
    return CTX_IDENTITY + bytes(host_nonce) + bytes(head)


def identity(ident: Identity, info_json: bytes) -> bytes:
    return ident.head_bytes() + (ident.sig or bytes(SIG_LEN)) + info_json


def parse_identity(p: bytes) -> Identity:
    _need(p, ID_HEAD + SIG_LEN, "IDENTITY")
    version, state, flags, device_id = struct.unpack(">HBBI", p[:8])
    if version != VERSION:
        raise FormatError("unknown service console version", "bad_version")
    if state not in STATE_NAMES:
        raise FormatError("unknown device state %d" % state, "bad_message")
    (anchor_id,) = struct.unpack(">I", p[24:28])
    pub = bytes(p[28:ID_HEAD])
    sig = bytes(p[ID_HEAD : ID_HEAD + SIG_LEN])
    ident = Identity(
        state,
        flags,
        device_id,
        bytes(p[8:24]),
        anchor_id,
        pub if flags & ID_HAS_KEY else b"",
        sig if flags & ID_HAS_KEY else b"",
        bytes(p[ID_HEAD + SIG_LEN :]),
    )
    ident.head = bytes(p[:ID_HEAD])
    return ident


# -- AUTH --------------------------------------------------------------------------------
AUTH_BODY = 1 + PUB_LEN + certs.CERT_LEN


def auth_signing_input(device_nonce, host_nonce, device_id: int, body: bytes) -> bytes:
    return CTX_AUTH + bytes(device_nonce) + bytes(host_nonce) + struct.pack(">I", device_id) + body


def auth_body(flags: int, anchor: bytes, tech_cert: bytes) -> bytes:
    if len(anchor) != PUB_LEN or len(tech_cert) != certs.CERT_LEN:
        raise FormatError("AUTH needs a 33-byte anchor and a 137-byte credential", "bad_message")
    return bytes((flags,)) + bytes(anchor) + bytes(tech_cert)


def parse_auth(p: bytes):
    """-> (flags, anchor, tech_cert_bytes, body, sig)"""
    if len(p) != AUTH_BODY + SIG_LEN:
        raise FormatError(
            "AUTH is %d bytes, expected %d" % (len(p), AUTH_BODY + SIG_LEN), "bad_message"
        )
    body = bytes(p[:AUTH_BODY])
    return p[0], body[1 : 1 + PUB_LEN], body[1 + PUB_LEN :], body, bytes(p[AUTH_BODY:])


# -- REQUEST / RESPONSE -----------------------------------------------------------------
def request_head(seq: int, command: int, body: bytes) -> bytes:
    return struct.pack(">IB", seq, command) + bytes(body)


def request_signing_input(device_nonce: bytes, head: bytes) -> bytes:
    return CTX_REQUEST + bytes(device_nonce) + bytes(head)


REQUEST_HEAD = 5  # u32 seq | u8 command


def request_ids(p: bytes):
    """-> (seq, command) of a REQUEST payload, unchecked (for refusing it); (0, 0) if too short."""
    if len(p) < REQUEST_HEAD:
        return 0, 0
    return struct.unpack(">IB", p[:REQUEST_HEAD])


def parse_request(p: bytes):
    """-> (seq, command, body, head, sig)"""
    _need(p, REQUEST_HEAD + SIG_LEN, "REQUEST")
    seq, command = struct.unpack(">IB", p[:REQUEST_HEAD])
    head = bytes(p[: len(p) - SIG_LEN])
    return seq, command, head[REQUEST_HEAD:], head, bytes(p[len(p) - SIG_LEN :])


def response(seq: int, command: int, status: int, body: bytes = b"") -> bytes:
    return struct.pack(">IBH", seq, command, status) + bytes(body)


def parse_response(p: bytes):
    """-> (seq, command, status, body)"""
    _need(p, 7, "RESPONSE")
    seq, command, status = struct.unpack(">IBH", p[:7])
    return seq, command, status, bytes(p[7:])


# -- command bodies ----------------------------------------------------------------------
def key_signing_input(device_id: int, pub: bytes, host_nonce: bytes, device_nonce: bytes):
    head = CTX_KEY + struct.pack(">I", device_id) + bytes(pub)
    return head + bytes(host_nonce) + bytes(device_nonce)


def put_blob_body(kind: int, total: int, offset: int, digest: bytes, chunk: bytes) -> bytes:
    return struct.pack(">BII", kind, total, offset) + bytes(digest) + bytes(chunk)


def parse_put_blob(body: bytes):
    """-> (kind, total, offset, sha256, chunk)"""
    _need(body, PUT_HEAD, "PUT_BLOB body")
    kind, total, offset = struct.unpack(">BII", body[:9])
    if kind not in BLOBS:
        raise FormatError("unknown blob kind %d" % kind, "bad_message")
    if total > BLOBS[kind][1]:
        raise FormatError("%s of %d bytes is over its limit" % (BLOBS[kind][0], total), "oversize")
    chunk = bytes(body[PUT_HEAD:])
    if offset + len(chunk) > total:
        raise FormatError("chunk runs past the declared total", "bad_message")
    return kind, total, offset, bytes(body[9:41]), chunk


def u8(body: bytes, what: str) -> int:
    if len(body) != 1:
        raise FormatError("%s body must be 1 byte" % what, "bad_message")
    return body[0]


def u32(body: bytes, what: str) -> int:
    if len(body) != 4:
        raise FormatError("%s body must be 4 bytes" % what, "bad_message")
    return struct.unpack(">I", body)[0]


def set_time_body(t: int, root_sig: bytes = b"") -> bytes:
    """SET_TIME's body: the time, and optionally the operator root's signature over
    `time_signing_input` (a change beyond the gate's clock.set_bound_s needs it)."""
    return struct.pack(">I", t) + bytes(root_sig)


def parse_set_time(body: bytes):
    """-> (time, root signature or b"")"""
    if len(body) not in (4, 4 + SIG_LEN):
        raise FormatError("SET_TIME body must be 4 or %d bytes" % (4 + SIG_LEN), "bad_message")
    return struct.unpack(">I", body[:4])[0], bytes(body[4:])


def time_signing_input(device_id: int, t: int, device_nonce: bytes) -> bytes:
    """What the operator root signs to let one session of one gate set its clock to `t`."""
    return CTX_TIME + struct.pack(">II", device_id, t) + bytes(device_nonce)


def index_count(body: bytes, what: str):
    if len(body) != 6:
        raise FormatError("%s body must be 6 bytes" % what, "bad_message")
    return struct.unpack(">IH", body)


def export_reply(pending: int, index: int, raws) -> bytes:
    """EXPORT's answer: u32 pending | u32 index | the records."""
    return struct.pack(">II", pending, index) + b"".join(raws)


def reset_body(force: bool, export_digest: bytes) -> bytes:
    return bytes((1 if force else 0,)) + bytes(export_digest)


def parse_reset(body: bytes):
    if len(body) != 33:
        raise FormatError("RESET body must be 33 bytes", "bad_message")
    return bool(body[0]), bytes(body[1:])
