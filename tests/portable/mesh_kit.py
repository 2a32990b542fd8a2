"""A station LAN in memory for portable mesh tests: datagrams between named addresses, with
loss and partitions the test sets, and mesh nodes of several gates over it (real ES256: the
operator root of tests/portable/codes.py certifies each gate's device key)."""

from firmware.gate.policy import Passback
from firmware.mesh.node import Identity, MeshConfig, MeshNode
from firmware.verify.replay import ReplayCache
from protocol import certs, p256, reasons, records
from tests.portable import codes

STATION = 7


class Hub:
    """Datagrams delivered at once (in order), unless `drop(src, dst, data)` says so or the
    two ends are on different sides of a partition."""

    def __init__(self):
        self.links = {}
        self.sides = None  # [set of addrs, set of addrs] while partitioned
        self.drop = None
        self.delivered = 0

    def link(self, addr):
        link = HubLink(self, addr)
        self.links[addr] = link
        return link

    def partition(self, a, b):
        self.sides = [set(a), set(b)]

    def heal(self):
        self.sides = None

    def _apart(self, src, dst):
        if self.sides is None:
            return False
        return any(src in s and dst not in s for s in self.sides)

    def deliver(self, src, dst, data):
        to = self.links.get(dst)
        if to is None or self._apart(src, dst):
            return
        if self.drop is not None and self.drop(src, dst, data):
            return
        to.inbox.append((bytes(data), src))
        self.delivered += 1


class HubLink:
    def __init__(self, hub, addr):
        self.hub = hub
        self.addr = addr
        self.inbox = []

    def broadcast(self, data):
        for addr in list(self.hub.links):
            if addr != self.addr:
                self.hub.deliver(self.addr, addr, data)

    def send(self, data, addr):
        self.hub.deliver(self.addr, addr, data)

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None


class Clock:
    def __init__(self, ticks):
        self.ticks = ticks

    def now(self):
        return codes.NOW + self.ticks() // 1000


def device_key(n):
    return p256.Signer(0x5D5D0000 + n)


def device_cert(n, key=None, root=codes.ROOT, kind=certs.KIND_DEVICE, subject=None):
    key = key or device_key(n)
    c = certs.Cert(
        kind,
        n if subject is None else subject,
        certs.key_id(root.public_key),
        codes.NOW - 86400,
        codes.NOW + 86400,
        key.public_key,
        0,
        "G%d" % n,
    )
    return certs.sign(c, root)


def identity(n, mode=records.MODE_METRO, station=STATION):
    return Identity(
        n, station, mode, device_cert(n), device_key(n), codes.ROOT.public_key, codes.VERIFIER
    )


def node(hub, n, ticks, mode=records.MODE_METRO, log=None):
    """Gate n's node on `hub`, with an in-memory replay cache and anti-passback."""
    return MeshNode(
        identity(n, mode),
        hub.link(n),
        Clock(ticks),
        ReplayCache(None),
        Passback(),
        MeshConfig(heartbeat_ms=1000),
        ticks,
        log,
    )


def passage(
    seq, account, counter, t, direction=records.DIR_ENTRY, kind=records.KIND_PASSAGE, issuer=0
):
    """A journal record as the gate's journal hands it to its listeners."""
    reason = 0 if kind == records.KIND_PASSAGE else reasons.number("passage_not_taken")
    return records.Record(
        kind,
        reason,
        1,
        seq,
        t,
        records.MODE_METRO,
        direction,
        STATION,
        account,
        1,
        counter,
        issuer=issuer,
    )


def settle(nodes, turns=6):
    """Every node polls a few times (messages in flight are all delivered at once)."""
    for _ in range(turns):
        for n in nodes:
            n.poll()
