"""The sync kit of the portable suite: the stand-in keys, clock and signer of the sync tests and
`MiniHost`, just enough back office to sync a gate. Kept out of the test modules so that a test
that only needs the kit (the MCU suite, which counts every byte of its heap) does not load them.
"""

from protocol import messages as m
from protocol import records, sync, synchost
from tests.portable.codes import HOST_PUB, HashVerifier, fake_sig

DEV_PUB = b"\x02" + bytes(range(1, 33))
NOW = 1767254400


class Signer:
    def __init__(self, pub):
        self.public_key = pub

    def sign(self, msg):
        return fake_sig(self.public_key, msg)


class Clock:
    def now(self):
        return NOW


def _nonce(n):
    return b"\x11" * n


def _deliver(data, conn):
    conn.receive_data(data)
    evs = []
    while True:
        ev = conn.next_event()
        if ev is sync.NEED_DATA:
            return evs
        evs.append(ev)


class MiniHost:
    """Just enough back office for the portable suite: a dict for records."""

    def __init__(self, blobs=None, device_pub=DEV_PUB):
        self.conn = synchost.HostConnection(Signer(HOST_PUB), HashVerifier())
        self.device_pub = device_pub
        self.held = {}
        self.blobs = blobs or {}
        self.status = None

    def receive(self, data):
        out = []
        for ev in _deliver(data, self.conn):
            if ev.TYPE == m.HELLO:
                self.conn.accept_device(self.device_pub)
                out.append(self.conn.send(sync.Challenge(_nonce(16), NOW + 5, m.VERSION)))
            elif ev.TYPE == m.AUTH:
                high = max(self.held) if self.held else 0
                offers = [(k, v, len(d)) for (k, v), d in sorted(self.blobs.items())]
                out.append(self.conn.send(sync.Welcome(high, offers)))
            elif ev.TYPE == m.BATCH:
                for raw in ev.records:
                    self.held[records.decode(raw).seq] = raw
                out.append(self.conn.send(sync.Ack(records.decode(ev.records[-1]).seq)))
            elif ev.TYPE == m.STATUS:
                self.status = ev
            elif ev.TYPE == m.FETCH:
                d = self.blobs.get((ev.kind, ev.version))
                if d is None:
                    out.append(
                        self.conn.send(sync.Blob(ev.kind, ev.version, m.NOT_AVAILABLE, 0, b""))
                    )
                else:
                    chunk = d[ev.offset : ev.offset + ev.max_len]
                    out.append(
                        self.conn.send(sync.Blob(ev.kind, ev.version, len(d), ev.offset, chunk))
                    )
            elif ev.TYPE == m.BYE:
                out.append(self.conn.send(sync.Bye()))
        return b"".join(out)
