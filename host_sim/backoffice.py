"""The back office: receives journal batches over TCP and stores them durably in SQLite.

It acknowledges a batch only after its own durable commit (WAL, synchronous=FULL), and it is
idempotent by (device_id, seq): a record uploaded twice is stored once.
"""

import asyncio
import sqlite3
import threading

from protocol import frames, messages, records
from protocol.errors import FormatError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    device_id  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    reason     INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    cred_no    INTEGER NOT NULL,
    counter    INTEGER NOT NULL,
    raw        BLOB    NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
"""


class Store:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def store_batch(self, device_id: int, raws: list[bytes]) -> int:
        """Durably store the records; return the highest seq now held for the device."""
        rows = []
        for raw in raws:
            rec = records.decode(raw)
            if rec.device_id != device_id:
                raise FormatError(
                    "record of device %d in a batch from %d" % (rec.device_id, device_id),
                    "bad_message",
                )
            rows.append(
                (
                    rec.device_id,
                    rec.seq,
                    rec.kind,
                    rec.reason,
                    rec.time,
                    rec.account_id,
                    rec.cred_no,
                    rec.counter,
                    bytes(raw),
                )
            )
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        row = self.db.execute(
            "SELECT MAX(seq) FROM records WHERE device_id=?", (device_id,)
        ).fetchone()
        return int(row[0] or 0)

    def count(self, kind: int | None = None) -> int:
        if kind is None:
            return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        return int(
            self.db.execute("SELECT COUNT(*) FROM records WHERE kind=?", (kind,)).fetchone()[0]
        )

    def close(self) -> None:
        self.db.close()


async def handle_connection(
    store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    dec = frames.FrameDecoder()
    device_id = None
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            for fr in dec.feed(data):
                try:
                    if fr.type == messages.HELLO:
                        device_id = messages.parse_hello(fr.payload)
                    elif fr.type == messages.BATCH and device_id is not None:
                        up_to = store.store_batch(device_id, messages.parse_batch(fr.payload))
                        writer.write(frames.encode(messages.ACK, messages.ack(device_id, up_to)))
                        await writer.drain()
                except FormatError as e:
                    writer.write(frames.encode(messages.ERROR, messages.error(1, str(e))))
                    await writer.drain()
    finally:
        writer.close()


async def serve(store: Store, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: handle_connection(store, r, w), host, port)


class BackOfficeThread:
    """The back office's asyncio server on a loopback port, in a thread of its own."""

    def __init__(self, db_path: str) -> None:
        self.store = Store(db_path)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(serve(self.store))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()
