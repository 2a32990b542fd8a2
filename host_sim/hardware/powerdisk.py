"""A disk that loses power: the gate's storage object (firmware/storage/fs.py) over real files,
knowing at every moment what a power cut would keep.

    disk = PowerDisk()                      # hand it to every store (hw.disk on a simulated gate)
    ...                                     # the stores write, sync, rename, remove through it
    disk.cut(rng)                           # the power fails: the files become what survives
    disk.arm(n)                             # or: the power fails inside the n-th operation from now
                                            #     (PowerLost is raised there; then call cut)

The real files are the page cache: reads see every write at once. Beside them the disk keeps,
for every file it has seen written, its durable content (as of its last fsync) and the writes
since, and for every directory the entries made durable by fsync of that directory and the
creates, renames, removes, mkdirs and rmdirs since. `cut(rng)` rewrites the real files to what
a power cut leaves (docs/scenarios.md, "The power-loss disk", is the model in full):

- file data: each 512-byte sector (`sector`) written since the file's last fsync survives
  whole, is lost, or is torn (its first bytes new, the rest old or garbage; garbage only where
  it was being written, unless `powersafe=False`: then the whole sector), each on its own,
  so a later write can survive an earlier one (reordering); a grown file ends after its last
  surviving sector, or (its size went out, its data did not) at its new size, zero-filled; an
  unsynced truncate may be undone;
- directories: the directory operations not made durable by fsync of every directory they
  touch survive as a prefix, in order (a journaling file system's metadata log); the rest are
  lost (a created file vanishes, a renamed file is back under its old name, a removed one is
  back with its durable content);
- what was made durable survives, except where `rot` flipped bytes in it.

fsync is `Storage.fsync(fd)`, the one OS call under the primitives sync_file, sync_dir and
truncate_file: this class overrides that call and never the primitives, so a primitive that
skips its fsync is caught (tests/test_powerdisk.py). It does not call the real fsync: the real
disk is not what is being cut, and the simulation stays fast.

Faults besides the cut: `fill()`/`free()` (every write refused with ENOSPC, the station's
disk_full), `set_free(n)` (the disk is full after n more bytes: a write crossing it is cut
there), `fail_sync(every=N)` / `fail_next_sync()` (a file fsync raises EIO and makes nothing
durable), `rot(rng, path)` (flip bytes of data at rest). Everything random comes from the
`random.Random` passed in; nothing here draws on its own.
"""

import errno
import os
import random
import shutil
import stat
from typing import Any

from firmware.storage.fs import FileProxy, Storage
from host_sim.errors import SimError

SECTOR = 512
_DIR = "dir"  # a directory in the namespace model (files are _Inode objects)


class PowerLost(BaseException):
    """The power failed inside a storage operation: the gate's CPU stops here. A BaseException,
    so no `except Exception` in the firmware runs on after it (nor can a test's code mistake it
    for an error); whoever drives the gate catches it, calls `cut` and boots the gate again."""

    def __init__(self, disk: "PowerDisk") -> None:
        super().__init__("power lost")
        self.disk = disk


class PowerDiskError(SimError, ValueError):
    reason = "sim_power_disk"


class _Inode:
    """A file's contents: durable (as of its last fsync), and the writes since."""

    __slots__ = ("durable", "ops", "size")

    def __init__(self, size: int) -> None:
        self.durable: bytearray | None = None  # None: never captured (equals the real file)
        self.ops: list[tuple[str, int, bytes]] = []  # ("w", offset, data) | ("t", size, b"")
        self.size = size  # the current (page cache) size


class _DirOp:
    __slots__ = ("kind", "path", "new", "node", "dirs")

    def __init__(self, kind: str, path: str, new: str, node: Any, dirs: set[str]) -> None:
        self.kind = kind  # create, remove, rename, mkdir, rmdir
        self.path = path
        self.new = new  # rename's target
        self.node = node
        self.dirs = dirs  # the directories whose fsync it still waits for


def _parent(p: str) -> str:
    return os.path.dirname(p)


def _apply(ns: dict[str, Any], op: _DirOp) -> None:
    if op.kind in ("create", "mkdir"):
        ns[op.path] = op.node
    elif op.kind in ("remove", "rmdir"):
        ns.pop(op.path, None)
    elif op.kind == "rename":
        node = ns.pop(op.path, None)
        if node is not None:
            ns[op.new] = node


class PowerDisk(Storage):
    def __init__(
        self, sector: int = SECTOR, powersafe: bool = True, host_fsync: bool = False
    ) -> None:
        if sector < 1:
            raise PowerDiskError("sector size must be >= 1, not %d" % sector)
        self.sector = sector
        self.powersafe = powersafe  # a torn sector garbles only bytes being written
        self.host_fsync = host_fsync  # also fsync the real file (to measure the host disk)
        # the station's disk_full switch (writes refused while full)
        self.full = False
        self.fills = 0
        self.refused = 0
        self.budget: int | None = None  # bytes that may still be allocated (None: no limit)
        self.eio_every = 0
        self.eio_next = False
        self.dead = False  # the power is off: every operation raises PowerLost
        self.trip_at: int | None = None
        self.ops = 0  # mutating operations so far
        self.file_syncs = 0
        self.stats: dict[str, int] = {
            "cuts": 0,
            "sectors_kept": 0,
            "sectors_torn": 0,
            "sectors_lost": 0,
            "dir_ops_kept": 0,
            "dir_ops_lost": 0,
            "eio": 0,
            "enospc": 0,
            "bytes_rotted": 0,
        }
        self._reset()

    def _reset(self) -> None:
        self._inodes: dict[tuple[int, int], _Inode] = {}  # the real file's (dev, ino) -> it
        self._dirs: dict[str, tuple[int, int]] = {}  # directories seen -> their (dev, ino)
        self._dir_keys: dict[tuple[int, int], str] = {}
        self._durable_ns: dict[str, Any] = {}  # path -> _Inode | _DIR, in the directories seen
        self._pending: list[_DirOp] = []
        self._files: set[_PowerFile] = set()

    # -- faults ------------------------------------------------------------------------------
    def fill(self) -> None:
        self.fills += 1
        self.full = True

    def free(self) -> None:
        self.fills = max(0, self.fills - 1)
        self.full = self.fills > 0

    def free_all(self) -> None:
        self.fills = 0
        self.full = False
        self.budget = None

    def set_free(self, n: int | None) -> None:
        """From now on at most `n` more bytes fit (None: no limit)."""
        self.budget = n

    def fail_sync(self, every: int) -> None:
        """Every `every`-th file fsync from now raises EIO (0: none)."""
        self.eio_every = every
        self.file_syncs = 0

    def fail_next_sync(self) -> None:
        self.eio_next = True

    def arm(self, after_ops: int) -> None:
        """The power fails inside the `after_ops`-th mutating operation from now (a write, an
        fsync, a create, rename, remove, truncate, mkdir or rmdir): that operation reaches the
        page cache (an fsync makes nothing durable), then PowerLost is raised."""
        if after_ops < 1:
            raise PowerDiskError("arm after >= 1 operations, not %d" % after_ops)
        self.trip_at = self.ops + after_ops

    def disarm(self) -> None:
        self.trip_at = None

    def check(self) -> None:
        """Raise ENOSPC while the disk is full."""
        if self.full:
            self.refused += 1
            self.stats["enospc"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    def _tick(self) -> bool:
        """Count one mutating operation. -> True if the power fails inside it."""
        if self.dead:
            raise PowerLost(self)
        self.ops += 1
        if self.trip_at is not None and self.ops >= self.trip_at:
            self.trip_at = None
            self.dead = True
            return True
        return False

    # -- the model ---------------------------------------------------------------------------
    def _dir(self, d: str) -> None:
        """Start tracking directory `d`: what it holds now is durable."""
        if d in self._dirs:
            return
        st = os.stat(d)
        key = (st.st_dev, st.st_ino)
        self._dirs[d] = key
        self._dir_keys[key] = d
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            self._durable_ns[p] = _DIR if os.path.isdir(p) else self._node(p)

    def _node(self, p: str) -> _Inode:
        st = os.stat(p)
        key = (st.st_dev, st.st_ino)
        node = self._inodes.get(key)
        if node is None:
            node = self._inodes[key] = _Inode(st.st_size)
        return node

    def _forget(self, p: str) -> None:
        """The real file at `p` goes away: its inode number may be reused by a new file."""
        st = os.stat(p)
        self._inodes.pop((st.st_dev, st.st_ino), None)

    def _capture(self, node: _Inode, p: str) -> _Inode:
        """Read the durable content before the first change to the file."""
        if node.durable is None:
            with open(p, "rb") as f:
                node.durable = bytearray(f.read())
            node.size = len(node.durable)
        return node

    def _touched(self, p: str) -> _Inode:
        self._dir(_parent(p))
        return self._capture(self._node(p), p)

    def _log(self, kind: str, path: str, new: str = "", node: Any = None) -> None:
        dirs = {_parent(path)} | ({_parent(new)} if new else set())
        self._pending.append(_DirOp(kind, path, new, node, dirs))

    def _dir_synced(self, d: str) -> None:
        keep = []
        for op in self._pending:
            op.dirs.discard(d)
            if op.dirs:
                keep.append(op)
            else:
                _apply(self._durable_ns, op)
        self._pending = keep

    def _grow(self, n: int) -> None:
        if self.budget is not None:
            self.budget = max(0, self.budget - n)

    def _shrink(self, n: int) -> None:
        if self.budget is not None:
            self.budget += max(0, n)

    # -- the primitives ------------------------------------------------------------------------
    def open_file(self, path: str, mode: str) -> Any:
        if not any(c in mode for c in "wax+"):
            return super().open_file(path, mode)
        if "b" not in mode:
            raise PowerDiskError("open %s for writing in binary mode, not %r" % (path, mode))
        p = os.path.abspath(path)
        fatal = self._tick()
        self._dir(_parent(p))
        if os.path.exists(p):
            node = self._touched(p)
            f = open(p, mode, buffering=0)
            if "w" in mode:
                node.ops.append(("t", 0, b""))
                self._shrink(node.size)
                node.size = 0
        else:
            f = open(p, mode, buffering=0)
            node = self._node(p)
            node.durable = bytearray()  # a new file: nothing of it is durable yet
            self._log("create", p, node=node)
        pf = _PowerFile(f, self, node, "a" in mode)
        self._files.add(pf)
        if fatal:
            raise PowerLost(self)
        return pf

    def fsync(self, fd: int) -> None:
        fatal = self._tick()
        if self.host_fsync and not fatal:
            os.fsync(fd)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            d = self._dir_keys.get(key)
            if fatal:
                raise PowerLost(self)
            if d is not None:
                self._dir_synced(d)
            return
        node = self._inodes.get(key)
        if fatal:
            raise PowerLost(self)
        if node is None or not node.ops:
            return
        if self.full and any(op[0] == "w" for op in node.ops):
            self.check()  # delayed allocation finds no room for the dirty data
        self.file_syncs += 1
        if self.eio_next or (self.eio_every and self.file_syncs % self.eio_every == 0):
            self.eio_next = False
            self.stats["eio"] += 1
            raise OSError(errno.EIO, "Input/output error")
        node.durable = _replay(node.durable or bytearray(), node.ops)
        node.ops = []

    def rename(self, old: str, new: str) -> None:
        po, pn = os.path.abspath(old), os.path.abspath(new)
        fatal = self._tick()
        self._touched(po)
        self._dir(_parent(pn))
        if os.path.exists(pn):
            victim = self._touched(pn)  # it may come back
            self._forget(pn)
            self._shrink(victim.size)
        super().rename(old, new)
        self._log("rename", po, pn)
        if fatal:
            raise PowerLost(self)

    def remove_if_exists(self, path: str) -> None:
        p = os.path.abspath(path)
        fatal = self._tick()
        if os.path.isfile(p):
            node = self._touched(p)
            self._forget(p)
            super().remove_if_exists(path)
            self._shrink(node.size)
            self._log("remove", p)
        if fatal:
            raise PowerLost(self)

    def truncate_file(self, path: str, size: int) -> None:
        p = os.path.abspath(path)
        fatal = self._tick()
        node = self._touched(p)
        if fatal:
            raise PowerLost(self)
        if node.size != size:
            node.ops.append(("t", size, b""))
            self._shrink(node.size - size)
            node.size = size
        super().truncate_file(path, size)  # truncate, then fsync (through self.fsync)

    def mkdir(self, path: str) -> None:
        p = os.path.abspath(path)
        fatal = self._tick()
        self._dir(_parent(p))
        super().mkdir(path)
        self._log("mkdir", p, node=_DIR)
        self._dir(p)
        if fatal:
            raise PowerLost(self)

    def rmdir(self, path: str) -> None:
        p = os.path.abspath(path)
        fatal = self._tick()
        self._dir(_parent(p))
        self._dir(p)
        super().rmdir(path)
        self._dir_keys.pop(self._dirs[p], None)
        self._log("rmdir", p)
        if fatal:
            raise PowerLost(self)

    def free_bytes(self, path: str) -> int | None:
        if self.full:
            return 0
        if self.budget is not None:
            return self.budget
        return super().free_bytes(path)

    # -- rot ---------------------------------------------------------------------------------
    def rot(self, rng: random.Random, path: str, count: int = 1) -> list[int]:
        """Flip `count` bytes of `path`'s durable data (a sector gone bad at rest), in the real
        file too. -> the offsets hit."""
        p = os.path.abspath(path)
        node = self._touched(p)
        assert node.durable is not None
        if not node.durable:
            return []
        hit = []
        with open(p, "r+b") as f:
            for _ in range(count):
                at = rng.randrange(len(node.durable))
                node.durable[at] ^= rng.randrange(1, 256)
                f.seek(at)
                f.write(bytes([node.durable[at]]))
                hit.append(at)
        self.stats["bytes_rotted"] += count
        return hit

    # -- the cut -----------------------------------------------------------------------------
    def cut(self, rng: random.Random, keep: float | None = None, torn: float | None = None) -> None:
        """The power fails: every file and directory under the directories this disk has seen
        becomes what survives (module docstring). `keep` is the chance a dirty sector survives
        whole and `torn` that it is torn (by default both drawn from `rng` for this cut);
        keep=0, torn=0 loses everything not durable, keep=1 keeps everything."""
        for pf in list(self._files):
            pf.kill()
        p_keep = rng.random() if keep is None else keep
        p_torn = rng.random() * 0.3 if torn is None else torn
        pending = self._pending
        if keep is None or 0 < keep < 1:
            k = rng.randint(0, len(pending))
        else:
            k = len(pending) if keep >= 1 else 0
        self.stats["dir_ops_kept"] += k
        self.stats["dir_ops_lost"] += len(pending) - k
        ns = dict(self._durable_ns)
        for op in pending[:k]:
            _apply(ns, op)
        seen = sorted(self._dirs)
        alive = {d for d in seen if self._exists_after(d, ns)}
        contents: dict[int, bytes] = {}
        for p in sorted(ns):
            node = ns[p]
            if node is not _DIR and node.durable is not None and id(node) not in contents:
                contents[id(node)] = self._after_cut(node, rng, p_keep, p_torn)
        # rewrite the real tree: stale entries out, lost directories back, files as they are now
        for d in sorted(seen, key=len, reverse=True):
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                if ns.get(p) is None or d not in alive:
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    else:
                        os.remove(p)
        for d in sorted(alive, key=len):
            os.makedirs(d, exist_ok=True)
        for p in sorted(ns):
            node = ns[p]
            if _parent(p) not in alive and _parent(p) in self._dirs:
                continue
            if node is _DIR:
                os.makedirs(p, exist_ok=True)
            elif id(node) in contents:
                with open(p, "wb") as f:
                    f.write(contents[id(node)])
        self.stats["cuts"] += 1
        self.dead = False
        self.trip_at = None
        self._reset()

    def _exists_after(self, d: str, ns: dict[str, Any]) -> bool:
        parent = _parent(d)
        if parent not in self._dirs:
            return True  # a directory this disk never saw change (the gate's own directory)
        return ns.get(d) is _DIR and self._exists_after(parent, ns)

    def _after_cut(self, node: _Inode, rng: random.Random, p_keep: float, p_torn: float) -> bytes:
        dur = node.durable
        assert dur is not None
        if not node.ops:
            return bytes(dur)
        cur = bytearray(dur)
        dirty: set[int] = set()
        spans: list[tuple[int, int]] = []  # the byte ranges written since the last fsync
        s = self.sector
        for kind, a, data in node.ops:
            if kind == "w":
                _write_into(cur, a, data)
                spans.append((a, a + len(data)))
                if data:
                    dirty.update(range(a // s, (a + len(data) - 1) // s + 1))
            elif a < len(cur):
                del cur[a:]
            else:
                cur.extend(bytes(a - len(cur)))
        old_len, new_len = len(dur), len(cur)
        out = bytearray(dur)
        if new_len > old_len:
            out.extend(bytes(new_len - old_len))
        kept_end = 0
        for sec in sorted(dirty):
            lo = sec * s
            hi = min(lo + s, new_len)
            if lo >= new_len:
                continue  # cut off again by a later truncate
            r = rng.random()
            if r < p_keep:
                out[lo:hi] = cur[lo:hi]
                self.stats["sectors_kept"] += 1
                kept_end = max(kept_end, hi)
            elif r < p_keep + p_torn:
                mid = lo + rng.randrange(hi - lo)  # the first bytes made it
                out[lo:mid] = cur[lo:mid]
                if rng.random() < 0.3:  # the rest garbled: what was being written, or (a
                    # disk without powersafe overwrite) the whole sector
                    for a, b in ((lo, hi),) if not self.powersafe else spans:
                        a, b = max(a, mid), min(b, hi)
                        if a < b:
                            out[a:b] = rng.randbytes(b - a)
                self.stats["sectors_torn"] += 1
                kept_end = max(kept_end, hi)
            else:
                self.stats["sectors_lost"] += 1
        if new_len >= old_len:
            length = max(old_len, min(kept_end, new_len))
            if new_len > length and rng.random() < 0.2:
                length = new_len  # the size reached the disk, the data did not: zeros
        else:
            length = new_len if rng.random() < p_keep else old_len
        return bytes(out[:length])


def _write_into(buf: bytearray, at: int, data: bytes) -> None:
    if at > len(buf):
        buf.extend(bytes(at - len(buf)))
    buf[at : at + len(data)] = data


def _replay(durable: bytearray, ops: list[tuple[str, int, bytes]]) -> bytearray:
    for kind, a, data in ops:
        if kind == "w":
            _write_into(durable, a, data)
        elif a < len(durable):
            del durable[a:]
        else:
            durable.extend(bytes(a - len(durable)))
    return durable


class _PowerFile(FileProxy):
    """A file open for writing on a PowerDisk: each write is logged as volatile until fsync."""

    def __init__(self, f: Any, disk: PowerDisk, node: _Inode, append: bool) -> None:
        super().__init__(f)
        self.disk = disk
        self.node = node
        self.append = append

    def write(self, data: Any) -> int:
        disk = self.disk
        fatal = disk._tick()
        disk.check()
        data = bytes(data)
        node = self.node
        at = node.size if self.append else self.f.tell()
        growth = max(0, at + len(data) - node.size)
        short = disk.budget is not None and growth > disk.budget
        if short:
            assert disk.budget is not None
            data = data[: len(data) - (growth - disk.budget)]
            growth = disk.budget
        n = self.f.write(data) if data else 0
        if n:
            node.ops.append(("w", at, data[:n]))
            node.size = max(node.size, at + n)
            disk._grow(growth)
        if fatal:
            raise PowerLost(disk)
        if short:
            disk.stats["enospc"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return n

    def kill(self) -> None:
        """The power is gone: the file handle dies with the process that held it."""
        self.disk._files.discard(self)
        try:
            self.f.close()
        except OSError:
            pass

    def close(self) -> None:
        self.disk._files.discard(self)
        self.f.close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
