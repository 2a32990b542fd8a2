"""The back office's side of sync: one HostSession per link, served over TCP (TLS) or serial.

`HostSession` is the application on top of protocol.synchost.HostConnection, still sans-IO: bytes
in, bytes out. Every HELLO is challenged with a fresh nonce and the back office's time signed by
the operator's sync key, whatever device it names: registered, revoked or unknown (an unknown
one is challenged against NOBODY, a key no one holds), so the replies before AUTH say nothing
about the registry. Nothing is written about the device before its AUTH signature verifies: an
AUTH that does not verify is refused (bad_signature, the same text for every device) and logged
with no device id (the detail names the device the HELLO claimed). Then, authenticated: a
revoked device is refused (unknown_device), a gate behind the seqs held is a sequence_reset
anomaly and refused; else it stores each BATCH durably before it sends the ACK, answers FETCHes
from the publications and keeps the STATUS. The session event and the session history name the
device only once it authenticated.

`serve_tcp` runs sessions on an asyncio server (with an ssl.SSLContext for TLS, client
certificates required; the handshake runs inside the session's handler, so a failed one is
logged with its peer and reason); `serve_link` runs them over any blocking link such as a
serial port; `BackOfficeThread` is the TCP server in a thread, for tests and the simulator.

For a fleet (`faregate backoffice serve`, bench P11): with a `GroupCommit`
(host_sim/backoffice/group_commit.py) the sessions' writes go to its writer thread, many
sessions in one transaction, and `HostSession.receive_async` sends each ACK once its batch is
committed (the event loop never waits on a commit). `server_context` issues TLS 1.3 session
tickets, so gates resume; `listen_socket` and `run_workers` fork front ends that accept on one
port and share the ticket key of a context made before the fork (`serve --workers N`; with
`--reuse-port`, `worker_sockets` gives each worker a socket of its own on the port).

The risk engine hears of records as they arrive: `arrived(n)` (a HostSession's, a
Sessions', serve_tcp's) is called after each batch of n records is committed and its ACK is
queued; `serve` hands it host_sim/backoffice/risk_live.py's RiskWorker, which only wakes its
own thread, so no ACK waits on a scan.

Every TCP session ends in one event through `log`, a dict (`json_lines` writes them as JSON
lines): `{"event": "session", "device_id", "peer", "outcome", "records", "duration_s",
"reason", "msg"}`, outcome one of OUTCOMES. The same session goes to the store's session
history (`Store.record_session`) and to the Prometheus metrics (host_sim/backoffice/metrics.py).
A gate that goes away mid-session (a power cut, a reset connection, a TLS failure, silence) is
an everyday event, not a bug: one event, and nothing of it was acknowledged, so the gate
uploads it again next time. `quiet_disconnects` makes the event loop do the same for
connection errors it catches itself, instead of printing a traceback.
"""

import asyncio
import concurrent.futures
import datetime
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from host_sim.backoffice.group_commit import GroupCommit
from host_sim.backoffice.store import Store
from protocol import messages as m
from protocol import sync, synchost
from protocol.errors import FormatError

# the key an unknown device id is challenged against: not a point of P-256 (x >= p), so no
# signature verifies under it and the AUTH is refused like a forged one
NOBODY = b"\x02" + b"\xff" * 32


class WallClock:
    def now(self) -> int:
        return int(time.time())


class HostSession:
    def __init__(
        self,
        store: Store,
        signer: Any,
        verifier: Any,
        clock: Any = None,
        peer: str = "?",
        random_bytes: Callable[[int], bytes] = os.urandom,
        commit: GroupCommit | None = None,
        arrived: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store  # reads; and writes too, unless a group commit takes them
        self.commit = commit
        self.arrived = arrived  # told n after each batch of n records is committed (risk)
        self.pending: list[concurrent.futures.Future] = []  # writes queued, not yet awaited
        # with the group commit: the output in order, bytes and (future, records, arrival)
        # of each batch not yet acknowledged; `on_ready(bytes)` sends what a commit freed
        self._out: list[Any] = []
        self._unacked = 0  # batches in _out
        self._busy = False  # receive_async is waiting in _drain: it sends the output itself
        self.on_ready: Callable[[bytes], None] | None = None
        self._dev: Any = None  # the device row read at HELLO
        self._hello_seq = 0  # the HELLO's last_seq: checked once the device authenticated
        self.authenticated = False  # the AUTH signature verified (this session)
        self.clock = clock or WallClock()
        self.peer = peer
        self.conn = synchost.HostConnection(signer, verifier)
        self._random = random_bytes
        self.closed = False  # True after BYE or a refusal: the server may drop the link
        self.stored = 0  # records acknowledged in this session (new or already held)
        self.outcome = ""  # "ok" after BYE, "refused" or "gate_error" (OUTCOMES), "" meanwhile
        self.reason = ""  # the refusal's (or the gate's error's) reason
        self.ack_s: list[float] = []  # per BATCH: seconds from its arrival to its ACK
        self.queue_depth: int | None = None  # records waiting on the gate at its HELLO

    def next_session(self) -> None:
        """Over serial the same HostSession serves one session after the other: count anew."""
        self.stored, self.ack_s, self.queue_depth = 0, [], None
        self.authenticated = False
        self.outcome = self.reason = ""

    def receive(self, data: bytes) -> bytes:
        """Bytes from the link in, bytes for the link out. Never raises on the peer's faults."""
        self.conn.receive_data(data)
        out: list[bytes] = []
        while True:
            try:
                ev = self.conn.next_event()
            except sync.RemoteProtocolError as e:
                self._refuse(out, e.reason, str(e))
                break
            if ev is sync.NEED_DATA:
                break
            if not self._handle(ev, out):
                break
        return b"".join(out)

    def _handle(self, ev: Any, out: list[bytes]) -> bool:
        """Act on one event; False when the store failed under it (a full disk under
        log_auth, note_status, ...): the session is refused `store_failed` and ends."""
        try:
            self._on_event(ev, out)
        except self.store.errors as e:
            self._refuse(out, "store_failed", "%s" % e)
            return False
        return True

    async def receive_async(self, data: bytes) -> bytes:
        """`receive` with the writes in the group commit. A BATCH is queued and the session
        reads on: the gate's next batches (its window) reach the writer while this one is
        committing, so they share the next transaction. Each ACK is sent once its batch is
        committed, in order, and nothing goes before an ACK that was due first: this
        returns the ready head of the session's output, and the rest goes out through
        `on_ready` (the link's write) as the commits land. Any other message is handled once
        every batch before it is acknowledged; BYE once every write of the session is
        committed."""
        self.conn.receive_data(data)
        while True:
            try:
                ev = self.conn.next_event()
            except sync.RemoteProtocolError as e:
                if await self._drain():
                    self._refuse(self._out, e.reason, str(e))
                break
            if ev is sync.NEED_DATA:
                break
            if ev.TYPE == m.BATCH:
                self._queue_batch(ev)
                continue
            if not await self._drain():
                break
            out: list[bytes] = []
            ok = (ev.TYPE != m.BYE or await self._settled(out)) and self._handle(ev, out)
            self._out.extend(out)
            if not ok:
                break
        return self._ready()

    def _queue_batch(self, ev: Any) -> concurrent.futures.Future:
        """A BATCH into the group commit; its ACK joins the output once it is committed.
        Returns the future of its last seq."""
        fut = self._write(
            "store_batch_in_transaction", self._device(), ev.records, self.clock.now(), ev.sig
        )
        self._out.append((fut, len(ev.records), time.perf_counter()))
        self._unacked += 1
        loop = asyncio.get_running_loop()
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._landed))
        return fut

    def _landed(self) -> None:
        """A commit landed (in the event loop): send what is ready, unless receive_async is
        running (it returns the ready output itself)."""
        if self.on_ready is not None and not self._busy:
            data = self._ready()
            if data:
                self.on_ready(data)

    def _ready(self) -> bytes:
        """Pop the output that may go now: ACKs of batches committed and the answers after
        them, up to the first batch not yet committed. A batch that failed is refused
        (bad_message or store_failed) and nothing queued after it goes out."""
        out: list[bytes] = []
        while self._out:
            item = self._out[0]
            if isinstance(item, bytes):
                out.append(item)
                self._out.pop(0)
                continue
            fut, n, arrived = item
            if not fut.done():
                break
            self._out.pop(0)
            self._unacked -= 1
            e = fut.exception()
            if e is not None:
                self._out, self._unacked = [], 0  # nothing after it is acknowledged
                if isinstance(e, FormatError):
                    self._refuse(out, "bad_message", str(e))
                elif isinstance(e, self.store.errors):  # disk full, I/O error
                    self._refuse(out, "store_failed", "%s" % e)
                else:
                    raise e
                break
            self.stored += n
            out.append(self.conn.send(sync.Ack(fut.result())))
            self.ack_s.append(time.perf_counter() - arrived)
            self._arrived(n)
        return b"".join(out)

    async def _drain(self) -> bool:
        """Wait until every queued batch is committed (its ACK ready); False if one failed."""
        self._busy = True
        try:
            for item in list(self._out):
                if not isinstance(item, bytes) and not item[0].done():
                    await asyncio.wait([asyncio.wrap_future(item[0])])
        finally:
            self._busy = False
        ready = self._ready()
        if ready:
            self._out.insert(0, ready)
        return not self.closed

    def _arrived(self, n: int) -> None:
        """Tell the risk engine of n records committed (it runs elsewhere: RiskWorker)."""
        if self.arrived is not None:
            self.arrived(n)

    async def _settled(self, out: list[bytes]) -> bool:
        """Wait for the session's queued writes (its STATUS); False (refused) if one failed."""
        pending, self.pending = self.pending, []
        for fut in pending:
            try:
                await asyncio.wrap_future(fut)
            except self.store.errors as e:
                self._refuse(out, "store_failed", "%s" % e)
                return False
        return True

    def _write(self, method: str, *args: Any) -> Any:
        """A write to the store: now, or queued in the group commit (then a future)."""
        if self.commit is None:
            return getattr(self.store, method)(*args)
        fut = self.commit.submit(method, *args)
        self.pending.append(fut)
        return fut

    def _device(self) -> int:
        dev = self.conn.device_id
        assert dev is not None, "the table allows BATCH and STATUS only after HELLO"
        return int(dev)

    def device_id(self) -> int | None:
        """The session's device, once it authenticated (before: None, whatever HELLO said)."""
        return self.conn.device_id if self.authenticated else None

    def _refuse(self, out: list[bytes], reason: str, text: str, at_auth: bool = False) -> None:
        """ERROR `reason` to the peer and close; logged in the auth log when it is a refusal of
        the session itself (a bad signature, before AUTH, or `at_auth`: revoked, behind)."""
        now = self.clock.now()
        if (
            at_auth
            or reason in ("bad_signature", "bad_batch_signature")
            or self.conn.state in (sync.HELLO_RECEIVED, sync.IDLE)
        ):
            detail = text
            if not self.authenticated and self.conn.device_id is not None:
                detail = "%s (HELLO named device %d, %s)" % (
                    text,
                    self.conn.device_id,
                    self._claim(),
                )
            try:
                self._write(
                    "log_auth", now, self.device_id(), self.peer, "refused " + reason, detail
                )
            except self.store.errors:
                pass  # a full disk: the refusal still goes out (store_failed says why)
        name = reason if reason in m.ERRORS else "bad_message"
        out.append(self.conn.send(sync.Error.named(name, text[:200])))
        self.closed = True
        self.outcome, self.reason = "refused", reason

    def _claim(self) -> str:
        """What the registry says of the device an unauthenticated HELLO named (for the
        operator's auth log only; the peer is told nothing of it)."""
        dev = self._dev
        if dev is None:
            return "not registered"
        return "revoked" if dev.revoked is not None else "registered: another key, or a forgery"

    def _on_event(self, ev: Any, out: list[bytes]) -> None:
        t = ev.TYPE
        now = self.clock.now()
        if t == m.HELLO:
            # the same CHALLENGE for every device id: nothing written, nothing told (module doc)
            self.closed = False
            self.authenticated = False
            dev = self._dev = self.store.device(ev.device_id)
            self._hello_seq = ev.last_seq
            self.conn.accept_device(dev.pubkey if dev is not None else NOBODY)
            out.append(self.conn.send(sync.Challenge(self._random(m.NONCE_LEN), now, m.VERSION)))
        elif t == m.AUTH:
            # the signature verified against the registered key (protocol.sync): the device is
            # who it says; only now is anything written about it
            self.authenticated = True
            dev = self._dev
            self.queue_depth = max(0, self._hello_seq - dev.high_seq)  # waiting on the gate
            if dev.revoked is not None:
                self._refuse(
                    out, "unknown_device", "device %d is revoked" % ev.device_id, at_auth=True
                )
                return
            if self._hello_seq < dev.high_seq:
                self._write(
                    "anomaly",
                    now,
                    "sequence_reset",
                    ev.device_id,
                    self._hello_seq,
                    "gate's last seq %d is behind the %d held" % (self._hello_seq, dev.high_seq),
                )
                self._refuse(
                    out,
                    "sequence_reset",
                    "seq behind the back office's %d" % dev.high_seq,
                    at_auth=True,
                )
                return
            self._write("log_auth", now, ev.device_id, self.peer, "ok", "")
            # the row read at HELLO: a batch stored since then only makes the gate upload
            # again what is already held (stored once, by (device_id, seq))
            high = self._dev.high_seq if self._dev else 0
            out.append(self.conn.send(sync.Welcome(high, self.store.offers())))
        elif t == m.BATCH:
            arrived = time.perf_counter()
            try:
                up_to = self.store.store_batch(self._device(), ev.records, now, ev.sig)
            except FormatError as e:
                self._refuse(out, "bad_message", str(e))
                return
            except self.store.errors as e:  # disk full, I/O error: nothing acknowledged
                self._refuse(out, "store_failed", "%s" % e)
                return
            self.stored += len(ev.records)
            out.append(self.conn.send(sync.Ack(up_to)))
            self.ack_s.append(time.perf_counter() - arrived)
            self._arrived(len(ev.records))
        elif t == m.STATUS:
            try:
                extra = json.loads(ev.extra.decode()) if ev.extra else {}
            except ValueError:
                extra = {"unparsed": ev.extra.hex()}
            status = {
                "time": ev.time,
                "unsynced": ev.unsynced,
                "oldest_age_s": ev.oldest_age_s,
                "last_seq": ev.last_seq,
                "rejects_not_journaled": ev.rejects_not_journaled,
                "versions": {m.KINDS[k]: v for k, v in ev.versions},
                "extra": extra,
            }
            self._write("note_status", self._device(), now, status)
            for kind, version, reason, text in ev.refused:
                self._write(
                    "note_refusal", self._device(), now, m.KINDS[kind], version, reason, text
                )
        elif t == m.FETCH:
            data = self.store.publication(ev.kind, ev.version)
            if data is None:
                blob = sync.Blob(ev.kind, ev.version, m.NOT_AVAILABLE, ev.offset, b"")
            else:
                chunk = data[ev.offset : ev.offset + min(ev.max_len, m.MAX_CHUNK)]
                blob = sync.Blob(ev.kind, ev.version, len(data), min(ev.offset, len(data)), chunk)
            out.append(self.conn.send(blob))
        elif t == m.BYE:
            out.append(self.conn.send(sync.Bye()))
            self.closed = True
            self.outcome = "ok"
        elif t == m.ERROR:
            self.closed = True
            self.outcome, self.reason = "gate_error", str(ev.name())


IDLE_TIMEOUT_S = 60
HANDSHAKE_TIMEOUT_S = 10

# how a TCP session ends: ok (the gate said BYE), refused (by the back office: `reason`),
# gate_error (the gate sent ERROR), dropped (the link closed or reset mid-session), timeout
# (silent for the idle timeout), tls_error (the TLS handshake failed: `reason`, `msg`)
OUTCOMES = ("ok", "refused", "gate_error", "dropped", "timeout", "tls_error")

Log = Callable[[dict[str, Any]], None]


def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(int(t), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_lines(stream: IO[str] | None = None) -> Log:
    """A `log` writing each event as one JSON line (its time first) to `stream` (stderr)."""

    def log(event: dict[str, Any]) -> None:
        line = json.dumps(dict({"time": iso(time.time())}, **event))
        print(line, file=stream or sys.stderr, flush=True)

    return log


def log_stderr(event: dict[str, Any]) -> None:
    """The default `log` of the library (tests, benchmarks, the simulator): what went wrong,
    as JSON lines on stderr; sessions that ended well are left to `serve`'s full log."""
    if event.get("outcome") != "ok":
        _stderr_lines(event)


_stderr_lines = json_lines()


def _describe(e: BaseException) -> str:
    return "%s: %s" % (type(e).__name__, getattr(e, "strerror", None) or e)


# what a failed handshake's OpenSSL reason means, said for the operator
_TLS_HINTS = {
    "sslv3_alert_bad_certificate": "the gate refused the back office's certificate: it must "
    "name the host or address the gate connects to (faregate keys tls --server --name HOST "
    "--ip ADDR)",
    "sslv3_alert_certificate_unknown": "the gate refused the back office's certificate: it must "
    "name the host or address the gate connects to (faregate keys tls --server --name HOST "
    "--ip ADDR)",
    "tlsv1_alert_unknown_ca": "the gate does not trust the CA of the back office's certificate",
    "peer_did_not_return_a_certificate": "the gate sent no client certificate (provision it "
    "with a [sync] table)",
    "certificate_verify_failed": "the gate's client certificate is not from the operator CA",
    "wrong_version_number": "the peer does not speak TLS (a gate without TLS?)",
    "http_request": "an HTTP request on the sync port",
}


def tls_failure(e: BaseException) -> tuple[str, str]:
    """(reason, what it means) for a failed TLS handshake."""
    if isinstance(e, TimeoutError):
        return "handshake_timeout", "no TLS handshake within %d s" % HANDSHAKE_TIMEOUT_S
    reason = str(getattr(e, "reason", None) or type(e).__name__).lower()
    return reason, _TLS_HINTS.get(reason, _describe(e))


def quiet_disconnects(log: Log) -> Callable[[Any, dict[str, Any]], None]:
    """An asyncio exception handler: connection errors become one event; anything else
    goes to the default handler (with its traceback: that would be a bug)."""

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError):  # ConnectionResetError, BrokenPipeError, ssl.SSLError
            msg = "%s (%s)" % (context.get("message", "connection error"), _describe(exc))
            log({"event": "connection_error", "msg": msg})
            return
        loop.default_exception_handler(context)

    return handler


class HostKeys:
    """What every session needs: the operator's sync signer and a verifier."""

    def __init__(self, signer: Any, verifier: Any) -> None:
        self.signer = signer
        self.verifier = verifier


class Sessions:
    """Serves TCP sessions: one HostSession per connection, its TLS handshake, and its end
    as one event to `log`, one row of the store's session history and the metrics."""

    def __init__(
        self,
        store: Store,
        keys: HostKeys,
        ssl_context: ssl.SSLContext | None = None,
        clock: Any = None,
        log: Log = log_stderr,
        metrics: Any = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        commit: GroupCommit | None = None,
        arrived: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.commit = commit
        self.arrived = arrived
        self.keys = keys
        self.tls = ssl_context
        self.clock = clock or WallClock()
        self.log = log
        self.metrics = metrics
        self.idle_timeout_s = idle_timeout_s

    async def handle(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        addr = w.get_extra_info("peername")
        peer = "%s:%s" % tuple(addr[:2]) if addr else "?"
        session = HostSession(
            self.store,
            self.keys.signer,
            self.keys.verifier,
            self.clock,
            peer,
            commit=self.commit,
            arrived=self.arrived,
        )
        started, t0 = self.clock.now(), time.monotonic()
        outcome, reason, msg = "", "", ""
        if self.commit is not None:
            session.on_ready = w.write  # ACKs sent as their commits land
        try:
            if self.tls is not None:
                try:
                    await w.start_tls(self.tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
                except (OSError, TimeoutError) as e:
                    reason, msg = tls_failure(e)
                    outcome = "tls_error"
                    return
            while not session.closed:
                async with asyncio.timeout(self.idle_timeout_s):  # no task per read
                    data = await reader.read(262144)
                if not data:
                    if session.conn.state != sync.IDLE:
                        outcome, reason, msg = "dropped", "closed", "closed the link mid-session"
                    break
                if self.commit is not None:
                    out = await session.receive_async(data)
                else:
                    out = session.receive(data)
                if out:
                    w.write(out)
                    await w.drain()
        except TimeoutError:
            outcome, reason = "timeout", "idle"
            msg = "sent nothing for %d s: link closed" % self.idle_timeout_s
        except OSError as e:  # ConnectionResetError, BrokenPipeError, ssl.SSLError
            outcome, reason, msg = "dropped", "reset", "went away mid-session (%s)" % _describe(e)
        finally:
            session.on_ready = None
            w.close()
            try:
                await w.wait_closed()
            except (OSError, TimeoutError):
                pass  # already gone: said below
            outcome = session.outcome or outcome or "dropped"
            self.finish(session, started, time.monotonic() - t0, outcome, reason, msg)

    def finish(
        self, s: HostSession, started: int, duration: float, outcome: str, reason: str, msg: str
    ) -> None:
        reason = s.reason or reason
        device = s.device_id()  # None unless it authenticated: a HELLO alone claims nothing
        event = {
            "event": "session",
            "device_id": device,
            "peer": s.peer,
            "outcome": outcome,
            "records": s.stored,
            "duration_s": round(duration, 3),
            "reason": reason,
        }
        if msg:
            event["msg"] = msg
        if self.metrics is not None:
            self.metrics.session(outcome, reason, s.stored, s.ack_s)
        row = (device, s.peer, started, duration, outcome, s.stored, reason, s.queue_depth)
        # the event follows the session's row, so whoever reads the log finds it stored
        if self.commit is not None:
            fut = self.commit.submit("record_session", *row)
            fut.add_done_callback(lambda f: self._recorded(f.exception(), event))
            return
        try:
            self.store.record_session(*row)
        except self.store.errors as e:  # a full disk: the records' own path says so already
            self._recorded(e, event)
        else:
            self._recorded(None, event)

    def _recorded(self, e: BaseException | None, event: dict) -> None:
        """Log the session's event once its row is stored (or why it is not); with the group
        commit, in the writer's thread: `log` writes one line, thread-safe enough."""
        if e is not None:
            self.log({"event": "store_error", "msg": "session not recorded: %s" % e})
        self.log(event)


async def serve_tcp(
    store: Store,
    keys: HostKeys,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    clock: Any = None,
    log: Log = log_stderr,
    metrics: Any = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    commit: GroupCommit | None = None,
    sock: socket.socket | None = None,
    arrived: Callable[[int], None] | None = None,
) -> asyncio.Server:
    """Serve sync sessions on host:port (or on `sock`, a listening socket: a worker of
    `serve_workers`). `commit`: the group commit taking the sessions' writes (else each
    write is its own transaction, on the event loop). `arrived(n)`: told after each batch
    of n records is committed and acknowledged (the risk engine's RiskWorker.arrived)."""
    asyncio.get_running_loop().set_exception_handler(quiet_disconnects(log))
    sessions = Sessions(
        store, keys, ssl_context, clock, log, metrics, idle_timeout_s, commit, arrived
    )
    if sock is not None:
        return await asyncio.start_server(sessions.handle, sock=sock)
    return await asyncio.start_server(sessions.handle, host, port)


def server_context(cert: str, key: str, ca: str, password: bytes | None = None) -> ssl.SSLContext:
    """TLS for the back office: its certificate, and gates' client certificates required,
    both from the operator CA (provisioning/pki.py). `password` opens an encrypted key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key, password=lambda: password or b"")  # never a tty prompt
    ctx.verify_mode = ssl.CERT_REQUIRED
    # TLS 1.3 session resumption: one ticket per handshake (a gate keeps its last session);
    # a resumed handshake skips both certificate checks and signatures. The ticket key is
    # the context's: workers forked after it is made (serve_workers) resume each other's.
    ctx.num_tickets = 1
    return ctx


def listen_socket(
    host: str, port: int, backlog: int = 1024, reuse_port: bool = False
) -> socket.socket:
    """A listening TCP socket, made before the workers are forked: every worker accepts on
    it (the kernel hands each connection to one of them). `reuse_port`: bound with
    SO_REUSEPORT, so more sockets can listen on the same port (worker_sockets)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def worker_sockets(host: str, port: int, workers: int, reuse_port: bool) -> list[socket.socket]:
    """The listening socket of each of `workers` front ends on host:port: the same one for
    all (each worker woken for every connection, the first to accept takes it), or with
    `reuse_port` one each, bound with SO_REUSEPORT, and the kernel spreads the connections
    over them by their addresses (no worker woken for nothing; a busy worker's queue is not
    taken by an idle one). Port 0: the first socket's port, for all."""
    first = listen_socket(host, port, reuse_port=reuse_port)
    if not reuse_port:
        return [first] * workers
    port = first.getsockname()[1]
    return [first] + [listen_socket(host, port, reuse_port=True) for _ in range(workers - 1)]


def run_workers(n: int, run: Callable[[int], int]) -> int:
    """Fork `n` workers, each `run(i)` (its exit status), and wait for them all. SIGTERM or
    SIGINT to this process goes to every worker as SIGTERM (each finishes its sessions and
    commits what it queued); a worker that dies stops the others. Returns 0 if every
    worker exited 0, else 1. Make the listening sockets and the TLS context before: every
    worker then accepts on the same port and shares the session-ticket key."""
    import signal

    pids: list[int] = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the worker: its own event loop, store and group commit
            code = 1
            try:
                code = run(i)
            finally:
                os._exit(code)
        pids.append(pid)
    alive = set(pids)

    def stop_all(signum: int = signal.SIGTERM, _frame: Any = None) -> None:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    failed = False
    while alive:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            if not failed:
                stop_all()
            failed = True
    return 1 if failed else 0


def serve_link(
    store: Store,
    keys: HostKeys,
    link: Any,
    stop: threading.Event,
    clock: Any = None,
    sessions: Sessions | None = None,
) -> None:
    """Serve sessions over a blocking link (a serial port) until `stop` is set. Over serial
    there is no connection: every HELLO starts a new session on the same HostSession, and a
    session ends at BYE or a refusal (then it goes to `sessions`' log, store and metrics)."""
    session = HostSession(
        store,
        keys.signer,
        keys.verifier,
        clock,
        peer=getattr(link, "name", "?"),
        arrived=sessions.arrived if sessions is not None else None,
    )
    t0: float | None = None
    started = 0
    while not stop.is_set():
        data = link.recv(0.2)
        if data:
            if t0 is None:
                t0, started = time.monotonic(), session.clock.now()
            out = session.receive(data)
            if out:
                link.send(out)
            if session.closed and session.outcome and t0 is not None:
                if sessions is not None:
                    sessions.finish(
                        session, started, time.monotonic() - t0, session.outcome, "", ""
                    )
                session.next_session()
                t0 = None
        elif data == b"":
            break


class BackOfficeThread:
    """The back office's asyncio server on a free port of `host` (loopback), in a thread.
    `group_commit`: the sessions' writes through a GroupCommit, as `serve` runs them."""

    def __init__(
        self,
        db_path: str,
        keys: HostKeys,
        ssl_context: ssl.SSLContext | None = None,
        clock: Any = None,
        log: Log = log_stderr,
        host: str = "127.0.0.1",
        metrics: Any = None,
        arrived: Callable[[int], None] | None = None,
        group_commit: bool = False,
    ) -> None:
        self.store = Store(db_path)
        self.commit = GroupCommit(lambda: Store(db_path)) if group_commit else None
        self.keys = keys
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                serve_tcp(
                    self.store,
                    keys,
                    host,
                    0,
                    ssl_context,
                    clock,
                    log,
                    metrics,
                    commit=self.commit,
                    arrived=arrived,
                )
            )
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("back office thread did not start")

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if self.commit is not None:
            self.commit.close()
        self.store.close()
