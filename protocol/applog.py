"""One append-log framing for every log a gate keeps on disk: frame a body, and scan bytes back
into (good bodies, good length, where corruption starts). Pure functions; no I/O.

A log is frames written one after another, each synced before it counts. A power cut mid-append
leaves a torn tail (a partial or damaged last frame) that a reader cuts at the good length. A
damaged frame followed by a good one is not a torn write but corruption in the middle: `scan`
reports where it starts, and the store decides (the journal reports it and salvages the rest).

A frame is `mark | length | crc | body | crc`, each part present or not by the log's layout:
    mark      a constant that starts every frame (b"" for none)
    length    u32 body length when bodies vary (`size` 0); a fixed `size` has no length field
    crc       CRC-32 of the body, u32, before the body (`crc_first`) or after it
integers in `order` (">" big-endian, "<" little-endian). The gate's logs:
    journal entry copy      Framing(68, mark=b"\\xa6")                A6 | record | k | crc (BE),
                            twice per entry (v1 segments: Framing(64, mark=b"\\xa5"))
    replay.log              Framing(20)                              body | crc (BE)
    deny.log                Framing(0, order="<", crc_first=True)    length | crc | blob (LE)
A damaged length field cannot be stepped over, so in a variable-length log everything from the
first bad frame on is a torn tail; a fixed-size log is checked frame by frame to its end.
"""

import struct
from binascii import crc32

_pack = struct.pack


class Framing:
    def __init__(self, size: int = 0, mark: bytes = b"", order: str = ">", crc_first=False):
        self.size = size
        self.mark = bytes(mark)
        self.crc_first = crc_first
        self._u32 = order + "I"
        self._two = order + "II"
        # bytes before the body and after it
        self.head = len(mark) + (0 if size else 4) + (4 if crc_first else 0)
        self.tail = 0 if crc_first else 4
        self.frame_len = self.head + size + self.tail if size else 0  # 0: it varies
        self._fixed_crc_last = bool(size) and not crc_first

    def frame(self, body) -> bytes:
        """One frame holding `body` (exactly `size` bytes when the size is fixed)."""
        crc = _pack(self._u32, crc32(body) & 0xFFFFFFFF)
        if self._fixed_crc_last:  # the journal's and the replay log's shape: the append path
            return self.mark + body + crc
        if self.size:
            return self.mark + crc + body
        n = _pack(self._u32, len(body))
        if self.crc_first:
            return self.mark + n + crc + body
        return self.mark + n + body + crc

    def _at(self, data, pos: int):
        """The body of a good frame at `pos` and the offset after it, or (None, pos)."""
        m = len(self.mark)
        if m and data[pos : pos + m] != self.mark:
            return None, pos
        p = pos + m
        size = self.size
        if not size:
            if p + 4 > len(data):
                return None, pos
            (size,) = struct.unpack_from(self._u32, data, p)
            p += 4
        if self.crc_first:
            if p + 4 + size > len(data):
                return None, pos
            (crc,) = struct.unpack_from(self._u32, data, p)
            body = bytes(data[p + 4 : p + 4 + size])
            end = p + 4 + size
        else:
            if p + size + 4 > len(data):
                return None, pos
            body = bytes(data[p : p + size])
            (crc,) = struct.unpack_from(self._u32, data, p + size)
            end = p + size + 4
        if crc32(body) & 0xFFFFFFFF != crc:
            return None, pos
        return body, end

    def body_at(self, data, pos: int):
        """The body of the good frame at `pos` of `data`, or None (a reader that streams a log
        checks it a buffer at a time with this)."""
        return self._at(data, pos)[0]

    def scan(self, data):
        """-> (bodies, good, corrupt_at): the bodies of the good frames from the start, the
        length of that good prefix, and None when what follows it (if anything) can be a torn
        tail, else the offset where corruption starts (== good: a good frame follows a bad
        one)."""
        bodies = []
        pos = 0
        n = len(data)
        while pos < n:
            body, end = self._at(data, pos)
            if body is None:
                break
            bodies.append(body)
            pos = end
        return bodies, pos, self.corrupt_after(data, pos)

    def corrupt_after(self, data, pos: int):
        """`pos` if a good frame follows the bad one at `pos` (fixed-size logs), else None."""
        step = self.frame_len
        if step:
            p = pos + step
            while p + step <= len(data):
                if self._at(data, p)[0] is not None:
                    return pos
                p += step
        return None
