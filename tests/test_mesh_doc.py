"""docs/mesh.md's test vector: the bytes the encoder makes, and a signature OpenSSL accepts."""

import hashlib
import os
import re

from drivers.linux.crypto_openssl import OpenSSLVerifier
from protocol import certs, mesh, p256, records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1767254400


def _doc_vector() -> bytes:
    with open(os.path.join(ROOT, "docs", "mesh.md")) as f:
        text = f.read()
    block = re.search(r"mesh message \((\d+) bytes\):\n((?:[0-9a-f ]+\n)+)", text)
    assert block is not None, "docs/mesh.md has no vector"
    raw = bytes.fromhex("".join(block.group(2).split()))
    assert len(raw) == int(block.group(1))
    return raw


def test_the_vector_is_what_the_encoder_makes():
    root = p256.Signer(hashlib.sha256(b"faregate doc root key").digest())
    dev = p256.Signer(hashlib.sha256(b"faregate doc device key").digest())
    cert = certs.Cert(
        certs.KIND_DEVICE,
        1017,
        certs.key_id(root.public_key),
        1767225600,
        1924992000,
        dev.public_key,
        0,
        "A1",
    )
    entry = mesh.Entry(
        42, mesh.KIND_ACCEPTED, records.MODE_METRO, records.DIR_ENTRY, 0, NOW - 1, 4242, 1, 17, 1
    )
    msg = mesh.Message(
        mesh.TYPE_ANNOUNCE, 1017, 3, NOW, 7, 41, 42, 0, certs.sign(cert, root), [entry]
    )
    assert mesh.encode(msg, dev) == _doc_vector()


def test_the_vector_verifies_with_openssl():
    root_pub = bytes.fromhex("032fb6eabd51df48ebb15ed9f89a617d3ec5802184560a3c13c07df5315bf8421a")
    m = mesh.parse(_doc_vector())
    assert mesh.check(m, root_pub, OpenSSLVerifier(), NOW) is None
    [e] = m.entries
    assert (m.sender, m.station, m.time, m.msg, m.from_seq, m.head) == (1017, 3, NOW, 7, 41, 42)
    assert (e.seq, e.kind, e.issuer, e.account_id, e.cred_no, e.counter) == (42, 1, 1, 4242, 1, 17)
    # one byte changed anywhere in the signed part: the signature no longer holds
    raw = bytearray(_doc_vector())
    raw[200] ^= 1
    assert mesh.check(mesh.parse(bytes(raw)), root_pub, OpenSSLVerifier(), NOW) == (
        "mesh_bad_signature"
    )


def test_the_refusals_are_reasons_300_to_309_with_the_docs_table():
    from protocol import reasons

    with open(os.path.join(ROOT, "docs", "mesh.md")) as f:
        text = f.read()
    for name, (n, display, _doc) in mesh.REASONS.items():
        assert reasons.REASONS[name][0] == n and 300 <= n <= 309 and display == ""
        assert "| `%s` | %d |" % (name, n) in text
