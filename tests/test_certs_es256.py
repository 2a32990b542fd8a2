"""Compact certificates with real ES256 (cryptography), and the test vector in the docs."""

import os
import re

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier
from protocol import certs
from protocol.errors import FormatError
from provisioning.operator_keys import Signer
from provisioning.pki import new_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1767254400


def _cert(root, kind=certs.KIND_DEVICE, subject=1017, perms=0, label="A1"):
    sub = Signer(new_key())
    c = certs.Cert(
        kind,
        subject,
        certs.key_id(root.public_key),
        NOW - 60,
        NOW + 86400,
        sub.public_key,
        perms,
        label,
    )
    return sub, certs.sign(c, root)


def test_sign_parse_verify_round_trip():
    root = Signer(new_key())
    _sub, raw = _cert(root, certs.KIND_TECHNICIAN, 7, certs.PERM_ALL, "alice")
    assert len(raw) == certs.CERT_LEN == 137
    c = certs.parse(raw)
    assert (c.kind, c.subject_id, c.permissions, c.label) == (2, 7, certs.PERM_ALL, "alice")
    assert certs.verify(c, root.public_key, OpenSSLVerifier())
    assert c.check_time(NOW) and not c.check_time(NOW + 86400) and not c.check_time(NOW - 61)


def test_any_flipped_bit_breaks_the_signature_or_the_parse():
    root = Signer(new_key())
    _sub, raw = _cert(root)
    v = OpenSSLVerifier()
    for i in range(len(raw)):
        for bit in (0, 7):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            try:
                c = certs.parse(bytes(bad))
            except FormatError:
                continue
            assert not certs.verify(c, root.public_key, v), (i, bit)


def test_another_root_does_not_verify_even_with_our_key_id():
    root, other = Signer(new_key()), Signer(new_key())
    _sub, raw = _cert(other)
    c = certs.parse(raw)
    assert not certs.verify(c, root.public_key, OpenSSLVerifier())  # issuer id differs
    c.issuer_id = certs.key_id(root.public_key)
    forged = certs.parse(certs.sign(c, other))
    assert not certs.verify(forged, root.public_key, OpenSSLVerifier())


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda b: b[:-1], "certificate is 136 bytes"),
        (lambda b: b + b"\x00", "certificate is 138 bytes"),
        (lambda b: b"\x02" + b[1:], "unknown certificate version"),
        (lambda b: b[:1] + b"\x02" + b[2:], "unknown signature algorithm"),
        (lambda b: b[:2] + b"\x09" + b[3:], "unknown certificate kind"),
        (lambda b: b[:24] + b"\x04" + b[25:], "not a compressed point"),
        (lambda b: b[:57] + b"A\x00B" + b[60:], "padding"),
        (lambda b: b[:57] + b"\xff" + b[58:], "not UTF-8"),
        (lambda b: b[:12] + b[16:20] + b[12:16] + b[20:], "valid_until is not after"),
    ],
)
def test_strict_parse_rejects(mutate, why):
    _sub, raw = _cert(Signer(new_key()))
    with pytest.raises(FormatError, match=why) as e:
        certs.parse(mutate(raw))
    assert e.value.reason == "bad_cert"


def test_vector_in_the_docs_verifies():
    """docs/service-console.md carries a certificate and its root key as hex."""
    with open(os.path.join(ROOT, "docs", "service-console.md")) as f:
        text = f.read()
    root_pub = bytes.fromhex(re.search(r"root public key:\s*([0-9a-f]{66})", text).group(1))
    block = re.search(r"certificate \(137 bytes\):\n((?:\s*[0-9a-f ]+\n)+)", text).group(1)
    raw = bytes.fromhex("".join(block.split()))
    c = certs.parse(raw)
    assert certs.verify(c, root_pub, OpenSSLVerifier())
    assert (c.kind, c.subject_id, c.valid_from, c.valid_until, c.label) == (
        certs.KIND_DEVICE,
        1017,
        1767225600,
        1924992000,
        "A1",
    )
