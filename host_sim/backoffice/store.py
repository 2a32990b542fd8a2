"""The back office's store: records, device registry, anomalies and publications in SQLite.

SQLite in WAL mode with synchronous=FULL: `store_batch` returns only after its transaction is
durable, and only then does the sync server acknowledge. Records are idempotent by
(device_id, seq): a batch uploaded twice is stored once. While storing, per device:

- sequence gaps (records the gate never delivered) and hash-chain breaks (a record that does
  not continue the chain) are logged as anomalies, and the records are still stored: they are
  real passages and refusing them would only jam the gate;
- a presentation (account_id, cred_no, counter) accepted as a passage at two gates, or twice,
  is logged as a replay (the gates' local replay caches cannot see each other). Records with
  cred_no = counter = 0 carry no presentation (an emergency passage) and are not compared.

The registry (device_id -> ES256 public key) is filled by provisioning or by
`faregate backoffice devices add`; `devices revoke` marks a stolen or retired gate, whose
sessions are then refused (its records already stored stay); every authentication, refused or
not, goes to auth_log.
Publications are the typed, versioned blobs that flow down (protocol.messages.KINDS).
The session history (`record_session`, `sessions`) keeps one row per sync session, refused or
not, with its outcome and the gate's queue depth: the dashboard's plots over time.
"""

import json
import sqlite3
import threading
from typing import Any

from protocol import records
from protocol.errors import FormatError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    device_id  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    reason     INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    mode       INTEGER NOT NULL,
    direction  INTEGER NOT NULL,
    station    INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    cred_no    INTEGER NOT NULL,
    counter    INTEGER NOT NULL,
    value      INTEGER NOT NULL,
    flags      INTEGER NOT NULL,
    raw        BLOB    NOT NULL,
    received   INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_presentation
    ON records (account_id, cred_no, counter) WHERE kind = 1;
CREATE INDEX IF NOT EXISTS records_account_time ON records (account_id, time);
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY,
    pubkey    BLOB NOT NULL,
    label     TEXT NOT NULL DEFAULT '',
    added     INTEGER NOT NULL,
    high_seq  INTEGER NOT NULL DEFAULT 0,
    last_hash BLOB,
    last_seen INTEGER,
    status    TEXT,
    revoked   INTEGER
);
CREATE TABLE IF NOT EXISTS anomalies (
    id        INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    detail    TEXT NOT NULL,
    UNIQUE (kind, device_id, seq)
);
CREATE TABLE IF NOT EXISTS auth_log (
    id        INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    device_id INTEGER,
    peer      TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS publications (
    kind      INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    data      BLOB NOT NULL,
    published INTEGER NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY,
    device_id   INTEGER,
    peer        TEXT NOT NULL,
    started     INTEGER NOT NULL,
    duration_s  REAL NOT NULL,
    outcome     TEXT NOT NULL,
    records     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    queue_depth INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_device_started ON sessions (device_id, started);
"""

_REPLAYS = """
SELECT r.seq, o.device_id, o.seq, r.account_id, r.cred_no, r.counter
FROM records r JOIN records o
  ON o.account_id = r.account_id AND o.cred_no = r.cred_no AND o.counter = r.counter
 AND o.kind = 1 AND (o.device_id != r.device_id OR o.seq != r.seq)
WHERE r.device_id = ? AND r.seq BETWEEN ? AND ? AND r.kind = 1
  AND NOT (r.cred_no = 0 AND r.counter = 0)
"""


SESSION_COLUMNS = (
    "device_id",
    "peer",
    "started",
    "duration_s",
    "outcome",
    "records",
    "reason",
    "queue_depth",
)


class Device:
    __slots__ = ("device_id", "pubkey", "label", "high_seq", "last_hash", "revoked")

    def __init__(self, device_id, pubkey, label, high_seq, last_hash, revoked):
        self.device_id = device_id
        self.pubkey = pubkey
        self.label = label
        self.high_seq = high_seq
        self.last_hash = last_hash
        self.revoked = revoked  # unix time of `devices revoke`, or None


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(devices)")]
        if "revoked" not in columns:  # a database from before revocation
            self.db.execute("ALTER TABLE devices ADD COLUMN revoked INTEGER")
        self.lock = threading.Lock()  # one writer at a time across server threads

    # -- registry --------------------------------------------------------------------------
    def add_device(self, device_id: int, pubkey: bytes, now: int, label: str = "") -> bool:
        """Register (or re-key, which lifts a revocation) a device. Returns True if it was new."""
        if len(pubkey) not in (33, 65) or pubkey[0] not in (2, 3, 4):
            raise FormatError("not a SEC1 P-256 public key", "bad_key")
        with self.lock:
            existed = self.device(device_id) is not None
            self.db.execute(
                "INSERT INTO devices (device_id, pubkey, label, added) VALUES (?,?,?,?) "
                "ON CONFLICT(device_id) DO UPDATE SET pubkey=excluded.pubkey, revoked=NULL, "
                "label=CASE WHEN excluded.label != '' THEN excluded.label ELSE label END",
                (device_id, bytes(pubkey), label, now),
            )
            return not existed

    def revoke_device(self, device_id: int, now: int) -> bool:
        """Refuse the device's sessions from now on. Returns False if it is not registered."""
        with self.lock:
            cur = self.db.execute(
                "UPDATE devices SET revoked=? WHERE device_id=?", (now, device_id)
            )
            return cur.rowcount == 1

    def device(self, device_id: int) -> Device | None:
        row = self.db.execute(
            "SELECT device_id, pubkey, label, high_seq, last_hash, revoked FROM devices "
            "WHERE device_id=?",
            (device_id,),
        ).fetchone()
        return Device(*row) if row else None

    def log_auth(self, now: int, device_id: int | None, peer: str, outcome: str, detail: str):
        with self.lock:
            self.db.execute(
                "INSERT INTO auth_log (time, device_id, peer, outcome, detail) VALUES (?,?,?,?,?)",
                (now, device_id, peer, outcome, detail),
            )

    def note_status(self, device_id: int, now: int, status: dict[str, Any]) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE devices SET status=?, last_seen=? WHERE device_id=?",
                (json.dumps(status, sort_keys=True), now, device_id),
            )

    def anomaly(self, now: int, kind: str, device_id: int, seq: int, detail: str) -> None:
        with self.lock:
            self._anomaly(now, kind, device_id, seq, detail)

    def _anomaly(self, now: int, kind: str, device_id: int, seq: int, detail: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO anomalies (time, kind, device_id, seq, detail) "
            "VALUES (?,?,?,?,?)",
            (now, kind, device_id, seq, detail),
        )

    # -- ingest ----------------------------------------------------------------------------
    def store_batch(self, device_id: int, raws: list[bytes], now: int) -> int:
        """Durably store one batch of a device's records; returns the batch's last seq.

        The batch must be this device's records with consecutive seqs (else FormatError,
        nothing stored)."""
        if not raws:
            raise FormatError("empty batch", "bad_message")
        recs = [records.decode(r) for r in raws]
        for i, rec in enumerate(recs):
            if rec.device_id != device_id:
                raise FormatError(
                    "record of device %d in a batch from %d" % (rec.device_id, device_id),
                    "bad_message",
                )
            if i and rec.seq != recs[i - 1].seq + 1:
                raise FormatError("batch seqs are not consecutive", "bad_message")
        rows = [
            (
                r.device_id,
                r.seq,
                r.kind,
                r.reason,
                r.time,
                r.mode,
                r.direction,
                r.station,
                r.account_id,
                r.cred_no,
                r.counter,
                r.value,
                r.flags,
                bytes(raw),
                now,
            )
            for r, raw in zip(recs, raws)
        ]
        first, last = recs[0].seq, recs[-1].seq
        with self.lock:
            dev = self.device(device_id)
            if dev is None:
                raise FormatError("device %d is not registered" % device_id, "unknown_device")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._check_continuity(dev, recs, raws, now)
                self.db.executemany(
                    "INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
                )
                new_from = max(first, dev.high_seq + 1)
                if new_from <= last:
                    for seq, odev, oseq, acct, cred, ctr in self.db.execute(
                        _REPLAYS, (device_id, new_from, last)
                    ).fetchall():
                        self._anomaly(
                            now,
                            "replay",
                            device_id,
                            seq,
                            "presentation %d/%d/%d also passed at device %d seq %d"
                            % (acct, cred, ctr, odev, oseq),
                        )
                if last > dev.high_seq:
                    self.db.execute(
                        "UPDATE devices SET high_seq=?, last_hash=?, last_seen=? WHERE device_id=?",
                        (last, records.record_hash(raws[-1]), now, device_id),
                    )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return last

    def _check_continuity(self, dev: Device, recs, raws, now: int) -> None:
        first = recs[0]
        if first.seq > dev.high_seq + 1:
            self._anomaly(
                now,
                "sequence_gap",
                dev.device_id,
                first.seq,
                "records %d..%d never arrived" % (dev.high_seq + 1, first.seq - 1),
            )
        elif first.seq == dev.high_seq + 1 and dev.last_hash is not None:
            if first.prev_hash != dev.last_hash:
                self._anomaly(
                    now, "chain_break", dev.device_id, first.seq, "does not continue the chain"
                )
        brk = records.verify_chain(raws, first.prev_hash)
        if brk > 0:
            self._anomaly(
                now, "chain_break", dev.device_id, recs[brk].seq, "does not continue the chain"
            )

    # -- publications ----------------------------------------------------------------------
    def publish(self, kind: int, version: int, data: bytes, now: int) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO publications VALUES (?,?,?,?)",
                (kind, version, bytes(data), now),
            )

    def offers(self) -> list[tuple[int, int, int]]:
        """The newest version of each kind: (kind, version, size)."""
        return [
            (int(k), int(v), int(n))
            for k, v, n in self.db.execute(
                "SELECT kind, version, length(data) FROM publications p WHERE version = "
                "(SELECT MAX(version) FROM publications q WHERE q.kind = p.kind) ORDER BY kind"
            )
        ]

    def publication(self, kind: int, version: int) -> bytes | None:
        row = self.db.execute(
            "SELECT data FROM publications WHERE kind=? AND version=?", (kind, version)
        ).fetchone()
        return bytes(row[0]) if row else None

    # -- session history -------------------------------------------------------------------
    def record_session(
        self,
        device_id: int | None,
        peer: str,
        started: int,
        duration_s: float,
        outcome: str,
        records: int,
        reason: str = "",
        queue_depth: int | None = None,
    ) -> None:
        """One sync session, at its end: the device (None if it never said HELLO), the peer's
        address, when it started (unix s) and how long it took, its outcome ("ok", "refused",
        "disconnected", ...), the records acknowledged, the refusal or failure reason, and the
        queue depth: the records waiting on the gate when the session began (its HELLO's last
        seq minus the seq the back office held; None: unknown). The STATUS at a session's end
        comes after the upload, so its queue is nearly always 0: it would plot nothing."""
        with self.lock:
            self.db.execute(
                "INSERT INTO sessions (device_id, peer, started, duration_s, outcome, records, "
                "reason, queue_depth) VALUES (?,?,?,?,?,?,?,?)",
                (device_id, peer, started, duration_s, outcome, records, reason, queue_depth),
            )

    def sessions(
        self, device_id: int | None = None, since: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The latest `limit` sessions (of one device, started at or after `since`), oldest
        first, as dicts with the fields of `record_session`."""
        cols = SESSION_COLUMNS
        where, args = [], []
        if device_id is not None:
            where.append("device_id=?")
            args.append(device_id)
        if since is not None:
            where.append("started>=?")
            args.append(since)
        q = "SELECT %s FROM sessions" % ", ".join(cols)
        if where:
            q += " WHERE " + " AND ".join(where)
        rows = self.db.execute(q + " ORDER BY started DESC, id DESC LIMIT ?", (*args, limit))
        return [dict(zip(cols, r)) for r in reversed(rows.fetchall())]

    # -- queries ---------------------------------------------------------------------------
    def count(self, kind: int | None = None) -> int:
        if kind is None:
            return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        return int(
            self.db.execute("SELECT COUNT(*) FROM records WHERE kind=?", (kind,)).fetchone()[0]
        )

    def records(self) -> list[tuple[int, int, bytes]]:
        """Every stored record as (device_id, seq, raw bytes), by device then seq."""
        return [
            (int(d), int(q), bytes(raw))
            for d, q, raw in self.db.execute(
                "SELECT device_id, seq, raw FROM records ORDER BY device_id, seq"
            )
        ]

    def anomaly_counts(self) -> dict[str, int]:
        """How many anomalies of each kind are logged: {kind: n}, kinds in order."""
        return {
            str(k): int(n)
            for k, n in self.db.execute(
                "SELECT kind, COUNT(*) FROM anomalies GROUP BY kind ORDER BY kind"
            )
        }

    def anomalies(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT time, kind, device_id, seq, detail FROM anomalies"
        args: tuple = ()
        if kind:
            q += " WHERE kind=?"
            args = (kind,)
        cols = ("time", "kind", "device_id", "seq", "detail")
        return [dict(zip(cols, r)) for r in self.db.execute(q + " ORDER BY id", args)]

    def close(self) -> None:
        self.db.close()
