"""The gate's root store: the root metadata it trusts, and who may sign what because of it.

    roots = RootStore(state_dir, verifier, fs)
    root = roots.trusted(anchor, sync_key)   # the held Root, or the implicit one (version 0)
    roots.install(data, anchor, sync_key, now)   # a rotation (sync, console): checked, then kept
    roots.keys(role, anchor, sync_key)       # the keys of one role (protocol/rootmeta.py ROLES)

A gate claimed with only an operator root key (anchor.pub: every gate before issue 16) trusts
the implicit root of protocol.rootmeta.implicit: that key for every role, the config's
sync.host_key for sync. The first root metadata it takes (version 1) must be signed by that key
(the threshold of the implicit root) and by its own root keys; every later one by the
threshold of the root held and its own (protocol.rootmeta.check_update). The held metadata is
root_meta.bin, written atomically; a factory reset keeps it (the claim binding) unless the root
released the gate (firmware/storage/device_store.py wipe). A root_meta.bin that does not parse
(a damaged flash) is reported as `damaged` and trusted as nothing: the gate then trusts only
its implicit root, as before the binding.
"""

from firmware.storage.fs import DISK
from protocol import rootmeta
from protocol.errors import FormatError

FILE = "root_meta.bin"  # protocol/service.py BLOB_ROOT's file (blob_file)


class RootStore:
    def __init__(self, directory: str, verifier, fs=DISK):
        self.path = directory + "/" + FILE
        self.verifier = verifier
        self.fs = fs
        self.reload()

    def reload(self) -> None:
        """Read the file (again, after a factory reset, which keeps or removes it)."""
        self.root = None  # the held rootmeta.Root, or None
        self.damaged = False
        raw = self.fs.read_file(self.path)
        if raw:
            try:
                self.root = rootmeta.parse(raw)
            except FormatError:
                self.damaged = True

    def version(self) -> int:
        return self.root.version if self.root is not None else 0

    def trusted(self, anchor, sync_key=None):
        if self.root is not None:
            return self.root
        if anchor is None:
            return None
        return rootmeta.implicit(anchor, sync_key)

    def keys(self, role: int, anchor, sync_key=None) -> list:
        root = self.trusted(anchor, sync_key)
        return list(root.keys(role)) if root is not None else []

    def check(self, data, anchor, sync_key, now):
        """The Root `data` is, if this gate may take it next (FormatError otherwise)."""
        trusted = self.trusted(anchor, sync_key)
        if trusted is None:
            raise FormatError("a blank gate takes no root metadata over the air", "root_threshold")
        return rootmeta.check_update(trusted, data, self.verifier, now)

    def install(self, data, anchor, sync_key, now):
        new = self.check(data, anchor, sync_key, now)
        self.fs.write_atomic(self.path, bytes(data))
        self.root = new
        self.damaged = False
        return new

    def bind(self, data) -> None:
        """The factory's or warehouse's pre-installed root (no chain to check: nothing held)."""
        self.root = rootmeta.parse(data)
        self.fs.write_atomic(self.path, bytes(data))

    def forget(self) -> None:
        self.fs.remove_if_exists(self.path)
        self.root = None
