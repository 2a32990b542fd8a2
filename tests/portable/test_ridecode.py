"""The ride-code byte layout and its strict parser (protocol/ridecode.py)."""

import struct

from protocol import base45, ridecode
from protocol.errors import FormatError, UsageError
from tests.portable import codes
from tests.portable.harness import raises


def test_layout_offsets():
    text = codes.code(codes.credential(account_id=0x123456789A, cred_no=0xABCDEF), counter=77)
    raw = ridecode.parse_text(text).raw
    assert len(raw) == 196
    assert raw[0] == 1 and raw[1] == 1 and raw[2:4] == b"\x00\x01"
    assert raw[4:12] == bytes.fromhex("123456789AABCDEF")  # account (40 bits) | cred_no (24)
    assert struct.unpack(">II", raw[12:20]) == (codes.NOW - 3600, codes.NOW + 86400)
    assert raw[20:22] == b"\x00\x01" and raw[22] == 0
    assert struct.unpack(">I", raw[23:27])[0] == 5000
    assert raw[27:60] == codes.RIDER_PUB
    assert struct.unpack(">II", raw[124:132]) == (codes.NOW, 77)
    c = ridecode.parse_text(text)
    assert c.credential.account_id == 0x123456789A and c.credential.cred_no == 0xABCDEF
    assert c.credential.credential_id() == 0x123456789AABCDEF
    assert c.presentation_id() == (0x123456789A, 0xABCDEF, 77)
    assert c.issuer_signed_bytes() == raw[:60] and c.rider_signed_bytes() == raw[:132]


def test_credential_text_is_a_prefix_of_the_code():
    cred = codes.credential()
    a, b = codes.code(cred, counter=1), codes.code(cred, counter=2)
    cut = len(ridecode.PREFIX) + ridecode.CRED_TEXT_LEN
    assert a[:cut] == b[:cut] == ridecode.PREFIX + base45.encode(cred)
    assert ridecode.split_text(a) == (a[4:cut], a[cut:])


def _with(raw, offset, value):
    b = bytearray(raw)
    b[offset : offset + len(value)] = value
    return ridecode.encode_bytes(bytes(b))


def test_strict_parse_reasons():
    raw = ridecode.parse_text(codes.code()).raw
    cases = [
        (_with(raw, 0, b"\x00"), "bad_version"),
        (_with(raw, 1, b"\x02"), "unknown_alg"),
        (_with(raw, 9, b"\x00\x00\x00"), "malformed"),  # cred_no 0 is reserved
        (_with(raw, 16, raw[12:16]), "malformed"),  # valid_until == valid_from
        (_with(raw, 27, b"\x04"), "malformed"),  # rider key not compressed
        ("FG2:" + codes.code()[4:], "bad_prefix"),
        (codes.code() + "00", "bad_length"),
        (codes.code()[:-2], "bad_length"),
        (codes.code()[:-3] + "GGW", "bad_base45"),  # 65536 overflows a triple
        (codes.code()[:-1] + "a", "bad_base45"),
        ("FG1:" + "\u00e9" * 294, "bad_base45"),
        (b"FG1:\xff", "malformed"),
    ]
    for text, reason in cases:
        e = raises(FormatError, ridecode.parse_text, text)
        assert e.reason == reason, (reason, e.reason, text[:12])
    assert raises(FormatError, ridecode.parse_bytes, raw + b"\x00").reason == "bad_length"
    assert ridecode.parse_bytes(raw).raw == raw


def test_encoder_refuses_out_of_range_fields():
    for account, cred_no in ((1 << 40, 1), (1, 0), (1, 1 << 24)):
        c = ridecode.Credential(1, account, cred_no, 0, 1, 1, 0, 0, codes.RIDER_PUB)
        raises(UsageError, c.body)
    raises(UsageError, ridecode.encode, b"short", 0, 0, bytes(64))
