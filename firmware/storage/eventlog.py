"""The gate's service log: who did what over the console, and what was refused.

One JSON object per line in `<dir>/service.log`: {"i": index, "t": gate time, "ev": name, ...}.
Indexes rise forever (a technician asks for "everything since 41"); the file keeps the newest
`keep` entries, compacted atomically when it reaches twice that. Each entry is synced (through
the storage object `fs`, firmware/storage/fs.py): the log is an audit trail, and service
actions are rare.
"""

import json

from firmware.storage.fs import DISK


class EventLog:
    def __init__(self, directory: str, clock, keep: int = 500, fs=DISK):
        self.path = directory + "/service.log"
        self.fs = fs
        self.clock = clock
        self.keep = keep
        self._entries = []
        data = fs.read_file(self.path, b"")
        for line in data.split(b"\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line after a power cut, or an empty one
            if isinstance(entry, dict) and isinstance(entry.get("i"), int):
                self._entries.append(entry)
        self.next_index = self._entries[-1]["i"] + 1 if self._entries else 1
        self._entries = self._entries[-keep:]
        self._lines = len(self._entries)

    def add(self, event: str, fields=None) -> dict:
        entry = {"i": self.next_index, "t": self.clock.now(), "ev": event}
        if fields:
            for k in fields:
                entry[k] = fields[k]
        self.next_index += 1
        self._entries.append(entry)
        if len(self._entries) > self.keep:
            self._entries = self._entries[-self.keep :]
        try:
            if self._lines >= 2 * self.keep:
                self.fs.write_atomic(self.path, self._dump())
                self._lines = len(self._entries)
            else:
                self.fs.append(self.path, json.dumps(entry).encode() + b"\n")
                self._lines += 1
        except OSError:
            pass  # a full disk must not stop the console; the entry stays in memory
        return entry

    def _dump(self) -> bytes:
        return b"".join(json.dumps(e).encode() + b"\n" for e in self._entries)

    def since(self, first: int, limit: int) -> list:
        return [e for e in self._entries if e["i"] >= first][:limit]
