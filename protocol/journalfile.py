"""The journal's files, byte for byte (docs/sync-protocol.md, "Journal on disk"). Pure functions.

seg-<first seq, 16 hex digits>.jnl   entries, then (once full) a footer
journal.meta                         the acknowledged position

entry    A5 | record (64 bytes, protocol.records) | crc32(record) u32         (applog framing)
footer   5A | count u32 | crc32(all entries) u32 | hash of the last record (16)
         | crc32(footer so far) u32
meta     acknowledged seq u64 | hash of that record (16) | crc32(first 24) u32
"""

import struct
from binascii import crc32

from protocol import records
from protocol.applog import Framing
from protocol.errors import FormatError

ENTRY = Framing(records.RECORD_LEN, mark=b"\xa5")
ENTRY_LEN = ENTRY.frame_len  # 69
FOOTER_MARK = 0x5A
FOOTER_LEN = 1 + 4 + 4 + records.HASH_LEN + 4  # 29
META = "journal.meta"
META_LEN = 8 + records.HASH_LEN + 4  # 28
_SEG_NAME_LEN = 24


entry = ENTRY.frame  # entry(raw record) -> the 69 bytes of its segment entry


def record_at(data, i: int) -> bytes:
    """The record of entry `i` in a segment's bytes (unchecked: the caller scanned them)."""
    p = i * ENTRY_LEN + 1
    return bytes(data[p : p + records.RECORD_LEN])


def segment_name(first_seq: int) -> str:
    return "seg-%016x.jnl" % first_seq


def segment_first(name: str):
    """The first seq of a segment file's name, or None if `name` is not a segment's."""
    if len(name) != _SEG_NAME_LEN or not (name.startswith("seg-") and name.endswith(".jnl")):
        return None
    return int(name[4:20], 16)


def footer(count: int, crc: int, last_hash: bytes) -> bytes:
    f = struct.pack(">BII", FOOTER_MARK, count, crc & 0xFFFFFFFF) + last_hash
    return f + struct.pack(">I", crc32(f) & 0xFFFFFFFF)


def sealed_shape(size: int, tail) -> bool:
    """A segment of `size` bytes whose last FOOTER_LEN bytes are `tail` ends with a footer
    (its shape only; `parse_footer` and the entries' CRC check it)."""
    return (
        size >= FOOTER_LEN
        and (size - FOOTER_LEN) % ENTRY_LEN == 0
        and len(tail) == FOOTER_LEN
        and tail[0] == FOOTER_MARK
    )


def looks_sealed(data) -> bool:
    """The segment's size and last bytes say it ends with a footer (not yet checked)."""
    return sealed_shape(len(data), data[-FOOTER_LEN:])


def parse_footer(tail, body_len: int):
    """-> (count, crc32 of all entries) of a footer `tail` that checks and counts exactly the
    `body_len` bytes of entries before it; None if it does not."""
    if len(tail) != FOOTER_LEN or tail[0] != FOOTER_MARK:
        return None
    _mark, count, crc = struct.unpack(">BII", tail[:9])
    if (
        struct.unpack(">I", tail[-4:])[0] != crc32(tail[:-4]) & 0xFFFFFFFF
        or count * ENTRY_LEN != body_len
    ):
        return None
    return count, crc


def check_sealed(data):
    """-> count of a sealed segment whose footer and entries check; None if it does not."""
    if not looks_sealed(data):
        return None
    body_len = len(data) - FOOTER_LEN
    parsed = parse_footer(bytes(data[body_len:]), body_len)
    if parsed is None or crc32(memoryview(data)[:body_len]) & 0xFFFFFFFF != parsed[1]:
        return None
    return parsed[0]


def meta(acked_seq: int, acked_hash: bytes) -> bytes:
    m = struct.pack(">Q", acked_seq) + acked_hash
    return m + struct.pack(">I", crc32(m) & 0xFFFFFFFF)


def parse_meta(data):
    """-> (acked seq, hash of that record); raises FormatError if damaged."""
    if len(data) != META_LEN or struct.unpack(">I", data[24:])[0] != crc32(data[:24]) & 0xFFFFFFFF:
        raise FormatError("journal.meta is damaged", "journal_error")
    return struct.unpack(">Q", data[:8])[0], bytes(data[8:24])
