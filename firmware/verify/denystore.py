"""The deny-list store: a million entries or more, compact, updated by atomic versioned deltas.

In memory: one array of u64 keys (protocol/denylist.py: `account_id << 24 | cred_no`,
cred_no 0 = the whole account), 8 bytes an entry, in one section per issuer (`sections`:
(issuer, start, end), ascending by issuer; the keys of a section ascending). A code is checked
in its own issuer's section only: issuer A's account 42 is not issuer B's. A lookup is one
binary search in that section (two when the account has credential entries): about 0.7 us on
CPython for a million entries.

Lists from before the issuer (deny-list formats 1 and 2, a deny.base "FGDS"/"FGDU") are
migrated, not dropped: a gate that held one keeps its keys in the ANY_ISSUER section, which
denies at every issuer (as those lists always did), at its version, until a format-3
snapshot replaces the whole list. Until then a format-3 delta is refused (deny_needs_issuer:
it cannot say which issuer the old keys were), and so is any format-1/2 list that arrives.

On disk, in the store's directory (layouts in protocol/denyfile.py), through the storage
object `fs` (firmware/storage/fs.py):
    deny.base   the keys of one version
    deny.log    the deltas since, as received (signed)

A delta is appended to deny.log and synced before it takes effect in memory, so a power cut
mid-apply leaves a torn last record (its CRC fails, it is cut at the next start: the old
version) or a whole one (replayed at start: the new version), never a mix. A snapshot, and
every `compact_after` deltas, rewrite deny.base with write_atomic and then empty the log;
records the new base already covers are skipped by version at the next start. An append that
fails half way (a full disk) is cut back off at once, so the next delta is not hidden behind a
torn record.

A deny.base that fails its check is never taken for an empty list (that would fail open):
the store is `damaged` (status "load_error", the device's `deny_damaged` alarm), the validator
refuses every code with `deny_list_damaged`, and the version reported at sync is 0, so the next
sync brings a snapshot, whose install clears the damage.
"""

import sys
from array import array

from firmware.storage.fs import DISK
from firmware.verify.truststore import ListError, ListKeys
from protocol import denyfile, denylist
from protocol.errors import FormatError

try:
    from bisect import bisect_left
except ImportError:  # MicroPython has no bisect

    def bisect_left(a, x, lo=0, hi=None):
        if hi is None:
            hi = len(a)
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo


_IS_MPY = sys.implementation.name == "micropython"


def _copy_range(out, keys, view, lo, hi):
    if hi > lo:
        if view is not None:
            out.frombytes(view[lo * 8 : hi * 8])
        else:
            out.extend(keys[lo:hi])


def merge(keys, adds, removes):
    """A new sorted array: `keys` without `removes`, with `adds` (both ascending)."""
    view = None if _IS_MPY else memoryview(keys).cast("B")
    if removes:
        out = array("Q")
        prev = 0
        n = len(keys)
        for k in removes:
            i = bisect_left(keys, k, prev)
            if i < n and keys[i] == k:
                _copy_range(out, keys, view, prev, i)
                prev = i + 1
        _copy_range(out, keys, view, prev, n)
        keys = out
        if view is not None:
            view.release()
            view = memoryview(keys).cast("B")
    if adds:
        out = array("Q")
        prev = 0
        n = len(keys)
        for k in adds:
            i = bisect_left(keys, k, prev)
            _copy_range(out, keys, view, prev, i)
            prev = i
            if i < n and keys[i] == k:
                continue  # already denied
            out.append(k)
        _copy_range(out, keys, view, prev, n)
        keys = out
    if view is not None:
        view.release()
    return keys


def merge_sections(keys, sections, adds, removes):
    """(new keys, new sections): each issuer's section merged with the delta's adds and
    removes for it ({issuer: ascending keys}); empty sections are dropped."""
    issuers = sorted(set(s[0] for s in sections) | set(adds) | set(removes))
    if len(issuers) == 1 and len(sections) <= 1:
        i = issuers[0]  # one issuer (the common case): no copy of the old section
        new = merge(keys, adds.get(i, ()), removes.get(i, ()))
        return new, ([(i, 0, len(new))] if len(new) else [])
    out = array("Q")
    secs = []
    for i in issuers:
        old = array("Q")
        for s in sections:
            if s[0] == i:
                old = keys[s[1] : s[2]]
        part = merge(old, adds.get(i, ()), removes.get(i, ()))
        if len(part):
            secs.append((i, len(out), len(out) + len(part)))
            out.extend(part)
    return out, secs


def sections_of(entries):
    """(keys, sections) of deny entries (protocol.denylist.entry ints)."""
    from protocol import denybuild  # (tests and simulators: a gate never builds a list)

    keys = array("Q")
    secs = []
    for i, v in sorted(denybuild.by_issuer(entries).items()):
        secs.append((i, len(keys), len(keys) + len(v)))
        keys.extend(array("Q", v))
    return keys, secs


class DenyStore:
    def __init__(
        self,
        directory=None,
        roots=None,
        verifier=None,
        capacity: int = 4_000_000,
        compact_after: int = 32,
        fs=DISK,
        readonly: bool = False,
    ):
        """readonly: load `directory` but never write it; installs then stay in memory."""
        self.dir = directory
        self.lists = ListKeys.of(roots)  # who signs lists (the lists role)
        self.verifier = verifier
        self.capacity = capacity
        self.compact_after = compact_after
        self.fs = fs
        self.keys = array("Q")
        self.sections = []  # [(issuer, start, end)] into keys, ascending by issuer
        self.legacy = False  # holds a list from before the issuer (ANY_ISSUER): see above
        self.version = 0
        self.issued_at = 0
        self.valid_until = 0  # of the list installed last (0: none, deny-list format 1)
        self.log_records = 0
        self.torn_bytes_cut = 0
        self.load_error = ""
        self.damaged = False  # deny.base failed its check: no code can be checked (fail closed)
        self._cut_to = None  # deny.log's length before a failed append, until it is cut
        if directory:
            self.base_path = directory + "/deny.base"
            self.log_path = directory + "/deny.log"
            self._load(readonly)
            if readonly:
                self.dir = None

    @classmethod
    def from_keys(cls, entries, version: int = 1):
        """An in-memory store holding `entries` (protocol.denylist.entry: issuer << 64 | key),
        for tests and simulators."""
        store = cls()
        store.keys, store.sections = sections_of(entries)
        store.version = version
        return store

    def __len__(self) -> int:
        return len(self.keys)

    def entries(self) -> list:
        """Every entry (protocol.denylist.entry: issuer << 64 | key), ascending."""
        out = []
        for i, lo, hi in self.sections:
            for j in range(lo, hi):
                out.append(denylist.entry(i, self._key(j)))
        return out

    def _key(self, i: int) -> int:
        return self.keys[i]

    def close(self) -> None:
        """Nothing held open (the in-file store closes its file here)."""

    def _section(self, issuer):
        """(start, end) of `issuer`'s section, or None."""
        for s in self.sections:
            if s[0] == issuer:
                return s[1], s[2]
        return None

    def is_denied(self, issuer: int, account_id: int, cred_no: int) -> bool:
        """Is account `account_id` (or its credential `cred_no`) of issuer key `issuer`
        denied? Only `issuer`'s section counts (and the legacy one, which denies at every
        issuer)."""
        for scope in (issuer, denylist.ANY_ISSUER):
            r = self._section(scope)
            if r is not None and self._denied_in(r[0], r[1], account_id, cred_no):
                return True
        return False

    def _denied_in(self, lo, hi, account_id, cred_no) -> bool:
        a = account_id << 24  # the account's key, then (c) the credential's
        i, k = self._lower_bound(a, lo, hi)
        if k is None:
            return False
        if k == a:
            return True  # the whole account
        c = a | cred_no
        if k > c:
            return False
        if k == c:
            return True
        return self._lower_bound(c, i, hi)[1] == c

    def _lower_bound(self, key: int, lo: int, hi: int):
        """(i, key at i) for the first entry >= key in [lo, hi); (hi, None) if none."""
        keys = self.keys
        i = bisect_left(keys, key, lo, hi)
        return (i, keys[i]) if i < hi else (i, None)

    # --- installing lists ------------------------------------------------------------------

    def install(self, blob) -> bool:
        """Check and apply a signed snapshot or delta. True if the list changed.

        Raises ListError: list_malformed, deny_needs_issuer (a list of format 1 or 2, or a
        delta while the legacy list is held), the lists role's refusals (list_below_threshold,
        list_wrong_role, list_unknown_key, list_bad_signature: truststore.ListKeys),
        list_downgrade (a snapshot older than the installed version), deny_gap (a delta that
        does not start at the installed version: fetch a snapshot), deny_full (over capacity).
        """
        dl = self._check(blob)
        if dl is None:
            return False
        if dl.kind == denylist.KIND_SNAPSHOT:
            n = 0
            for part in dl.adds.values():
                n += len(part)
            if n > self.capacity:
                raise self._full(n)
            self._snapshot(dl)
        else:
            self._apply_delta(dl)
        return True

    def _check(self, blob):
        """The parsed list if it is signed, newer and applies here; None if already applied."""
        try:
            dl = denylist.parse(blob)
        except FormatError as e:
            raise ListError(str(e), "list_malformed") from None
        if dl.legacy:
            raise ListError(
                "deny list of format %d has no issuer: publish format 3" % bytes(blob)[4],
                "deny_needs_issuer",
            )
        self.lists.check(self.verifier, dl.signed_bytes(), dl.sigs, "deny list")
        if self.legacy and dl.kind != denylist.KIND_SNAPSHOT and dl.to_version > self.version:
            raise ListError(
                "the installed deny list has no issuer: only a format-3 snapshot replaces it",
                "deny_needs_issuer",
            )
        if self.damaged and dl.kind != denylist.KIND_SNAPSHOT:
            raise ListError("deny.base is damaged: only a snapshot can restore it", "deny_gap")
        if dl.to_version <= self.version:
            if dl.kind == denylist.KIND_SNAPSHOT and dl.to_version < self.version:
                raise ListError(
                    "deny list snapshot %d is older than installed %d"
                    % (dl.to_version, self.version),
                    "list_downgrade",
                )
            return None  # already applied
        if dl.kind != denylist.KIND_SNAPSHOT and dl.from_version != self.version:
            raise ListError(
                "deny list delta %d->%d does not follow installed version %d"
                % (dl.from_version, dl.to_version, self.version),
                "deny_gap",
            )
        return dl

    def _snapshot(self, dl):
        """Install a checked snapshot: its sections' keys one after the other (one issuer's:
        the parsed array itself, no copy)."""
        parts = sorted(dl.adds.items())
        if len(parts) == 1:
            keys = parts[0][1]
            secs = [(parts[0][0], 0, len(keys))]
        else:
            keys = array("Q")
            secs = []
            for i, part in parts:
                secs.append((i, len(keys), len(keys) + len(part)))
                keys.extend(part)
        self._replace(keys, secs, dl.to_version, dl.issued_at, dl.valid_until)

    def _apply_delta(self, dl):
        new, secs = merge_sections(self.keys, self.sections, dl.adds, dl.removes)
        if len(new) > self.capacity:
            raise self._full(len(new))
        if self.dir:
            self._append_log(dl.raw)
        self.keys = new
        self.sections = secs
        self.version = dl.to_version
        self.issued_at = dl.issued_at
        self.valid_until = dl.valid_until
        if self.dir and self.log_records >= self.compact_after:
            self.compact()

    def _full(self, n):
        return ListError(
            "deny list would hold %d entries, capacity %d" % (n, self.capacity), "deny_full"
        )

    def _replace(self, keys, sections, version, issued_at, valid_until=0):
        if self.dir:
            self._write_base(keys, sections, version, issued_at, valid_until)
            self.fs.write_atomic(self.log_path, b"")
            self.log_records = 0
            self._cut_to = None
        self.keys = keys
        self.sections = sections
        self.legacy = self._section(denylist.ANY_ISSUER) is not None
        self.version = version
        self.issued_at = issued_at
        self.valid_until = valid_until
        self.damaged = False
        self.load_error = ""

    def compact(self) -> None:
        """Fold the delta log into the base file (atomically), then empty the log."""
        if self.dir:
            self._replace(self.keys, self.sections, self.version, self.issued_at, self.valid_until)

    # --- disk ------------------------------------------------------------------------------

    def _write_base(self, keys, sections, version, issued_at, valid_until=0):
        data = denyfile.base(keys, sections, version, issued_at, valid_until)
        self.fs.write_atomic(self.base_path, data)

    def _append_log(self, blob):
        fs = self.fs
        if self._cut_to is not None:  # a half record a failed append left: cut it first
            if fs.path_exists(self.log_path):
                fs.truncate_file(self.log_path, self._cut_to)
            self._cut_to = None
        size = fs.file_size(self.log_path) if fs.path_exists(self.log_path) else 0
        try:
            fs.append(self.log_path, denyfile.log_record(blob))
        except OSError:
            self._cut_to = size
            try:
                fs.truncate_file(self.log_path, size)  # the half record goes (no new space)
                self._cut_to = None
            except OSError:
                pass  # (MicroPython cuts by rewriting: it may need room) cut next time
            raise
        self.log_records += 1

    def _load(self, readonly):
        data = self.fs.read_file(self.base_path)
        if data is not None:
            found = denyfile.parse_base(data)
            if found is None:
                # Version 0 (the next sync fetches a snapshot), damaged: fail closed.
                self.load_error = "deny.base is damaged"
                self.damaged = True
                return
            self.version, self.issued_at, body, self.valid_until, self.sections, _ = found
            self.keys = denyfile.keys_from_le(body)
            self.legacy = self._section(denylist.ANY_ISSUER) is not None
        deltas, log, good = self._read_log()
        for dl in deltas:
            if self._follows(dl):
                self.keys, self.sections = merge_sections(
                    self.keys, self.sections, dl.adds, dl.removes
                )
                self.version = dl.to_version
                self.issued_at = dl.issued_at
                self.valid_until = dl.valid_until
            self.log_records += 1
        if good != len(log) and not readonly:
            try:
                self.fs.truncate_file(self.log_path, good)  # no new space on CPython
            except OSError:
                self._cut_to = good  # no room (a full disk): cut before the next append

    def _read_log(self):
        """(the deltas deny.log holds, in order; its bytes; the length of its whole records).
        A torn tail (a power cut mid-append: that delta never took effect) is counted."""
        log = self.fs.read_file(self.log_path) or b""
        blobs, good = denyfile.parse_log(log) if log else ([], 0)
        self.torn_bytes_cut = len(log) - good
        # checked when installed; the CRC vouches for the bytes
        return [denylist.parse(blob) for blob in blobs], log, good

    def _follows(self, dl) -> bool:
        """The logged delta applies to the version loaded so far."""
        if dl.legacy != self.legacy:
            return False  # (a legacy delta, logged before the upgrade, on the legacy list only)
        return dl.to_version > self.version and dl.from_version == self.version

    def stale(self, now: int) -> bool:
        """The installed list is past its valid_until (never, for a list without one)."""
        return bool(self.valid_until) and now >= self.valid_until

    def status(self) -> dict:
        return {
            "version": self.version,
            "issued_at": self.issued_at,
            "valid_until": self.valid_until,
            "entries": len(self.keys),
            "issuers": [s[0] for s in self.sections if s[0] != denylist.ANY_ISSUER],
            "legacy": self.legacy,
            "capacity": self.capacity,
            "log_records": self.log_records,
            "torn_bytes_cut": self.torn_bytes_cut,
            "load_error": self.load_error,
            "damaged": self.damaged,
        }
