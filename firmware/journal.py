"""The passage journal: append-only, CRC-framed, hash-chained, durable before the barrier opens.

On disk (`<dir>/journal.bin`), a sequence of fixed-size entries:

    0xA5 | record (64 bytes, protocol.records) | crc32(record) u32 big-endian

`<dir>/journal.meta` (written atomically) holds the seq and hash of the last record trimmed, so
`seq` keeps rising and the chain stays checkable after every acknowledged record is gone.

Opening the journal scans it: a torn tail (a partial or corrupt last entry, as a power cut
leaves) is cut; nothing before it is lost. A corrupt entry in the middle is an error, not
something to paper over.
"""

import struct
from binascii import crc32

from firmware import platform
from protocol import records
from protocol.errors import FaregateError

ENTRY_MARK = 0xA5
ENTRY_LEN = 1 + records.RECORD_LEN + 4


class JournalError(FaregateError):
    reason = "journal_error"


class JournalFull(JournalError):
    reason = "journal_full"


def _entry(raw: bytes) -> bytes:
    return bytes((ENTRY_MARK,)) + raw + struct.pack(">I", crc32(raw) & 0xFFFFFFFF)


class Journal:
    def __init__(
        self, directory: str, device_id: int, capacity: int = 100000, sync=platform.sync_file
    ):
        self.dir = directory
        self.device_id = device_id
        self.capacity = capacity
        self._sync = sync
        self.path = directory + "/journal.bin"
        self.meta_path = directory + "/journal.meta"
        self.torn_bytes_cut = 0
        self._open()

    # -- opening -------------------------------------------------------------------------
    def _open(self):
        meta = platform.read_file(self.meta_path)
        if meta:
            self.trimmed_seq = struct.unpack(">Q", meta[:8])[0]
            self.trimmed_hash = meta[8:24]
        else:
            self.trimmed_seq = 0
            self.trimmed_hash = records.ZERO_HASH
        data = platform.read_file(self.path, b"")
        raws = []
        pos = 0
        n = len(data)
        while pos + ENTRY_LEN <= n:
            raw = data[pos + 1 : pos + 1 + records.RECORD_LEN]
            (c,) = struct.unpack(">I", data[pos + 1 + records.RECORD_LEN : pos + ENTRY_LEN])
            if data[pos] != ENTRY_MARK or c != crc32(raw) & 0xFFFFFFFF:
                break
            raws.append(raw)
            pos += ENTRY_LEN
        if pos < n:
            if pos + ENTRY_LEN < n:
                raise JournalError(
                    "journal %s is corrupt at byte %d (not at the tail)" % (self.path, pos)
                )
            self.torn_bytes_cut = n - pos
            with open(self.path, "wb") as f:
                f.write(data[:pos])
                self._sync(f)
        self._raws = raws
        if raws:
            last = records.decode(raws[-1])
            self.last_seq = last.seq
            self.last_hash = records.record_hash(raws[-1])
        else:
            self.last_seq = self.trimmed_seq
            self.last_hash = self.trimmed_hash
        self._f = open(self.path, "ab")

    # -- writing -------------------------------------------------------------------------
    def append(self, rec: records.Record) -> records.Record:
        """Mint seq and prev_hash for `rec`, write it and make it durable. Returns it."""
        if len(self._raws) >= self.capacity:
            raise JournalFull("journal holds %d unacknowledged records (capacity)" % self.capacity)
        rec.device_id = self.device_id
        rec.seq = self.last_seq + 1
        rec.prev_hash = self.last_hash
        raw = rec.to_bytes()
        self._f.write(_entry(raw))
        self._sync(self._f)
        self._raws.append(raw)
        self.last_seq = rec.seq
        self.last_hash = records.record_hash(raw)
        return rec

    # -- sync ----------------------------------------------------------------------------
    def pending(self, limit: int = 1000) -> list:
        """Raw records not yet acknowledged, oldest first."""
        return self._raws[:limit]

    def pending_count(self) -> int:
        return len(self._raws)

    def ack(self, up_to_seq: int) -> int:
        """The back office durably holds every record with seq <= up_to_seq: drop them."""
        keep = [r for r in self._raws if records.decode(r).seq > up_to_seq]
        dropped = len(self._raws) - len(keep)
        if not dropped:
            return 0
        last_dropped = self._raws[dropped - 1]
        meta = struct.pack(">Q", records.decode(last_dropped).seq) + records.record_hash(
            last_dropped
        )
        platform.write_atomic(self.meta_path, meta)
        self._f.close()
        platform.write_atomic(self.path, b"".join(_entry(r) for r in keep))
        self.trimmed_seq = records.decode(last_dropped).seq
        self.trimmed_hash = meta[8:24]
        self._raws = keep
        self._f = open(self.path, "ab")
        return dropped

    def close(self):
        self._f.close()
