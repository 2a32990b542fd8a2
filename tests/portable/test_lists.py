"""Trust lists and deny lists: formats (protocol/) and stores (firmware/), on both interpreters."""

import os
import struct
from binascii import crc32

from firmware.verify.denystore import DenyStore, merge
from firmware.verify.truststore import ListError, ListKeys, TrustStore
from protocol import certs, denylist, p256, trustlist
from protocol.errors import FormatError
from tests.portable import codes
from tests.portable.harness import mkdtemp, raises, rmtree


def ACC(account, issuer=1):  # codes' credentials are issuer key 1's
    return denylist.account_key(issuer, account)


def CRED(account, cred_no, issuer=1):
    return denylist.credential_key(issuer, account, cred_no)


def _legacy(kind, from_v, to_v, keys, removes=(), signer=codes.ROOT):
    """A deny list of format 1 (no issuer, one root signature), as gates before format 3 got."""
    body = struct.pack(
        ">4sBBHIIIII", b"FGDL", 1, kind, 1, from_v, to_v, codes.NOW - 60, len(keys), len(removes)
    )
    body += b"".join(struct.pack(">Q", k) for k in list(keys) + list(removes))
    return body + signer.sign(body)


def test_trust_list_round_trip_and_layout():
    k2 = codes.issuer_key(2, codes.ISSUER2, scope=0x3, valid_from=5, valid_until=9)
    blob = codes.trust_blob(version=7, keys=[k2, codes.issuer_key()])
    assert blob[:4] == b"FGTL" and blob[4] == 1 and blob[5] == 1
    tl = trustlist.parse(blob)
    assert (tl.version, tl.valid_until, tl.root_key_id) == (7, codes.NOW + 7 * 86400, 1)
    assert [k.key_id for k in tl.keys] == [1, 2]  # sorted by key id
    k = tl.key_map()[2]
    assert (k.pub, k.scope, k.valid_from, k.valid_until) == (codes.ISSUER2.public_key, 3, 5, 9)
    assert len(blob) == 21 + 2 * (14 + 33) + 64
    assert codes.VERIFIER.verify(codes.ROOT.public_key, tl.signed_bytes(), tl.signature())


def test_trust_list_strict_parse():
    blob = codes.trust_blob()
    for bad in (
        blob[:-1],
        blob + b"\x00",
        b"FGTX" + blob[4:],
        blob[:4] + b"\x02" + blob[5:],
        blob[:20] + b"\x02" + blob[21:],  # says two keys, holds one
        b"",
    ):
        assert raises(FormatError, trustlist.parse, bad).reason == "list_malformed"


def test_trust_store_install_checks_signature_root_and_version():
    d = mkdtemp()
    try:
        path = d + "/trust.bin"
        store = TrustStore(codes.ROOTS, codes.VERIFIER, path)
        assert store.missing
        forged = codes.trust_blob(signer=codes.FORGER)
        assert raises(ListError, store.install, forged).reason == "list_bad_signature"
        other_root = codes.trust_blob(root_key_id=2)
        assert raises(ListError, store.install, other_root).reason == "list_unknown_root"
        assert raises(ListError, store.install, b"junk").reason == "list_malformed"
        assert store.missing and not os.listdir(d)  # nothing was written
        assert store.install(codes.trust_blob(version=2))
        assert not store.install(codes.trust_blob(version=2))  # the same list: no change
        old = codes.trust_blob(version=1)
        assert raises(ListError, store.install, old).reason == "list_downgrade"
        same_version_other = codes.trust_blob(version=2, valid_until=codes.NOW)
        assert raises(ListError, store.install, same_version_other).reason == "list_downgrade"
        # a reboot finds the installed list
        again = TrustStore(codes.ROOTS, codes.VERIFIER, path)
        assert again.list.version == 2 and again.get(1).pub == codes.ISSUER_PUB
        assert again.status(codes.NOW)["stale"] is False
        assert again.status(codes.NOW + 8 * 86400)["stale"] is True
        # a damaged file on disk trusts nothing and says why
        with open(path, "wb") as f:
            f.write(b"FGTL garbage")
        broken = TrustStore(codes.ROOTS, codes.VERIFIER, path)
        assert broken.missing and broken.status(codes.NOW)["load_error"] == "list_malformed"
    finally:
        rmtree(d)


def test_deny_list_format_3_has_one_section_per_issuer_and_strict_parsing():
    snap = codes.deny_snapshot(3, [CRED(5, 2), ACC(7), ACC(7, issuer=2)])
    assert snap[:8] == b"FGDL\x03\x01\x00\x02"  # format 3, snapshot, two sections
    assert snap[24:36] == b"\x00\x01\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00"  # issuer 1: 2 adds
    assert snap[36:44] == struct.pack(">Q", (5 << 24) | 2)
    assert snap[52:56] == b"\x00\x02\x00\x00"  # then issuer 2's section
    dl = denylist.parse(snap)
    assert dl.kind == denylist.KIND_SNAPSHOT and dl.to_version == 3 and dl.issuers() == [1, 2]
    assert dl.entries() == [CRED(5, 2), ACC(7), ACC(7, issuer=2)] and dl.removes == {}
    assert dl.body_len == 72 and len(snap) == 72 + 1 + 68
    assert dl.sigs == [(certs.key_id(codes.ROOT.public_key), snap[-64:])]
    assert codes.VERIFIER.verify(codes.ROOT.public_key, dl.signed_bytes(), snap[-64:])
    delta = codes.deny_delta(3, 4, adds=[ACC(9)], removes=[ACC(7)])
    dl = denylist.parse(delta)
    assert (dl.from_version, dl.to_version, dl.entries(), dl.entries("removes")) == (
        3,
        4,
        [ACC(9)],
        [ACC(7)],
    )
    for offset, value in ((5, 3), (15, 3), (4, 4)):  # kind; to == from; an unknown format
        b = bytearray(delta)
        b[offset] = value
        assert raises(FormatError, denylist.parse, bytes(b)).reason == "list_malformed"
    head = delta[:24]
    one, two = (1).to_bytes(8, "big"), (2).to_bytes(8, "big")
    tail = b"\x01" + bytes(68)
    sec = b"\x00\x01\x00\x00"
    unsorted = head + sec + b"\x00\x00\x00\x02\x00\x00\x00\x00" + two + one + tail
    assert raises(FormatError, denylist.parse, unsorted).reason == "list_malformed"
    both = head + sec + b"\x00\x00\x00\x01\x00\x00\x00\x01" + one + one + tail
    assert raises(FormatError, denylist.parse, both).reason == "list_malformed"
    fine = head + sec + b"\x00\x00\x00\x01\x00\x00\x00\x01" + one + two + tail
    assert denylist.parse(fine).removes[1][0] == 2  # the hand-built blobs are otherwise valid
    empty = bytearray(head + sec + bytes(8) + tail)
    assert raises(FormatError, denylist.parse, bytes(empty)).reason == "list_malformed"
    twice = bytearray(snap)
    twice[53] = 1  # issuer 2's section renamed 1: sections not ascending
    assert raises(FormatError, denylist.parse, bytes(twice)).reason == "list_malformed"
    assert raises(FormatError, denylist.parse, snap[:-1]).reason == "list_malformed"
    assert raises(FormatError, denylist.parse, snap + b"\x00").reason == "list_malformed"


def test_deny_list_valid_until_and_the_legacy_formats():
    snap = codes.deny_snapshot(3, [CRED(5, 2)], valid_until=codes.NOW + 3600)
    assert snap[20:24] == (codes.NOW + 3600).to_bytes(4, "big")
    dl = denylist.parse(snap)
    assert dl.valid_until == codes.NOW + 3600 and dl.entries() == [CRED(5, 2)]
    assert denylist.parse(codes.deny_snapshot(3, [CRED(5, 2)])).valid_until == 0
    empty = codes.deny_delta(3, 4, valid_until=codes.NOW + 7200)  # a freshness heartbeat
    dl = denylist.parse(empty)
    assert (dl.kind, dl.adds, dl.removes, dl.valid_until) == (
        denylist.KIND_DELTA,
        {},
        {},
        codes.NOW + 7200,
    )
    b = bytearray(snap)
    b[20:24] = (codes.NOW - 60).to_bytes(4, "big")  # valid_until == issued_at
    assert raises(FormatError, denylist.parse, bytes(b)).reason == "list_malformed"
    old = denylist.parse(_legacy(denylist.KIND_DELTA, 1, 2, [7 << 24], [9 << 24]))
    assert old.legacy and old.adds[denylist.ANY_ISSUER][0] == 7 << 24
    assert old.entries("removes") == [denylist.entry(denylist.ANY_ISSUER, 9 << 24)]
    bad = bytearray(_legacy(denylist.KIND_SNAPSHOT, 0, 1, [2 << 24, 1 << 24]))
    assert raises(FormatError, denylist.parse, bytes(bad)).reason == "list_malformed"


def test_lists_role_threshold_wrong_role_and_unknown_keys():
    a, b, c = p256.Signer(0x5151), p256.Signer(0x5152), p256.Signer(0x5153)
    sync = p256.Signer(0x5154)
    keys = ListKeys(
        [a.public_key, b.public_key, c.public_key], 2, {certs.key_id(sync.public_key): "sync"}
    )

    def install(signers):
        s = DenyStore(roots=keys, verifier=codes.VERIFIER)
        return s.install(codes.deny_snapshot(1, [ACC(1)], signer=signers))

    assert install([a, c]) and install([c, b, a])
    assert raises(ListError, install, [a]).reason == "list_below_threshold"
    assert raises(ListError, install, [a, sync]).reason == "list_wrong_role"
    assert raises(ListError, install, [sync]).reason == "list_wrong_role"
    assert raises(ListError, install, [codes.FORGER, b]).reason == "list_unknown_key"
    forged = bytearray(codes.deny_snapshot(1, [ACC(1)], signer=[a, b]))
    forged[-1] ^= 1  # b's signature broken: one good one left
    s = DenyStore(roots=keys, verifier=codes.VERIFIER)
    assert raises(ListError, s.install, bytes(forged)).reason == "list_bad_signature"
    anchor = DenyStore(roots=codes.ROOTS, verifier=codes.VERIFIER)  # no root metadata
    assert anchor.install(codes.deny_snapshot(1, [ACC(1)]))


def test_merge():
    from array import array

    keys = array("Q", [2, 4, 6, 8])
    assert list(merge(keys, array("Q", [1, 5, 9]), array("Q", [4, 8]))) == [1, 2, 5, 6, 9]
    assert list(merge(keys, array("Q", [2, 3]), array("Q", [7]))) == [2, 3, 4, 6, 8]
    assert list(merge(array("Q"), array("Q", [3]), array("Q"))) == [3]


def test_deny_lookup_by_account_and_credential_in_the_codes_issuer_only():
    store = DenyStore.from_keys([ACC(10), CRED(11, 3), CRED(11, 5), CRED(12, 1), ACC(11, 2)])
    assert store.is_denied(1, 10, 1) and store.is_denied(1, 10, 77)
    assert store.is_denied(1, 11, 3) and store.is_denied(1, 11, 5)
    assert not store.is_denied(1, 11, 4) and not store.is_denied(1, 11, 6)
    assert store.is_denied(1, 12, 1) and not store.is_denied(1, 12, 2)
    assert not store.is_denied(1, 9, 1) and not store.is_denied(1, 13, 1)
    assert not store.is_denied(2, 10, 1) and not store.is_denied(2, 12, 1)  # issuer 2's 10, 12
    assert store.is_denied(2, 11, 4) and not store.is_denied(3, 11, 4)
    assert not DenyStore().is_denied(1, 1, 1)


def test_deny_store_snapshot_deltas_and_reboot():
    d = mkdtemp()
    try:
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER, compact_after=5)
        assert s.install(codes.deny_snapshot(1, [ACC(1), ACC(2)]))
        assert s.install(codes.deny_delta(1, 2, adds=[ACC(3)], removes=[ACC(1)]))
        assert not s.install(codes.deny_delta(1, 2, adds=[ACC(3)]))  # already applied
        gap = codes.deny_delta(5, 6, adds=[ACC(4)])
        assert raises(ListError, s.install, gap).reason == "deny_gap"
        forged = codes.deny_delta(2, 3, adds=[ACC(4)], signer=codes.FORGER)
        assert raises(ListError, s.install, forged).reason == "list_unknown_key"
        assert [s.is_denied(1, a, 1) for a in (1, 2, 3, 4)] == [False, True, True, False]
        assert s.install(codes.deny_delta(2, 3, adds=[ACC(3, issuer=9)], removes=[ACC(3)]))
        assert s.install(codes.deny_delta(3, 4, adds=[ACC(3)]))
        s2 = DenyStore(d, codes.ROOTS, codes.VERIFIER, compact_after=5)
        assert s2.version == 4 and s2.entries() == [ACC(2), ACC(3), ACC(3, issuer=9)]
        assert s2.log_records == 3 and s2.sections == [(1, 0, 2), (9, 2, 3)]
        s2.install(codes.deny_delta(4, 5, adds=[ACC(5)]))
        s2.install(codes.deny_delta(5, 6, adds=[ACC(6)]))  # fifth delta in the log: compacts
        assert s2.log_records == 0
        s3 = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert s3.version == 6 and s3.entries() == [ACC(2), ACC(3), ACC(5), ACC(6), ACC(3, 9)]
        assert s3.is_denied(9, 3, 1) and not s3.is_denied(9, 2, 1)
        old = codes.deny_snapshot(5, [])
        assert raises(ListError, s3.install, old).reason == "list_downgrade"
        full = DenyStore(None, codes.ROOTS, codes.VERIFIER, capacity=1)
        big = codes.deny_snapshot(1, [ACC(1), ACC(2)])
        assert raises(ListError, full.install, big).reason == "deny_full"
    finally:
        rmtree(d)


def test_deny_delta_torn_by_power_cut_leaves_old_or_new():
    d = mkdtemp()
    try:
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        s.install(codes.deny_snapshot(1, [ACC(1)]))
        s.install(codes.deny_delta(1, 2, adds=[ACC(2), ACC(3)]))
        with open(d + "/deny.log", "rb") as f:
            log = f.read()
        for cut in (1, 8, len(log) // 2, len(log) - 1):
            with open(d + "/deny.log", "wb") as f:
                f.write(log[:cut])  # the append stopped here
            torn = DenyStore(d, codes.ROOTS, codes.VERIFIER)
            assert torn.version == 1 and torn.entries() == [ACC(1)], cut
            assert torn.torn_bytes_cut == cut
        with open(d + "/deny.log", "wb") as f:
            f.write(log)
        whole = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert whole.version == 2 and whole.entries() == [ACC(1), ACC(2), ACC(3)]
    finally:
        rmtree(d)


def test_a_deny_list_from_before_the_issuer_is_migrated_until_a_format_3_snapshot():
    d = mkdtemp()
    try:
        keys = struct.pack("<QQ", 7 << 24, 9 << 24)  # accounts 7 and 9, no issuer
        with open(d + "/deny.base", "wb") as f:
            f.write(struct.pack("<4sIIII", b"FGDS", 4, codes.NOW - 600, 2, crc32(keys)) + keys)
        logged = _legacy(denylist.KIND_DELTA, 4, 5, [8 << 24], [9 << 24])
        with open(d + "/deny.log", "wb") as f:
            f.write(struct.pack("<II", len(logged), crc32(logged)) + logged)
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert s.version == 5 and s.legacy and s.status()["legacy"]
        assert [s.is_denied(i, 7, 1) for i in (0, 1, 2)] == [True, True, True]  # every issuer
        assert s.is_denied(3, 8, 1) and not s.is_denied(1, 9, 1)  # the logged delta applied
        late = _legacy(denylist.KIND_DELTA, 5, 6, [10 << 24])
        assert raises(ListError, s.install, late).reason == "deny_needs_issuer"
        delta = codes.deny_delta(5, 6, adds=[ACC(10)])
        assert raises(ListError, s.install, delta).reason == "deny_needs_issuer"
        assert s.install(codes.deny_snapshot(6, [ACC(7)]))
        assert not s.legacy and s.entries() == [ACC(7)]
        assert s.is_denied(1, 7, 1) and not s.is_denied(2, 7, 1) and not s.is_denied(1, 8, 1)
        again = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert again.version == 6 and not again.legacy and again.entries() == [ACC(7)]
        assert again.install(codes.deny_delta(6, 7, adds=[ACC(8, 2)]))
    finally:
        rmtree(d)
