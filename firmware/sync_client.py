"""The gate's side of sync, sans-IO: it says what to send and takes what was received.

    client = SyncClient(journal)
    out = client.start()          # bytes to send: HELLO and a BATCH of pending records
    client.receive(data)          # feed bytes from the link; an ACK trims the journal
    client.done                   # True once the batch sent is acknowledged

The journal is trimmed only by an ACK the back office sends after its durable commit.
"""

from protocol import frames, messages, records
from protocol.errors import FormatError


class SyncError(Exception):
    pass


class SyncClient:
    def __init__(self, journal, batch_size: int = 500):
        self.journal = journal
        self.batch_size = batch_size
        self._dec = frames.FrameDecoder()
        self.sent_up_to = 0
        self.acked = 0
        self.done = False

    def start(self) -> bytes:
        pending = self.journal.pending(self.batch_size)
        out = frames.encode(messages.HELLO, messages.hello(self.journal.device_id))
        out += frames.encode(messages.BATCH, messages.batch(pending))
        self.sent_up_to = records.decode(pending[-1]).seq if pending else 0
        self.done = not pending
        return out

    def receive(self, data: bytes) -> None:
        for fr in self._dec.feed(data):
            if fr.type == messages.ACK:
                try:
                    device_id, up_to = messages.parse_ack(fr.payload)
                except FormatError:
                    continue
                if device_id != self.journal.device_id or up_to > self.sent_up_to:
                    continue  # not ours, or acknowledges what we never sent: ignore
                self.acked += self.journal.ack(up_to)
                if up_to >= self.sent_up_to:
                    self.done = True
            elif fr.type == messages.ERROR:
                code, text = messages.parse_error(fr.payload)
                raise SyncError("back office refused the batch: %s (%d)" % (text, code))
