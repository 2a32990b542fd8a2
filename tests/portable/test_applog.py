"""The on-disk formats of protocol/ as pure functions: the one append-log framing
(protocol/applog.py) and each store's file layout, byte for byte. Portable: runs on MicroPython."""

import struct
from binascii import crc32

from protocol import anchorfile, denyfile, journalfile, journalold, records, replaylog
from protocol.applog import Framing
from protocol.errors import FormatError
from tests.portable.harness import raises


def _crc(b, order=">"):
    return struct.pack(order + "I", crc32(b) & 0xFFFFFFFF)


def _raw(seq, prev=records.ZERO_HASH, version=records.VERSION_1):
    r = records.Record(
        records.KIND_PASSAGE,
        0,
        7,
        seq,
        1767254400,
        account_id=seq,
        prev_hash=prev,
        version=version,
    )
    return r.to_bytes()


def test_the_three_layouts_frame_as_documented():
    raw = _raw(1)
    assert journalold.entry(raw) == b"\xa5" + raw + _crc(raw)
    assert journalfile.ENTRY_LEN == 69
    body = struct.pack(">QIII", 5, 6, 7, 8)
    assert replaylog.entry(5, 6, 7, 8) == body + _crc(body)
    assert replaylog.ENTRY_LEN == 24
    blob = b"a delta, as received"
    assert denyfile.log_record(blob) == struct.pack("<I", len(blob)) + _crc(blob, "<") + blob


def test_scan_a_clean_log_gives_every_body():
    for framing, bodies in (
        (Framing(4, mark=b"\xa5"), [b"abcd", b"efgh", b"ijkl"]),
        (Framing(4), [b"abcd", b"efgh"]),
        (Framing(0, order="<", crc_first=True), [b"", b"x", b"longer body"]),
        (Framing(0), [b"one", b"two"]),
    ):
        data = b"".join(framing.frame(b) for b in bodies)
        assert framing.scan(data) == (bodies, len(data), None)
    assert Framing(4).scan(b"") == ([], 0, None)


def test_a_torn_tail_is_cut_at_every_length_and_is_not_corruption():
    for framing in (Framing(8, mark=b"\xa5"), Framing(8), Framing(0, order="<", crc_first=True)):
        good = framing.frame(b"12345678") + framing.frame(b"abcdefgh")
        last = framing.frame(b"ABCDEFGH")
        for cut in range(len(last)):
            got = framing.scan(good + last[:cut])
            assert got == ([b"12345678", b"abcdefgh"], len(good), None), (cut, got)


def test_a_bad_frame_followed_by_a_good_one_is_corruption_where_it_starts():
    f = Framing(8, mark=b"\xa5")
    frames = [f.frame(b"%08d" % i) for i in range(4)]
    for i in range(1, 4):
        data = bytearray(b"".join(frames))
        data[i * f.frame_len + 3] ^= 0x40  # a flipped bit inside frame i
        bodies, good, corrupt = f.scan(bytes(data))
        assert len(bodies) == i and good == i * f.frame_len
        # only a good frame after the bad one makes it corruption; a bad last one is a torn tail
        assert corrupt == (good if i < 3 else None), (i, corrupt)
    wrong_mark = bytearray(b"".join(frames))
    wrong_mark[f.frame_len] = 0x00
    assert f.scan(bytes(wrong_mark))[1:] == (f.frame_len, f.frame_len)


def test_a_variable_length_log_cannot_step_over_a_bad_frame():
    f = denyfile.LOG
    data = bytearray(f.frame(b"first") + f.frame(b"second") + f.frame(b"third"))
    data[len(f.frame(b"first")) + 9] ^= 1  # inside "second"
    assert f.scan(bytes(data)) == ([b"first"], len(f.frame(b"first")), None)


def test_journal_footer_meta_and_names():
    raws = [_raw(1)]
    raws.append(_raw(2, records.record_hash(raws[0])))
    entries = b"".join(journalold.entry(r) for r in raws)
    last = records.record_hash(raws[-1])
    seg = entries + journalfile.footer(2, crc32(entries), last)
    assert len(seg) == 2 * journalfile.ENTRY_LEN + journalfile.FOOTER_LEN
    assert journalold.looks_sealed(seg) and journalold.check_sealed(seg) == 2
    assert journalold.record_at(seg, 1) == raws[1]
    bad = bytearray(seg)
    bad[5] ^= 1
    assert journalold.looks_sealed(bytes(bad)) and journalold.check_sealed(bytes(bad)) is None
    assert not journalold.looks_sealed(entries)
    meta = journalfile.meta(9, last)
    assert len(meta) == journalfile.META_LEN and journalfile.parse_meta(meta) == (9, last)
    assert meta[:8] == struct.pack(">Q", 9) and meta[24:] == _crc(meta[:24])
    e = raises(FormatError, journalfile.parse_meta, meta[:-1] + bytes((meta[-1] ^ 1,)))
    assert e.reason == "journal_error"
    name = journalfile.segment_name(0x1234, journalfile.V1)
    assert name == "seg-0000000000001234.jnl" and journalfile.segment_first(name) == 0x1234
    name = journalfile.segment_name(0x1234)
    assert name == "seg-0000000000001234.jn3" and journalfile.segment_first(name) == 0x1234
    assert journalfile.segment_first("seg-0000000000001234.jn2") == 0x1234
    assert journalfile.segment_first("seg-000000000000zzzz.jn2") is None
    assert journalfile.segment_first("seg-12.jnl") is None
    assert journalfile.segment_first("journal.meta") is None
    assert records.seq_of(raws[1]) == 2 and records.prev_hash_of(raws[1]) == raws[1][48:]


def test_replay_log_parse_keeps_the_good_entries():
    data = replaylog.entry(1, 2, 3, 4) + replaylog.entry(5, 6, 7, 8)
    assert replaylog.parse(data + b"\x00" * 7) == ([(1, 2, 3, 4), (5, 6, 7, 8)], len(data), 0)


def test_deny_base_round_trip_and_damage():
    from array import array

    keys = array("Q", [3, 1 << 40, (1 << 64) - 1, 9])
    sections = [(1, 0, 3), (7, 3, 4)]  # issuer 1's keys, then issuer 7's
    data = denyfile.base(keys, sections, 7, 1000, 5000)
    assert data[:4] == b"FGDI" and len(data) == denyfile.HEAD_LEN_FRESH + 2 * 8 + 32
    assert struct.unpack("<IIII", data[4:20]) == (7, 1000, 5000, 2)
    assert struct.unpack("<IIII", data[24:40]) == (1, 3, 7, 1)  # the section table
    version, issued_at, body, valid_until, secs, legacy = denyfile.parse_base(data)
    assert (version, issued_at, valid_until, secs, legacy) == (7, 1000, 5000, sections, False)
    assert list(denyfile.keys_from_le(body)) == list(keys)
    assert bytes(body)[:8] == struct.pack("<Q", 3)
    assert denyfile.parse_base(data[:-1]) is None and denyfile.parse_base(b"FG") is None
    assert denyfile.parse_base(b"XXXX" + data[4:]) is None
    swapped = data[:24] + data[32:40] + data[24:32] + data[40:]  # the table out of order
    assert denyfile.parse_base(swapped) is None
    recount = bytearray(data)
    recount[28] = 2  # issuer 1 holds 2 keys, issuer 7 one: the count is right, the crc not
    recount[36] = 2
    assert denyfile.parse_base(bytes(recount)) is None
    assert denyfile.parse_head(data[:30]) is None  # the head ends after the table


def test_deny_base_from_before_the_issuer_reads_as_one_any_issuer_section():
    from binascii import crc32

    keys = struct.pack("<QQ", 5, 9)
    old = struct.pack("<4sIIII", b"FGDS", 8, 1000, 2, crc32(keys)) + keys
    version, issued_at, body, valid_until, secs, legacy = denyfile.parse_base(old)
    assert (version, issued_at, valid_until, legacy) == (8, 1000, 0, True)
    assert secs == [(denyfile.ANY_ISSUER, 0, 2)] and list(denyfile.keys_from_le(body)) == [5, 9]
    fresh = struct.pack("<4sIIIII", b"FGDU", 8, 1000, 5000, 2, crc32(keys)) + keys
    found = denyfile.parse_base(fresh)
    assert found[3] == 5000 and found[4] == [(denyfile.ANY_ISSUER, 0, 2)]
    assert denyfile.parse_base(fresh[:-1]) is None
    assert denyfile.parse_head(fresh[:20]) is None  # an FGDU head is 24 bytes


def test_anchor_slots_newest_good_wins_and_the_old_layout_reads_as_lead_0():
    s1 = anchorfile.slot(1, 100, 0, 0)
    s2 = anchorfile.slot(2, 200, anchorfile.FLAG_AHEAD, -5)
    assert len(s1) == anchorfile.SLOT_LEN and s2[:16] == struct.pack(">IIIi", 2, 200, 2, -5)
    assert anchorfile.slot_offset(1) == anchorfile.SLOT_LEN and anchorfile.slot_offset(2) == 0
    both = s2 + s1  # seq 2 in slot 0, seq 1 in slot 1
    assert anchorfile.parse(both) == ((2, 200, 2, -5), True)
    torn = s2[:7] + bytes(13) + s1
    assert anchorfile.parse(torn) == ((1, 100, 0, 0), True)
    assert anchorfile.whole(1, s1) == bytes(anchorfile.SLOT_LEN) + s1
    old = struct.pack(">III", 4, 400, 1)
    old += _crc(old)
    assert anchorfile.parse(old + bytes(16)) == ((4, 400, 1, 0), False)
    assert anchorfile.parse(b"") == (None, False)


def test_journal_v2_entry_holds_its_record_twice_and_tells_damage_from_a_hole():
    raw = _raw(5)
    e = journalold.entry2(raw, 3)
    copy = b"\xa6" + raw + struct.pack(">I", 3)
    assert len(e) == journalfile.ENTRY2_LEN == 146 and e == (copy + _crc(copy[1:])) * 2
    assert journalfile.slot(e, 0, 2, 5) == (journalfile.GOOD, raw, 3)
    one = bytearray(e)
    one[20] ^= 1  # the first copy damaged: the second one mends it
    assert journalfile.slot(bytes(one), 0, 2, 5) == (journalfile.MENDED, raw, 3)
    one[73 + 20] ^= 1  # both damaged: nothing left
    assert journalfile.slot(bytes(one), 0, 2, 5) == (journalfile.BAD, None, 0)
    assert journalfile.slot(e, 0, 2, 6)[0] == journalfile.BAD  # a misdirected write
    h = journalold.hole(5)
    assert len(h) == 146 and h[0] == 0xA7
    assert journalfile.slot(h, 0, 2, 5) == (journalfile.HOLED, None, 0)
    assert journalfile.slot(journalold.entry(raw), 0, 1, 5) == (journalfile.GOOD, raw, 0)


def test_journal_v3_entry_holds_a_record_of_either_version_once():
    for raw in (_raw(5, version=records.VERSION), _raw(5)):
        e = journalfile.entry3(raw, 3)
        assert len(e) == journalfile.ENTRY3_LEN == 254 and e[0] == 0xA8
        slot = raw + bytes(245 - len(raw)) + struct.pack(">I", 3)
        assert e == b"\xa8" + slot + _crc(slot)
        assert journalfile.slot(e, 0, 3, 5) == (journalfile.GOOD, raw, 3)
        assert journalfile.record_of(e, 0, 3, 5) == raw
        bad = bytearray(e)
        bad[20] ^= 1  # one copy: damage loses it
        assert journalfile.slot(bytes(bad), 0, 3, 5) == (journalfile.BAD, None, 0)
        assert journalfile.record_of(bytes(bad), 0, 3, 5) is None
        assert journalfile.slot(e, 0, 3, 6)[0] == journalfile.BAD  # a misdirected write
    h = journalfile.hole3(5)
    assert len(h) == 254 and h[0] == 0xA9
    assert journalfile.slot(h, 0, 3, 5) == (journalfile.HOLED, None, 0)
    assert journalfile.entry_len("seg-0000000000000001.jn3") == 254
