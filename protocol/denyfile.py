"""The deny-list store's files, byte for byte. Pure functions.

    deny.base   "FGDI" | u32 version | u32 issued_at | u32 valid_until | u32 n_sections
                | u32 crc32(the keys, then the table)
                | table: n_sections x (u32 issuer | u32 count), ascending by issuer
                | the keys, section after section, each ascending (count x u64 key): all
                little-endian (keys: protocol/denylist.py). A section may be empty (an MCU
                store writes the table before it knows which sections end up empty).
                Issuer ANY_ISSUER (0x10000) holds entries that apply to every issuer: the
                keys of a deny.base from before the issuer (below), migrated.
    read only, written by gates before deny-list format 3 (no issuer):
                "FGDS" | u32 version | u32 issued_at | u32 count | u32 crc32(keys) | keys
            or  "FGDU" | u32 version | u32 issued_at | u32 valid_until | u32 count | u32 crc
                | keys (a 24-byte head: the list had a valid_until)
    deny.log    deltas as received (signed), in the append-log framing (protocol/applog.py):
                u32 length | u32 crc32(blob) | blob, little-endian
A reader of deny.log keeps the whole records before the first bad one: a power cut mid-append
tears at most the last (that delta never took effect).

Keys are fixed-size (8 bytes) and ascending within a section, so key i sits at byte
head length + 8 * i: an MCU gate searches deny.base in place (firmware/verify/flashdeny.py)
instead of loading it.
"""

import struct
import sys
from array import array
from binascii import crc32

from protocol.applog import Framing

BASE_MAGIC_ISSUERS = b"FGDI"
BASE_MAGIC = b"FGDS"  # legacy
BASE_MAGIC_FRESH = b"FGDU"  # legacy
ANY_ISSUER = 0x10000  # protocol.denylist.ANY_ISSUER
_HEAD = "<4sIIII"
_HEAD_FRESH = "<4sIIIII"
_HEAD_ISSUERS = "<4sIIIII"
HEAD_LEN = 20
HEAD_LEN_FRESH = 24  # read this much to find any head (then head_size says how much more)
SECTION_LEN = 8
MAX_SECTIONS = 0x10001
LOG = Framing(0, order="<", crc_first=True)
_MPY = sys.implementation.name == "micropython"


def keys_from_le(data):
    """An array("Q") of the little-endian u64 keys in `data`."""
    if _MPY:
        return array("Q", bytes(data))  # MCUs are little-endian
    a = array("Q")
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def keys_to_le(keys) -> bytes:
    if _MPY:
        return bytes(keys)
    if sys.byteorder != "little":
        keys = array("Q", keys)
        keys.byteswap()
    return keys.tobytes()


def head_size(first) -> int:
    """How many bytes deny.base's whole head takes, from its first HEAD_LEN_FRESH bytes
    (0 if they are not one)."""
    magic = bytes(first[:4])
    if magic == BASE_MAGIC_ISSUERS and len(first) >= HEAD_LEN_FRESH:
        n = struct.unpack("<I", bytes(first[16:20]))[0]
        return HEAD_LEN_FRESH + SECTION_LEN * n if n <= MAX_SECTIONS else 0
    if magic == BASE_MAGIC:
        return HEAD_LEN
    if magic == BASE_MAGIC_FRESH:
        return HEAD_LEN_FRESH
    return 0


def table(sections) -> bytes:
    """The section table of `sections` [(issuer, start, end)]."""
    return b"".join(struct.pack("<II", i, e - s) for i, s, e in sections)


def head(version: int, issued_at: int, crc: int, valid_until: int, sections) -> bytes:
    """The head of deny.base (crc: `crc_of` its keys and table)."""
    return struct.pack(
        _HEAD_ISSUERS, BASE_MAGIC_ISSUERS, version, issued_at, valid_until, len(sections), crc
    ) + table(sections)


def parse_head(data):
    """-> (version, issued_at, count, crc, valid_until, head length, sections [(issuer,
    start, end)], the table's bytes) from deny.base's head (head_size(data) bytes of it),
    or None if not one. A legacy head is one ANY_ISSUER section."""
    n = head_size(data)
    if not n or len(data) < n:
        return None
    magic = bytes(data[:4])
    if magic == BASE_MAGIC_ISSUERS:
        _m, version, issued_at, valid_until, end, crc = struct.unpack(
            _HEAD_ISSUERS, bytes(data[:HEAD_LEN_FRESH])
        )
        raw = bytes(data[HEAD_LEN_FRESH:n])
        sections = []
        at = prev = count = 0
        for j in range(end):
            issuer, c = struct.unpack("<II", raw[8 * j : 8 * j + 8])
            if j and issuer <= prev or issuer > ANY_ISSUER:
                return None
            sections.append((issuer, at, at + c))
            at += c
            prev = issuer
        count = at
        return version, issued_at, count, crc, valid_until, n, sections, raw
    if magic == BASE_MAGIC:
        _m, version, issued_at, count, crc = struct.unpack(_HEAD, bytes(data[:HEAD_LEN]))
        valid_until = 0
    else:
        _m, version, issued_at, valid_until, count, crc = struct.unpack(
            _HEAD_FRESH, bytes(data[:HEAD_LEN_FRESH])
        )
    return version, issued_at, count, crc, valid_until, n, [(ANY_ISSUER, 0, count)], b""


def base(keys, sections, version: int, issued_at: int, valid_until: int = 0) -> bytes:
    """deny.base holding `keys` (an array("Q"), ascending within each of `sections`)."""
    data = keys_to_le(keys)
    crc = crc_of(crc32(data), table(sections))
    return head(version, issued_at, crc, valid_until, sections) + data


def crc_of(keys_crc: int, table_bytes) -> int:
    """deny.base's crc: crc32 of the keys (streamed: `keys_crc`), continued over the table
    (a legacy head has none: b"")."""
    return crc32(table_bytes, keys_crc) & 0xFFFFFFFF


def parse_base(data):
    """-> (version, issued_at, keys as a little-endian memoryview, valid_until, sections,
    legacy), or None if damaged. legacy: a head from before the issuer."""
    found = parse_head(data)
    if found is None:
        return None
    version, issued_at, count, crc, valid_until, n, sections, table = found
    body = memoryview(data)[n:]
    if len(body) != 8 * count or crc_of(crc32(body), table) != crc:
        return None
    legacy = bytes(data[:4]) != BASE_MAGIC_ISSUERS
    return version, issued_at, body, valid_until, sections, legacy


def log_record(blob) -> bytes:
    return LOG.frame(blob)


def parse_log(data):
    """-> (blobs of the whole records, good length)."""
    blobs, good, _corrupt = LOG.scan(data)
    return blobs, good
