"""P4 (journal) and P5 (sync over loopback TCP) of TARGETS.md (P10, the cold start of the
whole gate, is bench/bench_device.py).

Every ratio is against a reference measured in the same run on the same disk: raw
`write`+`fsync` of the same 254-byte entries (the journal's format 3: a version 2 record, 245
bytes with the rider's ride code kept, once, with its CRC), and SQLite WAL synchronous=FULL
commits, interleaved with them.
"""

import os
import shutil
import sqlite3
import statistics
import struct
import time
from typing import Any

from bench.util import row, scratch
from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient
from protocol import journalfile, records, ridecode

NOW = 1_767_254_400


_CODE = bytes(range(256))[: records.CODE_LEN]  # a ride code's bytes (not verified here)


def _rec(i: int) -> records.Record:
    """A passage that keeps a ride code, as every passage of a gate does: issuer 1, one of
    5,000 accounts, each passage its own presentation (counter i)."""
    code = bytearray(_CODE)
    code[2:12] = struct.pack(">HQ", 1, ridecode.cred_id(1000 + i % 5000, 1))
    code[128:132] = struct.pack(">I", i + 1)
    return records.Record(
        records.KIND_PASSAGE, 0, 0, 0, NOW + i, 1, 1, i % 12 + 1, value=250, code=bytes(code)
    )


def _durable_pair(d: str, n: int, rounds: int) -> tuple[float, float, float, float, float]:
    """Median appends/s of the journal, of raw write+fsync of the same entries and of SQLite
    synchronous=FULL commits of the same records, and the medians of the per-round ratios
    journal/raw and journal/SQLite.

    Within a round the three take turns record by record (who goes first rotating with each
    record), each append timed on its own, and a round's ratio is of its summed times. The
    disk is shared: other processes' fsyncs swing its rate from about 200/s to 3,000/s within
    seconds, so rounds of one side after another (as this bench first did) compared different
    disks (per-round ratios from 0.14 to 1.8 in one run); turn by turn, each swing hits all
    three alike. The journal's system calls per append are the reference's (one write of the
    254 bytes, one fsync: strace shows nothing else)."""
    recs = [_rec(i) for i in range(n)]
    # the same bytes the journal writes (k = 0: each append is its own commit group)
    entries = [journalfile.entry3(r.to_bytes(), 0) for r in recs]
    raws = [r.to_bytes() for r in recs]
    ours, raw, lite, paired, vs_sqlite = [], [], [], [], []
    for r in range(rounds):
        spent = _round(d, r, recs, entries, raws)
        ours.append(n / spent[0])
        raw.append(n / spent[1])
        lite.append(n / spent[2])
        paired.append(spent[1] / spent[0])
        vs_sqlite.append(spent[2] / spent[0])
    return (
        statistics.median(ours),
        statistics.median(raw),
        statistics.median(paired),
        statistics.median(lite),
        statistics.median(vs_sqlite),
    )


def _round(d: str, r: int, recs: list, entries: list[bytes], raws: list[bytes]) -> list[float]:
    """One round of _durable_pair: seconds spent by the journal, raw and SQLite."""
    jd = os.path.join(d, "j%d" % r)
    os.makedirs(jd)
    j = Journal(jd, 1, capacity=10**7)
    j.append(_rec(0))  # the segment file exists, as on a running gate
    f = open(os.path.join(d, "raw%d" % r), "ab")
    _write_sync(f, entries[0])  # and the reference's file, and the SQLite table
    db = _sqlite_db(os.path.join(d, "ref%d.sqlite" % r), raws[0])

    def journal_one(i: int) -> None:
        j.append(recs[i])

    def raw_one(i: int) -> None:
        _write_sync(f, entries[i])

    def sqlite_one(i: int) -> None:
        db.execute("INSERT INTO r VALUES (?, ?)", (i, raws[i]))

    sides = (journal_one, raw_one, sqlite_one)
    spent = [0.0, 0.0, 0.0]
    clock = time.perf_counter
    for i in range(len(recs)):
        for k in range(3):
            side = (i + k) % 3
            t0 = clock()
            sides[side](i)
            spent[side] += clock() - t0
    j.close()
    f.close()
    db.close()
    return spent


def _write_sync(f, data: bytes) -> None:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _sqlite_db(path: str, first: bytes) -> sqlite3.Connection:
    """The SQLite reference: WAL, synchronous=FULL, one table, its first row in (the file
    exists, as for the others); each INSERT then is its own durable commit."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE r (seq INTEGER PRIMARY KEY, raw BLOB)")
    db.execute("INSERT INTO r VALUES (?, ?)", (-1, first))
    return db


def p4() -> list[dict]:
    d = scratch()
    try:
        ours, raw, paired, sqlite_rate, vs_sqlite = _durable_pair(d, 800, 15)
        # group commit: bursts of 1,000 records, one write and one fsync each
        jd = os.path.join(d, "group")
        os.makedirs(jd)
        j = Journal(jd, 1, capacity=2 * 10**6)
        rates = []
        for k in range(5):
            recs = [_rec(i) for i in range(k * 40000, (k + 1) * 40000)]
            t0 = time.perf_counter()
            for i in range(0, len(recs), 1000):
                j.append_many(recs[i : i + 1000])
            rates.append(len(recs) / (time.perf_counter() - t0))
        group = statistics.median(rates)
        # grow to 1,000,000 records, then reopen and check them (median of 3)
        while j.last_seq < 1_000_000:
            j.append_many([_rec(i) for i in range(min(10000, 1_000_000 - j.last_seq))])
        j.close()
        size = sum(os.path.getsize(os.path.join(jd, f)) for f in os.listdir(jd))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            j = Journal(jd, 1, capacity=2 * 10**6)
            times.append(time.perf_counter() - t0)
            assert j.pending_count() == 1_000_000
            j.close()
        reopen = statistics.median(times)
        j = Journal(jd, 1, capacity=2 * 10**6)
        t0 = time.perf_counter()
        raws = j.pending(1_000_000)
        assert records.verify_chain(raws) == -1
        chain = time.perf_counter() - t0
        j.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [
        row(
            "P4",
            "journal durable append, one fsync per passage (ref: raw write+fsync, same bytes)",
            ours,
            "records/s",
            raw,
            ">= 0.9 x raw",
            ratio=paired,
        ),
        row(
            "P4",
            "journal durable append against SQLite WAL synchronous=FULL, one commit per record",
            ours,
            "records/s",
            sqlite_rate,
            ">= 1.0 x SQLite",
            ratio=vs_sqlite,
        ),
        row("P4", "journal group commit, bursts of 1,000", group, "records/s", None, ">= 50,000"),
        row("P4", "journal reopen + check, 1,000,000 records", reopen, "s", None, "<= 2 s"),
        row(
            "P4",
            "  full hash-chain verify of the same 1,000,000 (not needed to open)",
            chain,
            "s",
            None,
            "(information)",
        ),
        row("P4", "journal bytes per record on disk", size / 1_000_000, "bytes", None, "<= 256"),
    ]


def _cpu(who: int) -> float:
    import resource

    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _sync_run(
    tls: bool, group_commit: bool = True, process: bool = True
) -> tuple[float, int, float, float]:
    """One gate uploads 100,000 records to a back office served as `faregate backoffice
    serve` runs it: in a process of its own (`process`; else a thread of this one, sharing
    its GIL with the gate), its writes through the group commit unless `group_commit` is
    False. Returns the seconds, the records and the CPU seconds of the gate's process and
    of the back office's (0 when it is a thread of the gate's)."""
    import datetime
    import resource

    from bench.bench_fleet import BackOfficeProcess
    from drivers.linux.link_tcp import client_context, sync_once
    from host_sim.backoffice.store import Store
    from host_sim.backoffice.sync_server import BackOfficeThread, HostKeys, server_context
    from host_sim.hardware.devices import ManualClock
    from provisioning import pki

    d = scratch()
    try:
        verifier = OpenSSLVerifier()
        host, device = OpenSSLSigner(generate_key()), OpenSSLSigner(generate_key())
        db = os.path.join(d, "bo.sqlite")
        store = Store(db)
        store.add_device(1, device.public_key, NOW)
        store.close()
        os.makedirs(os.path.join(d, "gate"))
        journal = Journal(os.path.join(d, "gate"), 1)
        n = 100_000
        for i in range(0, n, 10000):
            journal.append_many([_rec(k) for k in range(i, i + 10000)])
        certs = cctx = None
        if tls:
            when = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
            certs = pki.tls_files(os.path.join(d, "tls"), when)
            ca, _srv, cli = certs
            cctx = client_context(ca, cli[0], cli[1])
        keys = HostKeys(host, verifier)
        bo: Any
        if process:
            bo = BackOfficeProcess(db, keys, certs, 1, group_commit)
        else:
            ctx = server_context(certs[1][0], certs[1][1], certs[0]) if certs else None
            bo = BackOfficeThread(db, keys, ctx, ManualClock(NOW), group_commit=group_commit)
        client = SyncClient(
            journal, device, verifier, host.public_key, ManualClock(NOW), batch_size=1024, window=4
        )
        c0, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
        acked = sync_once(client, "127.0.0.1", bo.port, cctx, timeout_s=30)
        took, gate_cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - c0
        b0 = _cpu(resource.RUSAGE_CHILDREN)
        bo.stop()
        bo_cpu = _cpu(resource.RUSAGE_CHILDREN) - b0 if process else 0.0
        store = Store(db)
        held = store.count()
        store.close()
        assert acked == n and held == n and journal.pending_count() == 0
        journal.close()
        return took, n, gate_cpu, bo_cpu
    finally:
        shutil.rmtree(d, ignore_errors=True)


def p5() -> list[dict]:
    """The target row runs the back office as `serve` does (its own process, group commit);
    the reference, in the same run, interleaved, the median of `FAREGATE_P5_ROUNDS` (1): the
    back office in a thread of the gate's process (one GIL for both ends) committing each
    batch on its own, as P5 ran before. CPU seconds of each end are said too: under a shared
    machine's load the wall time is mostly waiting for a core."""
    ours, ref, bo_cpu, gate_cpu = [], [], [], []
    for r in range(int(os.environ.get("FAREGATE_P5_ROUNDS", "1"))):
        for side in (0, 1) if r % 2 == 0 else (1, 0):
            if side == 0:
                t, _n, gate, bo = _sync_run(tls=True)
                ours.append(t)
                gate_cpu.append(gate)
                bo_cpu.append(bo)
            else:
                ref.append(_sync_run(tls=True, group_commit=False, process=False)[0])
    took_plain = _sync_run(tls=False)[0]
    return [
        row(
            "P5",
            "sync 100,000 records, loopback TCP + TLS, journal trim and SQLite FULL "
            "(ref: one process, a commit per batch)",
            statistics.median(ours),
            "s",
            statistics.median(ref),
            "<= 5 s",
        ),
        row(
            "P5",
            "  back office CPU (its process), the same sync",
            statistics.median(bo_cpu),
            "s",
            None,
            "(information)",
        ),
        row(
            "P5",
            "  gate CPU, the same sync",
            statistics.median(gate_cpu),
            "s",
            None,
            "(information)",
        ),
        row(
            "P5",
            "  the same without TLS",
            took_plain,
            "s",
            None,
            "(information)",
        ),
    ]


BENCHES = {"P4": p4, "P5": p5}
