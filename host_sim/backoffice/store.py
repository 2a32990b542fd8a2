"""The back office's store: records, device registry, anomalies and publications.

Every query of the back office is a method here (tests/test_import_contract.py checks that no
other module runs SQL). Two backends (host_sim/backoffice/backends.py): SQLite, the embedded
default (WAL, synchronous=FULL), or PostgreSQL (psycopg 3) when the target is a
postgresql:// URL. `store_batch` returns only after its transaction is durable, and only
then does the sync server acknowledge. Records are idempotent by
(device_id, seq): a batch uploaded twice is stored once. While storing, per device:

- sequence gaps (records the gate never delivered) and hash-chain breaks (a record that does
  not continue the chain) are logged as anomalies, and the records are still stored: they are
  real passages and refusing them would only jam the gate;
- a presentation (account_id, cred_no, counter) accepted as a passage at two gates, or twice,
  is logged as a replay (the gates' local replay caches cannot see each other). The first
  passage of each presentation claims it (table presentations, a unique key), so two sessions
  storing copies at once are still caught (see _CLAIM). Records with
  cred_no = counter = 0 carry no presentation (an emergency passage) and are not compared.
- a record arriving again under a (device_id, seq) already stored is compared byte for byte
  with the stored one: other bytes are a `seq_conflict` (the gate reissued the seq; the first
  record is kept).

The registry (device_id -> ES256 public key) is filled by provisioning or by
`faregate backoffice devices add`; `devices revoke` marks a stolen or retired gate, whose
sessions are then refused (its records already stored stay); every authentication, refused or
not, goes to auth_log.

Several writers at once (server threads, or several `serve` processes on one PostgreSQL):
`store_batch` reads the device's row (high_seq, last_hash) inside its transaction, locked
(PostgreSQL: SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE holds the database's write lock),
so the continuity and hash-chain checks see every batch committed before, and the primary
key (device_id, seq) with ON CONFLICT DO NOTHING stores each record once.

Adding a query: write a method here with portable SQL (see backends.py: `?` placeholders,
{blob}/{id}/{for_update} tokens, INSERT ... ON CONFLICT, BIGINT) and run it through
`self.b` (execute, rows, one, executemany; `with self.b.transaction():` for several
statements that commit together). New tables go in a schema string passed to
`self.b.script` in __init__ (CREATE TABLE IF NOT EXISTS: it runs at every start).
Publications are the typed, versioned blobs that flow down (protocol.messages.KINDS); a gate
that refused one says so in its STATUS, kept in blob_refusals (one row per device, kind,
version and reason, with when it was first and last reported).
The session history (`record_session`, `sessions`) keeps one row per sync session, refused or
not, with its outcome and the gate's queue depth: the dashboard's plots over time.
"""

import bisect
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from host_sim.backoffice import backends, translog
from protocol import merkle, records, sync
from protocol.errors import FormatError, UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    device_id  BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       BIGINT NOT NULL,
    reason     BIGINT NOT NULL,
    time       BIGINT NOT NULL,
    mode       BIGINT NOT NULL,
    direction  BIGINT NOT NULL,
    station    BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    cred_no    BIGINT NOT NULL,
    counter    BIGINT NOT NULL,
    value      BIGINT NOT NULL,
    flags      BIGINT NOT NULL,
    raw        {blob}  NOT NULL,
    received   BIGINT NOT NULL,
    issuer     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, seq)
) {without_rowid};
-- the gate's evidence: every BATCH as it arrived with its batch signature (the device key over
-- protocol.sync.batch_signing_input), the records it held concatenated (raw). A record's
-- evidence is the first batch that holds its stored bytes (passage_evidence)
CREATE TABLE IF NOT EXISTS batches (
    device_id BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    hash      {blob} NOT NULL,
    sig       {blob} NOT NULL,
    raw       {blob} NOT NULL,
    received  BIGINT NOT NULL,
    PRIMARY KEY (device_id, first_seq, hash)
);
DROP INDEX IF EXISTS records_presentation;
CREATE INDEX IF NOT EXISTS records_account_time ON records (account_id, time);
CREATE TABLE IF NOT EXISTS devices (
    device_id BIGINT PRIMARY KEY,
    pubkey    {blob} NOT NULL,
    label     TEXT NOT NULL DEFAULT '',
    added     BIGINT NOT NULL,
    high_seq  BIGINT NOT NULL DEFAULT 0,
    last_hash {blob},
    last_seen BIGINT,
    status    TEXT,
    revoked   BIGINT
);
-- the first passage of each presentation (its claim): the replay check's unique key
CREATE TABLE IF NOT EXISTS presentations (
    account_id BIGINT NOT NULL,
    cred_no    BIGINT NOT NULL,
    counter    BIGINT NOT NULL,
    device_id  BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (account_id, cred_no, counter)
) {without_rowid};
CREATE TABLE IF NOT EXISTS anomalies (
    id        {id},
    time      BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    device_id BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    detail    TEXT NOT NULL,
    UNIQUE (kind, device_id, seq)
);
CREATE TABLE IF NOT EXISTS auth_log (
    id        {id},
    time      BIGINT NOT NULL,
    device_id BIGINT,
    peer      TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS publications (
    kind      BIGINT NOT NULL,
    version   BIGINT NOT NULL,
    data      {blob} NOT NULL,
    published BIGINT NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS sessions (
    id          {id},
    device_id   BIGINT,
    peer        TEXT NOT NULL,
    started     BIGINT NOT NULL,
    duration_s  DOUBLE PRECISION NOT NULL,
    outcome     TEXT NOT NULL,
    records     BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    queue_depth BIGINT
);
CREATE INDEX IF NOT EXISTS sessions_device_started ON sessions (device_id, started);
CREATE TABLE IF NOT EXISTS blob_refusals (
    device_id BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    version   BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    first     BIGINT NOT NULL,
    last      BIGINT NOT NULL,
    count     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (device_id, kind, version, reason)
);
-- clearing (host_sim/backoffice/clearing.py): published charges, their revisions, the
-- per-device cursor of taps already cleared, disputes and the operators' audit trail
CREATE TABLE IF NOT EXISTS clearing_cursor (
    device_id BIGINT NOT NULL PRIMARY KEY,
    high_seq  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    account_id    BIGINT NOT NULL,
    day           BIGINT NOT NULL,
    revision      BIGINT NOT NULL,
    cleared       BIGINT NOT NULL,
    adjusted      BIGINT NOT NULL,
    amount        BIGINT NOT NULL,
    fares         BIGINT NOT NULL,
    journeys      BIGINT NOT NULL,
    open_journeys BIGINT NOT NULL,
    review        BIGINT NOT NULL,
    fingerprint   TEXT NOT NULL,
    published     BIGINT NOT NULL,
    updated       BIGINT NOT NULL,
    excess        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, day)
);
CREATE INDEX IF NOT EXISTS charges_open ON charges (account_id, day) WHERE open_journeys > 0;
CREATE TABLE IF NOT EXISTS charge_revisions (
    account_id  BIGINT NOT NULL,
    day         BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    delta       BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    time        BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    explanation TEXT NOT NULL,
    PRIMARY KEY (account_id, day, revision)
);
CREATE TABLE IF NOT EXISTS disputes (
    account_id BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
-- risk control (host_sim/backoffice/risk.py, docs/fraud.md): the per-device cursor of records
-- already scanned, the rules' findings, the deny entries they asked for (want: on the list;
-- listed: on the list as published), and unpaid charges the payment side reported
CREATE TABLE IF NOT EXISTS risk_cursor (
    device_id BIGINT NOT NULL PRIMARY KEY,
    high_seq  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_findings (
    id         {id},
    time       BIGINT NOT NULL,
    rule       TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    cred_no    BIGINT NOT NULL,
    score      BIGINT NOT NULL,
    evidence   TEXT NOT NULL,
    detail     TEXT NOT NULL,
    state      TEXT NOT NULL,
    deny_key   BIGINT NOT NULL,
    expires    BIGINT NOT NULL,
    operator   TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    decided    BIGINT,
    first_use  BIGINT NOT NULL DEFAULT 0,
    UNIQUE (rule, account_id, cred_no, evidence)
);
CREATE TABLE IF NOT EXISTS risk_denials (
    issuer     BIGINT NOT NULL,
    deny_key   BIGINT NOT NULL,
    finding_id BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    want       BIGINT NOT NULL,
    listed     BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 0,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (issuer, deny_key)
);
CREATE TABLE IF NOT EXISTS risk_unpaid (
    account_id BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    amount     BIGINT NOT NULL,
    reported   BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE TABLE IF NOT EXISTS audit (
    seq        {id},
    time       BIGINT NOT NULL,
    operator   TEXT NOT NULL,
    action     TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    before     TEXT NOT NULL,
    after      TEXT NOT NULL
);
-- the transparency log (host_sim/backoffice/translog.py, docs/settlement.md): every stored
-- record is a leaf, appended in the transaction that stores it. log_state is one row: the
-- tree size and its frontier (translog.pack_frontier). log_nodes: every complete node (level
-- 0: the leaf hashes) in runs (translog.runs): a row holds nodes idx, idx+1, ... of its level,
-- hash their hashes joined (32 bytes each), never across a multiple of translog.CHUNK.
-- log_leaves: which records the leaves are, in runs: leaves leaf .. leaf+n-1 are the records
-- seq .. seq+n-1 of device_id. Rows of one node or one leaf (n = 1) are how stores before
-- runs kept them: they are runs of one. log_heads: the signed heads
CREATE TABLE IF NOT EXISTS log_state (
    id       BIGINT NOT NULL PRIMARY KEY,
    size     BIGINT NOT NULL,
    frontier {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS log_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  {blob} NOT NULL,
    PRIMARY KEY (level, idx)
) {without_rowid};
CREATE TABLE IF NOT EXISTS log_leaves (
    leaf      BIGINT NOT NULL PRIMARY KEY,
    device_id BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    n         BIGINT NOT NULL DEFAULT 1,
    UNIQUE (device_id, seq)
);
CREATE TABLE IF NOT EXISTS log_heads (
    id        {id},
    tree_size BIGINT NOT NULL,
    time      BIGINT NOT NULL,
    head      {blob} NOT NULL
);
-- plate-bound accounts (no-sense parking, host_sim/backoffice/plates.py): plate_key as in
-- protocol/platelist.py (< 2**63), cred_id account_id << 24 | cred_no of issuer key `issuer`,
-- plate '' when the operator hashes plates (only the key is kept), want 1 bound or 0 to
-- remove, listed the cred_id (listed_issuer its issuer) in the version published last (0: not
-- on it)
CREATE TABLE IF NOT EXISTS plates (
    plate_key  BIGINT NOT NULL PRIMARY KEY,
    cred_id    BIGINT NOT NULL,
    issuer     BIGINT NOT NULL DEFAULT 0,
    listed_issuer BIGINT NOT NULL DEFAULT 0,
    plate      TEXT NOT NULL DEFAULT '',
    want       BIGINT NOT NULL,
    listed     BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 0,
    updated    BIGINT NOT NULL
);
-- plate reads a lane could not match (plate_unknown, plate_low_confidence events): the manual
-- review queue, status open, fell_back (a passage followed at that lane), charged, dismissed
CREATE TABLE IF NOT EXISTS plate_review (
    device_id  BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    time       BIGINT NOT NULL,
    station    BIGINT NOT NULL,
    direction  BIGINT NOT NULL,
    reason     BIGINT NOT NULL,
    plate_key  BIGINT NOT NULL,
    image_tag  BIGINT NOT NULL,
    confidence BIGINT NOT NULL,
    status     TEXT NOT NULL,
    account_id BIGINT NOT NULL DEFAULT 0,
    operator   TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    decided    BIGINT,
    PRIMARY KEY (device_id, seq)
);
"""

# The replay check of a batch's new passages (device_id, first seq, last seq): each claims its
# presentation (the first passage of it wins), then every passage whose presentation another
# passage claimed is a replay (looked up only when the INSERT made fewer claims than the batch
# has new presentations). Two writers of one presentation at once: the second's INSERT
# waits on the unique key until the first commits (PostgreSQL; SQLite has one writer), then
# its SELECT, a new snapshot, sees the claim: a copy is flagged however the sessions
# interleave. Claims in key order: two batches never wait on each other in a cycle.
_CLAIM = """
INSERT INTO presentations (account_id, cred_no, counter, device_id, seq)
SELECT account_id, cred_no, counter, device_id, seq FROM records
WHERE device_id = ? AND seq BETWEEN ? AND ? AND kind = 1 AND NOT (cred_no = 0 AND counter = 0)
ORDER BY account_id, cred_no, counter, seq
ON CONFLICT DO NOTHING
"""
_CLAIMS_OF_ALL = """
INSERT INTO presentations (account_id, cred_no, counter, device_id, seq)
SELECT account_id, cred_no, counter, device_id, seq FROM records
WHERE kind = 1 AND NOT (cred_no = 0 AND counter = 0)
ORDER BY account_id, cred_no, counter, time, device_id, seq
ON CONFLICT DO NOTHING
"""
_REPLAYS = """
SELECT r.seq, p.device_id, p.seq, r.account_id, r.cred_no, r.counter
FROM records r JOIN presentations p
  ON p.account_id = r.account_id AND p.cred_no = r.cred_no AND p.counter = r.counter
WHERE r.device_id = ? AND r.seq BETWEEN ? AND ? AND r.kind = 1
  AND NOT (r.cred_no = 0 AND r.counter = 0) AND (p.device_id != r.device_id OR p.seq != r.seq)
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


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """(" WHERE a AND b", args) of the (sql, value) conditions whose value is not None."""
    given = [(sql, v) for sql, v in conditions if v is not None]
    where = " WHERE " + " AND ".join(sql for sql, _ in given) if given else ""
    return where, [v for _, v in given]


LOG_QUERY = 64  # log nodes read per query (a proof at 1,000,000 leaves needs about 40)
LOG_TOP = 6  # log levels kept in memory once read (Store.log_nodes)
LOG_TOP_MAX = 1 << 18  # nodes (about 40 MB): a log of more than 2**24 leaves starts over


def leaf_runs(first: int, new: list[tuple[int, int, bytes]]) -> list[tuple[int, int, int, int]]:
    """log_leaves' rows for (device_id, seq, raw) records appended as leaves first, first+1,
    ...: (leaf, device_id, seq, n), one per run of one device's consecutive seqs."""
    cuts = [
        i
        for i in range(1, len(new))
        if new[i][0] != new[i - 1][0] or new[i][1] != new[i - 1][1] + 1
    ]
    bounds = [0, *cuts, len(new)]
    return [(first + a, new[a][0], new[a][1], b - a) for a, b in zip(bounds, bounds[1:]) if b > a]


def record_row(r: Any, raw: bytes, now: int) -> tuple:
    """The records-table row of one decoded record `r` and its bytes, stored at `now`. Its
    account_id column is the account key (protocol.records.account_key: issuer << 40 |
    account), so clearing, charges, the replay claims and risk see two issuers' account 42 as
    two riders; issuer 0 (version 1 records) keeps the bare account id."""
    return (
        r.device_id,
        r.seq,
        r.kind,
        r.reason,
        r.time,
        r.mode,
        r.direction,
        r.station,
        records.account_key(r.issuer, r.account_id),
        r.cred_no,
        r.counter,
        r.value,
        r.flags,
        bytes(raw),
        now,
        r.issuer,
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


_KEY64 = (1 << 64) - 1

# The risk engine's deny entries of a database from before deny lists per issuer (table
# risk_deny, keyed by the bare deny key): each entry's issuer is its finding's (the top bits
# of the finding's account key, records.account_key: issuer << 40 | account).
_RISK_DENIALS = (
    "INSERT INTO risk_denials (issuer, deny_key, finding_id, reason, expires, want, listed, "
    "version, updated) SELECT COALESCE((SELECT f.account_id FROM risk_findings f WHERE "
    "f.id = d.finding_id), 0) / 1099511627776, d.deny_key, d.finding_id, d.reason, d.expires, "
    "d.want, d.listed, d.version, d.updated FROM risk_deny d"
)


class Store:
    def __init__(self, target: str, durable: bool = True) -> None:
        """`target`: a file path or sqlite:///PATH (SQLite), or a postgresql:// URL.
        `durable=False` (the station simulator without host_fsync): SQLite commits skip the
        host's fsync; nothing else changes."""
        self.path = target
        self.b = backends.connect(target, durable)
        self.backend = self.b.name
        self.errors = self.b.errors  # the driver's failures: nothing may be acknowledged
        claims = bool(self.b.columns("presentations"))
        self.b.script(SCHEMA)
        if not claims:  # a database from before the presentations table: its claims
            self.b.execute(_CLAIMS_OF_ALL)
        if "revoked" not in self.b.columns("devices"):  # a database from before revocation
            self.b.execute("ALTER TABLE devices ADD COLUMN revoked BIGINT")
        if "issuer" not in self.b.columns("records"):  # from before several issuers
            self.b.execute("ALTER TABLE records ADD COLUMN issuer BIGINT NOT NULL DEFAULT 0")
        if "excess" not in self.b.columns("charges"):  # from before the excess of refunds
            self.b.execute("ALTER TABLE charges ADD COLUMN excess BIGINT NOT NULL DEFAULT 0")
        if "n" not in self.b.columns("log_leaves"):  # from before runs: each row one leaf
            self.b.execute("ALTER TABLE log_leaves ADD COLUMN n BIGINT NOT NULL DEFAULT 1")
        if "issuer" not in self.b.columns("plates"):  # from before plate lists with the issuer
            self.b.execute("ALTER TABLE plates ADD COLUMN issuer BIGINT NOT NULL DEFAULT 0")
            self.b.execute("ALTER TABLE plates ADD COLUMN listed_issuer BIGINT NOT NULL DEFAULT 0")
        if self.b.columns("risk_deny"):  # from before deny lists per issuer: _RISK_DENIALS
            with self.b.transaction():
                self.b.execute(_RISK_DENIALS)
                self.b.execute("DROP TABLE risk_deny")
        self.lock = self.b.lock  # one statement or transaction at a time across threads
        self._log_top: dict[tuple[int, int], bytes] = {}  # log_nodes' memory of the top
        if self.b.one("SELECT size FROM log_state WHERE id = 1") is None:
            with self.b.transaction():  # a new store, or one from before the log: its records
                self.b.execute(
                    "INSERT INTO log_state (id, size, frontier) VALUES (1, 0, ?) "
                    "ON CONFLICT DO NOTHING",
                    (b"",),
                )
                self._log_append(
                    self.b.rows(
                        "SELECT device_id, seq, raw FROM records ORDER BY received, device_id, seq"
                    )
                )

    @property
    def db(self) -> Any:
        """The driver's connection (sqlite3 or psycopg), for tests that tamper with the store;
        the back office itself goes through the methods."""
        return self.b.raw

    # -- registry --------------------------------------------------------------------------
    def add_device(self, device_id: int, pubkey: bytes, now: int, label: str = "") -> bool:
        """Register (or re-key, which lifts a revocation) a device. Returns True if it was new."""
        if len(pubkey) not in (33, 65) or pubkey[0] not in (2, 3, 4):
            raise FormatError("not a SEC1 P-256 public key", "bad_key")
        with self.lock:
            existed = self.device(device_id) is not None
            self.b.execute(
                "INSERT INTO devices (device_id, pubkey, label, added) VALUES (?,?,?,?) "
                "ON CONFLICT (device_id) DO UPDATE SET pubkey=excluded.pubkey, revoked=NULL, "
                "label=CASE WHEN excluded.label != '' THEN excluded.label ELSE devices.label END",
                (device_id, bytes(pubkey), label, now),
            )
            return not existed

    def revoke_device(self, device_id: int, now: int) -> bool:
        """Refuse the device's sessions from now on. Returns False if it is not registered."""
        with self.lock:
            cur = self.b.execute("UPDATE devices SET revoked=? WHERE device_id=?", (now, device_id))
            return cur.rowcount == 1

    def device(self, device_id: int) -> Device | None:
        row = self.b.one(
            "SELECT device_id, pubkey, label, high_seq, last_hash, revoked FROM devices "
            "WHERE device_id=?",
            (device_id,),
        )
        return Device(*row) if row else None

    def log_auth(self, now: int, device_id: int | None, peer: str, outcome: str, detail: str):
        with self.lock:
            self.b.execute(
                "INSERT INTO auth_log (time, device_id, peer, outcome, detail) VALUES (?,?,?,?,?)",
                (now, device_id, peer, outcome, detail),
            )

    def note_status(self, device_id: int, now: int, status: dict[str, Any]) -> None:
        with self.lock:
            self.b.execute(
                "UPDATE devices SET status=?, last_seen=? WHERE device_id=?",
                (json.dumps(status, sort_keys=True), now, device_id),
            )

    def anomaly(self, now: int, kind: str, device_id: int, seq: int, detail: str) -> None:
        with self.lock:
            self._anomaly(now, kind, device_id, seq, detail)

    def _anomaly(self, now: int, kind: str, device_id: int, seq: int, detail: str) -> None:
        self.b.execute(
            "INSERT INTO anomalies (time, kind, device_id, seq, detail) "
            "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            (now, kind, device_id, seq, detail),
        )

    # -- ingest ----------------------------------------------------------------------------
    def transaction(self) -> Any:
        """One transaction for several of the methods below (the group commit's): COMMIT on
        leaving, durable when it returns; ROLLBACK on an exception."""
        return self.b.transaction()

    def store_batch(
        self, device_id: int, raws: list[bytes], now: int, sig: bytes | None = None
    ) -> int:
        """Durably store one batch of a device's records; returns the batch's last seq.

        The batch must be this device's records with consecutive seqs (else FormatError,
        nothing stored). `sig`: the BATCH's batch signature, which the sync session checked
        with the device's key (protocol.sync.batch_signing_input); kept with the batch's bytes
        as the gate's evidence (passage_evidence). None for records that came another way (a
        factory-reset export, `backoffice import`): they have no gate signature."""
        with self.b.transaction():
            return self.store_batch_in_transaction(device_id, raws, now, sig)

    def store_batch_in_transaction(
        self, device_id: int, raws: list[bytes], now: int, sig: bytes | None = None
    ) -> int:
        """store_batch's work inside a transaction the caller holds (and commits: the group
        commit of host_sim/backoffice/group_commit.py puts many sessions' batches in one).
        A FormatError is raised before anything is written, so the caller's transaction
        stays good for the other batches in it."""
        if not raws:
            raise FormatError("empty batch", "bad_message")
        if sig is not None and len(sig) != sync.SIG_LEN:
            raise FormatError("a batch signature is %d bytes" % sync.SIG_LEN, "bad_message")
        recs = [records.decode(r) for r in raws]
        for i, rec in enumerate(recs):
            if rec.device_id != device_id:
                raise FormatError(
                    "record of device %d in a batch from %d" % (rec.device_id, device_id),
                    "bad_message",
                )
            if i and rec.seq != recs[i - 1].seq + 1:
                raise FormatError("batch seqs are not consecutive", "bad_message")
        rows = [record_row(r, raw, now) for r, raw in zip(recs, raws)]
        first, last = recs[0].seq, recs[-1].seq
        # the log's row first, then the device's: every writer locks in this order (no cycle)
        self.b.one("SELECT size FROM log_state WHERE id = 1{for_update}")
        row = self.b.one(
            "SELECT device_id, pubkey, label, high_seq, last_hash, revoked FROM devices "
            "WHERE device_id=?{for_update}",
            (device_id,),
        )
        if row is None:
            raise FormatError("device %d is not registered" % device_id, "unknown_device")
        dev = Device(*row)
        self._check_continuity(dev, recs, raws, now)
        held: dict[int, bytes] = {}
        if first <= dev.high_seq:  # a re-upload: the same seq must carry the same record
            held = dict(
                self.b.rows(
                    "SELECT seq, raw FROM records WHERE device_id=? AND seq BETWEEN ? AND ?",
                    (device_id, first, min(last, dev.high_seq)),
                )
            )
            for r, raw in zip(recs, raws):
                old = held.get(r.seq)
                if old is not None and bytes(old) != bytes(raw):
                    self._anomaly(
                        now,
                        "seq_conflict",
                        device_id,
                        r.seq,
                        "a different record arrived with a seq already stored (kept "
                        "the first, record hash %s; the new one %s): the gate reissued "
                        "the seq"
                        % (
                            records.record_hash(bytes(old)).hex(),
                            records.record_hash(raw).hex(),
                        ),
                    )
        self.b.insert_new("records", rows)
        self._log_append(
            [(device_id, r.seq, raw) for r, raw in zip(recs, raws) if r.seq not in held]
        )
        if sig is not None:
            self.b.execute(
                "INSERT INTO batches VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (device_id, first, last, sync.batch_hash(raws), bytes(sig), b"".join(raws), now),
            )
        new_from = max(first, dev.high_seq + 1)
        presented = sum(
            1
            for r in recs
            if r.seq >= new_from and r.kind == records.KIND_PASSAGE and (r.cred_no or r.counter)
        )
        claimed = self.b.execute(_CLAIM, (device_id, new_from, last)).rowcount if presented else 0
        if claimed < presented:  # copies of presentations claimed before
            for seq, odev, oseq, acct, cred, ctr in self.b.rows(
                _REPLAYS, (device_id, new_from, last)
            ):
                issuer, bare = records.split_account_key(acct)
                self._anomaly(
                    now,
                    "replay",
                    device_id,
                    seq,
                    "presentation %d/%d/%d%s also passed at device %d seq %d"
                    % (bare, cred, ctr, " of issuer %d" % issuer if issuer else "", odev, oseq),
                )
        if last > dev.high_seq:
            self.b.execute(
                "UPDATE devices SET high_seq=?, last_hash=?, last_seen=? WHERE device_id=?",
                (last, records.record_hash(raws[-1]), now, device_id),
            )
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

    # -- the transparency log (translog.py): appended to by store_batch, read by proofs -----
    def _log_append(self, new: list[tuple[int, int, bytes]]) -> None:
        """Append (device_id, seq, raw) records as leaves, inside the caller's transaction,
        which holds log_state's row (store_batch locks it first)."""
        if not new:
            return
        row = self.b.one("SELECT size, frontier FROM log_state WHERE id = 1{for_update}")
        assert row is not None  # made in __init__
        size = int(row[0])
        blob = row[1]
        levels, frontier = translog.grow(
            translog.unpack_frontier(size, bytes(blob)),
            translog.leaf_hashes(raw for _d, _s, raw in new),
        )
        nodes = [
            (level, idx, blob)
            for level, hashes in enumerate(levels)  # size >> level: the level's nodes before
            for idx, blob in translog.runs(size >> level, hashes)
        ]
        self.b.insert_many("log_nodes", ("level", "idx", "hash"), nodes, binary=True)
        self.b.insert_many(
            "log_leaves", ("leaf", "device_id", "seq", "n"), leaf_runs(size, new), binary=True
        )
        self.b.execute(
            "UPDATE log_state SET size = ?, frontier = ? WHERE id = 1",
            (size + len(new), translog.pack_frontier(frontier)),
        )

    def log_size(self) -> int:
        row = self.b.one("SELECT size FROM log_state WHERE id = 1")
        assert row is not None  # made in __init__
        return int(row[0])

    def log_nodes(self, keys: list[tuple[int, int]]) -> list[bytes | None]:
        """The stored nodes (level, index) of `keys` (None: not stored), LOG_QUERY keys a
        query: each is read from the run holding it, which starts in its CHUNK at or below it.
        Nodes of level LOG_TOP and above, once read outside a transaction (so committed, and
        never changed after), are kept in memory: every proof needs some of that small top of
        the tree (about one node in 2**LOG_TOP), and the query is then for the levels below."""
        top = self._log_top
        miss = [k for k in dict.fromkeys(keys) if k not in top]
        got = dict(zip(miss, self._log_nodes_read(miss)))
        if not self.b.in_transaction():
            if len(top) > LOG_TOP_MAX:
                top.clear()
            top.update((k, h) for k, h in got.items() if h is not None and k[0] >= LOG_TOP)
        return [top[k] if k in top else got[k] for k in keys]

    def _log_nodes_read(self, keys: list[tuple[int, int]]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for i in range(0, len(keys), LOG_QUERY):
            part = keys[i : i + LOG_QUERY]
            q = "SELECT level, idx, hash FROM log_nodes WHERE " + " OR ".join(
                ["(level = ? AND idx BETWEEN ? AND ?)"] * len(part)
            )
            args = [a for lv, ix in part for a in (lv, ix - ix % translog.CHUNK, ix)]
            runs = {(int(lv), int(ix)): bytes(blob) for lv, ix, blob in self.b.rows(q, args)}
            starts: dict[int, list[int]] = {}
            for lv, ix in sorted(runs):
                starts.setdefault(lv, []).append(ix)
            for lv, ix in part:
                at = starts.get(lv, [])
                i = bisect.bisect_right(at, ix) - 1
                out.append(translog.run_node(at[i], runs[lv, at[i]], ix) if i >= 0 else None)
        return out

    def log_add_head(self, head: bytes, tree_size: int, time_ms: int) -> None:
        with self.lock:
            self.b.execute(
                "INSERT INTO log_heads (tree_size, time, head) VALUES (?,?,?)",
                (tree_size, time_ms, bytes(head)),
            )

    def log_heads(self, since_ms: int | None = None) -> list[bytes]:
        """The signed heads, oldest first (signed at or after `since_ms`)."""
        where, args = _where(("time >= ?", since_ms))
        q = "SELECT head FROM log_heads%s ORDER BY id" % where
        return [bytes(r[0]) for r in self.b.rows(q, args)]

    def log_leaf_of(self, device_id: int, seq: int) -> int | None:
        """The leaf index of record (device_id, seq), None if it is not stored."""
        return self.log_leaves_of([(device_id, seq)]).get((device_id, seq))

    def log_leaf(self, leaf: int) -> tuple[int, int, bytes] | None:
        """(device_id, seq, raw) of leaf `leaf`."""
        run = self.b.one(
            "SELECT leaf, device_id, seq, n FROM log_leaves WHERE leaf <= ? "
            "ORDER BY leaf DESC LIMIT 1",
            (leaf,),
        )
        if run is None or leaf >= run[0] + run[3]:
            return None
        device_id, seq = int(run[1]), int(run[2]) + leaf - int(run[0])
        row = self.b.one(
            "SELECT raw FROM records WHERE device_id = ? AND seq = ?", (device_id, seq)
        )
        return (device_id, seq, bytes(row[0])) if row else None

    def log_leaves_of(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """{(device_id, seq): leaf} of the records given (those stored)."""
        out: dict[tuple[int, int], int] = {}
        by_dev: dict[int, list[int]] = {}
        for d, q in keys:
            by_dev.setdefault(d, []).append(q)
        for d, seqs in by_dev.items():
            lo, hi = min(seqs), max(seqs)
            runs = [
                (int(seq), int(leaf), int(n))
                for seq, leaf, n in self.b.rows(  # the runs holding seqs lo..hi
                    "SELECT seq, leaf, n FROM log_leaves WHERE device_id = ? AND seq BETWEEN "
                    "COALESCE((SELECT MAX(seq) FROM log_leaves WHERE device_id = ? "
                    "AND seq <= ?), ?) AND ? ORDER BY seq",
                    (d, d, lo, lo, hi),
                )
            ]
            starts = [r[0] for r in runs]
            for q in seqs:
                at = bisect.bisect_right(starts, q) - 1
                if at >= 0 and q < runs[at][0] + runs[at][2]:
                    out[(d, q)] = runs[at][1] + q - runs[at][0]
        return out

    def statement_records(self, since: int, until: int) -> list[bytes]:
        """The raw passages and gate events with gate time in since..until-1 (statements.py
        keeps an issuer's), by device and seq."""
        return [
            bytes(r[0])
            for r in self.b.rows(
                "SELECT raw FROM records WHERE kind IN (1, 3) AND time >= ? AND time < ? "
                "ORDER BY device_id, seq",
                (since, until),
            )
        ]

    def tamper_record(self, device_id: int, seq: int, raw: bytes | None, insert=False) -> None:
        """The simulator's tampering operator (host_sim/station/settlement.py) and tests: the
        stored record (device_id, seq) replaced by `raw` (insert: stored again), or deleted
        (None), behind the log's back. Nothing of the back office calls it."""
        with self.b.transaction():
            if raw is None:
                self.b.execute(
                    "DELETE FROM records WHERE device_id = ? AND seq = ?", (device_id, seq)
                )
            elif insert:
                self.b.insert_new("records", [record_row(records.decode(raw), raw, 0)])
            else:
                self.b.execute(
                    "UPDATE records SET raw = ? WHERE device_id = ? AND seq = ?",
                    (bytes(raw), device_id, seq),
                )

    def translog(
        self, signer: Any = None, head_interval_ms: int = translog.HOUR_MS
    ) -> translog.TransLog:
        """The log over this store, its heads signed by `signer` (None: read only). Appends
        happen in store_batch; `.refresh()` on it sees the leaves stored since."""
        return translog.TransLog(_LogNodes(self), signer or translog.NoSigner(), head_interval_ms)

    # -- publications ----------------------------------------------------------------------
    def publish(self, kind: int, version: int, data: bytes, now: int) -> None:
        with self.lock:
            self.b.execute(
                "INSERT INTO publications VALUES (?,?,?,?) ON CONFLICT (kind, version) "
                "DO UPDATE SET data=excluded.data, published=excluded.published",
                (kind, version, bytes(data), now),
            )

    def offers(self) -> list[tuple[int, int, int]]:
        """The newest version of each kind: (kind, version, size)."""
        return [
            (int(k), int(v), int(n))
            for k, v, n in self.b.rows(
                "SELECT kind, version, length(data) FROM publications p WHERE version = "
                "(SELECT MAX(version) FROM publications q WHERE q.kind = p.kind) ORDER BY kind"
            )
        ]

    def publication(self, kind: int, version: int) -> bytes | None:
        row = self.b.one(
            "SELECT data FROM publications WHERE kind=? AND version=?", (kind, version)
        )
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
            self.b.execute(
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
        where, args = _where(("device_id = ?", device_id), ("started >= ?", since))
        q = "SELECT %s FROM sessions%s" % (", ".join(cols), where)
        rows = self.b.rows(q + " ORDER BY started DESC, id DESC LIMIT ?", (*args, limit))
        return [dict(zip(cols, r)) for r in reversed(rows)]

    def note_refusal(
        self, device_id: int, now: int, kind: str, version: int, reason: str, detail: str
    ) -> None:
        """A gate's STATUS said it refused version `version` of `kind` (a KINDS name)."""
        with self.lock:
            self.b.execute(
                "INSERT INTO blob_refusals (device_id, kind, version, reason, detail, first, last)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT (device_id, kind, version, reason) DO UPDATE"
                " SET detail=excluded.detail, last=excluded.last, count=blob_refusals.count+1",
                (device_id, kind, version, reason, detail, now, now),
            )

    def blob_refusals(self, device_id: int | None = None) -> list[dict[str, Any]]:
        """Published blobs gates refused: dicts of device_id, kind (a KINDS name), version,
        reason, detail, first and last (unix times it was reported) and count (how many
        STATUS reports said so), by device, kind and version."""
        cols = ("device_id", "kind", "version", "reason", "detail", "first", "last", "count")
        q = "SELECT %s FROM blob_refusals" % ", ".join(cols)
        args: tuple = ()
        if device_id is not None:
            q += " WHERE device_id=?"
            args = (device_id,)
        q += " ORDER BY device_id, kind, version, reason"
        return [dict(zip(cols, r)) for r in self.b.rows(q, args)]

    # -- queries ---------------------------------------------------------------------------
    def count(self, kind: int | None = None) -> int:
        if kind is None:
            return int(self.b.rows("SELECT COUNT(*) FROM records")[0][0])
        return int(self.b.rows("SELECT COUNT(*) FROM records WHERE kind=?", (kind,))[0][0])

    def records(self) -> list[tuple[int, int, bytes]]:
        """Every stored record as (device_id, seq, raw bytes), by device then seq."""
        return [
            (int(d), int(q), bytes(raw))
            for d, q, raw in self.b.rows(
                "SELECT device_id, seq, raw FROM records ORDER BY device_id, seq"
            )
        ]

    def anomaly_counts(self) -> dict[str, int]:
        """How many anomalies of each kind are logged: {kind: n}, kinds in order."""
        return {
            str(k): int(n)
            for k, n in self.b.rows(
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
        return [dict(zip(cols, r)) for r in self.b.rows(q + " ORDER BY id", args)]

    def device_count(self) -> int:
        return int(self.b.rows("SELECT COUNT(*) FROM devices")[0][0])

    def devices(self, revoked: bool = True) -> list[dict[str, Any]]:
        """Every registered device (without the revoked ones if `revoked` is False), by id, as
        dicts of device_id, pubkey (bytes), label, high_seq, last_seen, status (the last
        STATUS as a dict, {} if none) and revoked (unix time or None)."""
        cols = ("device_id", "pubkey", "label", "high_seq", "last_seen", "status", "revoked")
        q = "SELECT %s FROM devices" % ", ".join(cols)
        if not revoked:
            q += " WHERE revoked IS NULL"
        out = []
        for r in self.b.rows(q + " ORDER BY device_id"):
            d = dict(zip(cols, r))
            d["pubkey"] = bytes(d["pubkey"])
            d["status"] = json.loads(d["status"]) if d["status"] else {}
            out.append(d)
        return out

    def auth_log(self) -> list[dict[str, Any]]:
        """Every authentication, oldest first: time, device_id, peer, outcome, detail."""
        cols = ("time", "device_id", "peer", "outcome", "detail")
        q = "SELECT %s FROM auth_log ORDER BY id" % ", ".join(cols)
        return [dict(zip(cols, r)) for r in self.b.rows(q)]

    def last_sessions(self) -> list[dict[str, Any]]:
        """Each device's latest session: device_id, started, outcome, reason."""
        cols = ("device_id", "started", "outcome", "reason")
        return [
            dict(zip(cols, r))
            for r in self.b.rows(
                "SELECT device_id, started, outcome, reason FROM sessions s WHERE id = "
                "(SELECT MAX(id) FROM sessions t WHERE t.device_id = s.device_id)"
            )
        ]

    def anomaly_counts_by_device(self) -> dict[tuple[int, str], int]:
        """{(device_id, kind): how many anomalies}."""
        return {
            (int(d), str(k)): int(n)
            for d, k, n in self.b.rows(
                "SELECT device_id, kind, COUNT(*) FROM anomalies GROUP BY device_id, kind"
            )
        }

    def passage_evidence(self, device_id: int, seq: int) -> dict[str, Any] | None:
        """What proves the stored record (device_id, seq) to a third party (an issuer), or None
        if no record is stored there. A dict:

          record          the record's bytes as stored (protocol/records.py)
          issuer          its issuer key id (0: a version 1 record, no issuer)
          rider_signed    the bytes the rider's key signed (ride code bytes 0..131:
                          credential || presentation time || counter), or None (no code kept:
                          an event, a version 1 record)
          rider_sig       the rider's signature over them (64 bytes, r||s), or None
          rider_pub       the rider's public key, from the credential (33 bytes), or None;
                          the credential's own issuer signature is rider_signed[60:124] over
                          rider_signed[0:60], checked with the trust list's key `issuer`
          device_id       the gate
          device_pub      the gate's device public key from the registry (SEC1)
          batch           the BATCH's records as uploaded, concatenated (records.split
                          parts them), or None if the record came without a signed batch
                          (an import of a factory-reset export)
          batch_hash      what the signature covers of `batch`'s records: SHA-256 of their
                          SHA-256s (protocol.sync.batch_hash), or None
          batch_sig       the gate's batch signature (64 bytes), or None
          batch_signed    what batch_sig signs: protocol.sync.batch_signing_input(device_id,
                          records of batch), or None

        Check: verify(device_pub, batch_signed, batch_sig), `record` is one of
        records.split(batch), verify(rider_pub, rider_signed, rider_sig), and the credential's
        issuer signature. The batch is the first one stored that holds the record's stored
        bytes (a record uploaded twice, after a lost ACK, is in several)."""
        row = self.b.one(
            "SELECT raw, issuer FROM records WHERE device_id=? AND seq=?", (device_id, seq)
        )
        if row is None:
            return None
        raw = bytes(row[0])
        dev = self.device(device_id)
        rec = records.decode(raw)
        rider = rec.rider_evidence()
        out: dict[str, Any] = {
            "record": raw,
            "issuer": int(row[1]),
            "rider_signed": rider[0] if rider else None,
            "rider_sig": rider[1] if rider else None,
            "rider_pub": rec.code[27:60] if rider else None,
            "device_id": device_id,
            "device_pub": bytes(dev.pubkey) if dev else None,
            "batch": None,
            "batch_hash": None,
            "batch_sig": None,
            "batch_signed": None,
        }
        for braw, bhash, bsig in self.b.rows(
            "SELECT raw, hash, sig FROM batches WHERE device_id=? AND first_seq<=? "
            "AND last_seq>=? ORDER BY received, first_seq",
            (device_id, seq, seq),
        ):
            parts = records.split(bytes(braw))
            if raw in parts:
                out["batch"] = bytes(braw)
                out["batch_hash"] = bytes(bhash)
                out["batch_sig"] = bytes(bsig)
                out["batch_signed"] = sync.batch_signing_input(device_id, parts)
                break
        return out

    def statement_batches(self, device_id: int, lo: int, hi: int) -> list[tuple[int, bytes, bytes]]:
        """The signed batches of a device that hold a seq in lo..hi, as they arrived (received,
        first_seq order): (first_seq, batch signature, records concatenated). statements.py
        picks, for each record of a statement, the first that holds its stored bytes."""
        return [
            (int(first), bytes(sig), bytes(raw))
            for first, sig, raw in self.b.rows(
                "SELECT first_seq, sig, raw FROM batches WHERE device_id=? AND first_seq<=? "
                "AND last_seq>=? ORDER BY received, first_seq",
                (device_id, hi, lo),
            )
        ]

    def passages(self) -> list[tuple[int, ...]]:
        """Every passage record for clearing, by account, mode, time: (account_id, mode,
        device_id, seq, time, station, direction, value, flags)."""
        return self.b.rows(
            "SELECT account_id, mode, device_id, seq, time, station, direction, value, flags "
            "FROM records WHERE kind = ? ORDER BY account_id, mode, time, device_id, seq",
            (records.KIND_PASSAGE,),
        )

    def close(self) -> None:
        self.b.close()

    # -- clearing (clearing.py): every query it needs, and nothing else, in this block ---------
    _TAPS = (
        "SELECT account_id, mode, device_id, seq, kind, reason, time, station, direction, "
        "cred_no, counter, value, flags FROM records WHERE kind IN (1, 3)"
    )
    _CHARGE = (
        "account_id",
        "day",
        "revision",
        "cleared",
        "adjusted",
        "amount",
        "fares",
        "journeys",
        "open_journeys",
        "review",
        "fingerprint",
        "published",
        "updated",
        "excess",
    )
    _REVISION = ("revision", "kind", "delta", "amount", "time", "reason", "explanation")
    _REVISION_ROW = ("account_id", "day") + _REVISION

    @contextlib.contextmanager
    def clearing_transaction(self) -> Iterator[None]:
        """One writer, one transaction: all of a clearing run or a correction, or none."""
        with self.lock:
            self.b.execute("BEGIN")
            try:
                yield
                self.b.execute("COMMIT")
            except BaseException:
                self.b.execute("ROLLBACK")
                raise

    def clearing_taps(self, account: int | None = None, since: int | None = None) -> Any:
        """Passages and gate events as (account_id, *clearing.TAP_COLUMNS) rows, by account
        then time (of one account, at or after `since`)."""
        q, args = self._TAPS, ()  # type: tuple[str, tuple[int, ...]]
        if account is not None:
            q += " AND account_id = ? AND time >= ?"
            args = (account, since if since is not None else -(1 << 62))
        return self.b.execute(q + " ORDER BY account_id, time, device_id, seq", args)

    def clearing_taps_of(self, accounts: list[int], since: int) -> list[tuple]:
        """The taps (clearing_taps rows, in no order) of these accounts at or after `since`,
        in one query (an incremental run's). `account_id IN (...)`, which the planner serves
        from the (account_id, time) index also before PostgreSQL has statistics of the table
        (a join with a VALUES list of (account, since) became a scan of every record)."""
        if not accounts:
            return []
        q = self._TAPS + " AND account_id IN (%s) AND time >= ?" % ", ".join("?" * len(accounts))
        return self.b.rows(q, [*accounts, since])

    def clearing_all_taps(self) -> list[tuple]:
        """Every passage and gate event, as clearing_taps rows by account then time (a list):
        for a full clear. One scan of the table and a sort (`+account_id`: not a walk of the
        (account_id, time) index, which visits the table once per row, 4x slower on SQLite);
        PostgreSQL sorts in parallel workers while clearing waits for the rows."""
        return self.b.rows(self._TAPS + " ORDER BY +account_id, time, device_id, seq")

    def clearing_new_taps(self, with_taps: bool = True):
        """The cursor moves [(device_id, high_seq)] that take in every record stored since
        the last run, and (account_id, time) of those records' taps."""
        moves = self.b.execute(
            "SELECT d.device_id, c.high_seq, d.high_seq FROM devices d LEFT JOIN "
            "clearing_cursor c ON c.device_id = d.device_id "
            "WHERE c.high_seq IS NULL OR d.high_seq > c.high_seq"
        ).fetchall()
        taps: list[tuple[int, int]] = []
        for dev, old, new in moves if with_taps else ():
            taps.extend(
                self.b.execute(
                    "SELECT account_id, time FROM records WHERE device_id = ? AND seq > ? "
                    "AND seq <= ? AND kind IN (1, 3)",
                    (dev, old or 0, new),
                )
            )
        return [(dev, new) for dev, _old, new in moves], taps

    def clearing_move_cursor(self, moves: list[tuple[int, int]]) -> None:
        self.b.executemany(
            "INSERT INTO clearing_cursor (device_id, high_seq) VALUES (?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET high_seq = excluded.high_seq",
            moves,
        )

    def clearing_has_charges(self) -> bool:
        return self.b.execute("SELECT 1 FROM charges LIMIT 1").fetchone() is not None

    def clearing_open_days(self) -> list[tuple[int, int]]:
        """Account-days whose charge still has open journeys (re-cleared at every run)."""
        return self.b.execute(
            "SELECT account_id, day FROM charges WHERE open_journeys > 0"
        ).fetchall()

    def clearing_published_of(
        self, accounts: list[int] | None, from_day: int = 0
    ) -> dict[int, dict[int, dict[str, Any]]]:
        """{account: {day: charge}} of the published charges of these accounts from
        `from_day` on, in one query; accounts=None: every charge (a full re-clear)."""
        cols = self._CHARGE
        q = "SELECT %s FROM charges" % ", ".join(cols)
        args: list[int] = []
        if accounts is not None:
            if not accounts:
                return {}
            q += " WHERE account_id IN (%s) AND day >= ?" % ", ".join("?" * len(accounts))
            args = [*accounts, from_day]
        out: dict[int, dict[int, dict[str, Any]]] = {}
        for r in self.b.execute(q, args):
            out.setdefault(r[0], {})[r[1]] = dict(zip(cols, r))
        return out

    def clearing_write(
        self,
        new: list[tuple[int, int, dict[str, Any]]],
        revised: list[tuple[int, int, dict[str, Any], dict[str, Any]]],
        now: int,
    ) -> None:
        """A clearing run's results, in batches (COPY on PostgreSQL, executemany on SQLite):
        `new` charges [(account, day, charge)] at revision 1, and `revised` ones [(account,
        day, charge, old row)], the charge with the `amount` and `excess` clearing.owed gave
        it: a new revision, an adjustment by the change of the amount. Each with its
        charge_revisions row."""
        revs: list[tuple] = []
        if new:
            self.b.insert_many(
                "charges",
                self._CHARGE,
                [
                    (
                        account,
                        day,
                        1,
                        c["cleared"],
                        0,
                        c["cleared"],
                        c["fares"],
                        c["journeys"],
                        c["open"],
                        c["review"],
                        c["fingerprint"],
                        now,
                        now,
                        0,
                    )
                    for account, day, c in new
                ],
            )
            revs += [
                (a, d, 1, "charge", c["cleared"], c["cleared"], now, "cleared", c["explanation"])
                for a, d, c in new
            ]
        ups = []
        for account, day, c, old in revised:
            rev, amount = old["revision"] + 1, c["amount"]
            delta = amount - old["amount"]
            ups.append(
                (
                    rev,
                    c["cleared"],
                    amount,
                    c["excess"],
                    c["fares"],
                    c["journeys"],
                    c["open"],
                    c["review"],
                    c["fingerprint"],
                    now,
                    account,
                    day,
                )
            )
            why, text = "re-cleared: taps changed", c["explanation"]
            revs.append((account, day, rev, "adjustment", delta, amount, now, why, text))
        if ups:
            self.b.executemany(
                "UPDATE charges SET revision = ?, cleared = ?, amount = ?, excess = ?, fares = ?, "
                "journeys = ?, open_journeys = ?, review = ?, fingerprint = ?, updated = ? "
                "WHERE account_id = ? AND day = ?",
                ups,
            )
        if revs:
            self.b.insert_many("charge_revisions", self._REVISION_ROW, revs)

    def clearing_operator_revision(
        self,
        before: dict[str, Any],
        adjusted: int,
        amount: int,
        excess: int,
        kind: str,
        why: str,
        now: int,
    ) -> None:
        """An operator's refund or adjustment of the charge `before` (a clearing_charge):
        its corrections now sum to `adjusted`, it owes `amount` with `excess` left over
        (clearing.owed); a revision that re-clearing keeps."""
        account, day = before["account_id"], before["day"]
        rev, delta = before["revision"] + 1, amount - before["amount"]
        self.b.execute(
            "UPDATE charges SET revision = ?, adjusted = ?, amount = ?, excess = ?, updated = ? "
            "WHERE account_id = ? AND day = ?",
            (rev, adjusted, amount, excess, now, account, day),
        )
        self._clearing_revision(account, day, rev, kind, delta, amount, now, why, "")

    _INSERT_REVISION = (
        "INSERT INTO charge_revisions (account_id, day, revision, kind, delta, amount, "
        "time, reason, explanation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def _clearing_revision(self, account, day, rev, kind, delta, amount, now, why, text) -> None:
        self.b.execute(
            self._INSERT_REVISION, (account, day, rev, kind, delta, amount, now, why, text)
        )

    def clearing_charge(self, account: int, day: int) -> dict[str, Any] | None:
        got = self.clearing_charges(account, day)
        return got[0] if got else None

    def clearing_charges(self, account: int | None = None, day: int | None = None):
        """Published charges (of one account, one day) by account and day, as dicts of the
        charges columns with `dispute` (its status or None)."""
        cols = self._CHARGE
        q = (
            "SELECT %s, d.status FROM charges c LEFT JOIN disputes d "
            "ON d.account_id = c.account_id AND d.day = c.day"
        ) % ", ".join("c." + k for k in cols)
        where, args = _where(("c.account_id = ?", account), ("c.day = ?", day))
        rows = self.b.execute(q + where + " ORDER BY c.account_id, c.day", args)
        return [dict(zip(cols + ("dispute",), r)) for r in rows]

    def clearing_accounts_of(self, account_id: int, day: int) -> list[int]:
        """The account keys (records.account_key) with a charge on `day` whose own account id
        is `account_id`, one per issuer that has it."""
        rows = self.b.rows(
            "SELECT account_id FROM charges WHERE day = ? AND account_id % ? = ? "
            "ORDER BY account_id",
            (day, 1 << records.ACCOUNT_BITS, account_id),
        )
        return [int(r[0]) for r in rows]

    def clearing_revisions(self, account: int, day: int) -> list[dict[str, Any]]:
        """A charge's revisions, oldest first (explanation: JSON of its journeys, or '')."""
        cols = self._REVISION
        rows = self.b.execute(
            "SELECT %s FROM charge_revisions WHERE account_id = ? AND day = ? ORDER BY revision"
            % ", ".join(cols),
            (account, day),
        )
        return [dict(zip(cols, r)) for r in rows]

    def clearing_dispute(self, account: int, day: int) -> dict[str, Any] | None:
        row = self.b.execute(
            "SELECT status, reason, updated FROM disputes WHERE account_id = ? AND day = ?",
            (account, day),
        ).fetchone()
        return dict(zip(("status", "reason", "updated"), row)) if row else None

    def clearing_set_dispute(self, account: int, day: int, status: str, why: str, now: int):
        self.b.execute(
            "INSERT INTO disputes (account_id, day, status, reason, updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, day) DO UPDATE SET "
            "status = excluded.status, reason = excluded.reason, updated = excluded.updated",
            (account, day, status, why, now),
        )

    def clearing_audit(self, now, operator, action, account, day, why, before, after) -> None:
        """One line of the audit trail: who, when, what, why, and the state before/after."""
        self.b.execute(
            "INSERT INTO audit (time, operator, action, account_id, day, reason, before, after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                operator,
                action,
                account,
                day,
                why,
                json.dumps(before, sort_keys=True),
                json.dumps(after, sort_keys=True),
            ),
        )

    def clearing_audit_log(self, account: int | None = None) -> list[dict[str, Any]]:
        cols = (
            "seq",
            "time",
            "operator",
            "action",
            "account_id",
            "day",
            "reason",
            "before",
            "after",
        )
        q, args = "SELECT %s FROM audit" % ", ".join(cols), ()  # type: str, tuple[int, ...]
        if account is not None:
            q, args = q + " WHERE account_id = ?", (account,)
        out = [dict(zip(cols, r)) for r in self.b.execute(q + " ORDER BY seq", args)]
        for r in out:
            r["before"], r["after"] = json.loads(r["before"]), json.loads(r["after"])
        return out

    # -- risk control (risk.py): every query it needs, and nothing else, in this block -------
    _RISK_PASSAGE = (
        "account_id",
        "cred_no",
        "device_id",
        "seq",
        "time",
        "station",
        "mode",
        "direction",
        "counter",
        "flags",
    )
    _FINDING = (
        "id",
        "time",
        "rule",
        "account_id",
        "cred_no",
        "score",
        "evidence",
        "detail",
        "state",
        "deny_key",
        "expires",
        "operator",
        "note",
        "decided",
        "first_use",
    )

    @contextlib.contextmanager
    def risk_transaction(self) -> Iterator[None]:
        """One scan, publish or operator decision: all of it or none. A write transaction
        from its start (SQLite: BEGIN IMMEDIATE, queued behind the other writers; a deferred
        one would fail when a sync session commits between its reads and its first write),
        one at a time across processes on PostgreSQL too (serve's engine, a `risk run`
        from cron: two publishers would both make the next deny version)."""
        with self.lock, self.b.transaction():
            if self.b.name == "postgresql":
                self.b.execute("SELECT pg_advisory_xact_lock(727371)")
            yield

    def risk_new_credentials(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(cursor moves [(device_id, high_seq)] that take in every record stored since the
        last scan, the (account_id, cred_no) of those records' passages)."""
        moves = self.b.execute(
            "SELECT d.device_id, c.high_seq, d.high_seq FROM devices d LEFT JOIN "
            "risk_cursor c ON c.device_id = d.device_id "
            "WHERE c.high_seq IS NULL OR d.high_seq > c.high_seq"
        ).fetchall()
        creds: set[tuple[int, int]] = set()
        for dev, old, new in moves:
            for a, c in self.b.execute(
                "SELECT account_id, cred_no FROM records WHERE device_id = ? AND seq > ? "
                "AND seq <= ? AND kind = 1 AND NOT (cred_no = 0 AND counter = 0)",
                (dev, old or 0, new),
            ):
                creds.add((int(a), int(c)))
        return [(int(d), int(n)) for d, _o, n in moves], sorted(creds)

    def risk_move_cursor(self, moves: list[tuple[int, int]]) -> None:
        self.b.executemany(
            "INSERT INTO risk_cursor (device_id, high_seq) VALUES (?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET high_seq = excluded.high_seq",
            moves,
        )

    def risk_passages(self, accounts: list[int], since: int) -> list[dict[str, Any]]:
        """The passages (kind 1, with a presentation) of these accounts at or after `since`,
        by account, credential, time, device and seq: dicts of _RISK_PASSAGE."""
        if not accounts:
            return []
        q = (
            "SELECT %s FROM records WHERE kind = 1 AND NOT (cred_no = 0 AND counter = 0) "
            "AND account_id IN (%s) AND time >= ? "
            "ORDER BY account_id, cred_no, time, device_id, seq"
            % (", ".join(self._RISK_PASSAGE), ", ".join("?" * len(accounts)))
        )
        return [
            dict(zip(self._RISK_PASSAGE, map(int, r)))
            for r in self.b.execute(q, [*accounts, since])
        ]

    def risk_unpaid_of(self, accounts: list[int]) -> dict[int, tuple[int, int]]:
        """account -> (unpaid amount, days) of those with unpaid charges reported."""
        if not accounts:
            return {}
        q = (
            "SELECT account_id, SUM(amount), COUNT(*) FROM risk_unpaid WHERE amount > 0 "
            "AND account_id IN (%s) GROUP BY account_id" % ", ".join("?" * len(accounts))
        )
        return {int(a): (int(n), int(d)) for a, n, d in self.b.execute(q, accounts)}

    def risk_note_unpaid(self, account: int, day: int, amount: int, now: int) -> None:
        """The payment side reports what of an account-day's charge is unpaid (0: paid)."""
        self.b.execute(
            "INSERT INTO risk_unpaid VALUES (?,?,?,?) ON CONFLICT (account_id, day) DO UPDATE "
            "SET amount = excluded.amount, reported = excluded.reported",
            (account, day, amount, now),
        )

    def risk_unpaid_accounts(self) -> list[int]:
        return [
            int(a)
            for (a,) in self.b.execute(
                "SELECT DISTINCT account_id FROM risk_unpaid ORDER BY account_id"
            )
        ]

    def risk_add_finding(self, f: dict[str, Any]) -> int | None:
        """Store a finding; its id, or None if the same (rule, credential, evidence) is
        stored already."""
        cols = [c for c in self._FINDING if c != "id"]
        sql = (
            "INSERT INTO risk_findings (%s) VALUES (%s) "
            "ON CONFLICT (rule, account_id, cred_no, evidence) DO NOTHING RETURNING id"
            % (", ".join(cols), ", ".join("?" * len(cols)))
        )
        rows = self.b.execute(sql, [f[c] for c in cols]).fetchall()
        return int(rows[0][0]) if rows else None

    def risk_findings(
        self, state: str | None = None, account: int | None = None, rule: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = _where(("state = ?", state), ("account_id = ?", account), ("rule = ?", rule))
        q = "SELECT %s FROM risk_findings%s ORDER BY id" % (", ".join(self._FINDING), where)
        return [dict(zip(self._FINDING, r)) for r in self.b.execute(q, args)]

    def risk_finding(self, fid: int) -> dict[str, Any] | None:
        q = "SELECT %s FROM risk_findings WHERE id = ?" % ", ".join(self._FINDING)
        row = self.b.one(q, (fid,))
        return dict(zip(self._FINDING, row)) if row else None

    def risk_decide(self, fid: int, state: str, operator: str, note: str, now: int) -> None:
        self.b.execute(
            "UPDATE risk_findings SET state = ?, operator = ?, note = ?, decided = ? WHERE id = ?",
            (state, operator, note, now, fid),
        )

    # The deny entries below are protocol.denylist entries (issuer << 64 | u64 deny key), kept
    # as (issuer, deny_key) in risk_denials.
    def risk_want(self, key: int, fid: int, reason: str, expires: int, want: bool, now: int):
        """Ask for a deny entry (want) or for its removal; an entry asked for again keeps
        the later expiry."""
        self.b.execute(
            "INSERT INTO risk_denials (issuer, deny_key, finding_id, reason, expires, want, "
            "updated) VALUES (?,?,?,?,?,?,?) ON CONFLICT (issuer, deny_key) DO UPDATE SET "
            "finding_id = excluded.finding_id, reason = excluded.reason, "
            "expires = CASE WHEN excluded.want = 1 AND risk_denials.want = 1 AND "
            "risk_denials.expires > excluded.expires THEN risk_denials.expires "
            "ELSE excluded.expires END, want = excluded.want, updated = excluded.updated",
            (key >> 64, key & _KEY64, fid, reason, expires, 1 if want else 0, now),
        )

    def risk_expire(self, now: int) -> list[int]:
        """Entries past their expiry stop being wanted; returns them."""
        keys = [
            int(i) << 64 | int(k)
            for i, k in self.b.execute(
                "SELECT issuer, deny_key FROM risk_denials WHERE want = 1 AND expires <= ?",
                (now,),
            )
        ]
        if keys:
            self.b.execute(
                "UPDATE risk_denials SET want = 0, updated = ? WHERE want = 1 AND expires <= ?",
                (now, now),
            )
        return keys

    def risk_changes(self) -> tuple[list[int], list[int]]:
        """(entries to add to the published list, entries to remove from it), ascending."""
        q = (
            "SELECT issuer, deny_key FROM risk_denials WHERE want = ? AND listed = ? "
            "ORDER BY issuer, deny_key"
        )
        adds = [int(i) << 64 | int(k) for i, k in self.b.execute(q, (1, 0))]
        removes = [int(i) << 64 | int(k) for i, k in self.b.execute(q, (0, 1))]
        return adds, removes

    def risk_listed(self, keys: list[int], listed: bool, version: int) -> None:
        self.b.executemany(
            "UPDATE risk_denials SET listed = ?, version = ? WHERE issuer = ? AND deny_key = ?",
            [(1 if listed else 0, version, k >> 64, k & _KEY64) for k in keys],
        )

    def risk_deny_entries(self) -> list[dict[str, Any]]:
        """The deny entries, each with its issuer and bare deny_key."""
        cols = (
            "issuer",
            "deny_key",
            "finding_id",
            "reason",
            "expires",
            "want",
            "listed",
            "version",
        )
        q = "SELECT %s FROM risk_denials ORDER BY issuer, deny_key" % ", ".join(cols)
        return [dict(zip(cols, map(_plain, r))) for r in self.b.execute(q)]

    def risk_summary(self) -> dict[str, int]:
        """Findings by state (the dashboard's and /metrics' counts)."""
        return {
            str(k): int(n)
            for k, n in self.b.execute(
                "SELECT state, COUNT(*) FROM risk_findings GROUP BY state ORDER BY state"
            )
        }

    # -- plate-bound accounts and the plate review queue (host_sim/backoffice/plates.py) -------
    def plate_bind(self, key: int, issuer: int, cred_id: int, plate: str, now: int) -> None:
        self.b.execute(
            "INSERT INTO plates (plate_key, issuer, cred_id, plate, want, updated) "
            "VALUES (?,?,?,?,1,?) ON CONFLICT (plate_key) DO UPDATE SET "
            "issuer = excluded.issuer, cred_id = excluded.cred_id, "
            "plate = excluded.plate, want = 1, updated = excluded.updated",
            (key, issuer, cred_id, plate, now),
        )

    def plate_unbind(self, key: int, now: int) -> bool:
        n = self.b.execute(
            "UPDATE plates SET want = 0, updated = ? WHERE plate_key = ? AND want = 1",
            (now, key),
        )
        return bool(getattr(n, "rowcount", 0))

    def plate_changes(self) -> tuple[list[tuple[int, int, int]], list[int]]:
        """(bindings not yet on the published list as (key, issuer, cred_id), keys to take
        off)."""
        adds = self.b.rows(
            "SELECT plate_key, issuer, cred_id FROM plates WHERE want = 1 AND "
            "(listed != cred_id OR listed_issuer != issuer) ORDER BY plate_key"
        )
        removes = self.b.rows(
            "SELECT plate_key FROM plates WHERE want = 0 AND listed != 0 ORDER BY plate_key"
        )
        return [(int(k), int(i), int(c)) for k, i, c in adds], [int(r[0]) for r in removes]

    def plate_listed(self, adds: list[tuple[int, int, int]], removes: list[int], version: int):
        with self.b.transaction():
            self.b.executemany(
                "UPDATE plates SET listed = ?, listed_issuer = ?, version = ? WHERE plate_key = ?",
                [(c, i, version, k) for k, i, c in adds] + [(0, 0, version, k) for k in removes],
            )

    def plate_bindings(self) -> list[dict[str, Any]]:
        cols = ("plate_key", "issuer", "cred_id", "plate", "want", "listed", "version", "updated")
        q = "SELECT %s FROM plates ORDER BY plate_key" % ", ".join(cols)
        return [dict(zip(cols, map(_plain, r))) for r in self.b.rows(q)]

    def plate_review_collect(self, reasons_: tuple[int, ...], window_s: int) -> int:
        """Queue the plate events not queued yet, and mark every open one `fell_back` when a
        passage followed it at its lane within window_s (the QR fallback worked). The event's
        account_id is the plate key, cred_no the image tag, counter the confidence."""
        marks = ",".join("?" for _r in reasons_)
        with self.b.transaction():
            n = self.b.execute(
                "INSERT INTO plate_review (device_id, seq, time, station, direction, reason, "
                "plate_key, image_tag, confidence, status) "
                "SELECT device_id, seq, time, station, direction, reason, account_id, cred_no, "
                "counter, 'open' FROM records WHERE kind = 3 AND reason IN (%s) "
                "ON CONFLICT DO NOTHING" % marks,
                tuple(reasons_),
            )
            self.b.execute(
                "UPDATE plate_review SET status = 'fell_back' WHERE status = 'open' AND EXISTS "
                "(SELECT 1 FROM records r WHERE r.device_id = plate_review.device_id "
                "AND r.kind = 1 AND r.direction = plate_review.direction "
                "AND r.time >= plate_review.time AND r.time <= plate_review.time + ?)",
                (window_s,),
            )
        return int(getattr(n, "rowcount", 0) or 0)

    def plate_review_items(self, status: str | None = None) -> list[dict[str, Any]]:
        cols = (
            "device_id", "seq", "time", "station", "direction", "reason", "plate_key",
            "image_tag", "confidence", "status", "account_id", "operator", "note", "decided",
        )  # fmt: skip
        where, args = _where(("status = ?", status))
        q = "SELECT %s FROM plate_review%s ORDER BY time, device_id, seq" % (
            ", ".join(cols),
            where,
        )
        return [dict(zip(cols, map(_plain, r))) for r in self.b.rows(q, tuple(args))]

    def plate_review_decide(
        self, device_id: int, seq: int, status: str, account: int, operator: str, note: str,
        now: int,
    ) -> bool:  # fmt: skip
        n = self.b.execute(
            "UPDATE plate_review SET status = ?, account_id = ?, operator = ?, note = ?, "
            "decided = ? WHERE device_id = ? AND seq = ? AND status IN ('open', 'fell_back')",
            (status, account, operator, note, now, device_id, seq),
        )
        return bool(getattr(n, "rowcount", 0))


class _LogNodes:
    """translog.NodeStore over the store's log tables (level k holds size >> k nodes). Read
    only: leaves are appended by store_batch, in the transaction that stores their records."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._size = store.log_size()

    def count(self, level: int) -> int:
        if level == 0:
            self._size = self.store.log_size()
        return self._size >> level

    def node(self, level: int, index: int) -> bytes:
        return self.nodes([(level, index)])[0]

    def nodes(self, keys: list[tuple[int, int]]) -> list[bytes]:
        out = []
        for (level, index), h in zip(keys, self.store.log_nodes(keys)):
            if h is None:
                raise UsageError("no log node %d at level %d" % (index, level))
            out.append(h)
        return out

    def extend(self, new: list[list[bytes]]) -> None:
        raise UsageError("the store appends its records to the log itself (store_batch)")

    def add_head(self, head: bytes) -> None:
        h = merkle.parse_head(head)
        self.store.log_add_head(head, h.tree_size, h.timestamp)

    def heads(self) -> list[bytes]:
        return self.store.log_heads()


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, int) else v
