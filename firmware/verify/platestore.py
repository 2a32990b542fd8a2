"""The plate store of a parking lane that reads plates: plate key -> credential id.

In memory: two arrays, keys ascending and their credential ids (16 bytes an entry; a car
park's list of 100,000 bound plates is 1.6 MB on a Linux gate). A lookup is one binary search.
On disk (through the storage object `fs`): `plates.bin` (protocol/platelist.py), the whole
list of the installed version, rewritten atomically at every install: a power cut leaves the
old version or the new one. A plates.bin that fails its check is `damaged`: the lane reads no
plate (every vehicle scans its code) and reports version 0, so the next sync brings a snapshot.

Lists are checked as the deny list is: strict parse, the operator's root signature
(truststore.check_root_signature), no downgrade, a delta only on the version it follows
(`plate_gap`). A hashed list needs the operator's hash key (`hash_key`, the gate config's
plates.hash_key); without it the lane reads no plate. The list's hash_key_id says which key
the operator used: a lane whose key is not that one finds no plate (the operator rotates keys
by binding every plate again under the new one, publishing a snapshot, then configuring the
lanes).
"""

from array import array

from firmware.storage.fs import DISK
from firmware.verify.denystore import bisect_left
from firmware.verify.truststore import ListError, check_root_signature
from protocol import platelist
from protocol.errors import FormatError


class PlateStore:
    def __init__(self, path=None, roots=None, verifier=None, hash_key=None, fs=DISK):
        self.path = path
        self.roots = dict(roots or {})
        self.verifier = verifier
        self.hash_key = hash_key  # bytes of the operator's plate hash key, or None
        self.fs = fs
        self.keys = array("Q")
        self.creds = array("Q")
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
                    self.version, self.issued_at, self.scheme, self.hash_key_id, pairs = found
                    self._set(pairs)

    def _set(self, pairs) -> None:
        self.keys = array("Q", [k for k, _c in pairs])
        self.creds = array("Q", [c for _k, c in pairs])

    def __len__(self) -> int:
        return len(self.keys)

    def key_of(self, plate: str):
        """The installed scheme's key of a plate as read, or None (no key can be made)."""
        return platelist.plate_key(plate, self.scheme, self.hash_key)

    def lookup(self, plate: str):
        """-> (plate key or None, credential id or None) of a plate as read."""
        key = self.key_of(plate)
        if key is None or self.damaged:
            return key, None
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return key, self.creds[i]
        return key, None

    def install(self, blob) -> bool:
        """Check and apply a signed snapshot or delta; True if the list changed. ListError:
        list_malformed, list_unknown_root, list_bad_signature, list_downgrade, plate_gap."""
        try:
            pl = platelist.parse(blob)
        except FormatError as e:
            raise ListError(str(e), "list_malformed") from None
        check_root_signature(self.roots, self.verifier, pl, "plate list")
        if pl.to_version <= self.version and not self.damaged:
            if pl.kind == platelist.KIND_SNAPSHOT and pl.to_version < self.version:
                raise ListError(
                    "plate list %d is older than installed %d" % (pl.to_version, self.version),
                    "list_downgrade",
                )
            return False
        if pl.kind == platelist.KIND_SNAPSHOT:
            pairs = pl.adds
        else:
            if self.damaged or pl.from_version != self.version:
                raise ListError(
                    "plate delta %d->%d does not follow installed version %d"
                    % (pl.from_version, pl.to_version, self.version),
                    "plate_gap",
                )
            if (pl.scheme, pl.hash_key_id) != (self.scheme, self.hash_key_id):
                raise ListError("a plate delta cannot change the key scheme", "plate_gap")
            table = dict(zip(self.keys, self.creds))
            for k in pl.removes:
                table.pop(k, None)
            for k, c in pl.adds:
                table[k] = c
            pairs = sorted(table.items())
        if self.path:
            self.fs.write_atomic(
                self.path,
                platelist.store_file(pl.to_version, pl.issued_at, pl.scheme, pl.hash_key_id, pairs),
            )
        self._set(pairs)
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
        }


def open_store(state_dir, roots, verifier, cfg, fs=DISK):
    """The lane's store in `state_dir` with the hash key of gate config `cfg`."""
    from firmware import settings

    key = settings.value(cfg, "plates.hash_key")
    return PlateStore(
        state_dir + "/plates.bin", roots, verifier, bytes.fromhex(key) if key else None, fs
    )
