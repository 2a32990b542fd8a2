"""A fault injected in the storage object (firmware/storage/fs.py) reaches every store.

`FaultyStorage` is the real storage with switches: `full` (every write and sync fails with
ENOSPC, as a full volume reports it) and `read_error` (every read fails with EIO). Each store is
handed it and shown to give its clear error or its policy, with nothing committed lost; Device
is shown to hand one object to all of them. Portable: runs on MicroPython.
"""

import hashlib
import json

from firmware.maintenance import hardware_selftest
from firmware.maintenance.wallclock import RTC
from firmware.storage.device_store import DeviceStore
from firmware.storage.eventlog import EventLog
from firmware.storage.fs import DISK, FileProxy, Storage, is_full
from firmware.storage.journal import Journal, JournalFull
from firmware.verify.denystore import DenyStore
from firmware.verify.flashdeny import FlashDenyStore
from firmware.verify.replay import ReplayCache
from firmware.verify.timeanchor import TimeAnchor
from firmware.verify.truststore import TrustStore
from protocol import denylist, image, records
from tests.portable import codes, images
from tests.portable import console_kit as kit
from tests.portable.harness import mkdtemp, raises, rmtree

ENOSPC = 28
EIO = 5


class FaultyStorage(Storage):
    def __init__(self):
        self.full = False
        self.read_error = False
        self.refused = 0

    def _check(self):
        if self.full:
            self.refused += 1
            raise OSError(ENOSPC, "No space left on device")

    def open_file(self, path, mode):
        if self.read_error and "r" in mode:
            raise OSError(EIO, "I/O error")
        f = Storage.open_file(self, path, mode)
        return f if mode == "rb" else _File(f, self)

    def sync_file(self, f):
        self._check()
        Storage.sync_file(self, f.f if isinstance(f, _File) else f)


class _File(FileProxy):
    def __init__(self, f, disk):
        super().__init__(f)
        self.disk = disk

    def write(self, data):
        self.disk._check()
        return self.f.write(data)


def _with(fn):
    d = mkdtemp("faults")
    try:
        fn(d, FaultyStorage())
    finally:
        rmtree(d)


def _passage(account):
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW, account_id=account)


class Rtc:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t


def _ms():
    return 1000


def _diff(a, b):
    return a - b


def test_full_disk_reaches_the_journal_nothing_committed_lost():
    def body(d, disk):
        j = Journal(d, 7, fs=disk)
        j.append(_passage(1))
        disk.full = True
        assert raises(JournalFull, j.append, _passage(2)).reason == "journal_full"
        assert disk.refused and j.pending_count() == 1
        disk.full = False
        assert j.append(_passage(3)).seq == 2
        j.close()
        again = Journal(d, 7, fs=disk)
        assert [records.decode(r).account_id for r in again.pending()] == [1, 3]
        again.close()

    _with(body)


def test_full_disk_reaches_the_replay_cache_which_keeps_protecting():
    def body(d, disk):
        r = ReplayCache(d + "/replay.log", fs=disk)
        r.commit(100, 1, codes.NOW, codes.NOW)
        disk.full = True
        r.commit(200, 1, codes.NOW, codes.NOW)
        assert r.status()["write_errors"] == 1 and r.is_replay(200, 1)  # in memory till reboot
        disk.full = False
        r.close()
        again = ReplayCache(d + "/replay.log", fs=disk)
        assert again.is_replay(100, 1) and again.torn_bytes_cut == 0
        again.close()

    _with(body)


def test_full_disk_reaches_the_deny_store_the_old_version_stays():
    def acc(a):
        return denylist.account_key(1, a)

    def body(d, disk):
        s = DenyStore(d, codes.ROOTS, codes.VERIFIER, fs=disk)
        s.install(codes.deny_snapshot(1, [acc(1)]))
        disk.full = True
        e = raises(OSError, s.install, codes.deny_delta(1, 2, adds=[acc(2)]))
        assert is_full(e) and s.version == 1 and not s.is_denied(1, 2, 1)
        e = raises(OSError, s.install, codes.deny_snapshot(3, [acc(3)]))
        assert is_full(e) and s.version == 1
        disk.full = False
        again = DenyStore(d, codes.ROOTS, codes.VERIFIER, fs=disk)
        assert again.version == 1 and again.entries() == [acc(1)]

    _with(body)


def test_full_disk_reaches_the_flash_deny_store_the_old_version_stays_searchable():
    def acc(a):
        return denylist.account_key(1, a)

    def body(d, disk):
        s = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, fs=disk)
        s.install(codes.deny_snapshot(1, [acc(1)]))
        disk.full = True
        e = raises(OSError, s.install, codes.deny_delta(1, 2, adds=[acc(2)]))
        assert is_full(e) and s.version == 1 and s.is_denied(1, 1, 1) and not s.is_denied(1, 2, 1)
        disk.full = False
        s.close()
        again = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, fs=disk)
        assert again.version == 1 and again.is_denied(1, 1, 1) and not again.is_denied(1, 2, 1)
        again.close()

    _with(body)


def test_full_disk_reaches_the_trust_store_the_old_list_stays():
    def body(d, disk):
        path = d + "/trust.bin"
        store = TrustStore(codes.ROOTS, codes.VERIFIER, path, fs=disk)
        store.install(codes.trust_blob(version=1))
        disk.full = True
        assert is_full(raises(OSError, store.install, codes.trust_blob(version=2)))
        assert store.list.version == 1
        disk.full = False
        assert TrustStore(codes.ROOTS, codes.VERIFIER, path, fs=disk).list.version == 1

    _with(body)


def test_full_disk_reaches_the_time_anchor_which_keeps_time_in_memory():
    def body(d, disk):
        path = d + "/anchor.bin"
        a = TimeAnchor(Rtc(codes.NOW), path, 2, _ms, _diff, fs=disk)
        a.mark_good(codes.NOW)
        disk.full = True
        a.mark_good(codes.NOW + 50)
        assert a.last_good == codes.NOW + 50 and a.status()["write_errors"] == 1
        disk.full = False
        again = TimeAnchor(Rtc(0), path, 2, _ms, _diff, fs=disk)
        assert again.last_good == codes.NOW

    _with(body)


def test_full_disk_reaches_the_wall_clock_the_set_time_stays_as_it_was():
    def body(d, disk):
        RTC(d, board_time=lambda: 1000, fs=disk).set(5000)
        disk.full = True
        raises(OSError, RTC(d, board_time=lambda: 1000, fs=disk).set, 9000)
        disk.full = False
        assert RTC(d, board_time=lambda: 1000, fs=disk).now() == 5000

    _with(body)


def test_full_disk_fails_the_technicians_storage_check():
    def body(d, disk):
        ctx = hardware_selftest.Context(d, Rtc(codes.NOW), True, 0, None, fs=disk)
        assert hardware_selftest.check_storage(ctx)[0]
        disk.full = True
        result = hardware_selftest.run(ctx)
        storage = [c for c in result["checks"] if c["name"] == "storage"][0]
        assert not result["passed"] and not storage["ok"] and disk.refused

    _with(body)


def test_full_disk_reaches_the_device_store_and_the_service_log():
    def body(d, disk):
        factory = {"device_id": 5, "model": "t", "firmware": "1"}
        DISK.write_atomic(d + "/factory.json", json.dumps(factory).encode())
        store = DeviceStore(d, kit.HashKeys(), fs=disk)
        store.set_flag("clock_set", True)
        log = EventLog(d, kit.Clock(), fs=disk)
        log.add("first")
        disk.full = True
        assert is_full(raises(OSError, store.set_flag, "clock_set", False))
        assert is_full(raises(OSError, store.set_anchor, bytes(33)))
        assert log.add("second")["i"] == 2  # the console goes on; the entry stays in memory
        assert [e["ev"] for e in log.since(1, 10)] == ["first", "second"]
        disk.full = False
        assert DeviceStore(d, kit.HashKeys(), fs=disk).flags == {"clock_set": True}
        assert [e["ev"] for e in EventLog(d, kit.Clock(), fs=disk).since(1, 10)] == ["first"]

    _with(body)


def test_full_disk_reaches_the_update_agent_staging():
    def body(d, disk):
        data = images.make()
        a = images.agent(d)
        a.fs = disk
        h = image.parse_header(data)
        offset, _crc = a.begin(len(data), hashlib.sha256(data).digest(), data[: h.head_len])
        assert offset == 0
        disk.full = True
        assert is_full(raises(OSError, a.write, 0, data[:100]))
        disk.full = False
        a._close()
        b = images.agent(d)
        b.fs = disk
        assert b.begin(len(data), hashlib.sha256(data).digest(), data[: h.head_len])[0] == 0

    _with(body)


def test_a_read_error_is_an_error_not_an_empty_file():
    def body(d, disk):
        j = Journal(d, 7, fs=disk)
        j.append(_passage(1))
        j.close()
        r = ReplayCache(d + "/replay.log", fs=disk)
        r.commit(100, 1, codes.NOW, codes.NOW)
        r.close()
        disk.read_error = True
        raises(OSError, Journal, d, 7, fs=disk)  # not a journal that starts again at seq 1
        raises(OSError, ReplayCache, d + "/replay.log", fs=disk)
        disk.read_error = False
        assert disk.read_file(d + "/absent", b"none") == b"none"  # absent is not an error
        assert Journal(d, 7, fs=disk).last_seq == 1

    _with(body)


def test_device_hands_one_storage_object_to_every_store():
    from tests.portable.device_kit import Clock, Hardware, _provision

    def body(d, disk):
        hw = Hardware()
        hw.disk = disk
        dev, _tech = _provision(d, hw, Clock(codes.NOW))
        v = dev.validator
        stores = (dev.store, dev.clock, dev.events, dev.journal, v.trust, v.deny, v.replay)
        assert [s.fs is disk for s in stores] == [True] * len(stores)
        dev.close()

    _with(body)


def test_full_disk_reaches_the_device_key_through_write_secret():
    """write_secret (the device key's writer, issue 16) opens its file through open_file, so a
    storage that injects faults sees it: GEN_KEY on a full disk leaves no key, not a torn one,
    and no temp file; with room again it writes the key (0600 where the port has modes)."""
    import os

    def body(d, disk):
        kit.write_atomic(d + "/factory.json", b'{"device_id": 7, "model": "t"}')
        store = DeviceStore(d, kit.HashKeys(), fs=disk)
        disk.full = True
        raises(OSError, store.generate_key)
        assert disk.refused and store.signer() is None
        assert not disk.path_exists(d + "/device.key.tmp")
        disk.full = False
        assert store.generate_key() and store.signer() is not None
        if hasattr(os, "chmod"):  # CPython: the mode; MicroPython has none to check
            assert os.stat(d + "/device.key")[0] & 0o777 == 0o600

    _with(body)
