"""Journal records: what a gate captured, as it is journaled and uploaded.

Version 2 (245 bytes, written by every gate from this version on; docs/sync-protocol.md,
"Journal record"):

    offset size field
      0     1   version      = 2
      1     1   kind         1 passage, 2 reject, 3 event
      2     2   reason       reason number (protocol.reasons), 0 for an accepted passage
      4     4   device_id
      8     8   seq          minted at capture; (device_id, seq) is the idempotency key
     16     4   time         gate time, unix seconds
     20     1   mode         gate mode: 0 unknown, 1 metro, 2 parking, 3 store
     21     1   direction    0 none, 1 entry, 2 exit
     22     2   station
     24     4   value        minor currency units (fares are computed by the back office)
     28     2   flags        bit 0 offline-over-limit, bit 1 emergency, bit 2 clock-untrusted,
                             bit 3 bus stop stale (firmware/gate/bus.py)
     30     2   issuer       the issuer key id (trust list) of the credential; 0 for none
     32     1   evidence     0 none, 1 the rider's ride code (protocol.ridecode, 196 bytes)
     33   196   body         evidence 1: the ride code's bytes exactly as the gate verified them
                             (credential 124 | presentation 72): the rider's signed bytes are
                             body[0:132], the rider's signature body[132:196]; account_id,
                             cred_no and counter are read from it.
                             evidence 0: account_id u64 | cred_no u32 | counter u32 | 180 zeros
    229    16   prev_hash    first 16 bytes of SHA-256 of the previous record (zeros for the first)

Version 1 (64 bytes, journals and uploads written before version 2; still read, never written):

      0 version = 1 | 1 kind | 2 reason u16 | 4 device_id u32 | 8 seq u64 | 16 time u32
     20 mode | 21 direction | 22 station u16 | 24 account_id u64 | 32 cred_no u32
     36 counter u32 | 40 value u32 | 44 flags u32 | 48 prev_hash (16)

A v1 record has no issuer (issuer 0: the operator's single issuer of before) and no evidence.
The version byte gives a record's length (`length_of`), so a run of records of both versions is
self-delimiting. The hash chain runs across versions (prev_hash is always the last 16 bytes)
and makes a removed, altered or reordered record visible.
"""

import hashlib
import struct

from protocol.errors import FormatError, UsageError

VERSION = 2
VERSION_1 = 1
KIND_PASSAGE = 1
KIND_REJECT = 2
KIND_EVENT = 3
RECORD_LEN = 245  # version 2
RECORD_LEN_V1 = 64
MAX_RECORD_LEN = RECORD_LEN
HASH_LEN = 16
ZERO_HASH = bytes(HASH_LEN)

MODE_METRO = 1
MODE_PARKING = 2
MODE_STORE = 3
DIR_ENTRY = 1
DIR_EXIT = 2

FLAG_OVER_LIMIT = 1
FLAG_EMERGENCY = 2
FLAG_CLOCK_UNTRUSTED = 4
MAX_FLAGS = 0xFFFF  # version 2 keeps 16 bits

EVIDENCE_NONE = 0
EVIDENCE_RIDECODE = 1
CODE_LEN = 196  # protocol.ridecode.CODE_LEN (credential 124 + presentation 72)
RIDER_SIGNED_LEN = 132  # credential || presentation[0:8]: what the rider's key signs
BODY_LEN = CODE_LEN
_BODY_AT = 33
_PREV_AT = _BODY_AT + BODY_LEN  # 229

_FMT = ">BBHIQIBBHQIIII"  # version 1: 48 bytes, then prev_hash
_FMT2 = ">BBHIQIBBHIHHB"  # version 2: 33 bytes, then the body and prev_hash
_IDS = ">QII"  # evidence 0: account_id, cred_no, counter
_ZEROS = bytes(BODY_LEN - 16)
_LENS = {VERSION_1: RECORD_LEN_V1, VERSION: RECORD_LEN}


class Record:
    __slots__ = (
        "kind",
        "reason",
        "device_id",
        "seq",
        "time",
        "mode",
        "direction",
        "station",
        "account_id",
        "cred_no",
        "counter",
        "value",
        "flags",
        "prev_hash",
        "issuer",
        "code",
        "version",
    )

    def __init__(
        self,
        kind,
        reason,
        device_id,
        seq,
        time,
        mode=0,
        direction=0,
        station=0,
        account_id=0,
        cred_no=0,
        counter=0,
        value=0,
        flags=0,
        prev_hash=ZERO_HASH,
        issuer=0,
        code=b"",
        version=VERSION,
    ):
        """`code`: the ride code's bytes as verified (196), kept as the rider's evidence;
        then account_id, cred_no, counter and issuer are taken from it."""
        self.kind = kind
        self.reason = reason
        self.device_id = device_id
        self.seq = seq
        self.time = time
        self.mode = mode
        self.direction = direction
        self.station = station
        self.account_id = account_id
        self.cred_no = cred_no
        self.counter = counter
        self.value = value
        self.flags = flags
        self.prev_hash = prev_hash
        self.issuer = issuer
        self.code = b""
        self.version = version
        if code:
            self.keep_code(code)

    def keep_code(self, code) -> None:
        """Keep the ride code's bytes (196, as verified) as the rider's evidence; account_id,
        cred_no, counter and issuer are then the code's."""
        if len(code) != CODE_LEN:
            raise FormatError(
                "evidence code is %d bytes, expected %d" % (len(code), CODE_LEN), "bad_length"
            )
        self.code = bytes(code)
        self.issuer, self.account_id, self.cred_no, self.counter = code_ids(code)

    def to_bytes(self) -> bytes:
        if len(self.prev_hash) != HASH_LEN:
            raise FormatError("prev_hash must be 16 bytes", "bad_length")
        head = (self.kind, self.reason, self.device_id, self.seq, self.time, self.mode)
        head += (self.direction, self.station)
        if self.version == VERSION_1:
            if self.issuer or self.code:
                raise UsageError("a version 1 record has no issuer and no evidence")
            ids = (self.account_id, self.cred_no, self.counter, self.value, self.flags)
            return struct.pack(_FMT, VERSION_1, *head, *ids) + bytes(self.prev_hash)
        if self.version != VERSION or not 0 <= self.flags <= MAX_FLAGS:
            raise UsageError(
                "record version %d, flags %d: not written" % (self.version, self.flags)
            )
        body = self.code
        if not body:
            body = struct.pack(_IDS, self.account_id, self.cred_no, self.counter) + _ZEROS
        tail = (self.value, self.flags, self.issuer, EVIDENCE_RIDECODE if self.code else 0)
        return struct.pack(_FMT2, VERSION, *head, *tail) + body + bytes(self.prev_hash)

    def key(self):
        return (self.device_id, self.seq)

    def rider_evidence(self):
        """-> (the rider's signed bytes (132), the rider's signature (64)), or None without
        a ride code. The rider's public key is the credential's, bytes 27..59 of the code."""
        if not self.code:
            return None
        return self.code[:RIDER_SIGNED_LEN], self.code[RIDER_SIGNED_LEN:]

    def __eq__(self, other):
        return isinstance(other, Record) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "Record(%r)" % (self.to_bytes(),)


ACCOUNT_BITS = 40  # protocol.ridecode.ACCOUNT_BITS
_ACCOUNT_MASK = (1 << ACCOUNT_BITS) - 1


def account_key(issuer: int, account_id: int) -> int:
    """One rider across issuers: issuer key id << 40 | account_id (56 bits). Issuer 0 (a
    version 1 record) keeps the bare account id. Two issuers' account 42 are two keys."""
    return (issuer << ACCOUNT_BITS) | account_id


def split_account_key(key: int):
    """-> (issuer, account_id) of an account_key."""
    return key >> ACCOUNT_BITS, key & _ACCOUNT_MASK


def code_ids(code):
    """-> (issuer key id, account_id, cred_no, counter) of a ride code's bytes (unchecked)."""
    issuer, cid = struct.unpack_from(">HQ", code, 2)
    counter = struct.unpack_from(">I", code, 128)[0]
    return issuer, cid >> 24, cid & 0xFFFFFF, counter


def length_of(version: int) -> int:
    """The length of a record of `version` (its first byte); FormatError if unknown."""
    n = _LENS.get(version)
    if n is None:
        raise FormatError("unknown record version %d" % version, "bad_version")
    return n


def split(data) -> list:
    """The records of `data`, a run of whole records of either version."""
    out = []
    p = 0
    while p < len(data):
        n = length_of(data[p])
        if p + n > len(data):
            raise FormatError("a record is cut short", "bad_length")
        out.append(bytes(data[p : p + n]))
        p += n
    return out


def seq_of(raw) -> int:
    """The seq field of a raw record (either version), without decoding the rest."""
    return struct.unpack_from(">Q", raw, 8)[0]


def prev_hash_of(raw) -> bytes:
    """The prev_hash field of a raw record (its last 16 bytes, either version)."""
    return bytes(raw[len(raw) - HASH_LEN :])


def record_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()[:HASH_LEN]


def decode(raw) -> Record:
    n = len(raw)
    if n == 0:
        raise FormatError("record is empty", "bad_length")
    want = length_of(raw[0])
    if n != want:
        raise FormatError("record is %d bytes, expected %d" % (n, want), "bad_length")
    v1 = raw[0] == VERSION_1
    f = struct.unpack(_FMT, raw[:48]) if v1 else struct.unpack(_FMT2, raw[:_BODY_AT])
    if f[1] not in (KIND_PASSAGE, KIND_REJECT, KIND_EVENT):
        raise FormatError("unknown record kind %d" % f[1], "malformed")
    prev = prev_hash_of(raw)
    if v1:
        return Record(*f[1:14], prev, version=VERSION_1)
    ev = f[12]
    if ev == EVIDENCE_RIDECODE:
        rec = Record(*f[1:9], 0, 0, 0, f[9], f[10], prev, code=raw[_BODY_AT:_PREV_AT])
        if rec.issuer == f[11]:
            return rec
    elif ev == EVIDENCE_NONE and raw.count(b"\x00", _BODY_AT + 16, _PREV_AT) == BODY_LEN - 16:
        # (counted in place: a gate decodes every unsynced record at boot, on a small heap)
        ids = struct.unpack_from(_IDS, raw, _BODY_AT)
        return Record(*f[1:9], *ids, f[9], f[10], prev, f[11])
    raise FormatError("record evidence %d does not match its fields" % ev, "malformed")


def verify_chain(raws, prev_hash: bytes = ZERO_HASH):
    """Check that each raw record links to the one before. Returns the index of the first
    break, or -1 if the chain holds."""
    for i, raw in enumerate(raws):
        if bytes(raw[len(raw) - HASH_LEN :]) != prev_hash:  # prev_hash_of, inlined: 1M records
            return i
        prev_hash = record_hash(raw)
    return -1
