"""Link framing shared by sync (TCP or serial), the service console and flashing.

    offset size field
      0     2   magic       0xFA 0x47
      2     1   version     = 1
      3     1   type        message type (see protocol.messages)
      4     4   length      payload length, u32 big-endian, <= max_payload
      8     2   header_crc  low 16 bits of crc32(bytes 2..7)
     10     N   payload
   10+N     4   crc32(payload)

The decoder is sans-IO: `feed(bytes)` returns whole frames; garbage, a corrupt header, an
oversize length or a bad payload CRC are skipped byte by byte until the next good header
(resync), and counted in `stats` so links can report their health.

The decoder keeps no clock: a header announcing more bytes than ever come would hold it
waiting. Its owner bounds that wait (the service console: buffers.console_frame_ms from the
partial frame's first byte) and then calls `drop_partial()`, which skips that header and
rescans what is buffered (a good frame inside the never-completed body is found).
"""

import struct
from binascii import crc32

from protocol.errors import FormatError, UsageError

MAGIC = b"\xfa\x47"
VERSION = 1
HEADER_LEN = 10
TRAILER_LEN = 4
DEFAULT_MAX_PAYLOAD = 256 * 1024


def _hcrc(hdr_mid: bytes) -> int:
    return crc32(hdr_mid) & 0xFFFF


def encode(ftype: int, payload: bytes = b"", max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    n = len(payload)
    if n > max_payload:
        raise UsageError("frame payload %d bytes exceeds the %d-byte maximum" % (n, max_payload))
    if not 0 <= ftype <= 255:
        raise UsageError("frame type out of range")
    mid = struct.pack(">BBI", VERSION, ftype, n)
    return (
        MAGIC
        + mid
        + struct.pack(">H", _hcrc(mid))
        + bytes(payload)
        + struct.pack(">I", crc32(payload) & 0xFFFFFFFF)
    )


class Frame:
    __slots__ = ("type", "payload")

    def __init__(self, ftype: int, payload: bytes):
        self.type = ftype
        self.payload = payload

    def __repr__(self):
        return "Frame(%d, %d bytes)" % (self.type, len(self.payload))


class FrameDecoder:
    """Bytes in, frames out. Never raises on bad input; see `stats`.

    The buffer is a bytearray with a read offset `_pos`: bytes are appended once and the
    consumed prefix is dropped only when it is at least half the buffer (MicroPython's
    bytearray has no slice deletion), so feeding a big frame in small chunks stays linear.
    While a frame's body is still arriving, `_need` remembers how many bytes it takes, so
    nothing is rescanned until they are there.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0
        self._need = 0
        self.stats = {
            "frames": 0,
            "garbage_bytes": 0,
            "bad_header": 0,
            "bad_crc": 0,
            "oversize": 0,
            "timed_out": 0,
        }
        self.oversized = None  # (type, length) of the last good header over max_payload

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def pending(self):
        """(type, announced length, bytes buffered) of the frame whose header is read and whose
        body is still arriving, or None."""
        if not self._need:
            return None
        _version, ftype, n = struct.unpack_from(">BBI", self._buf, self._pos + 2)
        return (ftype, n, self.buffered())

    def drop_partial(self) -> list:
        """Give up on what is buffered (a frame whose body did not come in time, or part of a
        header): skip one byte past it and rescan the rest. Returns the frames found."""
        if not self.buffered():
            return []
        self.stats["timed_out"] += 1
        self.stats["garbage_bytes"] += 1
        self._pos += 1
        self._need = 0
        return self.feed(b"")

    def feed(self, data) -> list:
        buf = self._buf
        buf.extend(data)
        if len(buf) - self._pos < self._need:
            return []
        self._need = 0
        stats = self.stats
        out = []
        pos = self._pos
        n_buf = len(buf)
        while True:
            start = buf.find(MAGIC, pos)
            if start < 0:
                # keep a trailing 0xFA: it may be the first half of the next magic
                end = n_buf - 1 if n_buf > pos and buf[-1] == MAGIC[0] else n_buf
                stats["garbage_bytes"] += max(0, end - pos)
                pos = max(pos, end)
                break
            stats["garbage_bytes"] += start - pos
            pos = start
            if n_buf - pos < HEADER_LEN:
                break
            version, ftype, n, hc = struct.unpack_from(">BBIH", buf, pos + 2)
            if hc != crc32(memoryview(buf)[pos + 2 : pos + 8]) & 0xFFFF or version != VERSION:
                stats["bad_header"] += 1
            elif n > self.max_payload:
                stats["oversize"] += 1
                self.oversized = (ftype, n)  # the owner may answer it: its body is skipped
            else:
                total = HEADER_LEN + n + TRAILER_LEN
                if n_buf - pos < total:
                    self._need = total
                    break
                body = pos + HEADER_LEN
                payload = bytes(memoryview(buf)[body : body + n])
                (pc,) = struct.unpack_from(">I", buf, body + n)
                if pc == crc32(payload) & 0xFFFFFFFF:
                    pos += total
                    stats["frames"] += 1
                    out.append(Frame(ftype, payload))
                    continue
                stats["bad_crc"] += 1
            # a bad header or body: skip one byte and look for the next magic
            stats["garbage_bytes"] += 1
            pos += 1
        if pos and pos * 2 >= n_buf:
            self._buf = buf[pos:]
            pos = 0
        self._pos = pos
        return out


def decode_one(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Decode exactly one frame with nothing before or after it (for files and tests)."""
    dec = FrameDecoder(max_payload)
    frames = dec.feed(data)
    if len(frames) != 1 or dec.buffered() or dec.stats["garbage_bytes"]:
        raise FormatError("not exactly one well-formed frame", "bad_frame")
    return frames[0]
