"""The gate's storage object: every file operation a store makes goes through one `Storage`,
handed to every store, so a fault injected there (a full disk, a torn write, a read error)
reaches all of them. Portable (CPython and MicroPython).

The seam, and what each operation promises:
    open_file(path, mode)     a file object (.write, .read, .seek, .flush, .close)
    sync_file(f)              f's data is durable (the one durable-write primitive)
    sync_dir(path)            the directory entry of `path` is durable (a create, a rename)
    write_atomic(path, data)  replace: temp file, write, sync, rename, sync the directory;
                              a power cut leaves the old content or the new, never a mix
    write_atomic_with(path, fill)  the same, for content a function streams into the file
    write_secret(path, data)  write_atomic for a secret (a private key): its file is readable
                              and writable by its owner only (mode 0600) from the moment it
                              exists, whatever the umask, and the rename keeps that mode
    open_secret(path)         the primitive under it: create `path` (it must not exist) mode
                              0600, open for writing ("wb"); the one place secrets get a mode
    write_reserved(path, data)  write_atomic that needs no free space: its temp file (the
                              spare, `path`.spare) is kept between writes and rewritten in
                              place, so a full volume can still record what frees it (the
                              journal's acknowledgement, then its trim)
    reserve(path, n)          make that spare now (n bytes), while there is room (best effort)
    append(path, data)        open, write, sync, close (and sync the directory if that
                              created the file): for rare appends (logs kept open by
                              their store write through open_file + sync_file instead)
    read_file(path, default)  the whole file, or `default` if there is none (any other read
                              error is raised: a store must not take a bad read for "empty")
    remove_if_exists, rename, listdir, file_size, path_exists, is_dir, mkdir, rmdir
    truncate_file(path, n)    cut to n bytes, durably (a torn tail or a failed write goes away)
    free_bytes(path)          free space on the volume holding `path` (None if unknown)
Secrets: every private key the gate or the tools write goes through write_secret (issue 16: the
device key used to be 0644). On CPython the temp file is created with os.open(O_CREAT|O_EXCL,
0o600): a mode the umask can only narrow, and O_EXCL so a file or link planted at the temp path
is refused, not written through. MicroPython has no file modes on littlefs/FAT and no chmod or
umask on most ports: there write_secret is a plain write_atomic (the volume is not shared with
other users; on the unix port the umask decides).

A full volume is an OSError whose errno `is_full` recognises (ENOSPC, or EFBIG); a store turns
it into its own error or policy. Composite operations (write_atomic, append, truncate_file on
MicroPython) are built from the primitives, so a subclass that overrides a primitive (the
simulator's full disk, a test's torn write) changes them too.

Durable write: on CPython `os.fsync` after `flush` (through `Storage.fsync(fd)`, the one OS call
under sync_file, sync_dir and truncate_file); on MicroPython's POSIX VFS, `flush()` on a
file calls fsync(2) itself (and on littlefs/FAT it syncs the block device), so flush is the
primitive there, and directories cannot be synced (nor need to be on littlefs/FAT).

`DISK` is the real storage; stores default to it, so callers that do not care stay simple. A
storage object that injects faults into writes returns its files wrapped in a `FileProxy`
subclass (and unwraps them in `sync_file`).
"""

import os
import sys

from firmware import settings

# bytes read, hashed or copied per step by the stores' file loops (the buffers.io_chunk setting)
IO_CHUNK = settings.default("buffers.io_chunk")
_MPY = sys.implementation.name == "micropython"
_FULL = (28, 27)  # ENOSPC, EFBIG
_ABSENT = (2, 20)  # ENOENT, ENOTDIR


def is_full(e: OSError) -> bool:
    """The error says the volume (or the file's size limit) is full."""
    return bool(e.args) and e.args[0] in _FULL


class Storage:
    # -- primitives ------------------------------------------------------------------------
    def open_file(self, path: str, mode: str):
        return open(path, mode)

    if _MPY:

        def sync_file(self, f) -> None:
            f.flush()

        def sync_dir(self, path: str) -> None:
            pass

    else:

        def sync_file(self, f) -> None:
            f.flush()
            self.fsync(f.fileno())

        def sync_dir(self, path: str) -> None:
            d = path.rsplit("/", 1)[0] if "/" in path else "."
            fd = os.open(d or "/", os.O_RDONLY)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)

        def fsync(self, fd: int) -> None:
            """fsync(2) of a file or directory: the OS call under the durable primitives. A
            simulated disk that models what a power cut keeps overrides this, not sync_file, so
            the primitives' own code is what its tests check (host_sim/hardware/powerdisk.py)."""
            os.fsync(fd)

    if _MPY:

        def open_secret(self, path: str):
            return self.open_file(path, "wb")  # no modes here (see the module doc)

    else:

        def open_secret(self, path: str):
            # created empty with its mode, then opened through open_file so a storage that
            # injects faults sees its writes like any other file's
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return self.open_file(path, "wb")

    def read_file(self, path: str, default=None):
        try:
            f = self.open_file(path, "rb")
        except OSError as e:
            if e.args and e.args[0] in _ABSENT:
                return default
            raise
        try:
            return f.read()
        finally:
            f.close()

    def rename(self, old: str, new: str) -> None:
        os.rename(old, new)

    def remove_if_exists(self, path: str) -> None:
        try:
            os.remove(path)
        except OSError:
            pass

    def listdir(self, path: str) -> list:
        return os.listdir(path)

    def file_size(self, path: str) -> int:
        return os.stat(path)[6]

    def path_exists(self, path: str) -> bool:
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return bool(os.stat(path)[0] & 0x4000)
        except OSError:
            return False

    def mkdir(self, path: str) -> None:
        os.mkdir(path)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def free_bytes(self, path: str):
        try:
            st = os.statvfs(path)
        except (AttributeError, OSError):
            return None
        return st[1] * st[4]  # fragment size x blocks free to unprivileged users

    # -- built from the primitives ---------------------------------------------------------
    def write_atomic(self, path: str, data) -> None:
        self.write_atomic_with(path, lambda f: f.write(data))

    def write_secret(self, path: str, data) -> None:
        """write_atomic whose file is owner-only (0600) from its creation (see open_secret)."""
        tmp = path + ".tmp"
        self.remove_if_exists(tmp)  # a temp file left by a power cut (or planted): not reused
        self._replace(path, tmp, self.open_secret(tmp), lambda f: f.write(data))

    def write_atomic_with(self, path: str, fill) -> None:
        """write_atomic of what `fill(f)` writes into the temp file `f` (it may seek): a file
        streamed in bounded RAM. Whatever `fill` raises leaves `path` as it was."""
        tmp = path + ".tmp"
        self._replace(path, tmp, self.open_file(tmp, "wb"), fill)

    def _replace(self, path: str, tmp: str, f, fill) -> None:
        try:
            fill(f)
            self.sync_file(f)
        except Exception:
            f.close()
            self.remove_if_exists(tmp)
            raise
        f.close()
        self.rename(tmp, path)
        self.sync_dir(path)

    def write_reserved(self, path: str, data) -> None:
        spare = path + ".spare"
        try:
            size = self.file_size(spare)
        except OSError:
            size = -1
        if size < len(data):
            self.write_atomic(path, data)  # no spare yet: the ordinary way (needs room)
        else:
            f = self.open_file(spare, "r+b")  # blocks already allocated: no new space
            try:
                f.seek(0)
                f.write(data)
                self.sync_file(f)
            finally:
                f.close()
            if size > len(data):
                self.truncate_file(spare, len(data))
            self.rename(spare, path)  # the old file's blocks are freed
            self.sync_dir(path)
        self.reserve(path, len(data))

    def reserve(self, path: str, n: int) -> None:
        spare = path + ".spare"
        try:
            if self.file_size(spare) >= n:
                return
        except OSError:
            pass
        try:
            f = self.open_file(spare, "wb")
            try:
                f.write(bytes(n))
                self.sync_file(f)
            finally:
                f.close()
        except OSError:
            self.remove_if_exists(spare)  # no room: the next write_reserved makes one

    def append(self, path: str, data) -> None:
        created = not self.path_exists(path)
        f = self.open_file(path, "ab")
        try:
            f.write(data)
            self.sync_file(f)
        finally:
            f.close()
        if created:
            self.sync_dir(path)  # else a power cut can take the new file, entries and all

    def truncate_file(self, path: str, size: int) -> None:
        if self.file_size(path) == size:
            return  # nothing to cut (a write that failed before writing anything)
        if hasattr(os, "truncate"):
            os.truncate(path, size)
            fd = os.open(path, os.O_RDONLY)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)
        else:  # MicroPython has no truncate: rewrite the kept prefix atomically
            f = self.open_file(path, "rb")
            try:
                data = f.read(size)
            finally:
                f.close()
            self.write_atomic(path, data)


class FileProxy:
    """A file object that hands every call to the real file `f`; subclasses override some."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        return self.f.write(data)

    def read(self, n=-1):
        return self.f.read(n)

    def readinto(self, buf):
        return self.f.readinto(buf)

    def seek(self, pos):
        return self.f.seek(pos)

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


DISK = Storage()
