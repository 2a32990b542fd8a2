"""The gate's side of sync: one session = authenticate, upload, download, report, say goodbye.

    client = SyncClient(journal, signer, verifier, host_pub, clock)
    link.send(client.start())                # HELLO
    while not client.done:
        out = client.receive(link.recv(...))  # bytes in -> bytes to send back
        link.send(out)

or simply `run_session(client, link)`, or, from a main loop that has other work (the gate's:
riders must not wait for a sync), `pump = Pump(client, link)` then `pump.poll()` each turn
until it returns False. The client is sans-IO (protocol.sync.DeviceConnection
underneath); links are handed in (drivers.linux.link_tcp, drivers.linux.link_serial, an in-memory
pipe).

What it does, in order, once the host has proved itself (CHALLENGE signed with the operator's
sync key) and the device has (AUTH signed with the device key):
  1. trims what the WELCOME says the back office already holds (an ACK lost on the link);
  2. uploads unacknowledged records oldest first, `window` batches in flight; the journal is
     trimmed only by an ACK, which the host sends after its durable commit;
  3. fetches each offered blob newer than what the gate holds (deny-list deltas one version
     at a time) and hands it whole to its sink: `sinks[kind].version()` and
     `sinks[kind].apply(version, data)` (the sink makes it durable, atomically); a blob its
     sink refuses (a FaregateError: bad signature, wrong base, expired, not an image) is not
     fetched again this session and goes into `refused` as (kind, version, reason, text);
  4. sends a STATUS summary, with the refusals, so the back office learns of them; then BYE.
The host's time from the CHALLENGE goes to `on_time(host_time)` (the time anchor's rule).
"""

import json
import os

from firmware import platform, settings
from firmware.storage.journal import JournalError
from protocol import messages as m
from protocol import sync
from protocol.errors import FaregateError

BATCH_RECORDS = settings.default("sync.batch_records")
WINDOW = settings.default("sync.window")
BLOB_CHUNK = settings.default("sync.blob_chunk")
FRAME_OVERHEAD = 1024  # a message's header, session tag and signature, with room to spare


class SyncError(FaregateError):
    """The session ended without finishing; `reason` is an ERRORS name of protocol.messages."""

    reason = "sync_failed"
    from_peer = False  # True when the back office ended the session with an ERROR


class SyncClient:
    def __init__(
        self,
        journal,
        signer,
        verifier,
        host_pub: bytes,
        clock,
        limits=None,
        sinks=None,
        on_time=None,
        batch_size: int = BATCH_RECORDS,
        window: int = WINDOW,
        random_bytes=os.urandom,
        counters=None,
        blob_chunk: int = BLOB_CHUNK,
    ):
        """batch_size, window, blob_chunk: records per BATCH, BATCHes in flight and bytes
        asked per BLOB (the sync.* settings); together they bound the RAM a session holds."""
        self.journal = journal
        self.clock = clock
        self.limits = limits
        self.sinks = sinks or {}
        self.on_time = on_time
        self.batch_size = min(batch_size, m.MAX_BATCH)
        self.blob_chunk = min(blob_chunk, m.MAX_CHUNK)
        self.counters = counters  # optional dict of counters for STATUS (e.g. rejects by reason)
        self._random = random_bytes
        # the largest frame this gate takes: one BLOB chunk with its header and signature
        self.conn = sync.DeviceConnection(
            journal.device_id,
            signer,
            verifier,
            host_pub,
            window,
            max_payload=self.blob_chunk + FRAME_OVERHEAD,
        )
        self.acked = 0  # records trimmed by this session
        self.applied: list = []  # (kind, version) applied by this session
        self.refused: list = []  # (kind, version, reason, text) refused by a sink this session
        self.unstored: list = []  # (kind, version) its store could not write (disk full)
        self.host_time = None
        self.done = False
        self._sent_up_to = 0
        self._ack_to = 0  # the highest ACK of this receive(), applied to the journal at its end
        self._offers: list = []
        self._blob: tuple | None = None  # (kind, version, bytearray) being assembled
        self._status_sent = False

    # -- driving ---------------------------------------------------------------------------
    def start(self) -> bytes:
        self._sent_up_to = self.journal.acked_seq
        return self.conn.send(
            sync.Hello(
                self.journal.device_id, self._random(m.NONCE_LEN), self.journal.last_seq, m.VERSION
            )
        )

    def receive(self, data) -> bytes:
        """Feed bytes from the link; returns bytes to send (maybe empty). Raises SyncError."""
        self.conn.receive_data(data)
        out: list = []
        while True:
            try:
                ev = self.conn.next_event()
            except sync.RemoteProtocolError as e:
                raise SyncError(str(e), e.reason) from None
            if ev is sync.NEED_DATA:
                break
            try:
                self._on_event(ev, out)
            except JournalError as e:  # could not trim: nothing lost, uploaded again later
                raise SyncError(str(e), "store_failed") from None
        try:
            self._trim()
        except JournalError as e:
            raise SyncError(str(e), "store_failed") from None
        return b"".join(out)

    def _trim(self):
        """Apply the ACKs of this receive() to the journal: ACKs are cumulative, so the ACKs
        of several batches that arrived together cost one durable journal write, not one each
        (the records are trimmed a few frames later, never before their ACK)."""
        if self._ack_to > self.journal.acked_seq:
            self.acked += self.journal.ack(self._ack_to)

    def abort_frame(self, reason: str) -> bytes:
        """An ERROR frame to tell the host why this side is giving up (best effort)."""
        return self.conn.send(sync.Error.named(reason))

    # -- the session's logic ---------------------------------------------------------------
    def _on_event(self, ev, out):
        t = ev.TYPE
        if t == m.ERROR:
            e = SyncError("back office refused: %s (%s)" % (ev.text, ev.name()), ev.name())
            e.from_peer = True
            raise e
        if t == m.CHALLENGE:
            self.host_time = ev.host_time
            if self.on_time is not None:
                self.on_time(ev.host_time)
            out.append(self.conn.send(sync.Auth(self.journal.device_id)))
            return
        if t == m.WELCOME:
            if ev.high_seq > self.journal.last_seq:
                raise SyncError(
                    "back office holds seq %d, beyond this gate's last seq %d"
                    % (ev.high_seq, self.journal.last_seq),
                    "sequence_reset",
                )
            if ev.high_seq > self.journal.acked_seq:
                self.acked += self.journal.ack(ev.high_seq)  # its ACK was lost last time
            self._sent_up_to = max(self._sent_up_to, self.journal.acked_seq)
            self._offers = list(ev.offers)
        elif t == m.ACK:
            self._ack_to = max(self._ack_to, ev.up_to_seq)  # trimmed at the end (_trim)
        elif t == m.BLOB:
            self._on_blob(ev)
        elif t == m.BYE:
            self.done = True
            return
        self._pump(out)

    def _pump(self, out):
        conn = self.conn
        while conn.can_send_batch():
            raws = self.journal.pending(self.batch_size, self._sent_up_to)
            if not raws:
                break
            out.append(conn.send(sync.Batch(raws)))
            self._sent_up_to = conn.in_flight[-1]
        if conn.in_flight or conn.fetching:
            return
        fetch = self._next_fetch()
        if fetch is not None:
            out.append(conn.send(fetch))
            return
        if not self._status_sent:
            self._status_sent = True
            out.append(conn.send(self._status()))
        out.append(conn.send(sync.Bye()))

    # -- downloads -------------------------------------------------------------------------
    def _next_fetch(self):
        if self._blob is not None:
            kind, version, buf = self._blob
            return sync.Fetch(kind, version, len(buf), self.blob_chunk)
        while self._offers:
            kind, version, _size = self._offers[0]
            sink = self.sinks.get(kind)
            have = sink.version() if sink is not None else None
            if have is None or have >= version:
                self._offers.pop(0)
                continue
            want = have + 1 if kind in m.DELTA_KINDS else version
            self._blob = (kind, want, bytearray())
            return sync.Fetch(kind, want, 0, self.blob_chunk)
        return None

    def _on_blob(self, ev):
        if self._blob is None:
            raise SyncError("BLOB that answers no FETCH", "unexpected_message")
        kind, version, buf = self._blob
        if ev.total == m.NOT_AVAILABLE:
            self._blob = None
            self._offers.pop(0)  # the host no longer has it: try again next session
            return
        buf.extend(ev.data)
        if len(buf) < ev.total:
            if not ev.data:
                raise SyncError("empty BLOB chunk before the end", "bad_message")
            return
        self._blob = None
        try:
            self.sinks[kind].apply(version, bytes(buf))
        except FaregateError as e:
            self._offers.pop(0)  # refused by its store (bad signature, wrong base): not again
            if len(self.refused) < m.MAX_REFUSALS:
                self.refused.append((kind, version, e.reason, str(e)))
            return
        except OSError:
            # its store could not write it (a full disk): the old version stays, the session
            # goes on, and the back office offers it again next session
            self._offers.pop(0)
            self.unstored.append((kind, version))
            return
        self.applied.append((kind, version))

    def _status(self):
        self._trim()  # the queue it reports is the one after the ACKs
        j = self.journal
        now = self.clock.now()
        oldest = 0
        if self.limits is not None:
            oldest = self.limits.status(now)["oldest_age_s"]
        versions = []
        for kind in sorted(self.sinks):
            v = self.sinks[kind].version()
            # a gate without root metadata says nothing of it: a back office older than the
            # root kind (6) would refuse the STATUS for a kind it does not know
            if v is not None and (v or kind != m.KIND_ROOT):
                versions.append((kind, v))
        extra = json.dumps(self.counters, separators=(",", ":")).encode() if self.counters else b""
        return sync.Status(
            now,
            j.pending_count(),
            oldest,
            j.last_seq,
            j.rejects_not_journaled,
            versions,
            extra[:4096],
            self.refused,
        )


class Pump:
    """One session over `link`, advanced by `poll(wait_s)`: each call waits at most `wait_s`
    for bytes (link.recv), feeds them, sends the answer. `poll` returns True while the session
    runs and False once it ended well; it raises SyncError (after telling the host why) when
    the session fails, or when the host sent nothing for `idle_timeout_s`."""

    def __init__(
        self,
        client: SyncClient,
        link,
        idle_timeout_s: float = 5.0,
        ticks_ms=platform.ticks_ms,
        ticks_diff=platform.ticks_diff,
    ):
        self.client = client
        self.link = link
        self.idle_timeout_s = idle_timeout_s
        self._ticks = ticks_ms
        self._diff = ticks_diff
        link.send(client.start())
        self._heard = ticks_ms()

    def poll(self, wait_s: float = 0.0) -> bool:
        client, link = self.client, self.link
        if client.done:
            return False
        data = link.recv(wait_s)
        if data is None:  # nothing for wait_s: past the idle timeout, the session failed
            quiet_ms = self._diff(self._ticks(), self._heard)
            if wait_s >= self.idle_timeout_s or quiet_ms >= self.idle_timeout_s * 1000:
                _tell(client, link, "timeout")
                raise SyncError(
                    "back office did not answer within %.1f s" % self.idle_timeout_s, "timeout"
                )
            return True
        if not data:
            raise SyncError("back office closed the link", "timeout")
        self._heard = self._ticks()
        try:
            out = client.receive(data)
        except SyncError as e:
            if not e.from_peer:  # tell the host why this side gives up
                _tell(client, link, e.reason if e.reason in m.ERRORS else "bad_message")
            raise
        if out:
            link.send(out)
        return not client.done


def run_session(client: SyncClient, link, idle_timeout_s: float = 5.0) -> SyncClient:
    """Run one session over `link` (.send(bytes), .recv(timeout_s) -> bytes, b"" when closed,
    None on timeout). Returns the client; raises SyncError (after telling the host) on failure."""
    pump = Pump(client, link, idle_timeout_s)
    while pump.poll(idle_timeout_s):
        pass
    return client


def _tell(client, link, reason):
    try:
        link.send(client.abort_frame(reason))
    except (OSError, FaregateError):
        pass
