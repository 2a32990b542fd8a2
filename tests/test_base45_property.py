"""base45 against the PyPI `base45` package, by property (hypothesis), both our decoders and
both our encoders."""

import base45 as pypi_base45
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import base45, base45_bulk
from protocol.errors import FormatError

ALPHA = st.text(alphabet=base45.ALPHABET, max_size=60)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_encode_matches_pypi_and_round_trips(data):
    text = base45.encode(data)
    assert text == pypi_base45.b45encode(data).decode()
    assert base45.encode_loop(data) == text == base45_bulk.encode(bytearray(data))
    assert base45.decode(text) == data
    assert base45.decode_loop(text) == data


def _pypi_strict(text: str):
    """PyPI base45, then our canonical rule: a text is valid iff it re-encodes to itself."""
    try:
        data = pypi_base45.b45decode(text)
    except Exception:
        return None
    return data if pypi_base45.b45encode(data).decode() == text else None


@settings(max_examples=1000, deadline=None)
@given(st.one_of(ALPHA, st.text(max_size=20)))
def test_decode_agrees_with_pypi_on_any_text(text):
    want = _pypi_strict(text)
    for decode in (base45_bulk.decode, base45.decode_loop):
        try:
            got = decode(text)
        except FormatError as e:
            assert e.reason == "bad_base45"
            got = None
        assert got == want, (decode.__name__, text)
