"""The journal's files, byte for byte (docs/sync-protocol.md, "Journal on disk"). Pure functions.

seg-<first seq, 16 hex digits>.jn3   version 3 segments: entries, then (once full) a footer;
                                     the only ones appended to
seg-<first seq, 16 hex digits>.jn2   version 2 segments (version 1 records, each twice; read,
                                     trimmed and repaired, never appended to)
seg-<first seq, 16 hex digits>.jnl   version 1 segments (read, trimmed and repaired)
                                     (the layouts of .jn2 and .jnl, and their reading, are
                                     protocol/journalold.py, imported only when one is read)
journal.meta, journal.meta.b         the acknowledged position, two copies

entry v3 (254 bytes): A8 | slot (245) | k u32 | crc32(slot | k) u32   (applog framing)
         slot = a record of either version (protocol.records), zero-padded to 245 bytes (a
         version 1 record from a repaired old segment is 64 bytes and 181 zeros);
         k = the entry's place in its commit group (0 for the first of a group written with
         one write and one fsync); a hole (a slot a repair found lost) has mark A9 and an
         all-zero slot but for its seq (bytes 8..15). One copy: a version 2 record keeps the
         rider's ride code, and two copies would not fit P4's 256 bytes a record.
entry v2 (146 bytes): the same copy twice; a copy is A6 | record v1 (64) | k u32 | crc32 u32;
         a hole has mark A7
entry v1 (69 bytes)   A5 | record v1 (64) | crc32(record) u32
footer   5A | count u32 | crc32(all entries) u32 | hash of the last record (16)
         | crc32(footer so far) u32
meta     acknowledged seq u64 | hash of that record (16) | crc32(first 24) u32
"""

import struct
from binascii import crc32

from protocol import records
from protocol.applog import Framing
from protocol.errors import FormatError

_V1LEN = records.RECORD_LEN_V1
_SLOT = records.MAX_RECORD_LEN  # 245: a version 3 entry's record area
ENTRY_LEN = 1 + _V1LEN + 4  # 69: a version 1 entry (protocol/journalold.py)
COPY_LEN = 1 + _V1LEN + 8  # 73: one copy of a version 2 entry
ENTRY2_LEN = 2 * COPY_LEN  # 146: a version 2 entry
ENTRY3 = Framing(_SLOT + 4, mark=b"\xa8")
HOLE3 = Framing(_SLOT + 4, mark=b"\xa9")
ENTRY3_LEN = ENTRY3.frame_len  # 254
FOOTER_MARK = 0x5A
FOOTER_LEN = 1 + 4 + 4 + records.HASH_LEN + 4  # 29
META = "journal.meta"
META_B = "journal.meta.b"
META_LEN = 8 + records.HASH_LEN + 4  # 28
V1 = ".jnl"
V2 = ".jn2"
V3 = ".jn3"
FORMATS = {V1: 1, V2: 2, V3: 3}
_SEG_NAME_LEN = 24
# what a slot of a segment holds (slot(), below)
GOOD = 0  # both copies check
MENDED = 1  # one copy checks: the record is whole, the other copy is damaged
HOLED = 2  # a hole a repair wrote: this seq is known lost
BAD = 3  # no copy checks (a torn write or damage)


def entry3(raw, k: int) -> bytes:
    """The 254 bytes of a version 3 entry: the record `raw` (either version), k-th of its
    commit group."""
    raw = bytes(raw)
    return ENTRY3.frame(raw + bytes(_SLOT - len(raw)) + struct.pack(">I", k))


def hole3(seq: int) -> bytes:
    """The 254 bytes of a version 3 hole: the slot of `seq`, whose record is lost."""
    body = bytearray(_SLOT + 4)
    body[8:16] = struct.pack(">Q", seq)
    return HOLE3.frame(bytes(body))


def fmt_of(name: str) -> int:
    """The segment format (1, 2 or 3) of a segment file's name."""
    return FORMATS.get(name[-4:], 0)


_ELEN = {1: ENTRY_LEN, 2: ENTRY2_LEN, 3: ENTRY3_LEN}


def entry_len(name: str) -> int:
    return _ELEN[fmt_of(name)]


def _unpad(slot_):
    """The record in a version 3 slot (its version byte gives its length); None if unknown."""
    n = {records.VERSION: records.RECORD_LEN, records.VERSION_1: _V1LEN}.get(slot_[0])
    if n is None or (n < _SLOT and any(slot_[n:_SLOT])):
        return None
    return bytes(slot_[:n])


def first_record(buf, fmt: int):
    """The record of the entry at the start of `buf` (unchecked: a sealed segment's)."""
    return _unpad(buf[1 : 1 + _SLOT]) if fmt == 3 else bytes(buf[1 : 1 + _V1LEN])


def slot(data, off: int, fmt: int, seq: int):
    """-> (state, record or None, k) of the entry at `off` of `data` (a segment of format
    `fmt`), expected to hold `seq`. A copy that checks but holds another seq (a misdirected
    write) does not count."""
    if fmt == 3:
        body = ENTRY3.body_at(data, off)
        if body is not None and records.seq_of(body) == seq:
            raw = _unpad(body)
            if raw is not None:
                return GOOD, raw, struct.unpack(">I", body[_SLOT:])[0]
        body = HOLE3.body_at(data, off)
        if body is not None and records.seq_of(body) == seq:
            return HOLED, None, 0
        return BAD, None, 0
    from protocol import journalold  # only a journal of before version 3 needs it

    return journalold.slot(data, off, fmt, seq)


def record_of(data, off: int, fmt: int, seq: int):
    """The record of the entry at `off` of `data` (bytes), from its first good copy, or None:
    the read path (`slot` checks both copies, to report a damaged one)."""
    if fmt == 3:
        return slot(data, off, 3, seq)[1]  # one copy: the same check
    from protocol import journalold

    return journalold.record_of(data, off, fmt, seq)


def segment_name(first_seq: int, ext: str = V3) -> str:
    return "seg-%016x%s" % (first_seq, ext)


def segment_first(name: str):
    """The first seq of a segment file's name, or None if `name` is not a segment's."""
    if len(name) != _SEG_NAME_LEN or not (name.startswith("seg-") and fmt_of(name)):
        return None
    try:
        return int(name[4:20], 16)
    except ValueError:
        return None


def footer(count: int, crc: int, last_hash: bytes) -> bytes:
    f = struct.pack(">BII", FOOTER_MARK, count, crc & 0xFFFFFFFF) + last_hash
    return f + struct.pack(">I", crc32(f) & 0xFFFFFFFF)


def sealed_shape(size: int, tail, elen: int = ENTRY_LEN) -> bool:
    """A segment of `size` bytes whose last FOOTER_LEN bytes are `tail` ends with a footer
    (its shape only; `parse_footer` and the entries' CRC check it)."""
    return (
        size >= FOOTER_LEN
        and (size - FOOTER_LEN) % elen == 0
        and len(tail) == FOOTER_LEN
        and tail[0] == FOOTER_MARK
    )


def parse_footer(tail, body_len: int, elen: int = ENTRY_LEN):
    """-> (count, crc32 of all entries) of a footer `tail` that checks and counts exactly the
    `body_len` bytes of entries before it; None if it does not."""
    if len(tail) != FOOTER_LEN or tail[0] != FOOTER_MARK:
        return None
    _mark, count, crc = struct.unpack(">BII", tail[:9])
    if (
        struct.unpack(">I", tail[-4:])[0] != crc32(tail[:-4]) & 0xFFFFFFFF
        or count * elen != body_len
    ):
        return None
    return count, crc


def meta(acked_seq: int, acked_hash: bytes) -> bytes:
    m = struct.pack(">Q", acked_seq) + acked_hash
    return m + struct.pack(">I", crc32(m) & 0xFFFFFFFF)


def parse_meta(data):
    """-> (acked seq, hash of that record); raises FormatError if damaged."""
    if len(data) != META_LEN or struct.unpack(">I", data[24:])[0] != crc32(data[:24]) & 0xFFFFFFFF:
        raise FormatError("journal.meta is damaged", "journal_error")
    return struct.unpack(">Q", data[:8])[0], bytes(data[8:24])
