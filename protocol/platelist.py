"""Plate lists: which vehicle plates are bound to which account, as signed snapshots and deltas.

A parking lane that reads plates (docs/gate-modes.md, "Parking lanes by plate") lets a
vehicle through when its plate is on the list. An entry binds a *plate key* to an issuer key
id and a credential id of that issuer (protocol/ridecode.py: `account_id << 24 | cred_no`, the
credential the passage is charged to: clearing charges the issuer's account,
protocol.records.account_key). The plate key is a u64 below 2**63 (it fits a signed 64-bit
column):

    scheme 0  plain   the normalized plate packed in base 37 ("0"-"9" = 1..10, "A"-"Z" =
                      11..36, most significant character first; up to 12 characters):
                      reversible, so the back office can show it
    scheme 1  hmac    the first 8 bytes of HMAC-SHA256(hash key, normalized plate as UTF-8),
                      big-endian, top bit cleared: nobody holding the list or the journal
                      learns a plate without the operator's hash key (key id in the header)

`normalize` upper-cases and drops spaces, hyphens and dots ("b-ab 1234" -> "BAB1234"); a plate
of other characters (a province's hanzi, say) has only a hashed key.

Byte layout, format 2 (big-endian; docs/parking.md has the specification and a test vector):

     0  4B   magic          "FGPL"
     4  u8   format         2
     5  u8   kind           1 snapshot (the whole list), 2 delta
     6  u16  reserved       0
     8  u32  from_version   0 for a snapshot; for a delta, the version it applies to
    12  u32  to_version     > from_version
    16  u32  issued_at      unix seconds
    20  u8   scheme         0 plain, 1 hmac
    21  u8   reserved       0
    22  u16  hash_key_id    which hash key (0 for plain)
    24  u32  add_count
    28  u32  remove_count   0 for a snapshot
    32  add_count x (u64 plate_key, u16 issuer, u64 cred_id)   18 bytes each, strictly
                                                 ascending by plate_key
        remove_count x u64 plate_key             strictly ascending, none also added
   body end: u8 n_sigs | n_sigs x (u32 key_id | 64B ES256 signature over the body)
             (protocol/sigtail.py): the lists role's keys (docs/security.md)

Format 1 (a u16 root_key_id at byte 6, entries (u64 plate_key, u64 cred_id) without the
issuer, one 64-byte root signature at the end) is still parsed, as a `legacy` list whose
entries are issuer 0's: gates refuse it when it arrives (plate_needs_issuer).

A delta binds a plate anew by adding it (an add for a key the list holds replaces its issuer
and credential). Parsing is strict; any fault raises FormatError("list_malformed").
"""

import struct

from protocol import sigtail
from protocol.errors import FormatError, UsageError

MAGIC = b"FGPL"
FORMAT_V1 = 1  # legacy: no issuer, one root signature
FORMAT = 2
KIND_SNAPSHOT = 1
KIND_DELTA = 2
SCHEME_PLAIN = 0
SCHEME_HMAC = 1
HEADER_LEN = 32
ENTRY_LEN = 18  # u64 plate_key, u16 issuer, u64 cred_id
SIG_LEN = 64
MAX_PLAIN = 12  # characters a plain key holds (37**12 < 2**63)
_HEADER = ">4sBBHIIIBBHII"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DROP = " -.·"
KEY_MASK = (1 << 63) - 1


def _bad(msg):
    return FormatError("plate list: " + msg, "list_malformed")


def normalize(plate: str) -> str:
    out = []
    for ch in plate.upper():
        if ch not in _DROP:
            out.append(ch)
    return "".join(out)


def plain_key(plate: str):
    """The scheme-0 key of a normalized plate, or None if it has another character or more
    than 12."""
    if not plate or len(plate) > MAX_PLAIN:
        return None
    k = 0
    for ch in plate:
        i = _ALPHABET.find(ch)
        if i < 0:
            return None
        k = k * 37 + i + 1
    return k


def plain_text(key: int) -> str:
    """The plate a scheme-0 key packs."""
    out = []
    while key:
        key, d = divmod(key, 37)
        if d == 0:
            raise _bad("not a plain plate key")
        out.append(_ALPHABET[d - 1])
    return "".join(reversed(out))


def hmac_key(plate: str, hash_key: bytes) -> int:
    from protocol.p256 import _hmac_sha256  # MicroPython has no hmac module

    return int.from_bytes(_hmac_sha256(bytes(hash_key), plate.encode())[:8], "big") & KEY_MASK


def plate_key(plate: str, scheme: int, hash_key=None):
    """The key of a plate as read (normalized here) under `scheme`; None when it has none
    (no characters, a plain list and a plate it cannot pack, or no hash key)."""
    p = normalize(plate)
    if not p:
        return None
    if scheme == SCHEME_PLAIN:
        return plain_key(p)
    if scheme == SCHEME_HMAC and hash_key:
        return hmac_key(p, hash_key)
    return None


class PlateList:
    __slots__ = (
        "kind",
        "from_version",
        "to_version",
        "issued_at",
        "scheme",
        "hash_key_id",
        "adds",
        "removes",
        "raw",
        "body_len",
        "sigs",
        "legacy",
    )

    def __init__(self, kind, from_v, to_v, issued_at, scheme, key_id, adds, rems, raw):
        self.kind = kind
        self.from_version = from_v
        self.to_version = to_v
        self.issued_at = issued_at
        self.scheme = scheme
        self.hash_key_id = key_id
        self.adds = adds  # [(plate_key, issuer, cred_id)], ascending by key
        self.removes = rems  # [plate_key], ascending
        self.raw = raw
        self.body_len = len(raw)
        self.sigs = []  # [(key_id, sig)]
        self.legacy = False  # format 1: no issuer (entries issuer 0's), one root signature

    def signed_bytes(self) -> bytes:
        return self.raw[: self.body_len]

    def signature(self) -> bytes:
        """A legacy list's one root signature."""
        return self.raw[-SIG_LEN:]


def encode_body(
    kind,
    from_version,
    to_version,
    issued_at,
    adds,
    removes=(),
    scheme=SCHEME_PLAIN,
    hash_key_id=0,
) -> bytes:
    """`adds`: (plate_key, issuer, cred_id) triples; `removes`: plate keys."""
    table = {}
    for k, issuer, c in adds:
        table[k] = (issuer, c)
    triples = sorted((k, i, c) for k, (i, c) in table.items())
    removes = sorted(set(removes))
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise UsageError("unknown plate list kind %d" % kind)
    if kind == KIND_SNAPSHOT and (removes or from_version):
        raise UsageError("a snapshot has no removals and from_version 0")
    if to_version <= from_version:
        raise UsageError("to_version must be above from_version")
    if scheme not in (SCHEME_PLAIN, SCHEME_HMAC) or (scheme == SCHEME_PLAIN and hash_key_id):
        raise UsageError("scheme %d with hash key %d" % (scheme, hash_key_id))
    if set(table) & set(removes):
        raise UsageError("a plate cannot be both added and removed")
    for k in list(table) + removes:
        if not 0 < k <= KEY_MASK:
            raise UsageError("plate key %d is out of range" % k)
    for _k, issuer, _c in triples:
        if not 0 <= issuer <= 0xFFFF:
            raise UsageError("issuer %d is not a u16" % issuer)
    head = struct.pack(
        _HEADER,
        MAGIC,
        FORMAT,
        kind,
        0,
        from_version,
        to_version,
        issued_at,
        scheme,
        0,
        hash_key_id,
        len(triples),
        len(removes),
    )
    body = [head]
    for k, i, c in triples:
        body.append(struct.pack(">QHQ", k, i, c))
    for k in removes:
        body.append(struct.pack(">Q", k))
    return b"".join(body)


def build(kind, from_version, to_version, issued_at, adds, removes, signers, **kw) -> bytes:
    """A signed list; `signers`: the lists role's signer(s) (.public_key, .sign)."""
    body = encode_body(kind, from_version, to_version, issued_at, adds, removes, **kw)
    return sigtail.sign(body, sigtail.signers_of(signers))


def parse(blob) -> PlateList:
    blob = bytes(blob)
    if len(blob) < HEADER_LEN + 1:
        raise _bad("%d bytes is too short" % len(blob))
    f = struct.unpack(_HEADER, blob[:HEADER_LEN])
    magic, fmt, kind, reserved, from_v, to_v, issued_at, scheme, res, key_id, n_add, n_rem = f
    if magic != MAGIC:
        raise _bad("bad magic")
    if fmt not in (FORMAT, FORMAT_V1):
        raise _bad("unknown format %d" % fmt)
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise _bad("unknown kind %d" % kind)
    if to_v <= from_v:
        raise _bad("to_version %d is not above from_version %d" % (to_v, from_v))
    if kind == KIND_SNAPSHOT and (from_v or n_rem):
        raise _bad("a snapshot has from_version 0 and no removals")
    if scheme not in (SCHEME_PLAIN, SCHEME_HMAC) or res or (scheme == SCHEME_PLAIN and key_id):
        raise _bad("scheme %d, reserved %d, hash key %d" % (scheme, res, key_id))
    entry = ENTRY_LEN if fmt == FORMAT else 16
    body_len = HEADER_LEN + entry * n_add + 8 * n_rem
    if fmt == FORMAT_V1 and len(blob) != body_len + SIG_LEN:
        raise _bad("length %d does not match %d + %d entries" % (len(blob), n_add, n_rem))
    if fmt == FORMAT and (reserved or len(blob) < body_len + 1):
        raise _bad("length %d is short of %d + %d entries" % (len(blob), n_add, n_rem))
    adds = []
    prev = 0
    at = HEADER_LEN
    for _i in range(n_add):
        if fmt == FORMAT:
            k, issuer, c = struct.unpack_from(">QHQ", blob, at)
        else:
            k, c = struct.unpack_from(">QQ", blob, at)
            issuer = 0
        at += entry
        if k <= prev or k > KEY_MASK:
            raise _bad("plate keys are not strictly ascending, or out of range")
        prev = k
        adds.append((k, issuer, c))
    removes = []
    prev = 0
    for _i in range(n_rem):
        (k,) = struct.unpack_from(">Q", blob, at)
        at += 8
        if k <= prev or k > KEY_MASK:
            raise _bad("removed keys are not strictly ascending, or out of range")
        prev = k
        removes.append(k)
    if n_add and n_rem and set(a[0] for a in adds) & set(removes):
        raise _bad("a plate is both added and removed")
    pl = PlateList(kind, from_v, to_v, issued_at, scheme, key_id, adds, removes, blob)
    pl.body_len = body_len
    if fmt == FORMAT:
        pl.sigs = sigtail.split(blob, body_len)[1]
    else:
        pl.legacy = True
    return pl


# -- the gate's store file (firmware/verify/platestore.py) -----------------------------------
# plates.bin  "FGPI" | u32 version | u32 issued_at | u8 scheme | u8 0 | u16 hash_key_id
#             | u32 count | u32 crc32(entries) | count x (u64 plate_key, u16 issuer, u64
#             cred_id), big-endian, ascending by key; written whole (write_atomic) at every
#             install
#        or   "FGPS" | the same head | count x (u64 plate_key, u64 cred_id): written by gates
#             before the issuer (plate list format 1), read as issuer 0's (`legacy`)
STORE_MAGIC = b"FGPI"
STORE_MAGIC_V1 = b"FGPS"
_STORE_HEAD = ">4sIIBBHII"
STORE_HEAD_LEN = 24


def store_file(version, issued_at, scheme, hash_key_id, entries) -> bytes:
    """plates.bin for `entries` (ascending (key, issuer, cred_id) triples)."""
    from binascii import crc32

    data = b"".join(struct.pack(">QHQ", k, i, c) for k, i, c in entries)
    head = struct.pack(
        _STORE_HEAD,
        STORE_MAGIC,
        version,
        issued_at,
        scheme,
        0,
        hash_key_id,
        len(entries),
        crc32(data) & 0xFFFFFFFF,
    )
    return head + data


def parse_store_file(data):
    """-> (version, issued_at, scheme, hash_key_id, [(key, issuer, cred_id)], legacy) or None
    if damaged."""
    from binascii import crc32

    data = bytes(data)
    if len(data) < STORE_HEAD_LEN or data[:4] not in (STORE_MAGIC, STORE_MAGIC_V1):
        return None
    legacy = data[:4] == STORE_MAGIC_V1
    _m, version, issued_at, scheme, _r, key_id, count, crc = struct.unpack(
        _STORE_HEAD, data[:STORE_HEAD_LEN]
    )
    body = data[STORE_HEAD_LEN:]
    size = 16 if legacy else ENTRY_LEN
    if len(body) != size * count or crc32(body) & 0xFFFFFFFF != crc:
        return None
    if legacy:
        entries = [
            (k, 0, c) for k, c in (struct.unpack_from(">QQ", body, 16 * i) for i in range(count))
        ]
    else:
        entries = [struct.unpack_from(">QHQ", body, ENTRY_LEN * i) for i in range(count)]
    return version, issued_at, scheme, key_id, entries, legacy
