"""Compact certificates: the operator root signs a device's or a technician's public key.

X.509 is too big for an MCU to parse; these are fixed 137 bytes, raw ES256, checked with one
signature verify. Byte layout (big-endian; docs/service-console.md has a test vector):

    offset size field
      0     1   version        = 1
      1     1   alg            = 1 (ES256: ECDSA P-256, SHA-256, raw r||s)
      2     1   kind           1 device, 2 technician
      3     1   reserved       = 0
      4     4   subject_id     device_id, or the technician's number
      8     4   issuer_id      key id of the signing root: first 4 bytes of SHA-256(root pub), u32
     12     4   valid_from     unix seconds
     16     4   valid_until    unix seconds, exclusive
     20     4   permissions    technician: PERM_* bits; device: 0
     24    33   public_key     SEC1 compressed P-256 point
     57    16   label          UTF-8, NUL-padded (technician's name, gate's name), for logs
     73    64   signature      by the root key over bytes 0..72

`verify` checks the signature and the issuer id; `check_time` the validity; the caller checks
kind, subject and permissions (protocol.service knows which command needs which bit).
"""

import hashlib
import struct

from protocol.errors import FormatError

VERSION = 1
ALG_ES256 = 1
KIND_DEVICE = 1
KIND_TECHNICIAN = 2
KINDS = (KIND_DEVICE, KIND_TECHNICIAN)

PERM_READ = 1  # status, logs, read-back, export of unsynced passages
PERM_MAINTAIN = 2  # set the clock, run the self-test
PERM_PROVISION = 4  # device key, certificate, config, lists, fare tables
PERM_RESET = 8  # factory reset
PERM_ALL = PERM_READ | PERM_MAINTAIN | PERM_PROVISION | PERM_RESET
ROLES = {
    "full": PERM_ALL,
    "provision": PERM_READ | PERM_MAINTAIN | PERM_PROVISION,
    "maintain": PERM_READ | PERM_MAINTAIN,
    "read": PERM_READ,
}

PUB_LEN = 33
LABEL_LEN = 16
SIG_LEN = 64
BODY_LEN = 73
CERT_LEN = BODY_LEN + SIG_LEN
_FMT = ">BBBBIIIII"  # 24 bytes, then public_key and label


def key_id(pub: bytes) -> int:
    """The u32 id of a public key: the first 4 bytes of SHA-256 of its SEC1 encoding."""
    return struct.unpack(">I", hashlib.sha256(bytes(pub)).digest()[:4])[0]


class Cert:
    __slots__ = (
        "kind",
        "subject_id",
        "issuer_id",
        "valid_from",
        "valid_until",
        "permissions",
        "public_key",
        "label",
        "signature",
        "raw",
    )

    def __init__(
        self,
        kind: int,
        subject_id: int,
        issuer_id: int,
        valid_from: int,
        valid_until: int,
        public_key: bytes,
        permissions: int = 0,
        label: str = "",
        signature: bytes = b"",
        raw: bytes = b"",
    ):
        self.kind = kind
        self.subject_id = subject_id
        self.issuer_id = issuer_id
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.permissions = permissions
        self.public_key = bytes(public_key)
        self.label = label
        self.signature = bytes(signature)
        self.raw = bytes(raw)

    def body(self) -> bytes:
        """The signed bytes (0..72)."""
        if self.kind not in KINDS:
            raise FormatError("unknown certificate kind %d" % self.kind, "bad_cert")
        if len(self.public_key) != PUB_LEN or self.public_key[0] not in (2, 3):
            raise FormatError("public key must be a 33-byte compressed point", "bad_cert")
        label = self.label.encode()
        if len(label) > LABEL_LEN:
            raise FormatError("label longer than %d bytes" % LABEL_LEN, "bad_cert")
        head = struct.pack(
            _FMT,
            VERSION,
            ALG_ES256,
            self.kind,
            0,
            self.subject_id,
            self.issuer_id,
            self.valid_from,
            self.valid_until,
            self.permissions,
        )
        return head + self.public_key + label + bytes(LABEL_LEN - len(label))

    def to_bytes(self) -> bytes:
        if len(self.signature) != SIG_LEN:
            raise FormatError("signature must be 64 bytes (raw r||s)", "bad_cert")
        return self.body() + self.signature

    def check_time(self, now: int) -> bool:
        return self.valid_from <= now < self.valid_until

    def __repr__(self):
        return "Cert(kind=%d, subject=%d, issuer=%08x, %d..%d, perms=%d, %r)" % (
            self.kind,
            self.subject_id,
            self.issuer_id,
            self.valid_from,
            self.valid_until,
            self.permissions,
            self.label,
        )


def parse(raw: bytes) -> Cert:
    """Strict parse: exact length, known version/alg/kind, canonical label. No signature check."""
    raw = bytes(raw)
    if len(raw) != CERT_LEN:
        raise FormatError("certificate is %d bytes, expected %d" % (len(raw), CERT_LEN), "bad_cert")
    version, alg, kind, reserved, subject, issuer, vf, vu, perms = struct.unpack(_FMT, raw[:24])
    if version != VERSION:
        raise FormatError("unknown certificate version %d" % version, "bad_cert")
    if alg != ALG_ES256:
        raise FormatError("unknown signature algorithm %d" % alg, "bad_cert")
    if kind not in KINDS or reserved != 0:
        raise FormatError("unknown certificate kind %d" % kind, "bad_cert")
    pub = raw[24 : 24 + PUB_LEN]
    if pub[0] not in (2, 3):
        raise FormatError("public key is not a compressed point", "bad_cert")
    label_raw = raw[57 : 57 + LABEL_LEN]
    end = label_raw.find(b"\x00")
    text = label_raw if end < 0 else label_raw[:end]
    if end >= 0 and label_raw[end:] != bytes(LABEL_LEN - end):
        raise FormatError("label padding is not all zero", "bad_cert")
    try:
        label = text.decode()
    except UnicodeError:
        raise FormatError("label is not UTF-8", "bad_cert") from None
    if vu <= vf:
        raise FormatError("valid_until is not after valid_from", "bad_cert")
    return Cert(kind, subject, issuer, vf, vu, pub, perms, label, raw[BODY_LEN:], raw)


def verify(cert: Cert, root_pub: bytes, verifier) -> bool:
    """True if `root_pub` signed exactly these bytes (issuer id and signature both match)."""
    if cert.issuer_id != key_id(root_pub):
        return False
    return bool(verifier.verify(root_pub, cert.raw[:BODY_LEN], cert.signature))


def sign(cert: Cert, signer) -> bytes:
    """Fill in the signature with `signer.sign(msg) -> raw r||s`; return the 137 bytes."""
    body = cert.body()
    cert.signature = bytes(signer.sign(body))
    cert.raw = body + cert.signature
    return cert.to_bytes()
