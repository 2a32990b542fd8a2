"""replay.log, the replay cache's file, byte for byte. Pure functions.

One entry per accepted presentation, in the append-log framing (protocol/applog.py):
    u64 cred_id | u32 counter | u32 presentation time | u32 gate time | u32 crc32(first 20)
Big-endian, 24 bytes. A reader keeps the good entries before the first bad one (a power cut
tears at most the last) and cuts the rest.
"""

import struct

from protocol.applog import Framing

_BODY = ">QIII"
ENTRY = Framing(20)
ENTRY_LEN = ENTRY.frame_len  # 24


def entry(cred_id: int, counter: int, ptime: int, gtime: int) -> bytes:
    return ENTRY.frame(struct.pack(_BODY, cred_id, counter, ptime, gtime))


def parse(data):
    """-> (entries as (cred_id, counter, presentation time, gate time), good length)."""
    bodies, good, _corrupt = ENTRY.scan(data)
    return [struct.unpack(_BODY, b) for b in bodies], good
