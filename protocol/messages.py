"""Sync messages carried in link frames (protocol.frames). Payload layouts, big-endian.

    HELLO  (1)  u16 msg_version | u32 device_id
    BATCH  (2)  u16 count | count x record (64 bytes, protocol.records)
    ACK    (3)  u32 device_id | u64 up_to_seq   every record with seq <= up_to_seq is durable
    ERROR  (4)  u16 code | utf-8 text

This is the first, unauthenticated version of the sync exchange; docs/sync-protocol.md has
the full, authenticated protocol as it grows.
"""

import struct

from protocol import records
from protocol.errors import FormatError

MSG_VERSION = 1
HELLO = 1
BATCH = 2
ACK = 3
ERROR = 4


def hello(device_id: int) -> bytes:
    return struct.pack(">HI", MSG_VERSION, device_id)


def parse_hello(p: bytes):
    if len(p) != 6:
        raise FormatError("HELLO is %d bytes, expected 6" % len(p), "bad_message")
    v, device_id = struct.unpack(">HI", p)
    if v != MSG_VERSION:
        raise FormatError("unknown message version %d" % v, "bad_version")
    return device_id


def batch(raws) -> bytes:
    return struct.pack(">H", len(raws)) + b"".join(raws)


def parse_batch(p: bytes) -> list:
    if len(p) < 2:
        raise FormatError("BATCH too short", "bad_message")
    (n,) = struct.unpack(">H", p[:2])
    if len(p) != 2 + n * records.RECORD_LEN:
        raise FormatError("BATCH length does not match its count", "bad_message")
    L = records.RECORD_LEN
    return [p[2 + i * L : 2 + (i + 1) * L] for i in range(n)]


def ack(device_id: int, up_to_seq: int) -> bytes:
    return struct.pack(">IQ", device_id, up_to_seq)


def parse_ack(p: bytes):
    if len(p) != 12:
        raise FormatError("ACK is %d bytes, expected 12" % len(p), "bad_message")
    return struct.unpack(">IQ", p)


def error(code: int, text: str) -> bytes:
    return struct.pack(">H", code) + text.encode()


def parse_error(p: bytes):
    if len(p) < 2:
        raise FormatError("ERROR too short", "bad_message")
    return struct.unpack(">H", p[:2])[0], bytes(p[2:]).decode()
