from firmware.validator import IssuerKey, Validator, ValidatorConfig
from protocol import base45, ridecode
from tests.portable import codes
from tests.portable.codes import NOW


def _validator():
    trust = {1: IssuerKey(1, codes.ISSUER_PUB, scope=0xFF)}
    return Validator(codes.HashVerifier(), trust, set(), ValidatorConfig(1, 60, 10))


def test_valid_code_accepted():
    v = _validator()
    d = v.check(codes.code(), NOW)
    assert d.accept and d.reason == "accepted"
    assert d.code.credential.account_id == 42


def test_text_form_fits_qr_version_10_m():
    text = codes.code()
    assert len(text) == ridecode.TEXT_LEN <= 311  # alphanumeric capacity of version 10-M
    assert text.startswith("FG1:")


def test_reasons_in_pipeline_order():
    v = _validator()
    good = codes.code()
    assert v.check("hello", NOW).reason == "bad_prefix"
    assert v.check(good[:-3], NOW).reason == "bad_length"
    assert v.check(good[:-3] + "###", NOW).reason == "bad_base45"
    other_key = codes.credential(key_id=9)
    assert v.check(codes.code(other_key), NOW).reason == "unknown_issuer"
    assert v.check(codes.code(codes.credential(scope=0x100)), NOW).reason == "issuer_out_of_scope"
    forged = codes.credential(issuer_pub=b"\x02" + bytes(32))
    assert v.check(codes.code(forged), NOW).reason == "bad_issuer_signature"
    assert v.check(codes.code(), NOW - 7200).reason == "credential_not_yet_valid"
    assert v.check(codes.code(), NOW + 86400).reason == "credential_expired"
    assert v.check(codes.code(codes.credential(scope=2)), NOW).reason == "out_of_scope"
    assert v.check(codes.code(rider_pub=b"\x03" + bytes(32)), NOW).reason == "bad_rider_signature"
    assert v.check(codes.code(time=NOW + 11), NOW).reason == "presentation_future"
    assert v.check(codes.code(time=NOW - 61), NOW).reason == "presentation_stale"


def test_swapped_presentation_fails_rider_signature():
    v = _validator()
    a = ridecode.parse_text(codes.code(counter=1))
    b = ridecode.parse_text(codes.code(codes.credential(account_id=43), counter=2))
    swapped = ridecode.PREFIX + base45.encode(
        a.raw[: ridecode.CRED_LEN] + b.raw[ridecode.CRED_LEN :]
    )
    assert v.check(swapped, NOW).reason == "bad_rider_signature"


def test_replay_and_deny():
    v = _validator()
    first = v.check(codes.code(counter=5), NOW)
    assert first.accept
    v.committed(first.code)
    assert v.check(codes.code(counter=5), NOW).reason == "replayed"
    assert v.check(codes.code(counter=4), NOW).reason == "replayed"
    assert v.check(codes.code(counter=6), NOW).accept
    v.deny.add(42)
    assert v.check(codes.code(counter=7), NOW).reason == "denied"
