"""The back office's side of the sync protocol (protocol/sync.py has the protocol, the table of
both roles and the gate's side). Apart from protocol/sync.py so a gate, which never plays the
host, does not hold its bytecode (an MCU's heap would)."""

from protocol import messages as m
from protocol.sync import (
    FAILED,
    HELLO_RECEIVED,
    HOST,
    IDLE,
    RECV,
    LocalProtocolError,
    _Connection,
    batch_signing_input,
)


class HostConnection(_Connection):
    """The back office's side. After a Hello event the application looks the device up and
    calls `accept_device(pub)` before sending Challenge, or sends Error("unknown_device")."""

    ROLE = HOST

    def __init__(self, signer, verifier, **kw):
        super().__init__(signer, verifier, **kw)
        self.device_id = None
        self.acks_owed = 0
        self.fetches_owed = []

    def accept_device(self, pub) -> None:
        if self.state != HELLO_RECEIVED:
            raise LocalProtocolError("accept_device outside HELLO_RECEIVED")
        self.peer_pub = pub

    def _guard_send(self, ev):
        if ev.TYPE == m.CHALLENGE and self.peer_pub is None:
            raise LocalProtocolError("CHALLENGE before accept_device")
        if ev.TYPE == m.ACK:
            if not self.acks_owed:
                raise LocalProtocolError("ACK with no BATCH to acknowledge")
        elif ev.TYPE == m.BLOB and not self.fetches_owed:
            raise LocalProtocolError("BLOB with no FETCH to answer")

    def _sent(self, ev):
        if ev.TYPE == m.ACK:
            self.acks_owed -= 1
        elif ev.TYPE == m.BLOB:
            self.fetches_owed.pop(0)

    def _receive_frame(self, ftype, payload):
        if ftype == m.HELLO:
            if payload == self._hello and self.state != FAILED:
                self.stats["duplicates"] += 1
                return None
            ev = self._parse(ftype, payload)
            if ev.version != m.VERSION:
                self._fail("bad_version", "device speaks sync version %d" % ev.version)
            # a new session: everything of the old one is forgotten
            self.state = IDLE
            self._hello = bytes(payload)
            self._sid = None
            self._out_ctr = self._in_ctr = 0
            self.peer_pub = None
            self.acks_owed = 0
            self.fetches_owed = []
            self.device_id = ev.device_id
            self._step(RECV, ftype)
            return ev
        if self.state in (IDLE, HELLO_RECEIVED) and ftype != m.ERROR:
            self.stats["ignored"] += 1  # a frame of a session that is gone
            return None
        return super()._receive_frame(ftype, payload)

    def _received(self, ev):
        if ev.TYPE == m.AUTH and ev.device_id != self.device_id:
            self._fail("bad_message", "AUTH names another device")
        elif ev.TYPE == m.BATCH:
            msg = batch_signing_input(self.device_id, ev.records)
            if not self.verifier.verify(self.peer_pub, msg, ev.sig):
                self._fail("bad_batch_signature", "BATCH's batch signature does not verify")
            self.acks_owed += 1
        elif ev.TYPE == m.FETCH:
            self.fetches_owed.append(ev)
