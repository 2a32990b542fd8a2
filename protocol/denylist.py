"""Deny lists: accounts and credentials a gate must refuse, as signed snapshots and deltas.

An entry is a u64 key: the credential id of protocol/ridecode.py, `account_id << 24 | cred_no`.
cred_no 0 (never used by a credential) means the whole account. Keys are stable ids, never a
hash of a signature (ECDSA signatures are malleable: a hash of one would let a denied code
through re-signed).

Byte layout (big-endian; docs/ridecode.md has the full specification and test vectors):

     0  4B   magic          "FGDL"
     4  u8   format         1, or 2 (a list with a valid_until)
     5  u8   kind           1 snapshot (the whole list), 2 delta
     6  u16  root_key_id    which operator root key signed it
     8  u32  from_version   0 for a snapshot; for a delta, the version it applies to
    12  u32  to_version     > from_version: the version after applying it
    16  u32  issued_at      unix seconds
   (20  u32  valid_until    format 2 only: unix seconds, exclusive, > issued_at; after it the
                            gate's list is stale (validation.stale_deny). Format 1: none (0))
    20  u32  add_count      (24 in format 2)
    24  u32  remove_count   0 for a snapshot (28 in format 2)
    28  add_count x u64     keys to add, strictly ascending (32 in format 2)
        remove_count x u64  keys to remove, strictly ascending, none of them also added
   end  64B  root_sig       r||s over every byte before it

A list built with valid_until 0 is format 1 (byte for byte what gates before format 2 read);
one with a valid_until is format 2, which those older gates refuse as list_malformed (the
back office turns valid_until on only once its gates run firmware that reads format 2:
docs/fraud.md, "Deny-list freshness"). A delta's valid_until replaces the installed one, so
the back office keeps gates' lists fresh with an empty delta (no adds, no removes).

Parsing is strict (exact length, ascending keys, known kind, disjoint adds and removes); any
fault raises FormatError("list_malformed"). Signatures are checked by firmware/verify/denystore.py.
"""

import struct
import sys

from protocol import ridecode
from protocol.errors import FormatError, UsageError

try:
    from array import array
except ImportError:  # pragma: no cover - every port we run has array
    array = None

MAGIC = b"FGDL"
FORMAT = 1
FORMAT_FRESH = 2  # with valid_until
KIND_SNAPSHOT = 1
KIND_DELTA = 2
HEADER_LEN = 28
HEADER_LEN_FRESH = 32
SIG_LEN = 64
ACCOUNT_WIDE = 0  # cred_no meaning "every credential of the account"

_HEADER_FMT = ">4sBBHIIIII"
_HEADER_FMT_FRESH = ">4sBBHIIIIII"
_IS_MPY = sys.implementation.name == "micropython"


def account_key(account_id: int) -> int:
    return ridecode.cred_id(account_id, ACCOUNT_WIDE)


def credential_key(account_id: int, cred_no: int) -> int:
    return ridecode.cred_id(account_id, cred_no)


class DenyList:
    __slots__ = (
        "kind",
        "from_version",
        "to_version",
        "issued_at",
        "valid_until",
        "root_key_id",
        "adds",
        "removes",
        "raw",
    )

    def __init__(
        self,
        kind,
        from_version,
        to_version,
        issued_at,
        root_key_id,
        adds,
        removes,
        raw,
        valid_until=0,
    ):
        self.kind = kind
        self.from_version = from_version
        self.to_version = to_version
        self.issued_at = issued_at
        self.valid_until = valid_until  # 0: the list never goes stale (format 1)
        self.root_key_id = root_key_id
        self.adds = adds  # array('Q'), ascending
        self.removes = removes
        self.raw = raw

    def signed_bytes(self) -> bytes:
        return self.raw[:-SIG_LEN]

    def signature(self) -> bytes:
        return self.raw[-SIG_LEN:]


def _bad(msg):
    return FormatError("deny list: " + msg, "list_malformed")


def keys_from_be(data) -> "array":
    """An array('Q') from big-endian u64s."""
    n = len(data) // 8
    if _IS_MPY:
        return array("Q", struct.unpack(">%dQ" % n, data))
    a = array("Q")
    a.frombytes(bytes(data))
    if sys.byteorder == "little":
        a.byteswap()
    return a


def keys_to_be(keys) -> bytes:
    if _IS_MPY:
        return struct.pack(">%dQ" % len(keys), *keys)
    a = array("Q", keys)
    if sys.byteorder == "little":
        a.byteswap()
    return a.tobytes()


def _ascending(keys) -> bool:
    prev = -1
    for k in keys:
        if k <= prev:
            return False
        prev = k
    return True


def encode_body(
    kind, from_version, to_version, issued_at, adds, removes=(), root_key_id=1, valid_until=0
):
    adds = sorted(set(adds))
    removes = sorted(set(removes))
    if kind == KIND_SNAPSHOT and (removes or from_version):
        raise UsageError("a snapshot has no removals and from_version 0")
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise UsageError("unknown deny list kind %d" % kind)
    if to_version <= from_version:
        raise UsageError("to_version must be above from_version")
    if set(adds) & set(removes):
        raise UsageError("a key cannot be both added and removed")
    if valid_until and valid_until <= issued_at:
        raise UsageError("valid_until must be after issued_at")
    if valid_until:
        head = struct.pack(
            _HEADER_FMT_FRESH,
            MAGIC,
            FORMAT_FRESH,
            kind,
            root_key_id,
            from_version,
            to_version,
            issued_at,
            valid_until,
            len(adds),
            len(removes),
        )
    else:
        head = struct.pack(
            _HEADER_FMT,
            MAGIC,
            FORMAT,
            kind,
            root_key_id,
            from_version,
            to_version,
            issued_at,
            len(adds),
            len(removes),
        )
    return head + keys_to_be(adds) + keys_to_be(removes)


def build_snapshot(version, issued_at, keys, sign, root_key_id=1, valid_until=0) -> bytes:
    body = encode_body(KIND_SNAPSHOT, 0, version, issued_at, keys, (), root_key_id, valid_until)
    return body + bytes(sign(body))


def build_delta(
    from_version, to_version, issued_at, adds, removes, sign, root_key_id=1, valid_until=0
) -> bytes:
    body = encode_body(
        KIND_DELTA, from_version, to_version, issued_at, adds, removes, root_key_id, valid_until
    )
    return body + bytes(sign(body))


def parse(blob) -> DenyList:
    blob = bytes(blob)
    if len(blob) < HEADER_LEN + SIG_LEN:
        raise _bad("%d bytes is too short" % len(blob))
    if blob[:4] != MAGIC:
        raise _bad("bad magic")
    fmt = blob[4]
    valid_until = 0
    if fmt == FORMAT:
        head_len = HEADER_LEN
        _m, _f, kind, root_key_id, from_v, to_v, issued_at, n_add, n_rem = struct.unpack(
            _HEADER_FMT, blob[:HEADER_LEN]
        )
    elif fmt == FORMAT_FRESH:
        head_len = HEADER_LEN_FRESH
        if len(blob) < head_len + SIG_LEN:
            raise _bad("%d bytes is too short" % len(blob))
        _m, _f, kind, root_key_id, from_v, to_v, issued_at, valid_until, n_add, n_rem = (
            struct.unpack(_HEADER_FMT_FRESH, blob[:head_len])
        )
        if valid_until <= issued_at:
            raise _bad("valid_until %d is not after issued_at %d" % (valid_until, issued_at))
    else:
        raise _bad("unknown format %d" % fmt)
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise _bad("unknown kind %d" % kind)
    if to_v <= from_v:
        raise _bad("to_version %d is not above from_version %d" % (to_v, from_v))
    if kind == KIND_SNAPSHOT and (from_v or n_rem):
        raise _bad("a snapshot has from_version 0 and no removals")
    if len(blob) != head_len + 8 * (n_add + n_rem) + SIG_LEN:
        raise _bad("length %d does not match %d + %d entries" % (len(blob), n_add, n_rem))
    mid = head_len + 8 * n_add
    adds = keys_from_be(blob[head_len:mid])
    removes = keys_from_be(blob[mid : mid + 8 * n_rem])
    if not _ascending(adds) or not _ascending(removes):
        raise _bad("keys are not strictly ascending")
    if n_rem and n_add and _intersects(adds, removes):
        raise _bad("a key is both added and removed")
    return DenyList(kind, from_v, to_v, issued_at, root_key_id, adds, removes, blob, valid_until)


def _intersects(a, b) -> bool:
    """Do two ascending sequences share an element? (linear merge walk)"""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            return True
        if a[i] < b[j]:
            i += 1
        else:
            j += 1
    return False
