"""Ride code format v1: an issuer-signed credential plus a rider-signed presentation.

Byte layout (big-endian; the full specification with test vectors is docs/ridecode.md):

    credential (124 bytes; the issuer key signs bytes 0..59)
      0  u8   version            = 1
      1  u8   alg                = 1 (ES256: ECDSA P-256, SHA-256, raw r||s), for both signatures
      2  u16  issuer_key_id
      4  u64  cred_id            account_id (high 40 bits) | cred_no (low 24 bits, >= 1)
     12  u32  valid_from         unix seconds
     16  u32  valid_until        unix seconds, exclusive, > valid_from
     20  u16  scope              bit mask of products/operators
     22  u8   risk_class
     23  u32  offline_limit      minor currency units the rider may owe offline
     27  33B  rider_pub          SEC1 compressed P-256 point (02/03 || x)
     60  64B  issuer_sig         r||s over credential[0:60]
    presentation (72 bytes; the rider device key signs credential || presentation[0:8])
    124  u32  time               unix seconds when the phone made the code
    128  u32  counter            strictly increasing per credential
    132  64B  rider_sig          r||s

Text form: "FG1:" + base45(196 bytes) = 298 characters, a QR code of version 10 at ECC level M
in alphanumeric mode (capacity 311). The credential is an even number of bytes, so its base45
text is exactly characters 4..189 of the code: a gate can recognise a credential it already
verified from its text alone (base45 here is canonical, so equal text means equal bytes).

Parsing is strict: exact length, known version and algorithm, canonical base45, cred_no >= 1,
valid_until > valid_from, a compressed rider key; anything else raises FormatError whose
`reason` names the fault.
"""

import struct

from protocol import base45
from protocol.errors import FormatError, UsageError

VERSION = 1
ALG_ES256 = 1
PREFIX = "FG1:"

ACCOUNT_BITS = 40
CRED_NO_BITS = 24
MAX_ACCOUNT_ID = (1 << ACCOUNT_BITS) - 1
MAX_CRED_NO = (1 << CRED_NO_BITS) - 1

SIG_LEN = 64
PUB_LEN = 33
CRED_BODY_LEN = 60
CRED_LEN = CRED_BODY_LEN + SIG_LEN  # 124
PRES_BODY_LEN = 8
PRES_LEN = PRES_BODY_LEN + SIG_LEN  # 72
CODE_LEN = CRED_LEN + PRES_LEN  # 196
CRED_TEXT_LEN = CRED_LEN // 2 * 3  # 186
PRES_TEXT_LEN = PRES_LEN // 2 * 3  # 108
TEXT_LEN = len(PREFIX) + CRED_TEXT_LEN + PRES_TEXT_LEN  # 298

_CRED_FMT = ">BBHQIIHBI"  # 27 bytes, followed by the 33-byte rider key
_PRES_FMT = ">II"


def cred_id(account_id: int, cred_no: int) -> int:
    """The u64 credential id: account id in the high 40 bits, credential number in the low 24."""
    return (account_id << CRED_NO_BITS) | cred_no


class Credential:
    __slots__ = (
        "version",
        "alg",
        "issuer_key_id",
        "account_id",
        "cred_no",
        "valid_from",
        "valid_until",
        "scope",
        "risk_class",
        "offline_limit",
        "rider_pub",
        "issuer_sig",
        "raw",
    )

    def __init__(
        self,
        issuer_key_id,
        account_id,
        cred_no,
        valid_from,
        valid_until,
        scope,
        risk_class,
        offline_limit,
        rider_pub,
        issuer_sig=b"",
        alg=ALG_ES256,
        version=VERSION,
        raw=b"",
    ):
        self.version = version
        self.alg = alg
        self.issuer_key_id = issuer_key_id
        self.account_id = account_id
        self.cred_no = cred_no
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.scope = scope
        self.risk_class = risk_class
        self.offline_limit = offline_limit
        self.rider_pub = rider_pub
        self.issuer_sig = issuer_sig
        self.raw = raw

    def body(self) -> bytes:
        """The 60 bytes the issuer signs."""
        if len(self.rider_pub) != PUB_LEN:
            raise UsageError("rider key must be 33 bytes (SEC1 compressed)")
        if not 0 <= self.account_id <= MAX_ACCOUNT_ID:
            raise UsageError("account id must fit in %d bits" % ACCOUNT_BITS)
        if not 1 <= self.cred_no <= MAX_CRED_NO:
            raise UsageError("credential number must be 1..%d" % MAX_CRED_NO)
        return struct.pack(
            _CRED_FMT,
            self.version,
            self.alg,
            self.issuer_key_id,
            cred_id(self.account_id, self.cred_no),
            self.valid_from,
            self.valid_until,
            self.scope,
            self.risk_class,
            self.offline_limit,
        ) + bytes(self.rider_pub)

    def to_bytes(self) -> bytes:
        if self.raw:
            return self.raw
        if len(self.issuer_sig) != SIG_LEN:
            raise UsageError("issuer signature must be 64 bytes")
        return self.body() + bytes(self.issuer_sig)

    def credential_id(self) -> int:
        """The stable u64 id replay caches and deny lists key on (never a signature hash)."""
        return cred_id(self.account_id, self.cred_no)


class RideCode:
    """A parsed ride code. `raw` holds the exact bytes received; signatures are checked over it."""

    __slots__ = ("credential", "time", "counter", "rider_sig", "raw")

    def __init__(self, credential, time, counter, rider_sig, raw=b""):
        self.credential = credential
        self.time = time
        self.counter = counter
        self.rider_sig = rider_sig
        self.raw = raw

    def issuer_signed_bytes(self) -> bytes:
        return self.raw[:CRED_BODY_LEN]

    def rider_signed_bytes(self) -> bytes:
        return self.raw[: CRED_LEN + PRES_BODY_LEN]

    def presentation_id(self):
        """(account_id, cred_no, counter): what replay caches and the back office key on."""
        c = self.credential
        return (c.account_id, c.cred_no, self.counter)


def presentation_body(time: int, counter: int) -> bytes:
    return struct.pack(_PRES_FMT, time, counter)


def rider_signing_input(credential_bytes: bytes, time: int, counter: int) -> bytes:
    return bytes(credential_bytes) + presentation_body(time, counter)


def parse_credential(raw: bytes) -> Credential:
    raw = bytes(raw)
    if len(raw) != CRED_LEN:
        raise FormatError(
            "credential is %d bytes, expected %d" % (len(raw), CRED_LEN), "bad_length"
        )
    if raw[0] != VERSION:
        raise FormatError("unknown ride code version %d" % raw[0], "bad_version")
    if raw[1] != ALG_ES256:
        raise FormatError("unknown signature algorithm %d" % raw[1], "unknown_alg")
    (
        version,
        alg,
        key_id,
        cid,
        valid_from,
        valid_until,
        scope,
        risk_class,
        offline_limit,
    ) = struct.unpack(_CRED_FMT, raw[:27])
    cred_no = cid & MAX_CRED_NO
    if cred_no == 0:
        raise FormatError("credential number 0 is reserved", "malformed")
    if valid_until <= valid_from:
        raise FormatError("credential valid_until is not after valid_from", "malformed")
    if raw[27] not in (2, 3):
        raise FormatError("rider key is not a compressed point", "malformed")
    return Credential(
        key_id,
        cid >> CRED_NO_BITS,
        cred_no,
        valid_from,
        valid_until,
        scope,
        risk_class,
        offline_limit,
        raw[27:CRED_BODY_LEN],
        raw[CRED_BODY_LEN:],
        alg,
        version,
        raw,
    )


def parse_presentation(credential: Credential, raw: bytes) -> RideCode:
    """The ride code made of an already parsed credential and the 72 presentation bytes."""
    if len(raw) != PRES_LEN:
        raise FormatError(
            "presentation is %d bytes, expected %d" % (len(raw), PRES_LEN), "bad_length"
        )
    time, counter = struct.unpack(_PRES_FMT, raw[:PRES_BODY_LEN])
    return RideCode(credential, time, counter, raw[PRES_BODY_LEN:], credential.raw + raw)


def parse_bytes(raw: bytes) -> RideCode:
    raw = bytes(raw)
    if len(raw) != CODE_LEN:
        raise FormatError("ride code is %d bytes, expected %d" % (len(raw), CODE_LEN), "bad_length")
    cred = parse_credential(raw[:CRED_LEN])
    time, counter = struct.unpack_from(_PRES_FMT, raw, CRED_LEN)
    return RideCode(cred, time, counter, raw[CRED_LEN + PRES_BODY_LEN :], raw)


def split_text(text):
    """Check the prefix and length; return (credential text, presentation text), still base45."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("ascii")
        except (UnicodeError, ValueError):
            raise FormatError("ride code text is not ASCII", "malformed") from None
    if not isinstance(text, str):
        raise FormatError("ride code must be text", "malformed")
    if not text.startswith(PREFIX):
        raise FormatError("ride code does not start with %s" % PREFIX, "bad_prefix")
    if len(text) != TEXT_LEN:
        raise FormatError(
            "ride code text is %d characters, expected %d" % (len(text), TEXT_LEN), "bad_length"
        )
    cut = len(PREFIX) + CRED_TEXT_LEN
    return text[len(PREFIX) : cut], text[cut:]


def parse_text(text) -> RideCode:
    """Parse the text a scanner yields (str or bytes). Raises FormatError, never anything else."""
    cred_text, pres_text = split_text(text)
    cred = parse_credential(base45.decode(cred_text))
    return parse_presentation(cred, base45.decode(pres_text))


def encode(credential_bytes: bytes, time: int, counter: int, rider_sig: bytes) -> str:
    raw = bytes(credential_bytes) + presentation_body(time, counter) + bytes(rider_sig)
    if len(raw) != CODE_LEN:
        raise UsageError("ride code would be %d bytes, not %d" % (len(raw), CODE_LEN))
    return PREFIX + base45.encode(raw)


def encode_bytes(raw: bytes) -> str:
    """Text form of 196 raw bytes (used to build deliberately bad codes for tests)."""
    return PREFIX + base45.encode(bytes(raw))
