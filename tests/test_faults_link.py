"""R2 and R5: links that drop, duplicate, reorder and corrupt; a back office killed mid-batch;
a full disk on either side. Nothing is lost, nothing is stored twice, and sync recovers with no
operator action (the gate simply runs another session)."""

import os
import random
import signal
import sqlite3
import subprocess

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.link_tcp import sync_once
from firmware.sync.client import SyncError, run_session
from host_sim.backoffice.sync_server import HostSession
from protocol import records
from protocol.errors import FormatError
from provisioning import pki
from tests.conftest import faregate_argv
from tests.synclab import DEVICE_ID, NOW, Lab


class FaultyPipe:
    """An in-memory link to a HostSession that damages traffic in both directions, seeded.

    Each chunk handed to send() (one or more frames) may be dropped, duplicated, held back and
    delivered after the next one (reordered), cut short, or have a byte flipped; the link may
    also be down altogether (a partition)."""

    def __init__(self, session, rng, p=0.08, down=False):
        self.session = session
        self.rng = rng
        self.p = p
        self.down = down
        self.inbox: list[bytes] = []
        self.held_up: bytes | None = None
        self.held_down: bytes | None = None
        self.faults = {"drop": 0, "dup": 0, "reorder": 0, "corrupt": 0, "cut": 0}

    def _damage(self, data: bytes, direction: str) -> list[bytes]:
        r = self.rng.random()
        p = self.p
        if r < p:
            self.faults["drop"] += 1
            return []
        if r < 2 * p:
            self.faults["dup"] += 1
            return [data, data]
        if r < 3 * p:
            self.faults["corrupt"] += 1
            b = bytearray(data)
            b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
            return [bytes(b)]
        if r < 4 * p and len(data) > 1:
            self.faults["cut"] += 1
            return [data[: self.rng.randrange(1, len(data))]]
        if r < 5 * p:
            self.faults["reorder"] += 1
            held = "held_" + direction
            prev, cur = getattr(self, held), data
            setattr(self, held, cur)
            return [prev] if prev else []
        held = "held_" + direction
        prev = getattr(self, held)
        setattr(self, held, None)
        return [data, prev] if prev else [data]

    def send(self, data: bytes) -> None:
        if self.down:
            return
        for chunk in self._damage(data, "up"):
            out = self.session.receive(chunk)
            if out:
                self.inbox.extend(self._damage(out, "down"))

    def recv(self, timeout_s: float) -> bytes | None:
        if self.inbox:
            return self.inbox.pop(0)
        return None

    def close(self) -> None:
        pass


def test_link_faults_lose_nothing_and_store_nothing_twice(tmp_path):
    seed = int(os.environ.get("FAREGATE_SEED", "11"))
    rng = random.Random(seed)
    lab = Lab(tmp_path, segment_records=16)
    faults: dict[str, int] = {}
    sessions = failed = 0
    try:
        for round_ in range(40):
            lab.passages(rng.randint(0, 40), first_account=round_ * 100)
            down = rng.random() < 0.1  # a partition: the whole session is lost
            pipe = FaultyPipe(
                HostSession(lab.store, lab.host_signer, lab.verifier, lab.clock), rng, down=down
            )
            sessions += 1
            try:
                run_session(lab.client(batch_size=7, window=3), pipe, idle_timeout_s=0)
            except SyncError:
                failed += 1
            for k, v in pipe.faults.items():
                faults[k] = faults.get(k, 0) + v
            held = {r[0] for r in lab.store.db.execute("SELECT seq FROM records")}
            assert set(range(1, lab.journal.acked_seq + 1)) <= held, "trimmed before stored"
        # the link heals: the next session finishes the job
        for _ in range(20):
            if not lab.journal.pending_count():
                break
            pipe = FaultyPipe(
                HostSession(lab.store, lab.host_signer, lab.verifier, lab.clock), rng, p=0
            )
            run_session(lab.client(), pipe, idle_timeout_s=0)
        last = lab.journal.last_seq
        seqs = [r[0] for r in lab.store.db.execute("SELECT seq FROM records ORDER BY seq")]
        assert seqs == list(range(1, last + 1)), "seed %d" % seed
        assert lab.journal.pending_count() == 0
        assert lab.store.anomalies() == []
        assert failed > 0 and all(faults[k] > 0 for k in faults), (failed, faults)  # it was tested
    finally:
        lab.close()


def test_back_office_killed_mid_batch(tmp_path):
    """The back office process is SIGKILLed at random moments while a gate uploads; after each
    kill, every record the gate trimmed is in the SQLite file; after restarts all arrive once."""
    rng = random.Random(int(os.environ.get("FAREGATE_SEED", "5")))
    lab = Lab(tmp_path, segment_records=64)
    key = str(tmp_path / "sync-key.pem")
    k = generate_key()
    pki.save_key(k, key)
    lab.host_signer = OpenSSLSigner(k)
    lab.store.close()
    kills = 0
    try:
        for attempt in range(40):
            if attempt < 12:
                lab.passages(250, first_account=attempt * 1000)
            srv = subprocess.Popen(
                faregate_argv(
                    "backoffice", "serve", "--db", lab.db, "--sync-key", key, "--port", "0"
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            assert srv.stdout is not None
            line = srv.stdout.readline()
            port = int(line.split("127.0.0.1:")[1].split()[0])
            killer = None
            if attempt < 12:
                import threading

                delay = rng.uniform(0.0, 0.15)
                killer = threading.Timer(delay, srv.send_signal, (signal.SIGKILL,))
                killer.start()
            try:
                sync_once(lab.client(batch_size=10, window=2), "127.0.0.1", port, timeout_s=2)
            except (SyncError, OSError):
                pass
            if killer:
                killer.join()
                kills += srv.wait(10) == -signal.SIGKILL
            else:
                srv.send_signal(signal.SIGINT)
                srv.wait(10)
            db = sqlite3.connect(lab.db)
            held = {r[0] for r in db.execute("SELECT seq FROM records")}
            db.close()
            assert set(range(1, lab.journal.acked_seq + 1)) <= held, "acknowledged but lost"
            if attempt >= 12 and not lab.journal.pending_count():
                break
        assert lab.journal.pending_count() == 0 and kills >= 8
        db = sqlite3.connect(lab.db)
        assert [r[0] for r in db.execute("SELECT seq FROM records ORDER BY seq")] == list(
            range(1, 12 * 250 + 1)
        )
    finally:
        lab.journal.close()


def test_back_office_disk_full_acknowledges_nothing(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.passages(2000)
        lab.store.db.execute(
            "PRAGMA max_page_count = %d"
            % (lab.store.db.execute("PRAGMA page_count").fetchone()[0] + 20)
        )  # SQLite's own "database or disk is full", as a full volume gives it
        with pytest.raises(SyncError) as e:
            run_session(lab.client(batch_size=500), lab.link("pipe"))
        assert e.value.reason == "store_failed"
        stored = lab.store.count()
        assert (
            lab.journal.acked_seq == stored < 2000
        )  # what was acknowledged is exactly what is held
        lab.store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        run_session(lab.client(batch_size=500), lab.link("pipe"))
        assert lab.store.count() == 2000 and lab.journal.pending_count() == 0
    finally:
        lab.close()


def test_gate_disk_full_keeps_the_barrier_shut(tmp_path):
    from firmware.gate.gate import Gate
    from firmware.storage.journal import Journal
    from firmware.verify.validator import IssuerKey, Validator
    from host_sim.hardware.devices import ManualClock, SimBarrier, SimDisplay
    from host_sim.wallet import Issuer, Rider
    from protocol import journalfile
    from tests.portable.test_journal import FaultyDisk

    issuer = Issuer(key_id=1)
    riders = [Rider() for _ in range(3)]
    for i, r in enumerate(riders):
        issuer.issue(r, account_id=10 + i, valid_from=NOW - 60, valid_until=NOW + 3600)
    disk = FaultyDisk(room=journalfile.ENTRY3_LEN * 2)  # two journal entries
    os.makedirs(tmp_path / "g")
    j = Journal(str(tmp_path / "g"), DEVICE_ID, fs=disk)
    gate = Gate(
        Validator(OpenSSLVerifier(), {1: IssuerKey(1, issuer.public_key)}),
        j, SimBarrier(), SimDisplay(), ManualClock(NOW),
    )  # fmt: skip
    assert gate.on_scan(riders[0].present(NOW)).accept
    gate.on_event("passage_fwd")  # each rider walks through before the next scans
    assert gate.on_scan(riders[1].present(NOW)).accept
    gate.on_event("passage_fwd")
    d = gate.on_scan(riders[2].present(NOW))
    assert not d.accept and d.reason == "journal_full" and gate.barrier.openings == 2
    assert gate.display.last == "Gate closed - see staff"
    j.close()
    j = Journal(str(tmp_path / "g"), DEVICE_ID)
    assert [records.decode(r).account_id for r in j.pending()] == [10, 11]
    j.close()


def test_oversize_frames_and_batches_are_refused(tmp_path):
    from protocol import frames, messages

    big = frames.encode(messages.BATCH, bytes(300_000), max_payload=1 << 20)
    lab = Lab(tmp_path)
    try:
        s = HostSession(lab.store, lab.host_signer, lab.verifier, lab.clock)
        assert s.receive(big) == b"" and s.conn._dec.stats["oversize"] == 1
        with pytest.raises(FormatError):
            messages.batch([bytes(64)] * (messages.MAX_BATCH + 1), bytes(64))
    finally:
        lab.close()


@pytest.mark.soak
def test_link_faults_soak(tmp_path, monkeypatch):
    base = int(os.environ.get("FAREGATE_SEED", "0")) or random.SystemRandom().randrange(1 << 30)
    print("link-fault soak seeds from %d (FAREGATE_SEED=N reproduces one)" % base)
    for i in range(100):
        d = tmp_path / str(i)
        d.mkdir()
        monkeypatch.setenv("FAREGATE_SEED", str(base + i))
        test_link_faults_lose_nothing_and_store_nothing_twice(d)
