"""Sync messages: what a gate and the back office say to each other inside link frames.

Each message is one frame (protocol.frames) whose type byte is the message type. Layouts are
big-endian; docs/sync-protocol.md has them with a worked exchange.

    type  name       from    body
      1   HELLO      device  u16 version | u32 device_id | 16 nonce | u64 last_seq
      5   CHALLENGE  host    u16 version | 16 nonce | u32 host_time
      6   AUTH       device  u32 device_id
      7   WELCOME    host    u64 high_seq | u8 n | n x (u8 kind | u32 version | u32 size)
      2   BATCH      device  u16 count | count x record (protocol.records: version 2, 245 bytes,
                             or version 1, 64 bytes, from a journal of before; the version
                             byte gives each length) | 64-byte batch signature
                             (protocol.sync.batch_signing_input: the gate's device key over
                             its id and the hash of the records, kept by the back office as
                             the gate's evidence of each passage)
      3   ACK        host    u64 up_to_seq
      8   STATUS     device  u32 time | u32 unsynced | u32 oldest_age_s | u64 last_seq
                             | u32 rejects_not_journaled | u8 n | n x (u8 kind | u32 version)
                             | u16 len | len bytes of UTF-8 JSON (free-form counters)
                             [| u8 r | r x (u8 kind | u32 version | u8 n | n reason
                             | u8 t | t text)]   (published blobs the gate refused; only
                             when r > 0, so a STATUS without refusals is as before)
      9   FETCH      device  u8 kind | u32 version | u32 offset | u32 max_len
     10   BLOB       host    u8 kind | u32 version | u32 total | u32 offset | data
                             (total = 0xFFFFFFFF: that version is not available)
     11   BYE        either  (empty)
      4   ERROR      either  u16 code | UTF-8 text          (never signed)

Every message except HELLO and ERROR travels signed (protocol.sync): body | u32 counter |
64-byte ES256 signature. This module only encodes and parses bodies, strictly: exact lengths,
known kinds, nothing trailing; anything else is a FormatError with reason "bad_message".
"""

import struct

from protocol import records
from protocol.errors import FormatError

VERSION = 3  # 2: BATCH without its batch signature, 64-byte records; 1: unauthenticated

HELLO = 1
BATCH = 2
ACK = 3
ERROR = 4
CHALLENGE = 5
AUTH = 6
WELCOME = 7
STATUS = 8
FETCH = 9
BLOB = 10
BYE = 11

NAMES = {
    HELLO: "HELLO",
    BATCH: "BATCH",
    ACK: "ACK",
    ERROR: "ERROR",
    CHALLENGE: "CHALLENGE",
    AUTH: "AUTH",
    WELCOME: "WELCOME",
    STATUS: "STATUS",
    FETCH: "FETCH",
    BLOB: "BLOB",
    BYE: "BYE",
}

NONCE_LEN = 16
MAX_BATCH = 1024  # records per BATCH (251 kB of version 2 records, inside a 256 KiB frame)
BATCH_SIG_LEN = 64
MAX_CHUNK = 65536  # bytes of blob data per BLOB
NOT_AVAILABLE = 0xFFFFFFFF
MAX_REFUSALS = 16  # refused blobs one STATUS reports (a session fetches one per kind at most)

# What flows down, as typed opaque blobs with versions (their formats belong to their owners).
KIND_DENY_DELTA = 1  # deny-list delta from version-1 to version (firmware's deny store)
KIND_TRUST_LIST = 2  # signed trust list (issuer keys)
KIND_FARE_TABLE = 3  # fare table (stations, zones, fares) for display and offline value
KIND_CONFIG = 4  # gate configuration
KIND_FIRMWARE = 5  # firmware image offer (the images issue)
KIND_ROOT = 6  # root metadata (protocol/rootmeta.py), fetched one version after the other
KIND_PLATE_DELTA = 7  # plate-list delta (protocol/platelist.py): parking lanes that read plates
KINDS = {
    KIND_DENY_DELTA: "deny_delta",
    KIND_TRUST_LIST: "trust_list",
    KIND_FARE_TABLE: "fare_table",
    KIND_CONFIG: "config",
    KIND_FIRMWARE: "firmware",
    KIND_ROOT: "root",
    KIND_PLATE_DELTA: "plate_delta",
}
# fetched one version at a time; the others: latest only
DELTA_KINDS = (KIND_DENY_DELTA, KIND_ROOT, KIND_PLATE_DELTA)

# ERROR codes: name -> (code, what it means for the operator)
ERRORS = {
    "bad_message": (1, "a message did not parse"),
    "unexpected_message": (2, "a message arrived in a state that does not allow it"),
    "bad_version": (3, "the peer speaks another protocol version"),
    "unknown_device": (4, "the device id is not in the back office's registry"),
    "bad_signature": (5, "a signature did not verify"),
    "sequence_gap": (6, "a message was lost or reordered on the link"),
    "store_failed": (7, "the back office could not store the batch (nothing was acknowledged)"),
    "busy": (8, "the back office is shutting down or overloaded; retry later"),
    "timeout": (9, "the peer stopped answering"),
    "sequence_reset": (10, "the gate's seq is behind what the back office holds (journal lost?)"),
    "bad_batch_signature": (11, "a BATCH's batch signature did not verify with the device key"),
}


def error_name(code: int) -> str:
    for name in ERRORS:
        if ERRORS[name][0] == code:
            return name
    return "unknown"


def _need(p, n, what):
    if len(p) != n:
        raise FormatError("%s is %d bytes, expected %d" % (what, len(p), n), "bad_message")


def _kind(k):
    if k not in KINDS:
        raise FormatError("unknown blob kind %d" % k, "bad_message")
    return k


# -- HELLO ---------------------------------------------------------------------------------
def hello(device_id: int, nonce: bytes, last_seq: int, version: int = VERSION) -> bytes:
    if len(nonce) != NONCE_LEN:
        raise FormatError("nonce must be 16 bytes", "bad_message")
    return struct.pack(">HI", version, device_id) + bytes(nonce) + struct.pack(">Q", last_seq)


def parse_hello(p):
    """-> (version, device_id, nonce, last_seq)"""
    _need(p, 30, "HELLO")
    version, device_id = struct.unpack(">HI", p[:6])
    return version, device_id, bytes(p[6:22]), struct.unpack(">Q", p[22:30])[0]


# -- CHALLENGE -----------------------------------------------------------------------------
def challenge(nonce: bytes, host_time: int, version: int = VERSION) -> bytes:
    if len(nonce) != NONCE_LEN:
        raise FormatError("nonce must be 16 bytes", "bad_message")
    return struct.pack(">H", version) + bytes(nonce) + struct.pack(">I", host_time)


def parse_challenge(p):
    """-> (version, nonce, host_time)"""
    _need(p, 22, "CHALLENGE")
    return struct.unpack(">H", p[:2])[0], bytes(p[2:18]), struct.unpack(">I", p[18:22])[0]


# -- AUTH ----------------------------------------------------------------------------------
def auth(device_id: int) -> bytes:
    return struct.pack(">I", device_id)


def parse_auth(p) -> int:
    _need(p, 4, "AUTH")
    return struct.unpack(">I", p)[0]


# -- WELCOME -------------------------------------------------------------------------------
def welcome(high_seq: int, offers) -> bytes:
    """offers: list of (kind, version, size)"""
    if len(offers) > 255:
        raise FormatError("too many offers", "bad_message")
    out = struct.pack(">QB", high_seq, len(offers))
    for kind, version, size in offers:
        out += struct.pack(">BII", _kind(kind), version, size)
    return out


def parse_welcome(p):
    """-> (high_seq, [(kind, version, size), ...])"""
    if len(p) < 9:
        raise FormatError("WELCOME too short", "bad_message")
    high_seq, n = struct.unpack(">QB", p[:9])
    _need(p, 9 + 9 * n, "WELCOME")
    offers = []
    for i in range(n):
        kind, version, size = struct.unpack(">BII", p[9 + 9 * i : 18 + 9 * i])
        offers.append((_kind(kind), version, size))
    return high_seq, offers


# -- BATCH ---------------------------------------------------------------------------------
def batch(raws, sig) -> bytes:
    if len(raws) > MAX_BATCH:
        raise FormatError("a BATCH holds at most %d records" % MAX_BATCH, "bad_message")
    if len(sig) != BATCH_SIG_LEN:
        raise FormatError("a batch signature is %d bytes" % BATCH_SIG_LEN, "bad_message")
    return struct.pack(">H", len(raws)) + b"".join(raws) + bytes(sig)


def parse_batch(p) -> tuple:
    """-> (raw records, batch signature)."""
    if len(p) < 2 + BATCH_SIG_LEN:
        raise FormatError("BATCH too short", "bad_message")
    (n,) = struct.unpack(">H", p[:2])
    end = len(p) - BATCH_SIG_LEN
    try:
        raws = records.split(p[2:end])
    except FormatError:
        raws = None
    if n > MAX_BATCH or raws is None or len(raws) != n:
        raise FormatError("BATCH length does not match its count", "bad_message")
    return raws, bytes(p[end:])


# -- ACK -----------------------------------------------------------------------------------
def ack(up_to_seq: int) -> bytes:
    return struct.pack(">Q", up_to_seq)


def parse_ack(p) -> int:
    _need(p, 8, "ACK")
    return struct.unpack(">Q", p)[0]


# -- STATUS --------------------------------------------------------------------------------
def status(
    time: int,
    unsynced: int,
    oldest_age_s: int,
    last_seq: int,
    rejects_not_journaled: int,
    versions,
    extra: bytes = b"",
    refused=(),
) -> bytes:
    """versions: list of (kind, version) the gate holds; extra: UTF-8 JSON, <= 4096 bytes;
    refused: list of (kind, version, reason, text) of published blobs the gate refused (reason
    and text are cut to 255 bytes of UTF-8)."""
    if len(versions) > 255 or len(extra) > 4096 or len(refused) > MAX_REFUSALS:
        raise FormatError("STATUS too large", "bad_message")
    out = struct.pack(
        ">IIIQIB", time, unsynced, oldest_age_s, last_seq, rejects_not_journaled, len(versions)
    )
    for kind, version in versions:
        out += struct.pack(">BI", _kind(kind), version)
    out += struct.pack(">H", len(extra)) + bytes(extra)
    if refused:
        out += struct.pack(">B", len(refused))
        for kind, version, reason, text in refused:
            out += struct.pack(">BI", _kind(kind), version) + _short(reason) + _short(text)
    return out


def _short(text: str) -> bytes:
    b = text.encode()[:255]
    return struct.pack(">B", len(b)) + b


def _read_short(p, pos):
    if len(p) < pos + 1 or len(p) < pos + 1 + p[pos]:
        raise FormatError("STATUS too short", "bad_message")
    end = pos + 1 + p[pos]
    try:
        return bytes(p[pos + 1 : end]).decode(), end
    except UnicodeError:
        raise FormatError("STATUS refusal is not UTF-8", "bad_message") from None


def parse_status(p):
    """-> (time, unsynced, oldest_age_s, last_seq, rejects_not_journaled, versions, extra,
    refused)"""
    if len(p) < 27:
        raise FormatError("STATUS too short", "bad_message")
    t, unsynced, age, last_seq, rnj, n = struct.unpack(">IIIQIB", p[:25])
    pos = 25
    versions = []
    for _ in range(n):
        if len(p) < pos + 5:
            raise FormatError("STATUS too short", "bad_message")
        kind, version = struct.unpack(">BI", p[pos : pos + 5])
        versions.append((_kind(kind), version))
        pos += 5
    if len(p) < pos + 2:
        raise FormatError("STATUS too short", "bad_message")
    (m,) = struct.unpack(">H", p[pos : pos + 2])
    if len(p) < pos + 2 + m:
        raise FormatError("STATUS too short", "bad_message")
    extra = bytes(p[pos + 2 : pos + 2 + m])
    pos += 2 + m
    refused = []
    if pos < len(p):
        r = p[pos]
        pos += 1
        if r == 0 or r > MAX_REFUSALS:
            raise FormatError("STATUS refusal count out of range", "bad_message")
        for _ in range(r):
            if len(p) < pos + 5:
                raise FormatError("STATUS too short", "bad_message")
            kind, version = struct.unpack(">BI", p[pos : pos + 5])
            reason, pos = _read_short(p, pos + 5)
            text, pos = _read_short(p, pos)
            refused.append((_kind(kind), version, reason, text))
        _need(p, pos, "STATUS")
    return t, unsynced, age, last_seq, rnj, versions, extra, refused


# -- FETCH / BLOB --------------------------------------------------------------------------
def fetch(kind: int, version: int, offset: int, max_len: int = MAX_CHUNK) -> bytes:
    return struct.pack(">BIII", _kind(kind), version, offset, max_len)


def parse_fetch(p):
    """-> (kind, version, offset, max_len)"""
    _need(p, 13, "FETCH")
    kind, version, offset, max_len = struct.unpack(">BIII", p)
    return _kind(kind), version, offset, max_len


def blob(kind: int, version: int, total: int, offset: int, data: bytes) -> bytes:
    if len(data) > MAX_CHUNK:
        raise FormatError("BLOB chunk too large", "bad_message")
    return struct.pack(">BIII", _kind(kind), version, total, offset) + bytes(data)


def parse_blob(p):
    """-> (kind, version, total, offset, data)"""
    if len(p) < 13:
        raise FormatError("BLOB too short", "bad_message")
    kind, version, total, offset = struct.unpack(">BIII", p[:13])
    data = bytes(p[13:])
    if len(data) > MAX_CHUNK or (
        total != NOT_AVAILABLE and (offset > total or offset + len(data) > total)
    ):
        raise FormatError("BLOB chunk outside its blob", "bad_message")
    return _kind(kind), version, total, offset, data


# -- BYE / ERROR ---------------------------------------------------------------------------
def bye() -> bytes:
    return b""


def parse_bye(p):
    _need(p, 0, "BYE")
    return ()


def error(code: int, text: str) -> bytes:
    return struct.pack(">H", code) + text.encode()[:512]


def parse_error(p):
    if len(p) < 2 or len(p) > 514:
        raise FormatError("ERROR length out of range", "bad_message")
    try:
        text = bytes(p[2:]).decode()
    except UnicodeError:
        raise FormatError("ERROR text is not UTF-8", "bad_message") from None
    return struct.unpack(">H", p[:2])[0], text
