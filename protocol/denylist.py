"""Deny lists: accounts and credentials a gate must refuse, per issuer, as signed snapshots and
deltas.

An entry is a (issuer, key) pair: the issuer key id of the credential (protocol/ridecode.py)
and a u64 key, its credential id `account_id << 24 | cred_no`. cred_no 0 (never used by a
credential) means the whole account. In Python an entry is one int, `issuer << 64 | key`
(`entry`, `account_key`, `credential_key`), so issuer A's account 42 and issuer B's are two
entries. Keys are stable ids, never a hash of a signature (ECDSA signatures are malleable: a
hash of one would let a denied code through re-signed).

Byte layout, format 3 (big-endian; docs/ridecode.md section 9 has the specification and a
vector):

     0  4B   magic          "FGDL"
     4  u8   format         3
     5  u8   kind           1 snapshot (the whole list), 2 delta
     6  u16  n_sections     issuers with entries in this list (0..MAX_SECTIONS)
     8  u32  from_version   0 for a snapshot; for a delta, the version it applies to
    12  u32  to_version     > from_version: the version after applying it
    16  u32  issued_at      unix seconds
    20  u32  valid_until    0: never stale; else unix seconds, exclusive, > issued_at; after
                            it the gate's list is stale (validation.stale_deny)
    24  n_sections x section, strictly ascending by issuer:
          u16 issuer | u16 reserved 0 | u32 add_count | u32 remove_count (0 in a snapshot)
          | add_count x u64 keys to add, strictly ascending
          | remove_count x u64 keys to remove, strictly ascending, none of them also added
        (a section with no adds and no removes is not written)
   body end: u8 n_sigs | n_sigs x (u32 key_id | 64B ES256 signature over the body)
             (protocol/sigtail.py): signatures of the lists role's keys (docs/security.md)

Formats 1 and 2 (a u16 root_key_id at byte 6, one issuer-less key array, one 64-byte root
signature; format 2 with a valid_until) are still parsed (protocol/denylegacy.py), as
`legacy` lists whose entries are in the ANY_ISSUER section: a gate refuses them when they
arrive (deny_needs_issuer) and reads them only from its own deny.log, to migrate
(firmware/verify/denystore.py).

Parsing is strict (exact length, ascending issuers and keys, known kind, disjoint adds and
removes); any fault raises FormatError("list_malformed"). Signatures are checked by
firmware/verify/denystore.py.
"""

import struct
import sys

from protocol import ridecode, sigtail
from protocol.errors import FormatError

try:
    from array import array
except ImportError:  # pragma: no cover - every port we run has array
    array = None

MAGIC = b"FGDL"
FORMAT_V1 = 1  # legacy: no issuer, no valid_until
FORMAT_FRESH = 2  # legacy: no issuer, with valid_until
FORMAT = 3  # issuer sections, lists-role signatures
KIND_SNAPSHOT = 1
KIND_DELTA = 2
HEADER_LEN = 24
SECTION_LEN = 12
MAX_SECTIONS = 1024
SIG_LEN = 64
ACCOUNT_WIDE = 0  # cred_no meaning "every credential of the account"
ANY_ISSUER = 0x10000  # the section of a legacy (issuer-less) list: it applies to every issuer
KEY_MASK = (1 << 64) - 1

_HEADER_FMT = ">4sBBHIIII"
_SECTION_FMT = ">HHII"
_IS_MPY = sys.implementation.name == "micropython"


def entry(issuer: int, key: int) -> int:
    """One deny entry: issuer key id << 64 | u64 key."""
    return (issuer << 64) | key


def split_entry(e: int):
    """(issuer, u64 key) of an entry."""
    return e >> 64, e & KEY_MASK


def account_key(issuer: int, account_id: int) -> int:
    return entry(issuer, ridecode.cred_id(account_id, ACCOUNT_WIDE))


def credential_key(issuer: int, account_id: int, cred_no: int) -> int:
    return entry(issuer, ridecode.cred_id(account_id, cred_no))


class DenyList:
    __slots__ = (
        "kind",
        "from_version",
        "to_version",
        "issued_at",
        "valid_until",
        "adds",
        "removes",
        "raw",
        "body_len",
        "sigs",
        "legacy",
    )

    def __init__(self, kind, from_version, to_version, issued_at, valid_until, adds, removes, raw):
        self.kind = kind
        self.from_version = from_version
        self.to_version = to_version
        self.issued_at = issued_at
        self.valid_until = valid_until  # 0: the list never goes stale
        self.adds = adds  # {issuer: array('Q') ascending}
        self.removes = removes
        self.raw = raw
        self.body_len = len(raw)
        self.sigs = []  # [(key_id, sig)]
        self.legacy = False  # formats 1 and 2 (entries under ANY_ISSUER, one root signature)

    def issuers(self):
        """The issuers this list changes, ascending."""
        return sorted(set(self.adds) | set(self.removes))

    def entries(self, name="adds"):
        """The adds (or removes: name "removes") as entries, ascending."""
        out = []
        for issuer, keys in sorted(getattr(self, name).items()):
            for k in keys:
                out.append(entry(issuer, k))
        return out

    def signed_bytes(self) -> bytes:
        return self.raw[: self.body_len]

    def signature(self) -> bytes:
        """A legacy list's one root signature."""
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


# Building lists (the back office, the wallet, tests) is protocol/denybuild.py's: loaded only
# where lists are built, so a gate, which only parses them, does not carry it.
def by_issuer(entries) -> dict:
    """{issuer: ascending distinct u64 keys} of entries."""
    from protocol import denybuild

    return denybuild.by_issuer(entries)


def encode_body(kind, from_version, to_version, issued_at, adds, removes=(), valid_until=0):
    """The signed body of a format-3 list; adds and removes are entries (`entry`)."""
    from protocol import denybuild

    return denybuild.encode_body(
        kind, from_version, to_version, issued_at, adds, removes, valid_until
    )


def build_snapshot(version, issued_at, entries, signers, valid_until=0) -> bytes:
    """A signed snapshot; `signers`: the lists role's signer(s) (.public_key, .sign)."""
    from protocol import denybuild

    return denybuild.build_snapshot(version, issued_at, entries, signers, valid_until)


def build_delta(from_version, to_version, issued_at, adds, removes, signers, valid_until=0):
    from protocol import denybuild

    return denybuild.build_delta(
        from_version, to_version, issued_at, adds, removes, signers, valid_until
    )


def _check_header(kind, from_v, to_v, issued_at, valid_until):
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise _bad("unknown kind %d" % kind)
    if to_v <= from_v:
        raise _bad("to_version %d is not above from_version %d" % (to_v, from_v))
    if kind == KIND_SNAPSHOT and from_v:
        raise _bad("a snapshot has from_version 0")
    if valid_until and valid_until <= issued_at:
        raise _bad("valid_until %d is not after issued_at %d" % (valid_until, issued_at))


def _keys_pair(blob, at, n_add, n_rem):
    mid = at + 8 * n_add
    adds = keys_from_be(blob[at:mid])
    removes = keys_from_be(blob[mid : mid + 8 * n_rem])
    if not _ascending(adds) or not _ascending(removes):
        raise _bad("keys are not strictly ascending")
    if n_rem and n_add and _intersects(adds, removes):
        raise _bad("a key is both added and removed")
    return adds, removes


def parse(blob) -> DenyList:
    blob = bytes(blob)
    if len(blob) < HEADER_LEN or blob[:4] != MAGIC:
        raise _bad("bad magic or %d bytes is too short" % len(blob))
    if blob[4] in (FORMAT_V1, FORMAT_FRESH):
        from protocol import denylegacy  # loaded only by a gate that still holds such lists

        return denylegacy.parse(blob)
    if blob[4] != FORMAT:
        raise _bad("unknown format %d" % blob[4])
    _m, _f, kind, n, from_v, to_v, issued_at, valid_until = struct.unpack(
        _HEADER_FMT, blob[:HEADER_LEN]
    )
    _check_header(kind, from_v, to_v, issued_at, valid_until)
    if n > MAX_SECTIONS:
        raise _bad("%d sections, at most %d" % (n, MAX_SECTIONS))
    adds = {}
    removes = {}
    at = HEADER_LEN
    prev = -1
    for _ in range(n):
        if len(blob) < at + SECTION_LEN:
            raise _bad("cut short in its sections")
        issuer, reserved, n_add, n_rem = struct.unpack(_SECTION_FMT, blob[at : at + SECTION_LEN])
        if issuer <= prev or reserved:
            raise _bad("sections are not strictly ascending by issuer")
        if not n_add and not n_rem:
            raise _bad("an empty section (issuer %d)" % issuer)
        if kind == KIND_SNAPSHOT and n_rem:
            raise _bad("a snapshot has no removals")
        at += SECTION_LEN
        if len(blob) < at + 8 * (n_add + n_rem):
            raise _bad("cut short in the keys of issuer %d" % issuer)
        a, r = _keys_pair(blob, at, n_add, n_rem)
        if n_add:
            adds[issuer] = a
        if n_rem:
            removes[issuer] = r
        at += 8 * (n_add + n_rem)
        prev = issuer
    _, sigs = sigtail.split(blob, at)
    dl = DenyList(kind, from_v, to_v, issued_at, valid_until, adds, removes, blob)
    dl.body_len = at
    dl.sigs = sigs
    return dl


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
