"""The power-loss disk (host_sim/hardware/powerdisk.py): its model, and the check that cannot
pass without fsync.

The check: the real journal on the power-loss disk commits records, the power fails inside a
seeded storage operation, the disk is cut, the journal reopens: every record whose commit
returned is there, byte for byte, and no seq is minted twice. The meta-tests replace the
durable-write primitives (Storage.sync_file, Storage.sync_dir) with versions that skip their
fsync and assert that the same check then fails: a check that would pass without fsync proves
nothing about durability.
"""

import errno
import os
import random

import pytest

from firmware.storage import fs
from firmware.storage.journal import Journal, JournalError
from host_sim.hardware.powerdisk import PowerDisk, PowerDiskError, PowerLost
from protocol import records

DEVICE = 7


def write(disk, path, data, sync=True, mode="wb"):
    f = disk.open_file(path, mode)
    f.write(data)
    if sync:
        disk.sync_file(f)
    f.close()


def read(path):
    with open(path, "rb") as f:
        return f.read()


# -- the model ---------------------------------------------------------------------------------
def test_synced_data_survives_a_cut_that_loses_everything_else(tmp_path):
    d = str(tmp_path)
    disk = PowerDisk()
    write(disk, d + "/a", b"durable")
    disk.sync_dir(d + "/a")
    write(disk, d + "/a", b"-more", sync=False, mode="ab")
    write(disk, d + "/b", b"never synced", sync=False)
    assert read(d + "/a") == b"durable-more"  # the page cache sees every write
    disk.cut(random.Random(1), keep=0, torn=0)
    assert read(d + "/a") == b"durable"
    assert not os.path.exists(d + "/b")  # its create was never made durable


def test_a_synced_file_whose_directory_was_not_synced_may_vanish(tmp_path):
    d = str(tmp_path)
    disk = PowerDisk()
    write(disk, d + "/new", b"x" * 100)  # file fsynced, directory not
    disk.cut(random.Random(1), keep=0, torn=0)
    assert not os.path.exists(d + "/new")


def test_unsynced_rename_and_remove_are_undone(tmp_path):
    d = str(tmp_path)
    (tmp_path / "old").write_bytes(b"old content")
    (tmp_path / "gone").write_bytes(b"kept")
    disk = PowerDisk()
    write(disk, d + "/old.tmp", b"new content")
    disk.rename(d + "/old.tmp", d + "/old")
    disk.remove_if_exists(d + "/gone")
    assert read(d + "/old") == b"new content" and not os.path.exists(d + "/gone")
    disk.cut(random.Random(2), keep=0, torn=0)
    assert read(d + "/old") == b"old content"
    assert read(d + "/gone") == b"kept"


def test_write_atomic_is_old_or_new_whatever_the_cut(tmp_path):
    d = str(tmp_path)
    (tmp_path / "f").write_bytes(b"A" * 3000)
    outcomes = set()
    for seed in range(60):
        disk = PowerDisk()
        disk.arm(random.Random(seed).randint(1, 5))
        try:
            disk.write_atomic(d + "/f", b"B" * 2000)
        except PowerLost:
            pass
        disk.cut(random.Random(seed))
        got = read(d + "/f")
        assert got in (b"A" * 3000, b"B" * 2000), (seed, got[:20], len(got))
        outcomes.add(got[:1])
        disk.remove_if_exists(d + "/f.tmp")
        (tmp_path / "f").write_bytes(b"A" * 3000)
    assert outcomes == {b"A", b"B"}


def test_unsynced_sectors_survive_as_any_subset_and_tear(tmp_path):
    """Sectors written since the last fsync survive each on its own: a later one without an
    earlier one (reordering), or torn; the same seed cuts the same way."""
    d = str(tmp_path)
    seen = set()
    results = []
    for seed in list(range(40)) + [3]:
        (tmp_path / "f").write_bytes(b"")
        disk = PowerDisk(sector=16)
        write(disk, d + "/f", b"", sync=True)
        disk.sync_dir(d + "/f")
        write(disk, d + "/f", bytes(range(1, 65)), sync=False, mode="ab")  # 4 sectors
        disk.cut(random.Random(seed))
        got = read(d + "/f")
        results.append(got)
        sectors = tuple(
            got[i * 16 : (i + 1) * 16] == bytes(range(1 + i * 16, 17 + i * 16)) for i in range(4)
        )
        seen.add(sectors)
    assert results[-1] == results[3]  # deterministic
    assert any(s[2] and not s[1] for s in seen)  # a later sector without an earlier one
    assert len(seen) >= 6
    assert disk.stats["cuts"] == 1


def test_eio_makes_nothing_durable(tmp_path):
    d = str(tmp_path)
    (tmp_path / "f").write_bytes(b"old")
    disk = PowerDisk()
    disk.fail_next_sync()
    f = disk.open_file(d + "/f", "ab")
    f.write(b"+new")
    with pytest.raises(OSError) as e:
        disk.sync_file(f)
    assert e.value.errno == errno.EIO
    f.close()
    disk.cut(random.Random(0), keep=0, torn=0)
    assert read(d + "/f") == b"old"
    disk.fail_sync(every=3)
    fails = 0
    for _ in range(9):
        try:
            write(disk, d + "/f", b"x", mode="ab")
        except OSError:
            fails += 1
    assert fails == 3 and disk.stats["eio"] == 4


def test_the_disk_fills_at_the_byte_it_was_told(tmp_path):
    d = str(tmp_path)
    disk = PowerDisk()
    disk.set_free(10)
    f = disk.open_file(d + "/f", "wb")
    f.write(b"123456")
    with pytest.raises(OSError) as e:
        f.write(b"abcdefgh")
    assert fs.is_full(e.value)
    f.close()
    assert read(d + "/f") == b"123456abcd"  # the write was cut at the last free byte
    assert disk.free_bytes(d) == 0
    disk.remove_if_exists(d + "/f")
    assert disk.free_bytes(d) == 10


def test_rot_flips_durable_bytes(tmp_path):
    d = str(tmp_path)
    (tmp_path / "f").write_bytes(bytes(1000))
    disk = PowerDisk()
    [at] = disk.rot(random.Random(5), d + "/f")
    got = read(d + "/f")
    assert got[at] != 0 and sum(1 for b in got if b) == 1
    disk.cut(random.Random(5), keep=0, torn=0)
    assert read(d + "/f") == got  # rot is at rest: it stays


def test_bad_arguments_are_typed_errors(tmp_path):
    with pytest.raises(PowerDiskError):
        PowerDisk(sector=0)
    with pytest.raises(PowerDiskError):
        PowerDisk().arm(0)
    with pytest.raises(PowerDiskError):
        PowerDisk().open_file(str(tmp_path / "t"), "w")


# -- the check that cannot pass without fsync ---------------------------------------------------
def passage(rng):
    return records.Record(
        records.KIND_PASSAGE, 0, 0, 0, 1_767_254_400, 1, 1, 3, rng.randrange(1, 50), 1,
        rng.randrange(1 << 30), 250,
    )  # fmt: skip


def journal_cuts(directory: str, seed: int, cuts: int, keep=None, torn=None, eio_every=0) -> dict:
    """The real journal on a PowerDisk, the power cut inside a seeded operation `cuts` times
    (`eio_every`: every so many fsyncs fail with EIO; `deferred_cuts` counts the openings whose
    torn-tail cut an EIO put off to the next append). -> figures, with `problems`: every
    committed record lost or changed, every seq reissued, every reopening that failed. Empty
    problems = it passed."""
    rng = random.Random(seed)
    disk = PowerDisk()
    disk.fail_sync(eio_every)
    committed: dict[int, bytes] = {}
    problems: list[str] = []
    out = {"cuts": 0, "committed": 0, "problems": problems, "seed": seed, "deferred_cuts": 0}
    for n in range(cuts):
        try:
            j = Journal(directory, DEVICE, segment_records=4, fs=disk)
        except (JournalError, OSError) as e:
            problems.append("cut %d: the journal does not reopen: %r" % (n, e))
            return out
        out["deferred_cuts"] += j._cut is not None
        for seq in committed:
            if seq > j.last_seq:
                problems.append("cut %d: committed seq %d lost (journal ends at %d)"
                                % (n, seq, j.last_seq))  # fmt: skip
        held = {records.seq_of(r): bytes(r) for r in j.pending(1 << 20)}
        for seq, raw in committed.items():
            if seq > j.acked_seq and held.get(seq) != raw:
                problems.append("cut %d: committed seq %d lost or changed" % (n, seq))
        if problems:
            return out
        disk.arm(rng.randint(1, 40))
        try:
            for _ in range(20):
                if rng.random() < 0.2 and j.last_seq > j.acked_seq:
                    try:
                        j.ack(rng.randint(j.acked_seq + 1, j.last_seq))
                    except JournalError:
                        pass  # (an fsync failed: acknowledged again later)
                    continue
                recs = [passage(rng) for _ in range(rng.choice((1, 1, 2, 3)))]
                try:
                    j.append_many(recs)
                except JournalError:
                    continue
                for r in recs:
                    committed[r.seq] = r.to_bytes()
                    out["committed"] += 1
        except PowerLost:
            pass
        j.close()
        disk.disarm()
        disk.cut(rng, keep, torn)
        out["cuts"] += 1
    return out


def test_committed_records_survive_every_cut(tmp_path):
    seed = int(os.environ.get("FAREGATE_SEED", "11"))
    r = journal_cuts(str(tmp_path), seed, cuts=150)
    assert not r["problems"], "seed %d: %s" % (seed, r["problems"][:5])
    assert r["cuts"] == 150 and r["committed"] > 300, r


def test_committed_records_survive_cuts_that_lose_everything_unsynced(tmp_path):
    r = journal_cuts(str(tmp_path), 12, cuts=100, keep=0, torn=0)
    assert not r["problems"], r["problems"][:5]


def test_committed_records_survive_cuts_and_failing_fsyncs(tmp_path):
    """Every fifth fsync fails with EIO (a failed commit is refused, its bytes cut back): what
    did commit survives every cut all the same."""
    r = journal_cuts(str(tmp_path), 1, cuts=150, eio_every=5)
    assert not r["problems"], r["problems"][:5]
    assert r["committed"] > 100 and r["deferred_cuts"] > 0, r


def test_an_eio_while_opening_is_never_a_bare_oserror(tmp_path):
    """An fsync that fails while opening cuts a torn tail: the journal still opens (the cut is
    made before the next append, which is refused until it is)."""
    r = journal_cuts(str(tmp_path), 1, cuts=150, eio_every=5)
    assert not any("OSError" in p for p in r["problems"]), r["problems"][:3]


def _skip_file_fsync(self, f):
    f.flush()  # to the page cache only: the fsync is skipped


def _skip_dir_fsync(self, path):
    pass


@pytest.mark.parametrize(
    "primitive, skipped", [("sync_file", _skip_file_fsync), ("sync_dir", _skip_dir_fsync)]
)
def test_the_check_fails_when_a_primitive_skips_its_fsync(
    tmp_path, monkeypatch, primitive, skipped
):
    """The same check, with the file's (or the directory's) fsync skipped in the primitive
    itself: it must find committed records lost, on the cut that loses what is not durable and
    on seeded random cuts alike."""
    monkeypatch.setattr(fs.Storage, primitive, skipped)
    os.makedirs(tmp_path / "worst")
    worst = journal_cuts(str(tmp_path / "worst"), 12, cuts=100, keep=0, torn=0)
    assert worst["problems"], "%s without fsync passed the check" % primitive
    os.makedirs(tmp_path / "random")
    seeded = journal_cuts(str(tmp_path / "random"), 11, cuts=150)
    assert seeded["problems"], "%s without fsync passed the seeded check" % primitive


def test_a_torn_footer_is_a_torn_write_not_corruption(tmp_path):
    failures = []
    for seed in range(40):
        d = tmp_path / ("s%d" % seed)
        d.mkdir()
        disk = PowerDisk()
        rng = random.Random(seed)
        j = Journal(str(d), DEVICE, segment_records=4, fs=disk)
        for _ in range(4):
            j.append(passage(rng))
        disk.arm(2)  # the next append seals the segment: open, then the footer's write
        with pytest.raises(PowerLost):
            j.append(passage(rng))
        disk.cut(rng, keep=0, torn=1)
        try:
            j2 = Journal(str(d), DEVICE, segment_records=4, fs=disk)
            assert j2.last_seq == 4
            j2.close()
        except JournalError as e:
            failures.append("seed %d: %s" % (seed, e))
    assert not failures, failures[:3]


def test_a_replay_committed_before_a_cut_is_still_refused_after_it(tmp_path):
    from firmware.verify.replay import ReplayCache

    disk = PowerDisk()
    path = str(tmp_path / "replay.log")
    cache = ReplayCache(path, fs=disk)
    cache.commit(42, 7, 1_767_254_400, 1_767_254_400)  # returns once the entry is fsynced
    cache.close()
    disk.cut(random.Random(0), keep=0, torn=0)
    assert ReplayCache(path, fs=disk).is_replay(42, 7)
