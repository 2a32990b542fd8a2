"""The plate store of a parking lane that reads plates: plate key -> (issuer, credential id).

In memory: three arrays, keys ascending, their issuer key ids and their credential ids (18
bytes an entry; a car park's list of 100,000 bound plates is 1.8 MB on a Linux gate). A lookup
is one binary search. The passage is charged to that issuer's account (the record carries the
issuer: firmware/gate/plates.py).
On disk (through the storage object `fs`): `plates.bin` (protocol/platelist.py), the whole
list of the installed version, rewritten atomically at every install: a power cut leaves the
old version or the new one. A plates.bin that fails its check is `damaged`: the lane reads no
plate (every vehicle scans its code) and reports version 0, so the next sync brings a snapshot.

Lists are checked as the deny list is: strict parse, the lists role's threshold of signatures
(truststore.ListKeys), no downgrade, a delta only on the version it follows (`plate_gap`). A
list of format 1 (no issuer) is refused (`plate_needs_issuer`); a plates.bin written before the
issuer ("FGPS") is read as issuer 0's (what those gates charged) and marked `legacy` until a
format-2 snapshot replaces it (a delta is refused with plate_needs_issuer till then).

A hashed list needs the operator's hash key (`hash_key`, the gate config's plates.hash_key);
without it the lane reads no plate. The list's hash_key_id says which key the operator used:
a lane whose key is not that one finds no plate (the operator rotates keys by binding every
plate again under the new one, publishing a snapshot, then configuring the lanes).
"""

from array import array

from firmware.storage.fs import DISK
from firmware.verify.denystore import bisect_left
from firmware.verify.truststore import ListError, ListKeys
from protocol import platelist
from protocol.errors import FormatError


class PlateStore:
    def __init__(self, path=None, roots=None, verifier=None, hash_key=None, fs=DISK):
        self.path = path
        self.lists = ListKeys.of(roots)  # who signs lists (the lists role)
        self.verifier = verifier
        self.hash_key = hash_key  # bytes of the operator's plate hash key, or None
        self.fs = fs
        self.keys = array("Q")
        self.creds = array("Q")
        self.issuers = array("H")
        self.legacy = False  # holds a plates.bin from before the issuer (issuer 0's)
        self.version = 0
        self.issued_at = 0
        self.scheme = platelist.SCHEME_PLAIN
        self.hash_key_id = 0
        self.damaged = False
        if path:
            data = fs.read_file(path)
            if data is not None:
                found = platelist.parse_store_file(data)
                if found is None:
                    self.damaged = True
                else:
                    self.version, self.issued_at, self.scheme, self.hash_key_id, entries = found[:5]
                    self.legacy = found[5]
                    self._set(entries)

    def _set(self, entries) -> None:
        self.keys = array("Q", [e[0] for e in entries])
        self.issuers = array("H", [e[1] for e in entries])
        self.creds = array("Q", [e[2] for e in entries])

    def __len__(self) -> int:
        return len(self.keys)

    def key_of(self, plate: str):
        """The installed scheme's key of a plate as read, or None (no key can be made)."""
        return platelist.plate_key(plate, self.scheme, self.hash_key)

    def lookup(self, plate: str):
        """-> (plate key or None, (issuer, credential id) or None) of a plate as read."""
        key = self.key_of(plate)
        if key is None or self.damaged:
            return key, None
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return key, (self.issuers[i], self.creds[i])
        return key, None

    def install(self, blob) -> bool:
        """Check and apply a signed snapshot or delta; True if the list changed. ListError:
        list_malformed, plate_needs_issuer, the lists role's refusals (truststore.ListKeys),
        list_downgrade, plate_gap."""
        try:
            pl = platelist.parse(blob)
        except FormatError as e:
            raise ListError(str(e), "list_malformed") from None
        if pl.legacy:
            raise ListError("plate list of format 1 has no issuer", "plate_needs_issuer")
        self.lists.check(self.verifier, pl.signed_bytes(), pl.sigs, "plate list")
        if self.legacy and pl.kind != platelist.KIND_SNAPSHOT and pl.to_version > self.version:
            raise ListError(
                "the installed plate list has no issuer: only a format-2 snapshot replaces it",
                "plate_needs_issuer",
            )
        if pl.to_version <= self.version and not self.damaged:
            if pl.kind == platelist.KIND_SNAPSHOT and pl.to_version < self.version:
                raise ListError(
                    "plate list %d is older than installed %d" % (pl.to_version, self.version),
                    "list_downgrade",
                )
            return False
        if pl.kind == platelist.KIND_SNAPSHOT:
            entries = pl.adds
        else:
            if self.damaged or pl.from_version != self.version:
                raise ListError(
                    "plate delta %d->%d does not follow installed version %d"
                    % (pl.from_version, pl.to_version, self.version),
                    "plate_gap",
                )
            if (pl.scheme, pl.hash_key_id) != (self.scheme, self.hash_key_id):
                raise ListError("a plate delta cannot change the key scheme", "plate_gap")
            table = {}
            for i in range(len(self.keys)):
                table[self.keys[i]] = (self.issuers[i], self.creds[i])
            for k in pl.removes:
                table.pop(k, None)
            for k, issuer, c in pl.adds:
                table[k] = (issuer, c)
            entries = sorted((k, ic[0], ic[1]) for k, ic in table.items())
        if self.path:
            self.fs.write_atomic(
                self.path,
                platelist.store_file(
                    pl.to_version, pl.issued_at, pl.scheme, pl.hash_key_id, entries
                ),
            )
        self._set(entries)
        self.legacy = False
        self.version, self.issued_at = pl.to_version, pl.issued_at
        self.scheme, self.hash_key_id = pl.scheme, pl.hash_key_id
        self.damaged = False
        return True

    # as a sync sink (firmware/sync/client.py): what it holds, and a fetched blob
    def synced(self) -> int:
        return 0 if self.damaged else self.version

    def apply(self, _version: int, data) -> None:
        self.install(data)

    def status(self) -> dict:
        return {
            "version": self.version,
            "entries": len(self.keys),
            "scheme": "hmac" if self.scheme == platelist.SCHEME_HMAC else "plain",
            "hash_key": bool(self.hash_key) or self.scheme == platelist.SCHEME_PLAIN,
            "damaged": self.damaged,
            "legacy": self.legacy,
        }


def open_store(state_dir, roots, verifier, cfg, fs=DISK):
    """The lane's store in `state_dir` with the hash key of gate config `cfg`."""
    from firmware import settings

    key = settings.value(cfg, "plates.hash_key")
    return PlateStore(
        state_dir + "/plates.bin", roots, verifier, bytes.fromhex(key) if key else None, fs
    )
