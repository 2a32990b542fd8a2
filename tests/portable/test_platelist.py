"""Plate lists (protocol/platelist.py) and the lane's plate store (firmware/verify/platestore.py),
on both interpreters: keys, the byte layout's vector, strict parsing, signatures, deltas,
hashed lists, a reboot and a damaged file."""

from firmware.verify.platestore import PlateStore
from firmware.verify.truststore import ListError
from protocol import platelist as pl
from protocol.errors import FormatError
from tests.portable import codes
from tests.portable.harness import mkdtemp, raises, rmtree

HASH_KEY = bytes(range(32))
CRED = (1001 << 24) | 1  # account 1001, credential 1
ISS = 7  # the issuer key id the plates are bound under


def _triples(adds, issuer=ISS):
    """{plate_key: cred_id} -> (plate_key, issuer, cred_id) triples."""
    return [(k, issuer, c) for k, c in dict(adds).items()]


def _snap(version, adds, scheme=pl.SCHEME_PLAIN, key_id=0, signer=codes.ROOT, issuer=ISS):
    return pl.build(
        pl.KIND_SNAPSHOT,
        0,
        version,
        codes.NOW,
        _triples(adds, issuer),
        (),
        signer,
        scheme=scheme,
        hash_key_id=key_id,
    )


def _delta(f, t, adds=(), removes=(), scheme=pl.SCHEME_PLAIN, key_id=0, issuer=ISS):
    return pl.build(
        pl.KIND_DELTA,
        f,
        t,
        codes.NOW + 60,
        _triples(adds, issuer),
        removes,
        codes.ROOT,
        scheme=scheme,
        hash_key_id=key_id,
    )


def _legacy_snap(version, adds):
    """A plate list of format 1 (no issuer, one root signature), as gates before it got."""
    import struct

    body = struct.pack(
        ">4sBBHIIIBBHII", b"FGPL", 1, 1, 1, 0, version, codes.NOW, 0, 0, 0, len(adds), 0
    )
    body += b"".join(struct.pack(">QQ", k, c) for k, c in sorted(adds.items()))
    return body + codes.ROOT.sign(body)


def test_plain_keys_pack_base37_and_come_back():
    assert pl.normalize("b-ab 1234") == "BAB1234"
    assert pl.plain_key("0") == 1 and pl.plain_key("Z") == 36 and pl.plain_key("10") == 2 * 37 + 1
    k = pl.plate_key("B-AB 1234", pl.SCHEME_PLAIN)
    assert pl.plain_text(k) == "BAB1234"
    assert pl.plain_key("ZZZZZZZZZZZZ") <= pl.KEY_MASK  # 12 characters fit below 2**63
    assert pl.plain_key("ZZZZZZZZZZZZZ") is None  # 13 do not
    assert pl.plate_key("京A12345", pl.SCHEME_PLAIN) is None  # only hashed
    assert pl.plate_key(" - ", pl.SCHEME_PLAIN) is None


def test_hashed_keys_need_the_key_and_hide_the_plate():
    k = pl.plate_key("b ab 1234", pl.SCHEME_HMAC, HASH_KEY)
    assert k == pl.plate_key("BAB1234", pl.SCHEME_HMAC, HASH_KEY)
    assert 0 < k <= pl.KEY_MASK
    assert k != pl.plate_key("BAB1234", pl.SCHEME_HMAC, bytes(32))
    assert pl.plate_key("BAB1234", pl.SCHEME_HMAC, None) is None
    assert pl.plate_key("京A12345", pl.SCHEME_HMAC, HASH_KEY) is not None


def test_the_documented_vector():
    # docs/parking.md, "Plate list": key of "BAB1234" under HMAC key 00 01 .. 1f
    assert pl.hmac_key("BAB1234", HASH_KEY) == 0x3884B59AAE991294
    assert pl.plain_key("AB12") == 0x8C0F8 and pl.plain_key("BAB1234") == 0x759F6783D
    body = pl.encode_body(pl.KIND_SNAPSHOT, 0, 1, 1767254400, [(pl.plain_key("AB12"), 7, CRED)])
    assert body.hex() == (
        "4647504c"
        "02"
        "01"
        "0000"
        "00000000"
        "00000001"
        "69562980"
        "00"
        "00"
        "0000"
        "00000001"
        "00000000"
        "%016x" % pl.plain_key("AB12") + "0007" + "%016x" % CRED
    )
    assert len(body) == pl.HEADER_LEN + 18
    cred2 = (1002 << 24) | 2
    delta = pl.encode_body(
        pl.KIND_DELTA, 1, 2, 1767254460, [(pl.plain_key("CD34"), 7, cred2)], [pl.plain_key("AB12")]
    )
    assert delta.hex() == _doc_vector()


def _doc_vector():
    """The delta of docs/parking.md, "Test vectors" (tests/test_plates_backoffice.py checks the
    page shows these bytes)."""
    return (
        "4647504c020200000000000100000002695629bc00000000000000010000000100000000000a57b00007"
        "00000003ea000002000000000008c0f8"
    )


def test_round_trip_and_strict_parse():
    k1, k2 = pl.plain_key("AB12"), pl.plain_key("CD34")
    blob = pl.build(
        pl.KIND_SNAPSHOT, 0, 3, codes.NOW, [(k2, 7, CRED), (k1, 2, CRED + 1)], (), codes.ROOT
    )
    p = pl.parse(blob)
    assert (p.kind, p.to_version, p.scheme, p.adds) == (1, 3, 0, [(k1, 2, CRED + 1), (k2, 7, CRED)])
    assert p.body_len == 32 + 36 and p.sigs[0][1] == blob[-64:] and not p.legacy
    assert codes.VERIFIER.verify(codes.ROOT.public_key, p.signed_bytes(), blob[-64:])
    for bad in (
        blob[:-1],
        blob + b"\x00",
        b"FGPX" + blob[4:],
        blob[:4] + b"\x03" + blob[5:],  # an unknown format
        blob[:7] + b"\x01" + blob[8:],  # reserved bytes 6..7
        blob[:20] + b"\x07" + blob[21:],  # unknown scheme
        blob[:27] + b"\x03" + blob[28:],  # says three adds
        b"",
    ):
        assert raises(FormatError, pl.parse, bad).reason == "list_malformed"
    swapped = blob[:32] + blob[50:68] + blob[32:50] + blob[68:]
    assert raises(FormatError, pl.parse, swapped).reason == "list_malformed"
    old = pl.parse(_legacy_snap(2, {k1: CRED}))
    assert old.legacy and old.adds == [(k1, 0, CRED)] and old.body_len == 32 + 16


def test_the_store_checks_signature_version_and_gaps():
    d = mkdtemp()
    try:
        path = d + "/plates.bin"
        s = PlateStore(path, codes.ROOTS, codes.VERIFIER)
        assert s.lookup("AB12") == (pl.plain_key("AB12"), None)
        forged = _snap(1, {pl.plain_key("AB12"): CRED}, signer=codes.FORGER)
        assert raises(ListError, s.install, forged).reason == "list_unknown_key"
        old = _legacy_snap(1, {pl.plain_key("AB12"): CRED})
        assert raises(ListError, s.install, old).reason == "plate_needs_issuer"
        assert s.install(_snap(1, {pl.plain_key("AB12"): CRED}))
        assert s.lookup("ab-12")[1] == (ISS, CRED)
        assert raises(ListError, s.install, _delta(2, 3)).reason == "plate_gap"
        d2 = _delta(1, 2, {pl.plain_key("CD34"): CRED + 5}, [pl.plain_key("AB12")], issuer=3)
        assert s.install(d2) and not s.install(d2)
        assert s.lookup("AB12")[1] is None and s.lookup("CD34")[1] == (3, CRED + 5)
        again = PlateStore(path, codes.ROOTS, codes.VERIFIER)  # a reboot
        assert (again.version, again.lookup("CD34")[1]) == (2, (3, CRED + 5))
        assert raises(ListError, again.install, _snap(1, {})).reason == "list_downgrade"
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[-1] ^= 1
        with open(path, "wb") as f:
            f.write(data)
        broken = PlateStore(path, codes.ROOTS, codes.VERIFIER)
        assert broken.damaged and broken.version == 0 and broken.lookup("CD34")[1] is None
        assert raises(ListError, broken.install, _delta(2, 3)).reason == "plate_gap"
        assert broken.install(_snap(4, {pl.plain_key("EF56"): CRED}))
        assert not broken.damaged and broken.lookup("EF56")[1] == (ISS, CRED)
    finally:
        rmtree(d)


def test_a_hashed_list_reads_plates_only_with_its_key():
    key = pl.plate_key("BAB1234", pl.SCHEME_HMAC, HASH_KEY)
    blob = _snap(1, {key: CRED}, scheme=pl.SCHEME_HMAC, key_id=7)
    without = PlateStore(None, codes.ROOTS, codes.VERIFIER)
    assert without.install(blob)
    assert without.lookup("B AB 1234") == (None, None)
    assert without.status()["hash_key"] is False
    lane = PlateStore(None, codes.ROOTS, codes.VERIFIER, hash_key=HASH_KEY)
    lane.install(blob)
    assert lane.lookup("B AB 1234") == (key, (ISS, CRED))
    plain_delta = _delta(1, 2, {pl.plain_key("X1"): 5})
    assert raises(ListError, lane.install, plain_delta).reason == "plate_gap"


def test_a_plate_file_from_before_the_issuer_is_issuer_0s_until_a_format_2_snapshot():
    import struct
    from binascii import crc32

    d = mkdtemp()
    try:
        path = d + "/plates.bin"
        entries = struct.pack(">QQ", pl.plain_key("AB12"), CRED)
        head = struct.pack(">4sIIBBHII", b"FGPS", 3, codes.NOW, 0, 0, 0, 1, crc32(entries))
        with open(path, "wb") as f:
            f.write(head + entries)
        s = PlateStore(path, codes.ROOTS, codes.VERIFIER)
        assert s.legacy and s.version == 3 and s.lookup("AB12")[1] == (0, CRED)
        delta = _delta(3, 4, {pl.plain_key("CD34"): CRED})
        assert raises(ListError, s.install, delta).reason == "plate_needs_issuer"
        assert s.install(_snap(4, {pl.plain_key("AB12"): CRED}))
        assert not s.legacy and s.lookup("AB12")[1] == (ISS, CRED)
        again = PlateStore(path, codes.ROOTS, codes.VERIFIER)
        assert not again.legacy and again.lookup("AB12")[1] == (ISS, CRED)
        with open(path, "rb") as f:
            assert f.read(4) == b"FGPI"
    finally:
        rmtree(d)
