"""The back office's side of sync: one HostSession per link, served over TCP (TLS) or serial.

`HostSession` is the application on top of protocol.sync.HostConnection, still sans-IO: bytes
in, bytes out. It looks the device up in the registry (unknown devices are refused and logged),
challenges it with a fresh nonce and the back office's time signed by the operator's sync key,
checks its AUTH signature (bad signatures are refused and logged), then stores each BATCH
durably before it sends the ACK, answers FETCHes from the publications and keeps the STATUS.

`serve_tcp` runs sessions on an asyncio server (with an ssl.SSLContext for TLS, client
certificates required); `serve_link` runs them over any blocking link such as a serial port;
`BackOfficeThread` is the TCP server in a thread, for tests and the simulator.

A gate that goes away mid-session (a power cut, a reset connection, a TLS failure, silence) is
an everyday event, not a bug: it is logged as one line through `log` and nothing of it was
acknowledged, so the gate uploads it again next time. `quiet_disconnects` makes the event
loop do the same for connection errors it catches itself, instead of printing a traceback.
"""

import asyncio
import json
import os
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from host_sim.backoffice.store import Store
from protocol import messages as m
from protocol import sync
from protocol.errors import FormatError


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
    ) -> None:
        self.store = store
        self.clock = clock or WallClock()
        self.peer = peer
        self.conn = sync.HostConnection(signer, verifier)
        self._random = random_bytes
        self.closed = False  # True after BYE or a refusal: the server may drop the link
        self.stored = 0  # records acknowledged in this session (new or already held)

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
            self._on_event(ev, out)
        return b"".join(out)

    def _device(self) -> int:
        dev = self.conn.device_id
        assert dev is not None, "the table allows BATCH and STATUS only after HELLO"
        return int(dev)

    def _refuse(self, out: list[bytes], reason: str, text: str) -> None:
        now = self.clock.now()
        if reason == "bad_signature" or self.conn.state in (sync.HELLO_RECEIVED, sync.IDLE):
            self.store.log_auth(now, self.conn.device_id, self.peer, "refused " + reason, text)
        name = reason if reason in m.ERRORS else "bad_message"
        out.append(self.conn.send(sync.Error.named(name, text[:200])))
        self.closed = True

    def _on_event(self, ev: Any, out: list[bytes]) -> None:
        t = ev.TYPE
        now = self.clock.now()
        if t == m.HELLO:
            self.closed = False
            dev = self.store.device(ev.device_id)
            if dev is None:
                self._refuse(out, "unknown_device", "device %d is not registered" % ev.device_id)
                return
            if dev.revoked is not None:
                self._refuse(out, "unknown_device", "device %d is revoked" % ev.device_id)
                return
            if ev.last_seq < dev.high_seq:
                self.store.anomaly(
                    now,
                    "sequence_reset",
                    ev.device_id,
                    ev.last_seq,
                    "gate's last seq %d is behind the %d held" % (ev.last_seq, dev.high_seq),
                )
                self._refuse(
                    out, "sequence_reset", "seq behind the back office's %d" % dev.high_seq
                )
                return
            self.conn.accept_device(dev.pubkey)
            out.append(self.conn.send(sync.Challenge(self._random(m.NONCE_LEN), now, m.VERSION)))
        elif t == m.AUTH:
            self.store.log_auth(now, ev.device_id, self.peer, "ok", "")
            dev = self.store.device(ev.device_id)
            high = dev.high_seq if dev else 0
            out.append(self.conn.send(sync.Welcome(high, self.store.offers())))
        elif t == m.BATCH:
            try:
                up_to = self.store.store_batch(self._device(), ev.records, now)
            except FormatError as e:
                self._refuse(out, "bad_message", str(e))
                return
            except sqlite3.Error as e:  # disk full, I/O error: nothing acknowledged
                self._refuse(out, "store_failed", "%s" % e)
                return
            self.stored += len(ev.records)
            out.append(self.conn.send(sync.Ack(up_to)))
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
            self.store.note_status(self._device(), now, status)
            for kind, version, reason, text in ev.refused:
                self.store.note_refusal(self._device(), now, m.KINDS[kind], version, reason, text)
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
        elif t == m.ERROR:
            self.closed = True


IDLE_TIMEOUT_S = 60


def log_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _describe(e: BaseException) -> str:
    return "%s: %s" % (type(e).__name__, getattr(e, "strerror", None) or e)


def quiet_disconnects(log: Callable[[str], None]) -> Callable[[Any, dict[str, Any]], None]:
    """An asyncio exception handler: connection errors become one log line; anything else
    goes to the default handler (with its traceback: that would be a bug)."""

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError):  # ConnectionResetError, BrokenPipeError, ssl.SSLError
            log(
                "backoffice: %s (%s)" % (context.get("message", "connection error"), _describe(exc))
            )
            return
        loop.default_exception_handler(context)

    return handler


class HostKeys:
    """What every session needs: the operator's sync signer and a verifier."""

    def __init__(self, signer: Any, verifier: Any) -> None:
        self.signer = signer
        self.verifier = verifier


async def _handle(
    store: Store,
    keys: HostKeys,
    clock: Any,
    log: Callable[[str], None],
    reader: asyncio.StreamReader,
    w: asyncio.StreamWriter,
) -> None:
    addr = w.get_extra_info("peername")
    peer = "%s:%s" % tuple(addr[:2]) if addr else "?"
    session = HostSession(store, keys.signer, keys.verifier, clock, peer)
    try:
        while not session.closed:
            data = await asyncio.wait_for(reader.read(262144), IDLE_TIMEOUT_S)
            if not data:
                if session.conn.state != sync.IDLE:
                    log("backoffice: %s closed the link mid-session" % peer)
                break
            out = session.receive(data)
            if out:
                w.write(out)
                await w.drain()
    except TimeoutError:
        log("backoffice: %s sent nothing for %d s: link closed" % (peer, IDLE_TIMEOUT_S))
    except OSError as e:  # ConnectionResetError, BrokenPipeError, ssl.SSLError
        log("backoffice: %s went away mid-session (%s)" % (peer, _describe(e)))
    finally:
        w.close()
        try:
            await w.wait_closed()
        except (OSError, TimeoutError):
            pass  # already gone: said above


async def serve_tcp(
    store: Store,
    keys: HostKeys,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    clock: Any = None,
    log: Callable[[str], None] = log_stderr,
) -> asyncio.Server:
    asyncio.get_running_loop().set_exception_handler(quiet_disconnects(log))
    return await asyncio.start_server(
        lambda r, w: _handle(store, keys, clock, log, r, w), host, port, ssl=ssl_context
    )


def server_context(cert: str, key: str, ca: str, password: bytes | None = None) -> ssl.SSLContext:
    """TLS for the back office: its certificate, and gates' client certificates required,
    both from the operator CA (provisioning/pki.py). `password` opens an encrypted key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key, password=lambda: password or b"")  # never a tty prompt
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def serve_link(
    store: Store, keys: HostKeys, link: Any, stop: threading.Event, clock: Any = None
) -> None:
    """Serve sessions over a blocking link (a serial port) until `stop` is set. Over serial
    there is no connection: every HELLO starts a new session on the same HostSession."""
    session = HostSession(store, keys.signer, keys.verifier, clock, peer=getattr(link, "name", "?"))
    while not stop.is_set():
        data = link.recv(0.2)
        if data:
            out = session.receive(data)
            if out:
                link.send(out)
        elif data == b"":
            break


class BackOfficeThread:
    """The back office's asyncio server on a loopback port, in a thread of its own."""

    def __init__(
        self,
        db_path: str,
        keys: HostKeys,
        ssl_context: ssl.SSLContext | None = None,
        clock: Any = None,
        log: Callable[[str], None] = log_stderr,
    ) -> None:
        self.store = Store(db_path)
        self.keys = keys
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                serve_tcp(self.store, keys, ssl_context=ssl_context, clock=clock, log=log)
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
        self.store.close()
