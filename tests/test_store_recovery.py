"""A full disk heals and never stops a gate booting, nor the back office answering (issue 19,
item 5): the gate keeps syncing while its disk is full and frees it as acknowledgements
arrive; the boot shim boots on a full volume; a full back-office disk is `store_failed`, not a
crashed session. The store-level cases run on both interpreters in
tests/portable/test_store_recovery.py."""

import os
import sqlite3

import pytest

from firmware.maintenance import boot
from firmware.storage.journal import Journal, JournalFull
from firmware.sync.client import SyncError, run_session
from protocol import records
from tests.portable.images import agent, confirmed_gate, make
from tests.portable.test_store_recovery import QuotaStorage
from tests.synclab import DEVICE_ID, NOW, Lab


def _passage(i: int) -> records.Record:
    return records.Record(records.KIND_PASSAGE, 0, 0, 0, NOW + i, 1, 1, 3, 1000 + i, 1, 1, 250)


def test_a_gate_with_a_full_disk_keeps_syncing_and_frees_it(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.journal.close()
        gate_dir = os.path.join(lab.tmp, "gate")
        disk = QuotaStorage(gate_dir, 64 * 1024)
        lab.journal = Journal(gate_dir, DEVICE_ID, segment_records=64, fs=disk)
        n = 0
        with pytest.raises(JournalFull):
            while True:
                lab.journal.append(_passage(n))
                n += 1
        disk.quota = disk.used()  # full to the byte
        run_session(lab.client(batch_size=100), lab.link("pipe"))
        assert lab.store.count() == n and lab.journal.pending_count() == 0
        assert disk.used() < 64 * 1024 // 4  # the acknowledged segments are gone
        assert lab.journal.append(_passage(n)).seq == n + 1  # and passages go in again
    finally:
        lab.close()


def _full_open(real_open):
    def fake(path, mode="r", *a, **kw):
        if "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    return fake


def test_the_boot_shim_boots_on_a_full_volume(tmp_path, monkeypatch):
    d = str(tmp_path)
    confirmed_gate(d)
    before = boot.load_state(d)
    monkeypatch.setattr(boot, "open", _full_open(open), raising=False)
    assert boot.choose(d) == ("a", False)  # every boot, however often
    assert boot.choose(d) == ("a", False)
    monkeypatch.undo()
    assert boot.load_state(d) == before  # only the boot counter went unsaved
    assert not os.path.exists(d + "/boot.json.tmp")


def test_an_uncounted_trial_never_runs_the_confirmed_image_boots(tmp_path, monkeypatch):
    d = str(tmp_path)
    confirmed_gate(d)
    agent(d, running="a").stage(make(version=(1, 1, 0), counter=3))
    agent(d, running="a").request_test()
    monkeypatch.setattr(boot, "open", _full_open(open), raising=False)
    assert boot.choose(d) == ("a", False)  # the trial's boot could not be counted
    monkeypatch.undo()
    assert boot.load_state(d)["pending"] == "b"  # still waiting for its counted boot
    assert boot.choose(d) == ("b", True)


def _fill(db: sqlite3.Connection) -> None:
    """Forbid new pages and fill the auth log's last one to the byte: a full volume."""
    db.execute("PRAGMA max_page_count = %d" % db.execute("PRAGMA page_count").fetchone()[0])
    for size in (2048, 256, 16, 0):
        try:
            while True:
                db.execute(
                    "INSERT INTO auth_log (time, device_id, peer, outcome, detail) "
                    "VALUES (0, 0, 'ballast', '', ?)",
                    ("x" * size,),
                )
        except sqlite3.OperationalError as e:
            assert "full" in str(e)


def test_a_full_back_office_disk_answers_store_failed_and_stays_up(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.passages(50)
        _fill(lab.store.db)
        with pytest.raises(SyncError) as e:  # from log_auth, before any batch
            run_session(lab.client(batch_size=20), lab.link("pipe"))
        assert e.value.reason == "store_failed"
        assert lab.journal.acked_seq == 0  # nothing acknowledged
        lab.store.db.execute("DELETE FROM auth_log WHERE peer = 'ballast'")
        lab.store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        run_session(lab.client(batch_size=20), lab.link("pipe"))
        assert lab.store.count() == 50 and lab.journal.pending_count() == 0
    finally:
        lab.close()
