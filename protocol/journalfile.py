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


def looks_sealed(data) -> bool:
    """The segment's size and last bytes say it ends with a footer (not yet checked)."""
    n = len(data)
    return (
        n >= FOOTER_LEN and (n - FOOTER_LEN) % ENTRY_LEN == 0 and data[-FOOTER_LEN] == FOOTER_MARK
    )


def check_sealed(data):
    """-> count of a sealed segment whose footer and entries check; None if it does not."""
    if not looks_sealed(data):
        return None
    f = data[-FOOTER_LEN:]
    _mark, count, crc = struct.unpack(">BII", f[:9])
    body = memoryview(data)[: len(data) - FOOTER_LEN]
    if (
        struct.unpack(">I", f[-4:])[0] != crc32(f[:-4]) & 0xFFFFFFFF
        or count * ENTRY_LEN != len(body)
        or crc32(body) & 0xFFFFFFFF != crc
    ):
        return None
    return count


def meta(acked_seq: int, acked_hash: bytes) -> bytes:
    m = struct.pack(">Q", acked_seq) + acked_hash
    return m + struct.pack(">I", crc32(m) & 0xFFFFFFFF)


def parse_meta(data):
    """-> (acked seq, hash of that record); raises FormatError if damaged."""
    if len(data) != META_LEN or struct.unpack(">I", data[24:])[0] != crc32(data[:24]) & 0xFFFFFFFF:
        raise FormatError("journal.meta is damaged", "journal_error")
    return struct.unpack(">Q", data[:8])[0], bytes(data[8:24])
