"""Fuzzing the ride-code parsers and the pipeline (R3): only typed rejects, never an exception.

Two fuzzers: hypothesis (structured: arbitrary text, and valid codes with edits) and the shared
mutation fuzzer (tests/fuzzing.py): QUICK inputs each in `make test`, FUZZ_N (1,000,000) in
`make fuzz`.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.verify.validator import Validator
from host_sim.wallet import Issuer, Operator, Rider
from protocol import base45, denylist, ridecode, trustlist
from protocol.errors import FormatError
from tests.fuzzing import QUICK, fuzz_parser

NOW = 1_767_254_400

_issuer = Issuer(1)
_rider = Rider()
_issuer.issue(_rider, 42, NOW - 3600, NOW + 86400)
CODES = [_rider.present(NOW) for _ in range(3)]
_op = Operator()
TRUST = _op.trust_list(1, [_issuer.trust_entry()], NOW, NOW + 86400)
DENY = _op.deny_delta(
    1, 2, NOW, [denylist.account_key(1, 5), denylist.credential_key(1, 6, 1)], [7]
)
VALIDATOR = Validator(OpenSSLVerifier(), {1: _issuer.trust_entry()})


def _check(text):
    d = VALIDATOR.check(text, NOW)
    assert d.reason  # every outcome is named
    if d.accept:  # an accepted fuzz input must be one of the genuine codes
        assert text in CODES or (isinstance(text, str) and text.encode() in CODES)


CASES = {
    "ridecode_text": (ridecode.parse_text, CODES, True),
    "ridecode_bytes": (ridecode.parse_bytes, [ridecode.parse_text(c).raw for c in CODES], False),
    "trustlist": (trustlist.parse, [TRUST], False),
    "denylist": (denylist.parse, [DENY], False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_quick(name):
    parse, seeds, as_text = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), n=QUICK, as_text=as_text)


def test_fuzz_pipeline_quick():
    fuzz_parser(_check, CODES, (), n=QUICK, as_text=True)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_million(name):
    parse, seeds, as_text = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), as_text=as_text)


@pytest.mark.fuzz
def test_fuzz_pipeline_million():
    fuzz_parser(_check, CODES, (), as_text=True)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_a_typed_reject(text):
    try:
        ridecode.parse_text(text)
    except FormatError as e:
        assert e.reason in ("malformed", "bad_prefix", "bad_length", "bad_base45")
    _check(text)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, len(CODES[0]) - 1),
    st.sampled_from(base45.ALPHABET + "a#\u00e9\x00"),
    st.integers(0, 2),
)
def test_edited_codes_never_pass_and_never_raise(pos, char, which):
    good = CODES[which]
    text = good[:pos] + char + good[pos + 1 :]
    d = VALIDATOR.check(text, NOW)
    assert d.accept == (text == good), (pos, char, d.reason)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=ridecode.CODE_LEN, max_size=ridecode.CODE_LEN))
def test_random_code_bytes_are_refused_with_a_reason(raw):
    d = VALIDATOR.check(ridecode.encode_bytes(raw), NOW)
    assert not d.accept and d.reason != "accepted"
