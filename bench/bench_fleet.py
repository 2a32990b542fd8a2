"""P11 of TARGETS.md: the back office under a fleet.

N simulated gates (default 10,000; `FAREGATE_P11_GATES` or `fleet(gates=...)` for fewer), each
with its own device key (made and registered beforehand), its own seq and hash chain, sync
with ONE back office over loopback TLS with the full device authentication of
docs/sync-protocol.md. The gates are driven by one asyncio load generator in this process;
each gate is the gate's own sans-IO `firmware.sync.client.SyncClient` (protocol.sync underneath,
no second implementation of the protocol) over an asyncio TLS stream, with an in-memory
journal holding its chained records. The back office is the real one: `serve_tcp` of
host_sim/backoffice/sync_server.py in `workers` processes forked on one listening socket, as
`faregate backoffice serve --workers N` runs it, so the load generator and the server do not
share a GIL.

What each step buys (the table's first rows, `FAREGATE_P11_STEP_GATES` gates, default 1,000,
each step a fresh store): the baseline (full TLS handshakes, each write its own transaction,
one front end), + TLS session resumption (every gate synced once before, unmeasured, as a
fleet syncing every minute has, and offers that session), + the group commit, + one front
end per core (`FAREGATE_P11_WORKERS`, default the machine's cores); the steps run
`FAREGATE_P11_ROUNDS` times (default 2) interleaved, each step's best run shown, since other
work on the machine moves between them. Then the whole fleet with
everything on, and bulk ingest (20 gates with 5,000 queued records each).

Both backends: a new SQLite file per run, and a private PostgreSQL cluster
(tests/pgcluster.py: initdb in a temporary directory, a new database per run) when initdb is
there. `FAREGATE_P11_STORE`: a PostgreSQL URL runs the PostgreSQL rows there instead (device
ids after each run's, so give an empty database), a path runs the SQLite rows there.

References, measured in the same run: bare TLS handshakes/s on loopback with the same
certificates and concurrency, full and resumed; for bulk ingest, a bare SQLite executemany
INSERT OR IGNORE of the same rows into the same table, one transaction per batch, same
durability (WAL, synchronous=FULL), and on PostgreSQL a bare COPY into a staging table +
INSERT ... ON CONFLICT DO NOTHING of the same rows and batches.
"""

import asyncio
import contextvars
import datetime
import multiprocessing
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import time
from typing import Any

from bench.util import row, scratch
from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.link_tcp import client_context
from firmware.sync.client import SyncClient
from host_sim.backoffice.backends import PostgreSQL, SQLite, is_postgres
from host_sim.backoffice.group_commit import GroupCommit
from host_sim.backoffice.store import SCHEMA, Store, record_row
from host_sim.backoffice.sync_server import (
    HostKeys,
    serve_tcp,
    server_context,
    worker_sockets,
)
from host_sim.hardware.devices import ManualClock
from protocol import records

NOW = 1_767_254_400
GATES = int(os.environ.get("FAREGATE_P11_GATES", "10000"))
# what Store() opens for both runs; unset: a new SQLite file each (a URL: one server for both)
STORE = os.environ.get("FAREGATE_P11_STORE") or None  # give a fresh one: ids 1..N+20 fill it
CONCURRENCY = 64  # sessions in flight at once from the load generator
# gates of each step of the table (what each of resumption, group commit, workers buys)
STEP_GATES = int(os.environ.get("FAREGATE_P11_STEP_GATES", "1000"))
WORKERS = int(os.environ.get("FAREGATE_P11_WORKERS", str(os.cpu_count() or 2)))
ROUNDS = int(os.environ.get("FAREGATE_P11_ROUNDS", "2"))  # of the steps, interleaved; best kept


class MemJournal:
    """The part of firmware.storage.journal.Journal that SyncClient uses, in memory: a gate's
    chained records, trimmed by ACKs. Times each batch from when the client takes it
    (`pending`, just before the write) to the ACK that covers it."""

    def __init__(self, device_id: int, raws: list[bytes], ack_ms: list[float]) -> None:
        self.device_id = device_id
        self.raws = raws  # seq k is raws[k - 1]
        self.last_seq = len(raws)
        self.acked_seq = 0
        self.rejects_not_journaled = 0
        self._taken: list[tuple[int, float]] = []  # (last seq of a batch, time taken)
        self._ack_ms = ack_ms

    def pending_count(self) -> int:
        return self.last_seq - self.acked_seq

    def pending(self, limit: int = 1000, after_seq: int = -1) -> list:
        start = max(self.acked_seq, after_seq)
        out = self.raws[start : min(start + limit, self.last_seq)]
        if out:
            self._taken.append((start + len(out), time.perf_counter()))
        return out

    def ack(self, up_to_seq: int) -> int:
        up_to = min(up_to_seq, self.last_seq)
        if up_to <= self.acked_seq:
            return 0
        now = time.perf_counter()
        while self._taken and self._taken[0][0] <= up_to:
            self._ack_ms.append((now - self._taken.pop(0)[1]) * 1000)
        dropped, self.acked_seq = up_to - self.acked_seq, up_to
        return dropped


def chain(device_id: int, n: int, first_account: int = 1000) -> list[bytes]:
    """n passages of one gate, seq 1..n, each carrying the hash of the one before."""
    out, prev = [], records.ZERO_HASH
    for seq in range(1, n + 1):
        raw = records.Record(
            records.KIND_PASSAGE,
            0,
            device_id,
            seq,
            NOW + seq,
            1,
            1,
            device_id % 200 + 1,
            first_account + device_id * 1000 + seq,
            1,
            seq,
            250,
            0,
            prev,
        ).to_bytes()
        prev = records.record_hash(raw)
        out.append(raw)
    return out


def _serve(
    store_arg: str,
    keys: HostKeys,
    tls: ssl.SSLContext | None,
    sock: socket.socket,
    group_commit: bool,
    conn: Any,
) -> None:
    """One back office worker: serve_tcp on the listening socket it shares with the others
    (what `faregate backoffice serve --workers N` runs), until told to stop."""

    async def main() -> None:
        store = Store(store_arg)
        commit = GroupCommit(lambda: Store(store_arg)) if group_commit else None
        server = await serve_tcp(
            store,
            keys,
            ssl_context=tls,
            clock=ManualClock(NOW),
            log=lambda event: None,
            commit=commit,
            sock=sock,
        )
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        server.close()
        # sessions still closing their TLS stream end on their own, not cancelled by run()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=10)
        await server.wait_closed()
        if commit is not None:
            commit.close()
        store.close()

    asyncio.run(main())


class BackOfficeProcess:
    """`workers` back office processes on one listening socket, made (with the TLS context,
    so its session-ticket key is the same in every worker) before they are forked.
    `certs` None: plain TCP (bench P5's reference)."""

    def __init__(
        self,
        store_arg: str,
        keys: HostKeys,
        certs: tuple | None,
        workers: int = 1,
        group_commit: bool = True,
        reuse_port: bool = False,
    ) -> None:
        tls = None
        if certs is not None:
            ca, srv, _cli = certs
            tls = server_context(srv[0], srv[1], ca)
        socks = worker_sockets("127.0.0.1", 0, workers, reuse_port)
        self.port = socks[0].getsockname()[1]
        ctx = multiprocessing.get_context("fork")
        self._conns, self.procs = [], []
        for sock in socks:
            conn, child = ctx.Pipe()
            proc = ctx.Process(
                target=_serve, args=(store_arg, keys, tls, sock, group_commit, child), daemon=True
            )
            proc.start()
            self._conns.append(conn)
            self.procs.append(proc)
        for conn in self._conns:
            if not conn.poll(30):
                raise RuntimeError("back office process did not start")
            conn.recv()
        for sock in set(socks):
            sock.close()  # the workers hold them

    def cpu(self) -> float:
        """CPU seconds the workers used so far (Linux /proc; 0 elsewhere)."""
        return sum(_proc_cpu(p.pid) for p in self.procs if p.pid is not None)

    def stop(self) -> None:
        for conn in self._conns:
            conn.send("stop")
        for proc in self.procs:
            proc.join(30)


def register(store_arg: str, first_id: int, pubs: list[bytes]) -> None:
    """Every gate in the registry (device ids first_id..), in one transaction."""
    store = Store(store_arg)
    with store.transaction():
        for i, pub in enumerate(pubs, first_id):
            store.add_device(i, pub, NOW, "p11 gate %d" % i)
    store.close()


class ResumingContext(ssl.SSLContext):
    """A client context that offers the TLS session in `OFFER` (this task's gate's last
    session): asyncio's open_connection has no `session=`, its SSL object comes from here."""

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # type: ignore[no-untyped-def,override]
        return super().wrap_bio(
            incoming, outgoing, server_side, server_hostname, session or OFFER.get()
        )


OFFER: contextvars.ContextVar[ssl.SSLSession | None] = contextvars.ContextVar("offer", default=None)


def gate_context(ca: str, cert: str, key: str) -> ResumingContext:
    """drivers.linux.link_tcp.client_context's settings, on a ResumingContext."""
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def _session(
    client: SyncClient, port: int, ctx: ssl.SSLContext, tickets: dict | None
) -> None:
    """One gate's session; with `tickets` ({device_id: SSLSession}) it offers the gate's last
    TLS session and keeps the new one."""
    dev = client.journal.device_id
    OFFER.set(tickets.get(dev) if tickets is not None else None)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
    )
    try:
        writer.write(client.start())
        while not client.done:
            async with asyncio.timeout(30):
                data = await reader.read(262144)
            if not data:
                raise ConnectionError("back office closed the link mid-session")
            out = client.receive(data)
            if out:
                writer.write(out)
                await writer.drain()
        tls = writer.get_extra_info("ssl_object")
        if tls.session_reused:
            RESUMED[0] += 1
        elif tickets is not None:
            # the session of a full handshake, kept while the back office resumes it: TLS
            # 1.3 tickets stay good for their lifetime, and CPython's SSLObject.session copies
            # the session through DER (~0.3 ms), too dear for the load generator each time
            tickets[dev] = tls.session
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


RESUMED = [0]


async def _drive(
    jobs: list, port: int, ctx: ssl.SSLContext, concurrency: int, tickets: dict | None
) -> list[float]:
    """Run every (client) session, `concurrency` at a time; returns each session's ms."""
    took: list[float] = []
    it = iter(jobs)

    async def worker() -> None:
        for client in it:
            t0 = time.perf_counter()
            await _session(client, port, ctx, tickets)
            took.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return took


def fleet(
    store: str | None = None,
    gates: int = GATES,
    records_per_gate: int = 10,
    concurrency: int = CONCURRENCY,
    batch_size: int = 200,
    directory: str | None = None,
    first_id: int = 1,
    resume: bool = True,
    group_commit: bool = True,
    workers: int = 1,
    warm_up: bool | None = None,
    reuse_port: bool = False,
) -> dict[str, Any]:
    """One run: `gates` gates, each one session uploading `records_per_gate` new records.

    `store`: what Store() opens (default: a new SQLite file in the scratch directory).
    `resume`: gates offer their last TLS session; `group_commit`: the back office's writes
    go through GroupCommit; `workers`: back office processes on one socket. `warm_up`
    (default: `resume`): every gate first syncs once, unmeasured, as a fleet syncing every
    minute has (its TLS session is then the one resumed), and uploads `records_per_gate`
    records more in the measured session.
    Returns the figures and, for checks, `expected` {device_id: [raw, ...]} and `store`."""
    from provisioning import pki

    warm_up = resume if warm_up is None else warm_up
    d = directory or scratch("bench-p11-")
    os.makedirs(d, exist_ok=True)
    store = store or os.path.join(d, "bo.sqlite")
    verifier = OpenSSLVerifier()
    host = OpenSSLSigner(generate_key())
    signers = [OpenSSLSigner(generate_key()) for _ in range(gates)]
    ids = range(first_id, first_id + gates)
    register(store, first_id, [s.public_key for s in signers])
    rounds = 2 if warm_up else 1
    expected = {i: chain(i, records_per_gate * rounds) for i in ids}
    certs = pki.tls_files(
        os.path.join(d, "tls"), datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    )
    ca, _srv, cli = certs
    cctx = gate_context(ca, cli[0], cli[1])
    clock = ManualClock(NOW)
    journals = [MemJournal(i, expected[i], []) for i in ids]
    tickets: dict | None = {} if resume else None

    def clients() -> list[SyncClient]:
        return [
            SyncClient(
                j,
                signers[j.device_id - first_id],
                verifier,
                host.public_key,
                clock,
                batch_size=batch_size,
            )
            for j in journals
        ]

    bo = BackOfficeProcess(
        store, HostKeys(host, verifier), certs, workers, group_commit, reuse_port
    )
    try:
        if warm_up:
            for j in journals:
                j.last_seq = records_per_gate
            asyncio.run(_drive(clients(), bo.port, cctx, concurrency, tickets))
            for j in journals:
                j.last_seq = len(j.raws)
        ack_ms: list[float] = []
        for j in journals:
            j._ack_ms = ack_ms
        RESUMED[0] = 0
        measured = clients()
        s0, g0, t0 = bo.cpu(), _self_cpu(), time.perf_counter()
        took = asyncio.run(_drive(measured, bo.port, cctx, concurrency, tickets))
        wall = time.perf_counter() - t0
        server_cpu, gen_cpu = bo.cpu() - s0, _self_cpu() - g0
    finally:
        bo.stop()
    acked = sum(c.acked for c in measured)
    return {
        "store": store,
        "dir": d,
        "expected": expected,
        "sessions": len(took),
        "sessions_s": len(took) / wall,
        "records_s": acked / wall,
        "acked": acked,
        "resumed": RESUMED[0],
        "ack_p50": statistics.median(ack_ms) if ack_ms else 0.0,
        "ack_p99": _pct(ack_ms, 99),
        "session_p99": _pct(took, 99),
        # CPU ms per session, measured over the timed sessions: the back office's processes
        # (every worker, its group-commit thread included) and the load generator's
        "server_cpu_ms": server_cpu * 1000 / max(1, len(took)),
        "gen_cpu_ms": gen_cpu * 1000 / max(1, len(took)),
        "certs": certs,
    }


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of a live process, from /proc."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(xs: list[float], p: int) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


# -- references ----------------------------------------------------------------------------
def _bare_tls(certs: tuple, n: int, concurrency: int, resume: bool) -> float:
    """Handshakes/s of a bare asyncio TLS server (the same server context, client certificate
    required) on loopback, from `concurrency` blocking clients in threads, with or without TLS
    session resumption (the client offers the session of its previous connection)."""
    import threading

    ca, srv, cli = certs
    sctx = server_context(srv[0], srv[1], ca)
    cctx = client_context(ca, cli[0], cli[1])
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()

    def serve() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await w.start_tls(sctx)
                w.write(b"k")  # one byte, so TLS 1.3 session tickets reach the client
                await w.drain()
                await r.read(1)
            except (OSError, ssl.SSLError):
                pass
            w.close()

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            child.send(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().run_in_executor(None, child.recv)
            server.close()

        asyncio.run(main())

    proc = ctx.Process(target=serve, daemon=True)
    proc.start()
    port = parent.recv()
    resumed = [0]

    def client(k: int) -> None:
        session = None
        for _ in range(k):
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with cctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
                    s.recv(1)
                    resumed[0] += bool(s.session_reused)
                    if resume:
                        session = s.session
                    s.sendall(b"k")

    per = max(4, n // concurrency)  # each client resumes from its 2nd connection on
    threads = [threading.Thread(target=client, args=(per,)) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    parent.send("stop")
    proc.join(10)
    if resume and resumed[0] == 0:
        return 0.0  # the server or client does not resume: said in the row
    return per * concurrency / wall


def _bare_sqlite(d: str, expected: dict, batch_size: int) -> float:
    """Records/s of executemany INSERT OR IGNORE of the same rows into the store's own table,
    one transaction per batch of `batch_size`, WAL + synchronous=FULL as the store runs."""
    db = sqlite3.connect(os.path.join(d, "bare.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA.format(**SQLite.tokens))
    batches = []
    for raws in expected.values():
        for i in range(0, len(raws), batch_size):
            rows = [record_row(records.decode(r), r, NOW) for r in raws[i : i + batch_size]]
            batches.append(rows)
    n = sum(len(b) for b in batches)
    t0 = time.perf_counter()
    for rows in batches:
        db.execute("BEGIN IMMEDIATE")
        marks = ",".join("?" * len(rows[0]))
        db.executemany("INSERT OR IGNORE INTO records VALUES (%s)" % marks, rows)
        db.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    db.close()
    return rate


def _bare_postgres(url: str, expected: dict, batch_size: int) -> float:
    """Records/s of a bare COPY of the same rows into a staging table and INSERT ... ON
    CONFLICT DO NOTHING from it into a records table of the store's own schema (in a schema
    of its own, p11_bare, dropped after), one transaction per batch of `batch_size`."""
    import psycopg

    batches = []
    for raws in expected.values():
        for i in range(0, len(raws), batch_size):
            batches.append(
                [record_row(records.decode(r), r, NOW) for r in raws[i : i + batch_size]]
            )
    n = sum(len(b) for b in batches)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP SCHEMA IF EXISTS p11_bare CASCADE")
        c.execute("CREATE SCHEMA p11_bare")
        c.execute("SET search_path TO p11_bare")
        for stmt in SCHEMA.format(**PostgreSQL.tokens).split(";"):
            if stmt.strip():
                c.execute(stmt)  # type: ignore[call-overload]
        c.execute("CREATE TEMP TABLE stage (LIKE p11_bare.records) ON COMMIT DELETE ROWS")
        t0 = time.perf_counter()
        for rows in batches:
            with c.transaction():
                with c.cursor().copy("COPY stage FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
                c.execute("INSERT INTO records SELECT * FROM stage ON CONFLICT DO NOTHING")
        rate = n / (time.perf_counter() - t0)
        c.execute("DROP SCHEMA p11_bare CASCADE")
    return rate


# what each step turns on, in order (the "measure what each buys")
STEPS: list[tuple[str, dict[str, Any]]] = [
    (
        "baseline: full TLS handshakes, each write its own commit, 1 front end",
        dict(resume=False, group_commit=False, workers=1),
    ),
    (
        "+ TLS session resumption (gates offer their last session)",
        dict(resume=True, group_commit=False, workers=1),
    ),
    ("+ group commit across sessions", dict(resume=True, group_commit=True, workers=1)),
    (
        "+ a front end per core (%d workers, one socket, one ticket key)" % WORKERS,
        dict(resume=True, group_commit=True, workers=WORKERS),
    ),
    (
        "+ a socket per front end (SO_REUSEPORT, serve --reuse-port)",
        dict(resume=True, group_commit=True, workers=WORKERS, reuse_port=True),
    ),
]


class _Stores:
    """The store of each run on one backend: a new SQLite file, a new database of the
    private PostgreSQL cluster, or (FAREGATE_P11_STORE a URL) the one given, with device
    ids after the last run's."""

    def __init__(self, backend: str, d: str, given: str | None) -> None:
        self.backend, self.d, self.given = backend, d, given
        self.cluster: Any = None
        self.next_id = 1
        self.n = 0
        if backend == "postgresql" and not given:
            from tests.pgcluster import Cluster

            self.cluster = Cluster().start()

    def new(self, gates: int) -> tuple[str, int]:
        """(store, first device id) for a run of `gates` gates."""
        self.n += 1
        if self.given:
            first, self.next_id = self.next_id, self.next_id + gates
            return self.given, first
        if self.cluster is not None:
            return self.cluster.create_database()[1], 1
        return os.path.join(self.d, "bo%d.sqlite" % self.n), 1

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def _backend_rows(backend: str, given: str | None, gates: int, d: str) -> list[dict]:
    stores = _Stores(backend, os.path.join(d, backend), given)
    os.makedirs(stores.d, exist_ok=True)
    rows = []
    try:
        step_gates = min(gates, STEP_GATES)
        base = None
        best: list[dict[str, Any]] = [{} for _ in STEPS]
        for r in range(ROUNDS):  # interleaved: the machine's load moves between the steps
            for k, (_what, kw) in enumerate(STEPS):
                store, first = stores.new(step_gates)
                run = fleet(
                    store, step_gates, directory=os.path.join(d, "s%d-%d" % (r, k)),
                    first_id=first, **kw,
                )  # fmt: skip
                if run["sessions_s"] > best[k].get("sessions_s", -1):
                    best[k] = run
        for k, (what, _kw) in enumerate(STEPS):
            last = best[k]
            base = base or last["sessions_s"]
            rows.append(
                row(
                    "P11",
                    "%s, %d gates, best of %d: %s" % (backend, step_gates, ROUNDS, what),
                    last["sessions_s"],
                    "sessions/s",
                    base,
                    ">= 1,000" if k == len(STEPS) - 1 else "(step)",
                )
            )
            rows.append(
                row(
                    "P11",
                    "  ack p50 %.0f ms, p99 (target <= 250), session p99 %.0f ms; CPU a "
                    "session: back office %.1f ms, load generator %.1f ms"
                    % (
                        last["ack_p50"],
                        last["session_p99"],
                        last["server_cpu_ms"],
                        last["gen_cpu_ms"],
                    ),
                    last["ack_p99"],
                    "ms",
                    None,
                    "<= 250" if k == len(STEPS) - 1 else "(step)",
                )
            )
        if gates > step_gates:  # the whole fleet, everything on
            store, first = stores.new(gates)
            full = fleet(
                store, gates, directory=os.path.join(d, "full"), first_id=first, **STEPS[-1][1]
            )
            rows.append(
                row(
                    "P11",
                    "%s, the whole fleet: %d gates, everything on" % (backend, gates),
                    full["sessions_s"],
                    "sessions/s",
                    base,
                    ">= 1,000",
                )
            )
            rows.append(
                row(
                    "P11",
                    "  ack p50 %.0f ms, p99; session p99 %.0f ms; CPU a session: back "
                    "office %.1f ms, load generator %.1f ms"
                    % (
                        full["ack_p50"],
                        full["session_p99"],
                        full["server_cpu_ms"],
                        full["gen_cpu_ms"],
                    ),
                    full["ack_p99"],
                    "ms",
                    None,
                    "<= 250",
                )
            )
        bulk_gates = max(2, min(20, gates))
        store, first = stores.new(bulk_gates)
        bulk = fleet(  # a few gates with deep queues, everything on
            store,
            gates=bulk_gates,
            records_per_gate=5000 if gates >= 100 else 200,
            concurrency=bulk_gates,
            batch_size=2048,
            directory=os.path.join(d, "bulk"),
            first_id=first,
            warm_up=False,
            **STEPS[-1][1],
        )
        if backend == "sqlite":
            ref = _bare_sqlite(d, bulk["expected"], 2048)
            rows.append(
                row(
                    "P11",
                    "sqlite bulk ingest, %d gates with deep queues (ref: bare executemany "
                    "INSERT OR IGNORE, same rows, batches, WAL+FULL)" % bulk_gates,
                    bulk["records_s"],
                    "records/s",
                    ref,
                    ">= 50,000",
                )
            )
        else:
            bare_url = given or stores.new(0)[0]
            ref = _bare_postgres(bare_url, bulk["expected"], 2048)
            rows.append(
                row(
                    "P11",
                    "postgresql bulk ingest, %d gates with deep queues (ref: bare COPY + "
                    "INSERT ... ON CONFLICT DO NOTHING, same rows and batches)" % bulk_gates,
                    bulk["records_s"],
                    "records/s",
                    ref,
                    ">= 0.7 x ref",
                )
            )
        if backend == "sqlite":
            hs_n = min(2000, max(64, gates // 5))
            full_hs = _bare_tls(last["certs"], hs_n, CONCURRENCY, resume=False)
            resumed_hs = _bare_tls(last["certs"], hs_n, CONCURRENCY, resume=True)
            rows.append(
                row(
                    "P11",
                    "  reference: bare TLS handshakes/s, same certs, no resumption",
                    full_hs,
                    "handshakes/s",
                    None,
                    "(reference)",
                )
            )
            rows.append(
                row(
                    "P11",
                    "  reference: bare TLS handshakes/s with session resumption",
                    resumed_hs,
                    "handshakes/s",
                    full_hs,
                    "(reference)" if resumed_hs else "(no resumption offered)",
                )
            )
    finally:
        stores.close()
    return rows


def _postgres_available() -> bool:
    try:
        from tests.pgcluster import bin_dir

        bin_dir()
        return True
    except Exception:  # ClusterError: no initdb on this machine
        return False


def p11(store: str | None = STORE, gates: int = GATES) -> list[dict]:
    """Both backends (FAREGATE_P11_STORE: a URL runs PostgreSQL there, a path SQLite there;
    unset: a new SQLite file per run and a private PostgreSQL cluster, tests/pgcluster.py)."""
    d = scratch("bench-p11-")
    try:
        pg_given = store if store and is_postgres(store) else None
        rows = _backend_rows("sqlite", None if pg_given else store, gates, d)
        if pg_given or _postgres_available():
            rows += _backend_rows("postgresql", pg_given, gates, d)
        else:
            rows.append(
                row(
                    "P11",
                    "postgresql: not measured (no initdb: make setup)",
                    0.0,
                    "sessions/s",
                    None,
                    ">= 1,000",
                )
            )
        return rows
    finally:
        shutil.rmtree(d, ignore_errors=True)


BENCHES = {"P11": p11}
