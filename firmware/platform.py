"""The one platform switch of the portable core.

Everything that differs between CPython and MicroPython and that firmware needs lives here:
which interpreter this is, a millisecond tick counter, the durable-write primitive, and the
signature backend (`crypto()`: protocol/p256.py unless the entry point set another).

Durable write: on CPython `os.fsync` after `flush`; on MicroPython's POSIX VFS, `flush()` on a
file calls fsync(2) itself (and on littlefs/FAT it syncs the block device), so flush is the
primitive there.
"""

import os
import sys
import time

IS_MICROPYTHON = sys.implementation.name == "micropython"

if IS_MICROPYTHON:
    ticks_ms = time.ticks_ms  # type: ignore[attr-defined]
    ticks_diff = time.ticks_diff  # type: ignore[attr-defined]

    def sync_file(f) -> None:
        f.flush()

else:

    def ticks_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    def ticks_diff(a: int, b: int) -> int:
        return a - b

    def sync_file(f) -> None:
        f.flush()
        os.fsync(f.fileno())


def path_exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove_if_exists(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data` so a power cut leaves the old content or the new, never a mix."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        sync_file(f)
    os.rename(tmp, path)
    sync_dir(path)


def sync_dir(path: str) -> None:
    """fsync the directory holding `path` so a rename survives a power cut (CPython only)."""
    if IS_MICROPYTHON:
        return
    d = path.rsplit("/", 1)[0] if "/" in path else "."
    fd = os.open(d or "/", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: str, default=None):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


# -- the few file operations the journal needs, here so a test can hand in a faulty disk -----


def open_file(path: str, mode: str):
    return open(path, mode)


def listdir(path: str) -> list:
    return os.listdir(path)


def file_size(path: str) -> int:
    return os.stat(path)[6]


def truncate_file(path: str, size: int) -> None:
    """Cut `path` to `size` bytes, durably (a torn tail or a failed write goes away)."""
    if hasattr(os, "truncate"):
        os.truncate(path, size)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    else:  # MicroPython has no truncate: rewrite the kept prefix atomically
        with open(path, "rb") as f:
            data = f.read(size)
        write_atomic(path, data)


# --- signature backend -------------------------------------------------------------------
# MicroPython gates use the pure-Python P-256 of protocol/p256.py. A CPython entry point hands
# in the OpenSSL backend (drivers/linux/crypto_openssl.py) with `set_crypto`, since firmware never
# imports a driver. A backend is any object (a module is fine) with
#     verifier() -> object with .verify(pub_sec1, msg, sig_rs) -> bool
#     signer(secret32) -> object with .sign(msg) -> sig_rs and .public_key (SEC1 compressed)
_crypto = None


def set_crypto(backend) -> None:
    """Choose the signature backend for this process (None: back to the portable one)."""
    global _crypto
    _crypto = backend


def crypto():
    """The signature backend: the one handed to set_crypto, else protocol.p256."""
    if _crypto is None:
        from protocol import p256

        return p256
    return _crypto
