"""Flash messages: an image sent over a link (serial or the sync link) in acknowledged chunks.

Carried in link frames (protocol.frames: length, header CRC, payload CRC32). Frame types
0x40..0x4F belong to flashing. Payloads, big-endian:

    type  name      dir   payload
    0x40  BEGIN     h->d  u32 image_len | 32 sha256(image) | u8 flags (1 = restart) |
                          the image's first bytes: header and manifest (protocol.image)
    0x41  READY     d->h  u32 offset to send from | u32 crc32 of the bytes the gate holds |
                          u16 max chunk | u8 window (chunks in flight)
    0x42  DATA      h->d  u32 offset | chunk bytes (1..max chunk)
    0x43  ACK       d->h  u32 next offset wanted; every byte before it is durable on the gate
    0x44  END       h->d  (empty): the whole image was sent
    0x45  DONE      d->h  32 sha256 of the image read back from the gate's storage |
                          utf-8 JSON summary (slot, version, counter, profile)
    0x46  ACTIVATE  h->d  (empty): boot the staged slot on trial; the gate replies STATUS, reboots
    0x47  QUERY     h->d  (empty): ask for STATUS
    0x48  STATUS    d->h  utf-8 JSON: firmware.maintenance.update_agent.UpdateAgent.status()
    0x49  REFUSED   d->h  u8 len | reason (ASCII, protocol/reasons.py) | utf-8 message
    0x4A  ROLLBACK  h->d  (empty): boot the previous image (the other slot, as it was before the
                          last confirmed update) on trial; the gate replies STATUS, reboots

ACTIVATE alone (after a BEGIN .. DONE with no ACTIVATE, `faregate flash --no-activate`) is
`faregate flash --activate-only`; ROLLBACK is `faregate flash --rollback`. Neither resends
a byte: the gate's slots already hold the image.

A DATA frame at an unexpected offset (one was lost or corrupted on the line) is answered with
an ACK of the offset the gate wants: the sender goes back to it (go-back-N). READY's offset and
CRC let a sender resume a cut transfer only when the gate holds the same bytes it would send.
"""

import json
import struct

from protocol.errors import FormatError, UsageError

BEGIN = 0x40
READY = 0x41
DATA = 0x42
ACK = 0x43
END = 0x44
DONE = 0x45
ACTIVATE = 0x46
QUERY = 0x47
STATUS = 0x48
REFUSED = 0x49
ROLLBACK = 0x4A
TYPES = (BEGIN, READY, DATA, ACK, END, DONE, ACTIVATE, QUERY, STATUS, REFUSED, ROLLBACK)
NAMES = {
    BEGIN: "BEGIN",
    READY: "READY",
    DATA: "DATA",
    ACK: "ACK",
    END: "END",
    DONE: "DONE",
    ACTIVATE: "ACTIVATE",
    QUERY: "QUERY",
    STATUS: "STATUS",
    REFUSED: "REFUSED",
    ROLLBACK: "ROLLBACK",
}
FLAG_RESTART = 1
MAX_CHUNK = 4096
MAX_HEAD = 88 + 64 * 1024  # protocol.image: header plus the largest manifest
MAX_PAYLOAD = 37 + MAX_HEAD  # the largest flash message (BEGIN): a gate's decoder must take it


def _bad(msg: str):
    return FormatError(msg, "bad_message")


def begin(image_len: int, sha256: bytes, head: bytes, restart: bool = False) -> bytes:
    if len(sha256) != 32:
        raise UsageError("sha256 must be 32 bytes")
    return struct.pack(">I", image_len) + sha256 + bytes([1 if restart else 0]) + bytes(head)


def parse_begin(p: bytes):
    """-> (image_len, sha256, restart, head)"""
    if len(p) < 37 + 88:
        raise _bad("BEGIN too short")
    if len(p) > MAX_PAYLOAD:
        raise _bad("BEGIN too long")
    (n,) = struct.unpack(">I", p[:4])
    flags = p[36]
    if flags & ~FLAG_RESTART:
        raise _bad("BEGIN has unknown flags")
    return n, bytes(p[4:36]), bool(flags & FLAG_RESTART), bytes(p[37:])


def ready(offset: int, crc: int, max_chunk: int = MAX_CHUNK, window: int = 8) -> bytes:
    return struct.pack(">IIHB", offset, crc, max_chunk, window)


def parse_ready(p: bytes):
    """-> (offset, crc32, max_chunk, window)"""
    if len(p) != 11:
        raise _bad("READY is %d bytes, expected 11" % len(p))
    offset, crc, max_chunk, window = struct.unpack(">IIHB", p)
    if not max_chunk or not window:
        raise _bad("READY with a zero chunk size or window")
    return offset, crc, max_chunk, window


def data(offset: int, chunk: bytes) -> bytes:
    return struct.pack(">I", offset) + bytes(chunk)


def parse_data(p: bytes, max_chunk: int = MAX_CHUNK):
    """-> (offset, chunk)"""
    if len(p) < 5:
        raise _bad("DATA without bytes")
    if len(p) - 4 > max_chunk:
        raise _bad("DATA chunk over %d bytes" % max_chunk)
    return struct.unpack(">I", p[:4])[0], bytes(p[4:])


def ack(offset: int) -> bytes:
    return struct.pack(">I", offset)


def parse_ack(p: bytes) -> int:
    if len(p) != 4:
        raise _bad("ACK is %d bytes, expected 4" % len(p))
    return struct.unpack(">I", p)[0]


def done(sha256: bytes, summary: dict) -> bytes:
    return bytes(sha256) + json.dumps(summary).encode()


def parse_done(p: bytes):
    """-> (sha256, summary dict)"""
    if len(p) < 32:
        raise _bad("DONE too short")
    return bytes(p[:32]), _json(p[32:])


def status(summary: dict) -> bytes:
    return json.dumps(summary).encode()


def parse_status(p: bytes) -> dict:
    return _json(p)


def refused(reason: str, message: str) -> bytes:
    r = reason.encode()
    if len(r) > 255:
        raise UsageError("reason too long")
    return bytes([len(r)]) + r + message.encode()


def parse_refused(p: bytes):
    """-> (reason, message)"""
    if not p or len(p) < 1 + p[0]:
        raise _bad("REFUSED too short")
    n = p[0]
    try:
        return bytes(p[1 : 1 + n]).decode(), bytes(p[1 + n :]).decode()
    except UnicodeError:
        raise _bad("REFUSED is not UTF-8") from None


def _json(p: bytes) -> dict:
    try:
        obj = json.loads(bytes(p).decode())
    except (UnicodeError, ValueError):
        raise _bad("not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise _bad("JSON is not an object")
    return obj
