"""The one platform switch of the portable core.

Everything that differs between CPython and MicroPython and that firmware needs lives here:
which interpreter this is, a millisecond tick counter, the file operations of the real storage
(the durable-write primitive `sync_file` among them: firmware/storage/fs.py says how it differs
between the two) and the signature backend (`crypto()`: protocol/p256.py unless the entry point
set another).
"""

import sys
import time

from firmware.storage.fs import DISK

IS_MICROPYTHON = sys.implementation.name == "micropython"

# where the deny list lives: searched in place in its file on MCU gates
# (firmware/verify/flashdeny.py), one sorted array in RAM on Linux gates (denystore.py)
DENY_BACKEND = "file" if IS_MICROPYTHON else "ram"

if IS_MICROPYTHON:
    ticks_ms = time.ticks_ms  # type: ignore[attr-defined]
    ticks_diff = time.ticks_diff  # type: ignore[attr-defined]

else:

    def ticks_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    def ticks_diff(a: int, b: int) -> int:
        return a - b


# -- files: the real storage object's operations, for code that is not a store (stores take a
# storage object handed in: firmware/storage/fs.py) ------------------------------------------
sync_file = DISK.sync_file
sync_dir = DISK.sync_dir
write_atomic = DISK.write_atomic
write_secret = DISK.write_secret
read_file = DISK.read_file
path_exists = DISK.path_exists
remove_if_exists = DISK.remove_if_exists
open_file = DISK.open_file
listdir = DISK.listdir
file_size = DISK.file_size
truncate_file = DISK.truncate_file


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
