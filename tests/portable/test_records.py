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
