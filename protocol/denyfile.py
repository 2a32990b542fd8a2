"""The deny-list store's files, byte for byte. Pure functions.

    deny.base   "FGDS" | u32 version | u32 issued_at | u32 count | u32 crc32(keys)
                | count x u64 key, all little-endian (keys: protocol/denylist.py)
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
_HEAD = "<4sIIII"
HEAD_LEN = 20
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


def head(version: int, issued_at: int, count: int, crc: int) -> bytes:
    """The 20-byte header of deny.base (crc: crc32 of the count x 8 key bytes after it)."""
    return struct.pack(_HEAD, BASE_MAGIC, version, issued_at, count, crc)


def parse_head(data):
    """-> (version, issued_at, count, crc) from deny.base's first bytes, or None if not one."""
    if len(data) < HEAD_LEN:
        return None
    magic, version, issued_at, count, crc = struct.unpack(_HEAD, bytes(data[:HEAD_LEN]))
    if magic != BASE_MAGIC:
        return None
    return version, issued_at, count, crc


def base(keys, version: int, issued_at: int) -> bytes:
    """deny.base holding `keys` (an ascending array("Q"))."""
    data = keys_to_le(keys)
    return head(version, issued_at, len(keys), crc32(data) & 0xFFFFFFFF) + data


def parse_base(data):
    """-> (version, issued_at, keys as a little-endian memoryview), or None if damaged."""
    found = parse_head(data)
    if found is None:
        return None
    version, issued_at, count, crc = found
    body = memoryview(data)[HEAD_LEN:]
    if len(body) != 8 * count or crc32(body) & 0xFFFFFFFF != crc:
        return None
    return version, issued_at, body


def log_record(blob) -> bytes:
    return LOG.frame(blob)


def parse_log(data):
    """-> (blobs of the whole records, good length)."""
    blobs, good, _corrupt = LOG.scan(data)
    return blobs, good
