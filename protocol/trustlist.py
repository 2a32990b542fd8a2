"""Trust list: which issuer keys a gate accepts, signed by the operator's root key.

Byte layout (big-endian; docs/ridecode.md has the full specification and test vectors):

     0  4B   magic              "FGTL"
     4  u8   format             = 1
     5  u8   alg                = 1 (ES256) for the root signature
     6  u16  root_key_id        which operator root key signed it
     8  u32  version            strictly increasing; a gate never installs a lower one
    12  u32  issued_at          unix seconds
    16  u32  valid_until        unix seconds; after it the list is stale (the gate's policy decides)
    20  u8   key_count          0..255 issuer key entries follow, key ids strictly ascending
    21  ...  entries:
            u16 key_id | u8 alg | u16 scope | u32 valid_from | u32 valid_until | u8 pub_len | pub
            (ES256: pub_len = 33, a SEC1 compressed point; other algorithms may appear and are
            kept, unusable, so an older gate can still read a list that introduces them)
   end  64B  root_sig           r||s over every byte before it

Issuer key rotation with overlap is two entries (old and new key id) whose validity periods
overlap; credentials name their key by id. Parsing is strict: exact length, magic, format,
ascending key ids, valid_until > valid_from for every key; else FormatError("list_malformed").
The signature is not checked here (protocol code holds no keys): firmware/verify/truststore.py does.

`root_key_id(pub)` is the id a root key signs lists under when a gate knows it from its claim
(firmware/compose/device.py): the first two bytes of SHA-256 of its SEC1 encoding, big-endian
(the top
half of the u32 key id of protocol/certs.py).
"""

import hashlib
import struct

from protocol.errors import FormatError, UsageError

MAGIC = b"FGTL"
FORMAT = 1
ALG_ES256 = 1
SIG_LEN = 64
HEADER_LEN = 21
ENTRY_FIXED_LEN = 14
MAX_KEYS = 255

_HEADER_FMT = ">4sBBHIIIB"
_ENTRY_FMT = ">HBHIIB"


def root_key_id(pub: bytes) -> int:
    """The u16 id of an operator root key in trust and deny lists."""
    return struct.unpack(">H", hashlib.sha256(bytes(pub)).digest()[:2])[0]


class IssuerKey:
    """One trusted issuer key: the credentials it may sign (scope) and when it may be used."""

    __slots__ = ("key_id", "pub", "scope", "valid_from", "valid_until", "alg")

    def __init__(
        self,
        key_id: int,
        pub: bytes,
        scope: int = 0xFFFF,
        valid_from: int = 0,
        valid_until: int = 0xFFFFFFFF,
        alg: int = ALG_ES256,
    ):
        self.key_id = key_id
        self.pub = bytes(pub)
        self.scope = scope
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.alg = alg

    def __repr__(self):
        return "IssuerKey(%d, scope=0x%04x, %d..%d)" % (
            self.key_id,
            self.scope,
            self.valid_from,
            self.valid_until,
        )


class TrustList:
    __slots__ = ("version", "issued_at", "valid_until", "root_key_id", "keys", "raw")

    def __init__(self, version, issued_at, valid_until, root_key_id, keys, raw=b""):
        self.version = version
        self.issued_at = issued_at
        self.valid_until = valid_until
        self.root_key_id = root_key_id
        self.keys = keys  # list of IssuerKey, key ids ascending
        self.raw = raw

    def signed_bytes(self) -> bytes:
        return self.raw[:-SIG_LEN]

    def signature(self) -> bytes:
        return self.raw[-SIG_LEN:]

    def key_map(self) -> dict:
        out = {}
        for k in self.keys:
            out[k.key_id] = k
        return out


def _bad(msg):
    return FormatError("trust list: " + msg, "list_malformed")


def encode_body(version, issued_at, valid_until, keys, root_key_id=1) -> bytes:
    """The bytes the root key signs. `keys`: IssuerKey objects (sorted here by key id)."""
    keys = sorted(keys, key=lambda k: k.key_id)
    if len(keys) > MAX_KEYS:
        raise UsageError("a trust list holds at most %d keys" % MAX_KEYS)
    out = [
        struct.pack(
            _HEADER_FMT,
            MAGIC,
            FORMAT,
            ALG_ES256,
            root_key_id,
            version,
            issued_at,
            valid_until,
            len(keys),
        )
    ]
    last = -1
    for k in keys:
        if k.key_id == last:
            raise UsageError("duplicate issuer key id %d" % k.key_id)
        if k.valid_until <= k.valid_from:
            raise UsageError("issuer key %d: valid_until must be after valid_from" % k.key_id)
        last = k.key_id
        out.append(
            struct.pack(
                _ENTRY_FMT, k.key_id, k.alg, k.scope, k.valid_from, k.valid_until, len(k.pub)
            )
        )
        out.append(bytes(k.pub))
    return b"".join(out)


def build(version, issued_at, valid_until, keys, sign, root_key_id=1) -> bytes:
    """A signed trust list; `sign(message) -> r||s` is the operator root key's signer."""
    body = encode_body(version, issued_at, valid_until, keys, root_key_id)
    sig = sign(body)
    if len(sig) != SIG_LEN:
        raise UsageError("signer returned %d bytes, expected 64" % len(sig))
    return body + bytes(sig)


def parse(blob) -> TrustList:
    blob = bytes(blob)
    if len(blob) < HEADER_LEN + SIG_LEN:
        raise _bad("%d bytes is too short" % len(blob))
    magic, fmt, alg, root_key_id, version, issued_at, valid_until, count = struct.unpack(
        _HEADER_FMT, blob[:HEADER_LEN]
    )
    if magic != MAGIC:
        raise _bad("bad magic")
    if fmt != FORMAT:
        raise _bad("unknown format %d" % fmt)
    if alg != ALG_ES256:
        raise _bad("unknown signature algorithm %d" % alg)
    end = len(blob) - SIG_LEN
    pos = HEADER_LEN
    keys = []
    last = -1
    for _ in range(count):
        if pos + ENTRY_FIXED_LEN > end:
            raise _bad("truncated key entry")
        key_id, kalg, scope, vf, vu, plen = struct.unpack(
            _ENTRY_FMT, blob[pos : pos + ENTRY_FIXED_LEN]
        )
        pos += ENTRY_FIXED_LEN
        if key_id <= last:
            raise _bad("key ids not strictly ascending at %d" % key_id)
        if vu <= vf:
            raise _bad("key %d: valid_until is not after valid_from" % key_id)
        if plen == 0 or pos + plen > end:
            raise _bad("key %d: bad public key length %d" % (key_id, plen))
        pub = blob[pos : pos + plen]
        if kalg == ALG_ES256 and (plen != 33 or pub[0] not in (2, 3)):
            raise _bad("key %d: ES256 keys are 33-byte compressed points" % key_id)
        pos += plen
        last = key_id
        keys.append(IssuerKey(key_id, pub, scope, vf, vu, kalg))
    if pos != end:
        raise _bad("%d unexpected bytes after the key entries" % (end - pos))
    return TrustList(version, issued_at, valid_until, root_key_id, keys, blob)
