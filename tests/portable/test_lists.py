"""Trust lists and deny lists: formats (protocol/) and stores (firmware/), on both interpreters."""

import os

from firmware.verify.denystore import DenyStore, merge
from firmware.verify.truststore import ListError, TrustStore
from protocol import denylist, trustlist
from protocol.errors import FormatError
from tests.portable import codes
from tests.portable.harness import mkdtemp, raises, rmtree

ACC = denylist.account_key
CRED = denylist.credential_key


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


def test_deny_list_formats_strict():
    snap = codes.deny_snapshot(3, [CRED(5, 2), ACC(7)])
    dl = denylist.parse(snap)
    assert dl.kind == denylist.KIND_SNAPSHOT and dl.to_version == 3
    assert list(dl.adds) == [CRED(5, 2), ACC(7)] and len(dl.removes) == 0
    assert snap[28:36] == CRED(5, 2).to_bytes(8, "big")
    delta = codes.deny_delta(3, 4, adds=[ACC(9)], removes=[ACC(7)])
    dl = denylist.parse(delta)
    assert (dl.from_version, dl.to_version, list(dl.adds), list(dl.removes)) == (
        3,
        4,
        [ACC(9)],
        [ACC(7)],
    )
    head = delta[:28]
    for offset, value in ((5, 3), (15, 3)):  # unknown kind; to_version == from_version
        b = bytearray(delta)
        b[offset] = value
        assert raises(FormatError, denylist.parse, bytes(b)).reason == "list_malformed"
    one, two = (1).to_bytes(8, "big"), (2).to_bytes(8, "big")
    sig = bytes(64)
    unsorted = head[:20] + b"\x00\x00\x00\x02\x00\x00\x00\x00" + two + one + sig
    assert raises(FormatError, denylist.parse, unsorted).reason == "list_malformed"
    both = head[:20] + b"\x00\x00\x00\x01\x00\x00\x00\x01" + one + one + sig
    assert raises(FormatError, denylist.parse, both).reason == "list_malformed"
    fine = head[:20] + b"\x00\x00\x00\x01\x00\x00\x00\x01" + one + two + sig
    assert list(denylist.parse(fine).removes) == [2]  # the hand-built blobs are otherwise valid
    assert raises(FormatError, denylist.parse, snap[:-1]).reason == "list_malformed"


def test_deny_list_format_2_carries_valid_until_in_its_header():
    snap = codes.deny_snapshot(3, [CRED(5, 2)], valid_until=codes.NOW + 3600)
    assert snap[4] == denylist.FORMAT_FRESH and len(snap) == 32 + 8 + 64
    assert snap[20:24] == (codes.NOW + 3600).to_bytes(4, "big")
    assert snap[24:32] == b"\x00\x00\x00\x01\x00\x00\x00\x00"  # add_count, remove_count
    assert snap[32:40] == CRED(5, 2).to_bytes(8, "big")
    dl = denylist.parse(snap)
    assert dl.valid_until == codes.NOW + 3600 and list(dl.adds) == [CRED(5, 2)]
    old = codes.deny_snapshot(3, [CRED(5, 2)])
    assert old[4] == denylist.FORMAT and denylist.parse(old).valid_until == 0  # format 1 as ever
    empty = codes.deny_delta(3, 4, valid_until=codes.NOW + 7200)  # a freshness heartbeat
    dl = denylist.parse(empty)
    assert (dl.kind, len(dl.adds), len(dl.removes), dl.valid_until) == (
        denylist.KIND_DELTA,
        0,
        0,
        codes.NOW + 7200,
    )
    b = bytearray(snap)
    b[20:24] = (codes.NOW - 60).to_bytes(4, "big")  # valid_until == issued_at
    assert raises(FormatError, denylist.parse, bytes(b)).reason == "list_malformed"
    b = bytearray(snap)
    b[4] = 3  # an unknown format
    assert raises(FormatError, denylist.parse, bytes(b)).reason == "list_malformed"
    assert raises(FormatError, denylist.parse, snap[:-8]).reason == "list_malformed"


def test_merge():
    from array import array

    keys = array("Q", [2, 4, 6, 8])
    assert list(merge(keys, array("Q", [1, 5, 9]), array("Q", [4, 8]))) == [1, 2, 5, 6, 9]
    assert list(merge(keys, array("Q", [2, 3]), array("Q", [7]))) == [2, 3, 4, 6, 8]
    assert list(merge(array("Q"), array("Q", [3]), array("Q"))) == [3]


def test_deny_lookup_by_account_and_credential():
    store = DenyStore.from_keys([ACC(10), CRED(11, 3), CRED(11, 5), CRED(12, 1)])
    assert store.is_denied(10, 1) and store.is_denied(10, 77)
    assert store.is_denied(11, 3) and store.is_denied(11, 5)
    assert not store.is_denied(11, 4) and not store.is_denied(11, 6)
    assert store.is_denied(12, 1) and not store.is_denied(12, 2)
    assert not store.is_denied(9, 1) and not store.is_denied(13, 1)
    assert not DenyStore().is_denied(1, 1)


def test_deny_store_snapshot_deltas_and_reboot():
    d = mkdtemp()
    try:
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER, compact_after=3)
        assert s.install(codes.deny_snapshot(1, [ACC(1), ACC(2)]))
        assert s.install(codes.deny_delta(1, 2, adds=[ACC(3)], removes=[ACC(1)]))
        assert not s.install(codes.deny_delta(1, 2, adds=[ACC(3)]))  # already applied
        gap = codes.deny_delta(5, 6, adds=[ACC(4)])
        assert raises(ListError, s.install, gap).reason == "deny_gap"
        forged = codes.deny_delta(2, 3, adds=[ACC(4)], signer=codes.FORGER)
        assert raises(ListError, s.install, forged).reason == "list_bad_signature"
        assert [s.is_denied(a, 1) for a in (1, 2, 3, 4)] == [False, True, True, False]
        s2 = DenyStore(d, codes.ROOTS, codes.VERIFIER, compact_after=3)
        assert s2.version == 2 and list(s2.keys) == [ACC(2), ACC(3)] and s2.log_records == 1
        s2.install(codes.deny_delta(2, 3, adds=[ACC(5)]))
        s2.install(codes.deny_delta(3, 4, adds=[ACC(6)]))  # third delta in the log: compacts
        assert s2.log_records == 0
        s3 = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert s3.version == 4 and list(s3.keys) == [ACC(2), ACC(3), ACC(5), ACC(6)]
        old = codes.deny_snapshot(3, [])
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
            assert torn.version == 1 and list(torn.keys) == [ACC(1)], cut
            assert torn.torn_bytes_cut == cut
        with open(d + "/deny.log", "wb") as f:
            f.write(log)
        whole = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert whole.version == 2 and list(whole.keys) == [ACC(1), ACC(2), ACC(3)]
    finally:
        rmtree(d)
