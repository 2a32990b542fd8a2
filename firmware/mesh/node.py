"""One gate's end of the station mesh: its announcements out, its peers' into its replay cache.

Pure logic; the socket, the clock and the keys are handed in (docs/mesh.md has the design):

    node = MeshNode(identity, link, clock, replay, policy, config, ticks_ms, log)
    journal.listeners.append(node)   # committed(rec): an accepted or voided passage is queued
    node.restore(journal.unsynced()) # at boot: the outbox from the journal (source of truth)
    node.poll()                      # each loop turn, after the scan: send, receive, catch up
    node.status()                    # counts, peers, refusals by reason

    identity  .device_id, .station, .mode, .cert (137 bytes), .signer (.sign(msg) -> r||s),
              .root (the operator root's public key), .verifier (.verify(pub, msg, sig))
    link      .broadcast(data)       to every peer (or the multicast group)
              .send(data, addr)      to one peer (a catch-up answer, an ASK)
              .recv() -> (data, addr) or None when nothing is waiting (never blocks)
              OSError from any of them is counted, never raised
    clock     .now() -> the gate's time, unix seconds (its time anchor)
    replay    the validator's ReplayCache (firmware/verify/replay.py)
    policy    the gate's mode policy (firmware/gate/policy.py): Passback's tables take peers'
              entries and exits (`learn`, `unlearn` below); a store's Sessions take none

Per peer it keeps `have` (it holds every announcement of that peer up to this seq), the newest
(time, msg) taken (older is a replay), where it was last heard from, and whether it owes the
peer an ASK. `poll` never raises: a message that does not parse or verify is dropped and
counted under its reason (protocol/reasons.py 300-309); anything else that goes wrong is
counted in `errors` and logged.
"""

from firmware import platform
from firmware.verify.replay import presentation_key
from protocol import mesh, records, ridecode
from protocol.errors import FormatError

ASK_EVERY_MS = 500  # at most one ASK a peer per this long while it owes us a gap
RECV_PER_POLL = 64  # datagrams taken per poll: a flood cannot stall the gate loop
SEND_PER_POLL = 16  # catch-up answers sent per poll (the rest in the next turns)
CERT_CACHE = 64  # verified certificates remembered by their bytes
LOG_PER_REASON = 3  # refusals of one reason logged before they are only counted
PRUNE_EVERY_MS = 5000
_VOID = None  # passage_not_taken's reason number, looked up once


class MeshConfig:
    """The mesh.* settings a node uses (firmware/settings.py has bounds and meaning)."""

    SETTINGS = (
        ("heartbeat_ms", "mesh.heartbeat_ms"),
        ("max_age_s", "mesh.max_age_s"),
        ("keep_s", "mesh.keep_s"),
        ("outbox", "mesh.outbox"),
    )

    def __init__(self, heartbeat_ms=1000, max_age_s=30, keep_s=1200, outbox=8192):
        self.heartbeat_ms = heartbeat_ms
        self.max_age_s = max_age_s
        self.keep_s = keep_s
        self.outbox = outbox


class Identity:
    """Who this gate is on the mesh: what it signs with and what it checks peers against."""

    def __init__(self, device_id, station, mode, cert, signer, root, verifier):
        self.device_id = device_id
        self.station = station
        self.mode = mode
        self.cert = bytes(cert)
        self.signer = signer
        self.root = bytes(root)
        self.verifier = verifier


class Peer:
    __slots__ = ("have", "head", "time", "msg", "addr", "heard_ms", "owed", "asked_ms")

    def __init__(self):
        self.have = 0  # every announcement of the peer up to this seq is here
        self.head = 0  # the newest seq the peer said it has
        self.time = -1  # the newest (time, msg) taken from it
        self.msg = -1
        self.addr = None  # where its last message came from
        self.heard_ms = None
        self.owed = False  # a gap seen: an ASK(since=have) is due
        self.asked_ms = None


def learn_presentation(replay, cred_id, counter, t) -> bool:
    """A presentation another gate of the station accepted, `cred_id` its replay key
    (firmware/verify/replay.presentation_key of the issuer and the credential), as the
    validator looks it up: refused here from now on (a
    ReplayCache entry, as `commit` makes one, kept in RAM only: a peer's catch-up brings it back
    after a reboot; a compaction of replay.log may write it). True if it was news. Here, not in
    the cache, so that an MCU gate, which has no mesh, does not load it."""
    e = replay.entries.get(cred_id)
    if e is not None and counter <= e[0]:
        return False
    replay.entries[cred_id] = (counter, t, t)
    return True


def learn(passback, account, direction, t) -> bool:
    """A passage at another gate of the station into a Passback table: taken if it is newer
    than what the table knows of the account (a late catch-up never undoes a later passage)."""
    known = max(passback.inside.get(account, -1), passback.exited.get(account, -1))
    if t < known or direction not in (records.DIR_ENTRY, records.DIR_EXIT):
        return False
    passback.commit(account, direction, t)
    return True


def unlearn(passback, account, direction, t) -> bool:
    """That passage was voided (nobody passed): taken back if it is still the one known."""
    table = passback.inside if direction == records.DIR_ENTRY else passback.exited
    if table.get(account) != t:
        return False
    del table[account]
    return True


def _entry_of(rec):
    """The mesh entry for a journal record, or None (not a passage, nor its voiding)."""
    global _VOID
    if _VOID is None:
        from protocol import reasons

        _VOID = reasons.number("passage_not_taken")
    if rec.kind == records.KIND_PASSAGE:
        kind = mesh.KIND_ACCEPTED
    elif rec.kind == records.KIND_EVENT and rec.reason == _VOID and rec.account_id:
        kind = mesh.KIND_VOIDED
    else:
        return None
    flags = mesh.FLAG_EMERGENCY if rec.flags & records.FLAG_EMERGENCY else 0
    return mesh.Entry(
        rec.seq,
        kind,
        rec.mode,
        rec.direction,
        flags,
        rec.time,
        rec.account_id,
        rec.cred_no,
        rec.counter,
        rec.issuer,
    )


class MeshNode:
    def __init__(
        self, identity, link, clock, replay, policy=None, config=None, ticks_ms=None, log=None
    ):
        self.me = identity
        self.link = link
        self.clock = clock
        self.replay = replay
        self.policy = policy
        self.config = config or MeshConfig()
        self.ticks = ticks_ms or platform.ticks_ms
        self.log = log or (lambda _text: None)
        self.outbox: list = []  # this gate's entries, oldest first, for catch-up
        self.head = 0  # the seq of this gate's newest announcement
        self.queue: list = []  # entries committed, not announced yet
        self.sendq: list = []  # (datagram, addr) catch-up answers waiting their turn
        self.peers: dict = {}  # device_id -> Peer
        self._certs: dict = {}  # certificate bytes -> Cert that verified
        self.msg = 0
        self.started = False
        self._sent_ms = None
        self._pruned_ms = None
        self.counts = {"sent": 0, "received": 0, "applied": 0, "asks_sent": 0, "answered": 0}
        self.refused: dict = {}  # reason -> count
        self.errors = 0  # link errors and anything unexpected, counted (and logged)

    # -- the journal's listener (firmware/storage/journal.py) ------------------------------
    def committed(self, rec) -> None:
        """A record is durable: a passage (or its voiding) is announced at the next poll."""
        e = _entry_of(rec)
        if e is not None:
            self.queue.append(e)

    def acked(self, _seq) -> None:
        pass

    def restore(self, raws) -> int:
        """At boot: this gate's recent passages from its journal's unsynced records (oldest
        first) into the outbox, so peers catching up get them. Returns how many."""
        keep_from = self.clock.now() - self.config.keep_s
        for raw in raws:
            e = _entry_of(records.decode(raw))
            if e is not None and e.time >= keep_from and e.seq > self.head:
                self.outbox.append(e)
                self.head = e.seq
        self._bound()
        return len(self.outbox)

    # -- the loop's turn -------------------------------------------------------------------
    def poll(self) -> list:
        """Send what is queued, take what came in, ask for gaps. Returns [] (no gate events:
        it runs as one of the gate loop's pollers too)."""
        try:
            self._poll()
        except Exception as e:  # never the gate loop's end: counted and logged
            self.errors += 1
            if self.errors <= LOG_PER_REASON:
                self.log("mesh: error %r" % (e,))
        return []

    def _poll(self) -> None:
        now_ms = self.ticks()
        now = self.clock.now()
        if not self.started:  # joining (a boot): ask every peer for everything it holds
            self.started = True
            self._send(self._ask(0, 0, now), None)
            self.counts["asks_sent"] += 1
        if self.queue:
            self._announce(now)
        elif self._sent_ms is None or platform.ticks_diff(now_ms, self._sent_ms) >= (
            self.config.heartbeat_ms
        ):
            self._send(self._message(mesh.TYPE_ANNOUNCE, now, self.head, self.head, ()), None)
        for _ in range(RECV_PER_POLL):
            try:
                got = self.link.recv()
            except OSError:
                self.errors += 1
                break
            if got is None:
                break
            self.receive(got[0], got[1])
        self._ask_gaps(now, now_ms)
        for _ in range(min(SEND_PER_POLL, len(self.sendq))):
            data, addr = self.sendq.pop(0)
            self._send(data, addr)
        if self._pruned_ms is None or platform.ticks_diff(now_ms, self._pruned_ms) >= (
            PRUNE_EVERY_MS
        ):
            self._pruned_ms = now_ms
            self._prune(now)

    def _announce(self, now) -> None:
        queue, self.queue = self.queue, []
        while queue:
            part, queue = queue[: mesh.MAX_ENTRIES], queue[mesh.MAX_ENTRIES :]
            start = self.head
            self.outbox.extend(part)
            self.head = part[-1].seq
            self._send(self._message(mesh.TYPE_ANNOUNCE, now, start, self.head, part), None)
        self._bound()

    def _message(self, mtype, now, from_seq, head, entries, target=0) -> bytes:
        self.msg += 1
        m = mesh.Message(
            mtype,
            self.me.device_id,
            self.me.station,
            now,
            self.msg,
            from_seq,
            head,
            target,
            self.me.cert,
            entries,
        )
        return mesh.encode(m, self.me.signer)

    def _ask(self, target, since, now) -> bytes:
        return self._message(mesh.TYPE_ASK, now, since, 0, (), target)

    def _send(self, data, addr) -> None:
        try:
            if addr is None:
                self.link.broadcast(data)
            else:
                self.link.send(data, addr)
            self.counts["sent"] += 1
            self._sent_ms = self.ticks()
        except OSError:
            self.errors += 1

    # -- receiving -------------------------------------------------------------------------
    def _refuse(self, reason: str) -> None:
        n = self.refused.get(reason, 0) + 1
        self.refused[reason] = n
        if n <= LOG_PER_REASON:
            self.log("mesh: refused a message: %s" % reason)

    def receive(self, data, addr) -> None:
        """One datagram: checked (docs/mesh.md, section 3) and, if it holds, applied."""
        self.counts["received"] += 1
        try:
            m = mesh.parse(data)
        except FormatError as e:
            self._refuse(e.reason)
            return
        me = self.me
        if m.sender == me.device_id:
            return  # our own, looped back by a multicast group
        if m.station != me.station:
            self._refuse("mesh_other_station")
            return
        now = self.clock.now()
        if abs(m.time - now) > self.config.max_age_s:
            self._refuse("mesh_stale")
            return
        peer = self.peers.get(m.sender)
        if peer is not None and (m.time, m.msg) <= (peer.time, peer.msg):
            self._refuse("mesh_replayed")
            return
        why = self._check(m, now)
        if why is not None:
            self._refuse(why)
            return
        if peer is None:
            peer = self.peers[m.sender] = Peer()
        peer.time, peer.msg = m.time, m.msg
        peer.addr = addr
        peer.heard_ms = self.ticks()
        if m.type == mesh.TYPE_ASK:
            if m.target in (0, me.device_id):
                self._answer(m.from_seq, addr, now)
            return
        for e in m.entries:
            self._apply(e, now)
        if m.head > peer.head:
            peer.head = m.head
        if m.from_seq <= peer.have:
            if m.head > peer.have:
                peer.have = m.head
        else:
            peer.owed = True  # a gap: its entries are taken, the rest is asked for

    def _check(self, m, now):
        cert = self._certs.get(m.cert)
        if cert is None:
            try:
                cert = mesh.parse_cert(m)
            except FormatError as e:
                return e.reason
            why = mesh.check_cert(cert, m, self.me.root, self.me.verifier, now)
            if why is not None:
                return why
            if len(self._certs) >= CERT_CACHE:
                self._certs.clear()
            self._certs[m.cert] = cert
        else:
            why = mesh.cert_fits(cert, m, now)
            if why is not None:
                return why
        if not mesh.check_signature(cert, m, self.me.verifier):
            return "mesh_bad_signature"
        return None

    def _apply(self, e, now) -> None:
        if e.time + self.config.keep_s < now:
            return  # older than anything it could still stop
        policy = self.policy
        same_mode = e.mode == self.me.mode and e.direction and not e.flags & mesh.FLAG_EMERGENCY
        passback = same_mode and hasattr(policy, "inside")  # firmware/gate/policy.Passback
        account = records.account_key(e.issuer, e.account_id)  # as the gate's tables keep it
        if e.kind == mesh.KIND_ACCEPTED:
            cid = presentation_key(e.issuer, ridecode.cred_id(e.account_id, e.cred_no))
            if e.time + self.replay.retain_s >= now:
                learn_presentation(self.replay, cid, e.counter, e.time)
            if passback:
                learn(policy, account, e.direction, e.time)
        elif passback:
            unlearn(policy, account, e.direction, e.time)
        self.counts["applied"] += 1

    def _answer(self, since, addr, now) -> None:
        """A peer asked for everything after `since`: queue ANNOUNCEs covering (since, head]."""
        if any(a == addr for _d, a in self.sendq):
            return  # still answering its last ASK
        box = self.outbox
        i = len(box)
        while i > 0 and box[i - 1].seq > since:
            i -= 1
        start = since
        rest = box[i:]
        while True:
            part, rest = rest[: mesh.MAX_ENTRIES], rest[mesh.MAX_ENTRIES :]
            upto = part[-1].seq if rest else max(self.head, since)
            self.sendq.append((self._message(mesh.TYPE_ANNOUNCE, now, start, upto, part), addr))
            start = upto
            if not rest:
                break
        self.counts["answered"] += 1

    def _ask_gaps(self, now, now_ms) -> None:
        for device_id, peer in self.peers.items():
            if peer.head > peer.have:
                peer.owed = True
            if not peer.owed:
                continue
            if peer.asked_ms is not None and platform.ticks_diff(now_ms, peer.asked_ms) < (
                ASK_EVERY_MS
            ):
                continue
            peer.asked_ms = now_ms
            peer.owed = False
            self._send(self._ask(device_id, peer.have, now), peer.addr)
            self.counts["asks_sent"] += 1
            self.log("mesh: mesh_catchup: asked gate %d after seq %d" % (device_id, peer.have))

    def detach(self, journal) -> None:
        """The gate is rebuilt or closed: stop listening, close the socket. Returns None."""
        if self in journal.listeners:
            journal.listeners.remove(self)
        close = getattr(self.link, "close", None)
        if close is not None:
            try:
                close()
            except OSError:
                pass

    # -- bounds ----------------------------------------------------------------------------
    def _bound(self) -> None:
        cap = self.config.outbox
        over = len(self.outbox) - cap
        if over > 0:
            del self.outbox[:over]

    def _prune(self, now) -> None:
        keep_from = now - self.config.keep_s
        box = self.outbox
        i = 0
        while i < len(box) and box[i].time < keep_from:
            i += 1
        if i:
            del box[:i]

    def status(self) -> dict:
        """Plain values for the gate's status (the console, sync's STATUS)."""
        now_ms = self.ticks()
        peers = {}
        for device_id, p in self.peers.items():
            peers["%d" % device_id] = {
                "have": p.have,
                "head": p.head,
                "heard_ms_ago": None
                if p.heard_ms is None
                else platform.ticks_diff(now_ms, p.heard_ms),
            }
        out = dict(self.counts)
        out.update(
            {
                "head": self.head,
                "outbox": len(self.outbox),
                "peers": peers,
                "refused": dict(self.refused),
                "errors": self.errors,
            }
        )
        return out


def attach(dev, cfg):
    """The node of a Device in service (firmware/compose/device.py), or None (logged) when the
    gate lacks a mesh socket (`hw.mesh_link(settings)`, part of its hardware: the entry point
    sets it, drivers/linux/mesh_udp.open_link), its certificate or its device key. The node
    listens to the journal, is restored from it, and feeds the validator's replay cache and
    the gate's anti-passback."""
    from firmware import settings
    from protocol import service

    cert = dev.store.read_blob(service.BLOB_CERT)
    signer = dev.store.signer()
    opener = getattr(dev.hw, "mesh_link", None)
    if opener is None or not cert or signer is None:
        dev.log("device: mesh.enabled, but no mesh socket, certificate or device key")
        return None
    try:
        link = opener(settings.section("mesh", cfg))
    except (OSError, FormatError) as e:
        dev.log("device: the mesh socket did not open: %s" % (e,))
        return None
    gate = dev.gate
    me = Identity(
        dev.device_id, gate.station, gate.mode, cert, signer, dev.store.anchor(), dev.verifier
    )
    config = settings.build(MeshConfig, cfg)
    node = MeshNode(
        me, link, dev.clock, dev.validator.replay, gate.policy, config, dev.ticks, dev.log
    )
    node.restore(dev.journal.unsynced())
    dev.journal.listeners.append(node)
    dev.log("device: mesh on, %d announcements kept for peers" % len(node.outbox))
    return node
