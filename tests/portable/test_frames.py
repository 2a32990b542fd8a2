from protocol import frames
from protocol.errors import FormatError, UsageError
from tests.portable.harness import raises


def test_round_trip():
    for payload in (b"", b"x", bytes(range(256)) * 10):
        fr = frames.decode_one(frames.encode(7, payload))
        assert fr.type == 7 and fr.payload == payload


def test_byte_by_byte_feed():
    data = frames.encode(1, b"hello") + frames.encode(2, b"world")
    dec = frames.FrameDecoder()
    got = []
    for i in range(len(data)):
        got.extend(dec.feed(data[i : i + 1]))
    assert [(f.type, f.payload) for f in got] == [(1, b"hello"), (2, b"world")]
    assert dec.stats["garbage_bytes"] == 0


def test_resync_after_garbage_and_corruption():
    good = frames.encode(3, b"payload")
    bad = bytearray(frames.encode(3, b"corrupt"))
    bad[12] ^= 0x40  # flip a payload bit: CRC fails
    dec = frames.FrameDecoder()
    got = dec.feed(b"\x00\xfa\xfa\x47noise" + bytes(bad) + good + b"\xfa")
    assert [f.payload for f in got] == [b"payload"]
    assert dec.stats["bad_crc"] == 1
    assert dec.stats["garbage_bytes"] > 0
    assert dec.buffered() == 1  # a trailing 0xFA might start the next magic


def test_corrupt_length_is_caught_by_header_crc():
    bad = bytearray(frames.encode(3, b"abc"))
    bad[7] ^= 0x01  # length field
    dec = frames.FrameDecoder()
    assert dec.feed(bytes(bad) + frames.encode(4, b"ok"))[0].payload == b"ok"
    assert dec.stats["bad_header"] == 1


def test_oversize_frame_rejected_without_buffering_it():
    big = frames.encode(5, bytes(2000))
    dec = frames.FrameDecoder(max_payload=1000)
    assert dec.feed(big + frames.encode(6, b"next"))[0].type == 6
    assert dec.stats["oversize"] == 1


def test_encode_refuses_oversize():
    raises(UsageError, frames.encode, 1, bytes(11), 10)


def test_decode_one_rejects_trailing_bytes():
    e = raises(FormatError, frames.decode_one, frames.encode(1, b"a") + b"x")
    assert e.reason == "bad_frame"


def test_big_frame_in_small_chunks():
    # 256 kB fed 16 bytes at a time: the decoder appends and waits for the announced length
    # instead of copying its whole buffer on every call (which made this quadratic).
    payload = bytes(range(256)) * 1024
    data = b"noise" + frames.encode(9, payload) + frames.encode(1, b"after")
    dec = frames.FrameDecoder()
    got = []
    for i in range(0, len(data), 16):
        got.extend(dec.feed(data[i : i + 16]))
        if not got:
            assert dec.buffered() <= i + 16
    assert [(f.type, len(f.payload)) for f in got] == [(9, len(payload)), (1, 5)]
    assert got[0].payload == payload and dec.buffered() == 0
    assert dec.stats["garbage_bytes"] == 5


def test_drop_partial_skips_a_header_whose_body_never_came():
    """A forged header announcing 6000 bytes, then a good frame: the decoder waits (it has no
    clock); its owner's drop_partial() gives up on the header and finds the frame behind it."""
    forged = frames.encode(5, bytes(6000))[: frames.HEADER_LEN]
    dec = frames.FrameDecoder()
    assert dec.feed(forged) == [] and dec.pending() == (5, 6000, frames.HEADER_LEN)
    assert dec.feed(frames.encode(6, b"next")) == []  # taken for the forged frame's body
    got = dec.drop_partial()
    assert [(f.type, f.payload) for f in got] == [(6, b"next")]
    assert dec.buffered() == 0 and dec.pending() is None and dec.stats["timed_out"] == 1
    assert dec.drop_partial() == [] and dec.stats["timed_out"] == 1  # nothing buffered: no-op
