"""Root metadata and the root's threshold signatures (protocol/rootmeta.py), on both
interpreters: the layout and its vector (docs/security.md), strict parsing, the update rule."""

import hashlib

from protocol import p256, rootmeta
from protocol.errors import FormatError
from tests.portable import codes
from tests.portable.harness import raises

NOW = codes.NOW
# the vector's keys (docs/security.md "Root metadata layout"): fixed test keys, never real ones
R1 = p256.Signer(0x52000001)
R2 = p256.Signer(0x52000002)
SYNC = p256.Signer(0x52000003)
RELEASE = p256.Signer(0x52000004)
LISTS = p256.Signer(0x52000005)
TECH = p256.Signer(0x52000006)
VECTOR_SHA256 = "76f43c27"  # first 4 bytes, hex, of the vector's SHA-256 (checked below)


def vector_root(version=1, root=(R1, R2), threshold=2):
    roles = {
        rootmeta.ROOT: (threshold, [k.public_key for k in root]),
        rootmeta.SYNC: (1, [SYNC.public_key]),
        rootmeta.RELEASE: (1, [RELEASE.public_key]),
        rootmeta.LISTS: (1, [LISTS.public_key]),
        rootmeta.TECHNICIAN: (1, [TECH.public_key]),
    }
    return rootmeta.Root(version, NOW, NOW + 365 * 86400, roles)


def vector():
    """Version 1 of a 2-of-2 root, signed by both root keys (ES256, RFC 6979: deterministic)."""
    return rootmeta.sign(rootmeta.encode(vector_root()), [R1, R2])


def test_the_layout_of_the_vector():
    data = vector()
    assert data[:4] == b"FGRM" and data[4] == 1
    assert data[5:9] == b"\x00\x00\x00\x01" and data[17] == 5  # version 1, five roles
    assert data[18:21] == b"\x01\x02\x02"  # root: threshold 2 of 2 keys
    assert data[21:54] == R1.public_key and data[54:87] == R2.public_key
    assert data[87:90] == b"\x02\x01\x01" and data[90:123] == SYNC.public_key
    body_len = 18 + 5 * 3 + 6 * 33
    assert rootmeta.body_len(data) == body_len and data[body_len] == 2
    assert len(data) == body_len + 1 + 2 * 68
    root = rootmeta.parse(data)
    assert (root.version, root.issued_at, root.expires) == (1, NOW, NOW + 365 * 86400)
    assert root.keys(rootmeta.LISTS) == [LISTS.public_key] and root.threshold(rootmeta.ROOT) == 2
    assert root.body == data[:body_len] and [k for k, _s in root.sigs] == root.key_ids(
        rootmeta.ROOT
    )
    assert hashlib.sha256(data).digest()[:4].hex() == VECTOR_SHA256


def test_parsing_is_strict():
    data = vector()
    for bad in (
        data[:-1],  # a signature cut short
        data + b"\x00",  # trailing bytes
        b"FGRX" + data[4:],  # magic
        data[:4] + b"\x02" + data[5:],  # format
        data[:17] + b"\x04" + data[18:],  # four roles
        data[:18] + b"\x02" + data[19:],  # the sync role where root belongs
        data[:19] + b"\x03" + data[20:],  # threshold 3 of 2 keys
        data[:19] + b"\x00" + data[20:],  # threshold 0
        data[:21] + b"\x05" + data[22:],  # a key that is no compressed point
        data[:54] + data[21:54] + data[87:],  # the same root key twice
    ):
        e = raises(FormatError, rootmeta.parse, bad)
        assert e.reason == "root_malformed", bad[:24]
    # two signatures by one key
    body = rootmeta.encode(vector_root())
    twice = rootmeta.sign(body, [R1, R1])
    assert raises(FormatError, rootmeta.parse, twice).reason == "root_malformed"
    assert raises(FormatError, rootmeta.parse_body, data).reason == "root_malformed"
    assert rootmeta.parse_body(body).version == 1


def test_an_update_needs_the_next_version_and_both_thresholds():
    v = codes.VERIFIER
    held = rootmeta.parse(vector())
    n1, n2, n3 = p256.Signer(0x52000011), p256.Signer(0x52000012), p256.Signer(0x52000013)
    body = rootmeta.encode(vector_root(2, (n1, n2, n3), 2))
    good = rootmeta.sign(body, [R1, R2, n1, n3])
    assert rootmeta.check_update(held, good, v, NOW).keys(rootmeta.ROOT)[2] == n3.public_key
    for signers, reason in (
        ([R1, n1, n2], "root_threshold"),  # one of the two old keys
        ([R1, R2, n2], "root_threshold"),  # one of its own two
        ([n1, n2, n3], "root_threshold"),  # none of the old
    ):
        e = raises(FormatError, rootmeta.check_update, held, rootmeta.sign(body, signers), v, NOW)
        assert e.reason == reason
    assert raises(FormatError, rootmeta.check_update, held, vector(), v, NOW).reason == (
        "root_rollback"
    )
    skip = rootmeta.sign(rootmeta.encode(vector_root(3)), [R1, R2])
    assert raises(FormatError, rootmeta.check_update, held, skip, v, NOW).reason == "root_rollback"
    late = NOW + 366 * 86400
    assert raises(FormatError, rootmeta.check_update, held, good, v, late).reason == (
        "root_expired"
    )
    # a signature that does not verify counts for nothing, even under a listed key id
    forged = rootmeta.attach(body, [(s[0], b"\x01" * 64) for s in rootmeta.parse(good).sigs])
    assert raises(FormatError, rootmeta.check_update, held, forged, v, NOW).reason == (
        "root_threshold"
    )


def test_the_implicit_root_of_a_gate_claimed_with_one_key():
    root = rootmeta.implicit(codes.ROOT.public_key, SYNC.public_key)
    assert root.version == 0 and root.keys(rootmeta.TECHNICIAN) == [codes.ROOT.public_key]
    assert root.keys(rootmeta.SYNC) == [SYNC.public_key] and root.threshold(rootmeta.ROOT) == 1
    # its successor: signed by that key and by its own threshold
    body = rootmeta.encode(vector_root())
    new = rootmeta.check_update(
        root, rootmeta.sign(body, [codes.ROOT, R1, R2]), codes.VERIFIER, NOW
    )
    assert new.version == 1
    e = raises(
        FormatError, rootmeta.check_update, root, rootmeta.sign(body, [R1, R2]), codes.VERIFIER, NOW
    )
    assert e.reason == "root_threshold"


def test_root_signed_statements_and_signing_in_turn():
    cfg = b'{"version": 1}'
    body = rootmeta.security_config(1017, 3, cfg)
    assert body[:4] == b"FGSC" and rootmeta.body_len(body) == len(body) == 17 + len(cfg)
    half = rootmeta.add_signatures(body, [(rootmeta.key_id(R1.public_key), R1.sign(body))])
    both = rootmeta.add_signatures(half, [(rootmeta.key_id(R2.public_key), R2.sign(body))])
    device_id, version, raw, signed, sigs = rootmeta.parse_security_config(both)
    assert (device_id, version, raw, signed) == (1017, 3, cfg, body) and len(sigs) == 2
    root = rootmeta.parse(vector())
    rootmeta.check_threshold(root, rootmeta.ROOT, signed, sigs, codes.VERIFIER, "config")
    e = raises(
        FormatError,
        rootmeta.check_threshold,
        root,
        rootmeta.ROOT,
        signed,
        rootmeta.parse_security_config(half)[4],
        codes.VERIFIER,
        "config",
    )
    assert e.reason == "root_threshold"
    rel = rootmeta.sign(rootmeta.release(1017, 1), [R1])
    assert rootmeta.parse_release(rel)[:2] == (1017, 1)
    assert raises(FormatError, rootmeta.parse_release, rel + b"\x00").reason == "root_malformed"
    assert raises(FormatError, rootmeta.parse_security_config, rel).reason == "root_malformed"
