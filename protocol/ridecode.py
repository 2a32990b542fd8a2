"""Ride code format v1: an issuer-signed credential plus a rider-signed presentation.

Byte layout (big-endian; full description and test vectors in docs/ridecode.md):

    credential (128 bytes, signed by the issuer key over bytes 0..63)
      0  u8   version            = 1
      1  u8   alg                = 1 (ES256: ECDSA P-256, SHA-256, raw r||s)
      2  u16  issuer_key_id
      4  u64  account_id
     12  u32  cred_no            (account_id, cred_no) is the credential id
     16  u32  valid_from         unix seconds
     20  u32  valid_until        unix seconds, exclusive
     24  u16  scope              bit mask of products/operators
     26  u8   risk_class
     27  u32  offline_limit      minor currency units the rider may owe offline
     31  33B  rider_pub          SEC1 compressed P-256 point
     64  64B  issuer_sig         over credential[0:64]
    presentation (72 bytes, signed by the rider device key over credential || presentation[0:8])
    128  u32  time               unix seconds when the phone made the code
    132  u32  counter            strictly increasing per credential
    136  64B  rider_sig

Text form: "FG1:" + base45(200 bytes) = 304 characters, which fits a QR code of version 10
at ECC level M in alphanumeric mode. Parsing is strict: exact length, known version and
algorithm, canonical base45; anything else raises FormatError with a reason name.
"""

import struct

from protocol import base45
from protocol.errors import FormatError

VERSION = 1
ALG_ES256 = 1
PREFIX = "FG1:"
CRED_BODY_LEN = 64
CRED_LEN = 128
PRES_BODY_LEN = 8
PRES_LEN = 72
CODE_LEN = CRED_LEN + PRES_LEN
TEXT_LEN = len(PREFIX) + (CODE_LEN // 2) * 3
SIG_LEN = 64
PUB_LEN = 33

_CRED_FMT = ">BBHQIIIHBI"  # 31 bytes, followed by the 33-byte rider key
_PRES_FMT = ">II"


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
        """The 64 bytes the issuer signs."""
        if len(self.rider_pub) != PUB_LEN:
            raise FormatError("rider key must be 33 bytes (SEC1 compressed)", "bad_length")
        return struct.pack(
            _CRED_FMT,
            self.version,
            self.alg,
            self.issuer_key_id,
            self.account_id,
            self.cred_no,
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
            raise FormatError("issuer signature must be 64 bytes", "bad_length")
        return self.body() + bytes(self.issuer_sig)

    def credential_id(self):
        return (self.account_id, self.cred_no)


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
    if len(raw) != CRED_LEN:
        raise FormatError(
            "credential is %d bytes, expected %d" % (len(raw), CRED_LEN), "bad_length"
        )
    version = raw[0]
    if version != VERSION:
        raise FormatError("unknown ride code version %d" % version, "bad_version")
    fields = struct.unpack(_CRED_FMT, raw[:31])
    if fields[1] != ALG_ES256:
        raise FormatError("unknown signature algorithm %d" % fields[1], "unknown_alg")
    rider_pub = bytes(raw[31:64])
    if rider_pub[0] not in (2, 3):
        raise FormatError("rider key is not a compressed point", "malformed")
    return Credential(
        fields[2],
        fields[3],
        fields[4],
        fields[5],
        fields[6],
        fields[7],
        fields[8],
        fields[9],
        rider_pub,
        bytes(raw[64:128]),
        fields[1],
        version,
        bytes(raw),
    )


def parse_bytes(raw: bytes) -> RideCode:
    raw = bytes(raw)
    if len(raw) != CODE_LEN:
        raise FormatError("ride code is %d bytes, expected %d" % (len(raw), CODE_LEN), "bad_length")
    cred = parse_credential(raw[:CRED_LEN])
    time, counter = struct.unpack(_PRES_FMT, raw[CRED_LEN : CRED_LEN + PRES_BODY_LEN])
    return RideCode(cred, time, counter, raw[CRED_LEN + PRES_BODY_LEN :], raw)


def parse_text(text) -> RideCode:
    """Parse the text a scanner yields (str or bytes). Raises FormatError, never anything else."""
    if isinstance(text, (bytes, bytearray)):
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
    return parse_bytes(base45.decode(text[len(PREFIX) :]))


def encode(credential_bytes: bytes, time: int, counter: int, rider_sig: bytes) -> str:
    raw = bytes(credential_bytes) + presentation_body(time, counter) + bytes(rider_sig)
    if len(raw) != CODE_LEN:
        raise FormatError("ride code would be %d bytes" % len(raw), "bad_length")
    return PREFIX + base45.encode(raw)
