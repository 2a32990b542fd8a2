"""Journal records: what a gate captured, as it is journaled and uploaded.

    offset size field
      0     1   version      = 1
      1     1   kind         1 passage, 2 reject, 3 event
      2     2   reason       reason number (protocol.reasons), 0 for an accepted passage
      4     4   device_id
      8     8   seq          minted at capture; (device_id, seq) is the idempotency key
     16     4   time         gate time, unix seconds
     20     1   mode         gate mode: 0 unknown, 1 metro, 2 parking, 3 store
     21     1   direction    0 none, 1 entry, 2 exit
     22     2   station
     24     8   account_id
     32     4   cred_no
     36     4   counter      presentation counter (with account_id, cred_no: the presentation id)
     40     4   value        minor currency units (fares are computed by the back office)
     44     4   flags        bit 0 offline-over-limit, bit 1 emergency, bit 2 clock-untrusted
     48    16   prev_hash    first 16 bytes of SHA-256 of the previous record (zeros for the first)

Fixed 64 bytes. The hash chain makes a removed, altered or reordered record visible.
"""

import hashlib
import struct

from protocol.errors import FormatError

VERSION = 1
KIND_PASSAGE = 1
KIND_REJECT = 2
KIND_EVENT = 3
RECORD_LEN = 64
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

_FMT = ">BBHIQIBBHQIIII"  # 48 bytes, then prev_hash


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
    ):
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

    def to_bytes(self) -> bytes:
        if len(self.prev_hash) != HASH_LEN:
            raise FormatError("prev_hash must be 16 bytes", "bad_length")
        return struct.pack(
            _FMT,
            VERSION,
            self.kind,
            self.reason,
            self.device_id,
            self.seq,
            self.time,
            self.mode,
            self.direction,
            self.station,
            self.account_id,
            self.cred_no,
            self.counter,
            self.value,
            self.flags,
        ) + bytes(self.prev_hash)

    def key(self):
        return (self.device_id, self.seq)

    def __eq__(self, other):
        return isinstance(other, Record) and self.to_bytes() == other.to_bytes()

    def __repr__(self):
        return "Record(dev=%d seq=%d kind=%d reason=%d acct=%d)" % (
            self.device_id,
            self.seq,
            self.kind,
            self.reason,
            self.account_id,
        )


def seq_of(raw) -> int:
    """The seq field of a raw record, without decoding the rest."""
    return struct.unpack_from(">Q", raw, 8)[0]


def prev_hash_of(raw) -> bytes:
    """The prev_hash field of a raw record."""
    return bytes(raw[48:RECORD_LEN])


def record_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()[:HASH_LEN]


def decode(raw: bytes) -> Record:
    if len(raw) != RECORD_LEN:
        raise FormatError("record is %d bytes, expected %d" % (len(raw), RECORD_LEN), "bad_length")
    f = struct.unpack(_FMT, raw[:48])
    if f[0] != VERSION:
        raise FormatError("unknown record version %d" % f[0], "bad_version")
    if f[1] not in (KIND_PASSAGE, KIND_REJECT, KIND_EVENT):
        raise FormatError("unknown record kind %d" % f[1], "malformed")
    return Record(
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        f[6],
        f[7],
        f[8],
        f[9],
        f[10],
        f[11],
        f[12],
        f[13],
        prev_hash_of(raw),
    )


def verify_chain(raws, prev_hash: bytes = ZERO_HASH):
    """Check that each raw record links to the one before. Returns the index of the first
    break, or -1 if the chain holds."""
    for i, raw in enumerate(raws):
        if bytes(raw[48:RECORD_LEN]) != prev_hash:  # prev_hash_of, inlined: 1M records
            return i
        prev_hash = record_hash(raw)
    return -1
