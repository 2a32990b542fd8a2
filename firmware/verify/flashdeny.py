"""The deny-list store of MCU gates: deny.base searched in place in flash, never loaded.

Same files, same signed lists and same interface as firmware/verify/denystore.py (the in-RAM
sorted array Linux gates keep); what differs is where the keys live:

- a lookup is a binary search over the code's issuer's section of deny.base's fixed-size
  entries (8-byte keys, ascending within a section, key i at byte head length + 8 * i:
  protocol/denyfile.py). A small index of every `step`-th key (at most `index_keys` of them,
  the deny.index_keys setting) stays in RAM and narrows the search to one block, which takes
  a few 8-byte reads and one read of at most `chunk` bytes;
- a delta (or a snapshot) is applied by streaming the old base and the change into
  deny.base.tmp, `chunk` bytes at a time, then renaming it over deny.base. RAM: one read
  buffer, one write buffer and the delta itself, whatever the list's size. A power cut before
  the rename leaves the old version, after it the new one: never a mix. deny.log stays empty
  (a log written by the in-RAM store is folded in at open).
"""

from array import array
from binascii import crc32

from firmware import settings
from firmware.storage.fs import DISK, IO_CHUNK
from firmware.verify.denystore import DenyStore, bisect_left
from protocol import denyfile, denylist
from protocol.denyfile import HEAD_LEN_FRESH

INDEX_KEYS = settings.default("deny.index_keys")


class FlashDenyStore(DenyStore):
    def __init__(
        self,
        directory,
        roots=None,
        verifier=None,
        capacity: int = 4_000_000,
        compact_after: int = 32,
        fs=DISK,
        readonly: bool = False,
        index_keys: int = INDEX_KEYS,
        chunk: int = IO_CHUNK,
    ):
        self.index_keys = index_keys
        self.block = max(1, chunk // 8)  # keys per read
        self.count = 0
        self.step = 1
        self.index = array("Q")
        self._f = None
        self._head_len = denyfile.HEAD_LEN  # of the open deny.base
        self._readonly = readonly
        super().__init__(directory, roots, verifier, capacity, compact_after, fs, readonly)

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    # --- lookups ---------------------------------------------------------------------------

    def _key(self, i: int) -> int:
        return self._keys_at(i, 1)[0]

    def _keys_at(self, i: int, n: int):
        f = self._f
        f.seek(self._head_len + 8 * i)
        return denyfile.keys_from_le(f.read(8 * n))

    def _lower_bound(self, key: int, lo: int, hi: int):
        """(i, key at i) for the first entry >= key in [lo, hi) (one issuer's section, or
        part of it); (hi, None) if none."""
        if lo >= hi:
            return hi, None
        end = hi
        step = self.step
        if self.index:
            first = -(-lo // step)  # the index entries inside [lo, end)
            b = bisect_left(self.index, key, first, min(len(self.index), -(-end // step)))
            if b > first:
                lo = max(lo, (b - 1) * step)  # index[b-1] < key <= index[b]
            hi = min(hi, b * step + 1)
        while hi - lo > self.block:
            mid = (lo + hi) // 2
            if self._keys_at(mid, 1)[0] < key:
                lo = mid + 1
            else:
                hi = mid
        keys = self._keys_at(lo, hi - lo)
        j = bisect_left(keys, key)
        if j < len(keys):
            return lo + j, keys[j]
        return hi, (self._keys_at(hi, 1)[0] if hi < end else None)

    # --- applying lists ---------------------------------------------------------------------

    def _snapshot(self, dl):
        self._rewrite(False, dl.adds, {}, dl.to_version, dl.issued_at, dl.valid_until)

    def _apply_delta(self, dl):
        self._rewrite(True, dl.adds, dl.removes, dl.to_version, dl.issued_at, dl.valid_until)

    def compact(self) -> None:
        pass  # deny.base is rewritten by every change: there is nothing to fold

    def _old_blocks(self, i, end):
        """The installed keys in [i, end), `block` at a time."""
        while i < end:
            n = min(self.block, end - i)
            yield self._keys_at(i, n)
            i += n

    def _merged(self, old, adds, removes):
        """The installed keys of one section (old: its (start, end), or None) without
        `removes`, with `adds`: ascending."""
        i = j = 0  # the next add, the next remove
        n, m = len(adds), len(removes)
        for block in self._old_blocks(old[0], old[1]) if old else ():
            for k in block:
                while i < n and adds[i] < k:
                    yield adds[i]
                    i += 1
                while j < m and removes[j] < k:
                    j += 1
                if i < n and adds[i] == k:
                    i += 1  # denied before and added again: once
                elif j < m and removes[j] == k:
                    continue
                yield k
        while i < n:
            yield adds[i]
            i += 1

    def _rewrite(self, keep_old, adds, removes, version, issued_at, valid_until=0):
        """Stream the new deny.base into place (the storage object's write_atomic_with):
        section by section, each issuer's old keys merged with its adds and removes."""
        if not self.dir:
            raise ValueError("a FlashDenyStore needs its directory")
        old = {}
        for i, lo, hi in self.sections if keep_old else ():
            old[i] = (lo, hi)
        issuers = sorted(set(old) | set(adds) | set(removes))
        none = array("Q")

        def fill(out):
            count = 0
            crc = 0
            secs = []
            out.write(bytes(HEAD_LEN_FRESH + denyfile.SECTION_LEN * len(issuers)))
            for i in issuers:
                start = count
                buf = array("Q")
                for k in self._merged(old.get(i), adds.get(i, none), removes.get(i, none)):
                    buf.append(k)
                    if len(buf) == self.block:
                        count, crc = self._flush(out, buf, count, crc)
                        buf = array("Q")
                count, crc = self._flush(out, buf, count, crc)
                secs.append((i, start, count))
            if count > self.capacity:
                raise self._full(count)
            out.seek(0)
            crc = denyfile.crc_of(crc, denyfile.table(secs))
            out.write(denyfile.head(version, issued_at, crc, valid_until, secs))
            self.close()  # the old base is read to the end

        try:
            self.fs.write_atomic_with(self.base_path, fill)
        except BaseException:
            self._open_base()  # the old version, as it was
            raise
        if self.log_records or self.fs.path_exists(self.log_path):
            self.fs.write_atomic(self.log_path, b"")
            self.log_records = 0
        self.version = version
        self.issued_at = issued_at
        self.valid_until = valid_until
        self.damaged = False
        self.load_error = ""
        self._open_base()

    def _flush(self, out, buf, count, crc):
        if not len(buf):
            return count, crc
        data = denyfile.keys_to_le(buf)
        out.write(data)
        return count + len(buf), crc32(data, crc)

    # --- opening ----------------------------------------------------------------------------

    def _load(self, readonly):
        if self._open_base() is False:
            self.load_error = "deny.base is damaged"
            self.damaged = True  # fail closed (firmware/verify/denystore.py)
            self.version = self.issued_at = self.count = self.valid_until = 0
            self.close()
            return
        deltas, log, _good = self._read_log()
        for dl in deltas:
            if self._follows(dl):
                if readonly:
                    self.load_error = "deny.log not folded in (read-only)"
                    break
                self._apply_delta(dl)  # rewrites deny.base and empties the log
        if log and not readonly and self.fs.path_exists(self.log_path):
            self.fs.write_atomic(self.log_path, b"")

    def _open_base(self):
        """Open deny.base, check its CRC in one streaming pass and build the index.
        None: no base (empty store); False: damaged."""
        self.close()
        self.count = 0
        self.sections = []
        self.index = array("Q")
        try:
            f = self.fs.open_file(self.base_path, "rb")
        except OSError:
            return None
        first = f.read(HEAD_LEN_FRESH)
        n = denyfile.head_size(first)
        if n > len(first):
            first += f.read(n - len(first))
        found = denyfile.parse_head(first) if n else None
        if found is None:
            f.close()
            return False
        version, issued_at, count, want, valid_until, head_len, sections, table = found
        f.seek(head_len)
        self._head_len = head_len
        self._f = f
        self.count = count
        self.step = max(self.block, -(-count // self.index_keys) if self.index_keys else count)
        crc = 0
        index = array("Q")
        i = 0
        while i < count:
            data = f.read(8 * min(self.block, count - i))
            if len(data) % 8 or not data:
                return False
            crc = crc32(data, crc)
            keys = denyfile.keys_from_le(data)
            j = (-i) % self.step  # the first multiple of step in this block
            while self.index_keys and j < len(keys):
                index.append(keys[j])
                j += self.step
            i += len(keys)
        if denyfile.crc_of(crc, table) != want or f.read(1):
            return False
        self.version, self.issued_at, self.valid_until = version, issued_at, valid_until
        self.sections = sections
        self.legacy = self._section(denylist.ANY_ISSUER) is not None
        self.index = index
        return True

    def status(self) -> dict:
        out = DenyStore.status(self)
        out["entries"] = self.count
        out["backend"] = "file"
        out["index_keys"] = len(self.index)
        return out
