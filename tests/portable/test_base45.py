from protocol import base45
from protocol.errors import FormatError
from tests.portable.harness import raises

# RFC 9285, sections 4.3 and 4.4
RFC_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


def test_rfc9285_examples_encode():
    for raw, text in RFC_EXAMPLES:
        assert base45.encode(raw) == text


def test_rfc9285_examples_decode():
    for raw, text in RFC_EXAMPLES:
        assert base45.decode(text) == raw
        assert base45.decode(text.encode()) == raw


def test_empty():
    assert base45.encode(b"") == ""
    assert base45.decode("") == b""


def test_all_byte_values_round_trip():
    data = bytes(range(256))
    for n in (0, 1, 2, 3, 255, 256):
        assert base45.decode(base45.encode(data[:n])) == data[:n]


def test_rfc9285_invalid_triple_overflows():
    # "GGW" decodes to 65536, one more than fits: RFC 9285 section 6 says reject.
    assert raises(FormatError, base45.decode, "GGW").reason == "bad_base45"
    assert base45.decode("FGW") == b"\xff\xff"


def test_invalid_pair_overflows():
    assert base45.decode("U5") == b"\xff"
    assert raises(FormatError, base45.decode, "V5").reason == "bad_base45"


def test_lone_trailing_character():
    assert raises(FormatError, base45.decode, "BB8A").reason == "bad_base45"


def test_characters_outside_alphabet():
    for bad in ("bb8", "BB#", "BB8\n", "B\x00B", "QED8WE\u00e90"):
        assert raises(FormatError, base45.decode, bad).reason == "bad_base45"
