from protocol import records
from protocol.errors import FormatError
from tests.portable.harness import raises


def _rec(seq, prev=records.ZERO_HASH):
    return records.Record(
        records.KIND_PASSAGE,
        0,
        42,
        seq,
        1767254400 + seq,
        1,
        1,
        7,
        123456789,
        2,
        seq * 3,
        250,
        0,
        prev,
    )


def test_round_trip():
    r = _rec(5)
    raw = r.to_bytes()
    assert len(raw) == records.RECORD_LEN
    assert records.decode(raw) == r
    assert records.decode(raw).key() == (42, 5)


def test_chain():
    raws = []
    prev = records.ZERO_HASH
    for seq in range(1, 6):
        raw = _rec(seq, prev).to_bytes()
        raws.append(raw)
        prev = records.record_hash(raw)
    assert records.verify_chain(raws) == -1
    assert records.verify_chain(raws[:2] + raws[3:]) == 2  # a removed record shows


def test_rejects():
    raw = _rec(1).to_bytes()
    assert raises(FormatError, records.decode, raw[:-1]).reason == "bad_length"
    assert raises(FormatError, records.decode, b"\x09" + raw[1:]).reason == "bad_version"
    assert raises(FormatError, records.decode, raw[:1] + b"\x09" + raw[2:]).reason == "malformed"


VECTORS = "/tests/vectors/records-v2.json"


def _vectors():
    from tests.portable.harness import read_json, repo_root

    return read_json(repo_root() + VECTORS)["cases"]


def test_vectors_decode_to_their_fields_and_back():
    prev = records.ZERO_HASH
    for case in _vectors():
        raw = bytes.fromhex(case["hex"])
        assert len(raw) == case["len"] == records.length_of(raw[0])
        rec = records.decode(raw)
        for k, v in case["fields"].items():
            assert getattr(rec, k) == v, (case["name"], k)
        assert rec.to_bytes() == raw
        assert records.prev_hash_of(raw) == prev
        prev = records.record_hash(raw)
        assert prev.hex() == case["record_hash"]
    raws = [bytes.fromhex(c["hex"]) for c in _vectors()]
    assert records.split(b"".join(raws)) == raws
    assert records.verify_chain(raws) == -1


def test_vector_rider_evidence_verifies():
    from protocol import p256

    case = [c for c in _vectors() if "rider_sig" in c][0]
    rec = records.decode(bytes.fromhex(case["hex"]))
    signed, sig = rec.rider_evidence()
    assert signed.hex() == case["rider_signed"] and sig.hex() == case["rider_sig"]
    pub = bytes.fromhex(case["rider_pub"])
    assert p256.verify_plain(pub, signed, sig)
    assert not p256.verify_plain(pub, signed[:-1] + b"\x00", sig)
    assert rec.issuer == 1


def test_v2_rejects():
    raw = bytes.fromhex(_vectors()[1]["hex"])
    assert raises(FormatError, records.decode, raw[:-1]).reason == "bad_length"
    assert raises(FormatError, records.decode, b"\x01" + raw[1:]).reason == "bad_length"
    bad_issuer = raw[:30] + b"\x00\x09" + raw[32:]
    assert raises(FormatError, records.decode, bad_issuer).reason == "malformed"
    bad_evidence = raw[:32] + b"\x07" + raw[33:]
    assert raises(FormatError, records.decode, bad_evidence).reason == "malformed"
    assert raises(FormatError, records.split, raw + raw[:10]).reason == "bad_length"
