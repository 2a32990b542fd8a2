"""replay.log, the replay cache's file, byte for byte. Pure functions.

One entry per accepted presentation, in the append-log framing (protocol/applog.py):
    u64 cred_id | u32 counter | u32 presentation time | u32 gate time | u32 crc32(first 20)
Big-endian, 24 bytes. Entries sit at multiples of 24, so one bad entry does not hide the
ones after it: a reader skips it and counts it as damage (a bad entry followed by a good one
cannot be a torn write), and cuts only the tail after the last good entry (a power cut tears
at most the entry being appended).
"""

import struct

from protocol.applog import Framing

_BODY = ">QIII"
ENTRY = Framing(20)
ENTRY_LEN = ENTRY.frame_len  # 24


def entry(cred_id: int, counter: int, ptime: int, gtime: int) -> bytes:
    return ENTRY.frame(struct.pack(_BODY, cred_id, counter, ptime, gtime))


def parse(data):
    """-> (entries as (cred_id, counter, presentation time, gate time), good length, damaged):
    the good entries in file order, the length up to the end of the last good one (what follows
    is a torn tail), and how many bad entries lie before it (damage, skipped)."""
    out = []
    good = 0
    bad = 0
    damaged = 0
    step = ENTRY_LEN
    pos = 0
    while pos + step <= len(data):
        body = ENTRY.body_at(data, pos)
        pos += step
        if body is None:
            bad += 1
            continue
        out.append(struct.unpack(_BODY, body))
        good = pos
        damaged += bad
        bad = 0
    return out, good, damaged
