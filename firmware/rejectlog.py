"""The reject audit log: every refused code, apart from passages, in bounded space.

Records are protocol/rejectrec.py's 32 bytes, appended and synced. Two files take turns
(`rejects.0`, `rejects.1`): when the current one holds `capacity // 2` records the other is
emptied and becomes current, so the log always keeps the newest `capacity // 2` to `capacity`
rejects and never grows past `capacity`. A flood of bad codes can therefore never fill the
disk or the passage journal.
"""

from firmware import platform
from protocol import reasons, rejectrec
from protocol.errors import FormatError


class RejectLog:
    def __init__(self, directory: str, capacity: int = 20000, sync=platform.sync_file):
        self.dir = directory
        self.half = max(1, capacity // 2)
        self._sync = sync
        self._paths = (directory + "/rejects.0", directory + "/rejects.1")
        sizes = [len(platform.read_file(p, b"")) for p in self._paths]
        # the current file is the one not yet full (of two partial ones, the fuller)
        full = self.half * rejectrec.RECORD_LEN
        s0, s1 = sizes
        self._cur = 0 if s0 < full and (s1 >= full or s0 >= s1) else (1 if s1 < full else 0)
        self._count = sizes[self._cur] // rejectrec.RECORD_LEN
        self._file = None

    def record(self, now: int, reason: str, code=None, text=b"") -> None:
        """Append one reject: `code` is the parsed ride code if it parsed (else None)."""
        if code is not None:
            c = code.credential
            key_id, cid, counter = c.issuer_key_id, c.credential_id(), code.counter
        else:
            key_id = cid = counter = 0
        rec = rejectrec.encode(
            now, reasons.number(reason), key_id, cid, counter, rejectrec.text_digest(text)
        )
        if self._count >= self.half:
            self._switch()
        if self._file is None:
            self._file = open(self._paths[self._cur], "ab")
        self._file.write(rec)
        self._sync(self._file)
        self._count += 1

    def _switch(self):
        self.close()
        self._cur ^= 1
        platform.write_atomic(self._paths[self._cur], b"")
        self._count = 0

    def read(self) -> list:
        """Every record still kept, oldest first, as rejectrec.decode tuples (damaged skipped)."""
        out = []
        n = rejectrec.RECORD_LEN
        for i in (self._cur ^ 1, self._cur):
            data = platform.read_file(self._paths[i], b"")
            for pos in range(0, len(data) - n + 1, n):
                try:
                    out.append(rejectrec.decode(data[pos : pos + n]))
                except FormatError:
                    pass  # a torn last record from a power cut
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
