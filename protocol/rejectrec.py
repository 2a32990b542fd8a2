"""Reject audit records: why a gate refused a code, kept apart from the passage journal.

Rejects are not passages: they are never charged, and a flood of bad codes must not fill the
passage journal. Each reject is one 32-byte record (big-endian):

     0  u32  time           gate time, unix seconds
     4  u16  reason         reason number (protocol/reasons.py)
     6  u16  issuer_key_id  0 if the code did not parse that far
     8  u64  cred_id        account_id << 24 | cred_no, 0 if the code did not parse
    16  u32  counter        presentation counter, 0 if the code did not parse
    20  8B   text_digest    first 8 bytes of SHA-256 of the exact text scanned
    28  u32  crc32          of bytes 0..27

`text_digest` lets a technician match a rider's complaint to the exact code shown, without the
gate keeping codes (they carry the rider's key and account): hash the code on the phone.
"""

import hashlib
import struct
from binascii import crc32

from protocol.errors import FormatError

RECORD_LEN = 32
_FMT = ">IHHQI8s"


def text_digest(text) -> bytes:
    if isinstance(text, str):
        try:
            text = text.encode("utf-8")
        except UnicodeError:  # lone surrogates from a lenient decoder
            text = repr(text).encode()
    elif not isinstance(text, (bytes, bytearray, memoryview)):
        text = b""
    return hashlib.sha256(bytes(text)).digest()[:8]


def encode(time, reason, issuer_key_id, cred_id, counter, digest) -> bytes:
    body = struct.pack(_FMT, time, reason, issuer_key_id, cred_id, counter, digest)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def decode(raw):
    """-> (time, reason, issuer_key_id, cred_id, counter, digest); FormatError if damaged."""
    raw = bytes(raw)
    if len(raw) != RECORD_LEN:
        raise FormatError("reject record is %d bytes" % len(raw), "bad_length")
    if crc32(raw[:28]) & 0xFFFFFFFF != struct.unpack(">I", raw[28:])[0]:
        raise FormatError("reject record CRC mismatch", "malformed")
    return struct.unpack(_FMT, raw[:28])
