"""A gate process for the power-cut tests: journal passages, "open the barrier", sync.

    python -m tests.gate_proc DIR DEVICE_ID KEY.pem HOST_PUB_HEX PORT SEED KILL_AT

Each passage is appended durably, then the barrier "opens": a line `O <seq>` on stdout, flushed,
is what the parent sees of it. Every few steps the gate syncs to the back office on PORT.
With KILL_AT > 0 the process SIGKILLs itself at its KILL_AT-th file operation (a write is cut
at a random byte first, as a power cut leaves it); with 0 the parent kills it from outside.
Everything is drawn from SEED.
"""

import os
import random
import signal
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier
from drivers.linux.link_tcp import sync_once
from firmware import platform
from firmware.storage.journal import Journal, JournalError
from firmware.sync.client import SyncClient, SyncError
from protocol import records

SEGMENT = 8


class Clock:
    def now(self) -> int:
        return 1_767_254_400


class KillingDisk:
    """The platform's file layer, counting operations and dying at the chosen one."""

    def __init__(self, kill_at: int, rng: random.Random) -> None:
        self.kill_at = kill_at
        self.rng = rng
        self.ops = 0
        for name in ("read_file", "listdir", "file_size"):
            setattr(self, name, getattr(platform, name))

    def tick(self, data: bytes | None = None, f=None) -> None:
        self.ops += 1
        if self.kill_at and self.ops >= self.kill_at:
            if data and f is not None:
                f.write(data[: self.rng.randrange(len(data))])  # a torn write
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def open_file(self, path: str, mode: str):
        f = platform.open_file(path, mode)
        return f if "r" in mode else _File(f, self)

    def sync_file(self, f) -> None:
        self.tick()
        platform.sync_file(f.f if isinstance(f, _File) else f)

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = path + ".tmp"
        with self.open_file(tmp, "wb") as f:
            f.write(data)
            self.sync_file(f)
        self.tick()
        os.rename(tmp, path)
        self.sync_dir(path)

    def sync_dir(self, path: str) -> None:
        self.tick()
        platform.sync_dir(path)

    def remove_if_exists(self, path: str) -> None:
        self.tick()
        platform.remove_if_exists(path)

    def truncate_file(self, path: str, size: int) -> None:
        self.tick()
        platform.truncate_file(path, size)


class _File:
    def __init__(self, f, disk: KillingDisk) -> None:
        self.f = f
        self.disk = disk

    def write(self, data: bytes) -> int:
        self.disk.tick(data, self.f)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def main(argv: list[str]) -> int:
    directory, device_id, key_path, host_pub, port, seed, kill_at = argv
    rng = random.Random(int(seed))
    with open(key_path, "rb") as f:
        signer = OpenSSLSigner(load_pem_private_key(f.read(), None))  # type: ignore[arg-type]
    disk = KillingDisk(int(kill_at), rng)
    j = Journal(directory, int(device_id), segment_records=SEGMENT, fs=disk)
    print("R %d" % j.last_seq, flush=True)
    for _ in range(rng.randint(10, 60)):
        r = rng.random()
        if r < 0.15:
            client = SyncClient(
                j, signer, OpenSSLVerifier(), bytes.fromhex(host_pub), Clock(), batch_size=5
            )
            try:
                sync_once(client, "127.0.0.1", int(port))
            except (SyncError, OSError):
                pass
            continue
        n = 1 if r < 0.7 else rng.randint(2, 5)
        recs = [
            records.Record(
                records.KIND_PASSAGE,
                0,
                0,
                0,
                1_767_254_400,
                1,
                1 + rng.randrange(2),
                rng.randrange(1, 12),
                rng.randrange(1, 50),
                1,
                rng.randrange(1 << 30),
                250,
            )
            for _ in range(n)
        ]
        try:
            j.append_many(recs)
        except JournalError:
            continue  # the barrier stays shut
        for rec in recs:
            print("O %d" % rec.seq, flush=True)  # the barrier opens
    print("D", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
