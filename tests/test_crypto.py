"""Both signature backends against Wycheproof and against each other (CPython side).

The pure-Python verifier runs the same Wycheproof cases on MicroPython in
tests/portable/test_p256.py; here the OpenSSL backend gets them too, and signatures made by
each backend are verified by the other and by `cryptography` directly.
"""

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from drivers.linux import crypto_openssl
from firmware import platform
from protocol import p256
from tests.portable.test_p256 import _wycheproof_cases


def test_openssl_verifier_agrees_with_every_wycheproof_case():
    v = crypto_openssl.OpenSSLVerifier()
    wrong = [
        tc["tcId"]
        for tc, pub, msg, sig in _wycheproof_cases()
        if v.verify(pub, msg, sig) != (tc["result"] == "valid")
    ]
    assert not wrong


def test_p256_signatures_verify_with_cryptography():
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(20):
        secret = rng.randrange(1, p256.N)
        signer = p256.Signer(secret)
        msg = rng.randbytes(rng.randrange(0, 300))
        sig = signer.sign(msg)
        key = ec.derive_private_key(secret, ec.SECP256R1()).public_key()
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            key.verify(der, msg, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AssertionError("p256 signature refused by cryptography, seed %d" % seed) from None
        assert crypto_openssl.OpenSSLVerifier().verify(signer.public_key, msg, sig), seed
        assert signer.public_key == crypto_openssl.signer(secret).public_key, seed


def test_p256_signing_matches_cryptography_deterministic_ecdsa():
    signer = p256.Signer(0x1234567890ABCDEF)
    key = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    for msg in (b"", b"sync challenge", bytes(range(256))):
        try:
            der = key.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        except (TypeError, ValueError):  # pragma: no cover - older cryptography
            pytest.skip("this cryptography has no RFC 6979 signing")
        r, s = decode_dss_signature(der)
        assert signer.sign(msg) == r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_openssl_signatures_verify_with_p256():
    signer = crypto_openssl.signer(b"\x07" * 32)
    v = p256.Verifier()
    for i in range(10):
        msg = b"provisioning proof %d" % i
        assert v.verify(signer.public_key, msg, signer.sign(msg))
        assert p256.verify_plain(signer.public_key, msg, signer.sign(msg))


def test_platform_crypto_switch():
    assert platform.crypto() is p256  # the portable default
    platform.set_crypto(crypto_openssl)
    try:
        backend = platform.crypto()
        signer = backend.signer(b"\x09" * 32)
        assert backend.verifier().verify(signer.public_key, b"m", signer.sign(b"m"))
        assert signer.public_key == p256.signer(b"\x09" * 32).public_key
    finally:
        platform.set_crypto(None)
    assert platform.crypto() is p256
