"""The deny-list store's files, byte for byte. Pure functions.

    deny.base   "FGDS" | u32 version | u32 issued_at | u32 count | u32 crc32(keys)
                | count x u64 key, all little-endian (keys: protocol/denylist.py)
            or  "FGDU" | u32 version | u32 issued_at | u32 valid_until | u32 count | u32 crc
                | count x u64 key: the same with the list's valid_until (a 24-byte head),
                written when the installed list has one (deny-list format 2)
    deny.log    deltas as received (signed), in the append-log framing (protocol/applog.py):
                u32 length | u32 crc32(blob) | blob, little-endian
A reader of deny.log keeps the whole records before the first bad one: a power cut mid-append
tears at most the last (that delta never took effect).

Keys are fixed-size (8 bytes) and ascending, so key i sits at byte HEAD_LEN + 8 * i: an MCU
gate searches deny.base in place (firmware/verify/flashdeny.py) instead of loading it.
"""

import struct
import sys
from array import array
from binascii import crc32

from protocol.applog import Framing

BASE_MAGIC = b"FGDS"
BASE_MAGIC_FRESH = b"FGDU"
_HEAD = "<4sIIII"
_HEAD_FRESH = "<4sIIIII"
HEAD_LEN = 20
HEAD_LEN_FRESH = 24  # read this much to find either head
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


def head_len(valid_until: int) -> int:
    """How long deny.base's head is for a list with this valid_until (0: none)."""
    return HEAD_LEN_FRESH if valid_until else HEAD_LEN


def head(version: int, issued_at: int, count: int, crc: int, valid_until: int = 0) -> bytes:
    """The header of deny.base (crc: crc32 of the count x 8 key bytes after it): 20 bytes,
    or 24 with a valid_until."""
    if valid_until:
        return struct.pack(
            _HEAD_FRESH, BASE_MAGIC_FRESH, version, issued_at, valid_until, count, crc
        )
    return struct.pack(_HEAD, BASE_MAGIC, version, issued_at, count, crc)


def parse_head(data):
    """-> (version, issued_at, count, crc, valid_until, head length) from deny.base's first
    bytes (at least HEAD_LEN_FRESH of them if the file is that long), or None if not one."""
    magic = bytes(data[:4])
    if magic == BASE_MAGIC and len(data) >= HEAD_LEN:
        _m, version, issued_at, count, crc = struct.unpack(_HEAD, bytes(data[:HEAD_LEN]))
        return version, issued_at, count, crc, 0, HEAD_LEN
    if magic == BASE_MAGIC_FRESH and len(data) >= HEAD_LEN_FRESH:
        _m, version, issued_at, valid_until, count, crc = struct.unpack(
            _HEAD_FRESH, bytes(data[:HEAD_LEN_FRESH])
        )
        return version, issued_at, count, crc, valid_until, HEAD_LEN_FRESH
    return None


def base(keys, version: int, issued_at: int, valid_until: int = 0) -> bytes:
    """deny.base holding `keys` (an ascending array("Q"))."""
    data = keys_to_le(keys)
    return head(version, issued_at, len(keys), crc32(data) & 0xFFFFFFFF, valid_until) + data


def parse_base(data):
    """-> (version, issued_at, keys as a little-endian memoryview, valid_until), or None if
    damaged."""
    found = parse_head(data)
    if found is None:
        return None
    version, issued_at, count, crc, valid_until, n = found
    body = memoryview(data)[n:]
    if len(body) != 8 * count or crc32(body) & 0xFFFFFFFF != crc:
        return None
    return version, issued_at, body, valid_until


def log_record(blob) -> bytes:
    return LOG.frame(blob)


def parse_log(data):
    """-> (blobs of the whole records, good length)."""
    blobs, good, _corrupt = LOG.scan(data)
    return blobs, good
