"""Offline limits: how much a gate may accept before the back office has seen it.

Three bounds, each set in the gate's config (`limits.*` of firmware/settings.py, built into
`LimitsConfig`), over passages the back office has not yet acknowledged (rejects don't count):

    max_unsynced            unsynced passages on this gate
    max_age_s               age of the oldest unsynced passage (seconds, gate time)
    max_value_per_account   unsynced value (minor currency units) of one account

At a bound the configured policy applies:

    "refuse"   the passage is refused with reason "offline_limit" (the rider is told to sync)
    "flag"     the passage is accepted and its record carries records.FLAG_OVER_LIMIT, so the
               back office can see the risk it took

The gate's mode policy calls `check(account, value, now, account_limit)` (None, or the reason
to refuse) and `flags(account, value, now, account_limit)` (record flags to set), where
`account` is the rider's key per issuer (protocol.records.account_key) and
`account_limit` is the offline limit the validator decided for the code: the credential's own,
lowered while the trust list is stale or the clock untrusted. Value bounds bind only when the
gate's nominal passage value (`value` in the gate config) is set. `OfflineLimits` follows the
journal as one of its listeners: `committed(rec)` after each durable append, `acked(seq)` after each
trim; `load(journal)` rebuilds the tally from the unsynced records at start-up.
"""

from array import array

from firmware import settings
from protocol import records

REFUSE = "refuse"
FLAG = "flag"
OFFLINE_LIMIT = "offline_limit"


class LimitsConfig:
    """keyword -> setting (firmware/settings.py holds their bounds and defaults)."""

    SETTINGS = (
        ("max_unsynced", "limits.max_unsynced_count"),
        ("max_age_s", "limits.max_unsynced_age_s"),
        ("max_value_per_account", "limits.max_value_per_account"),
        ("policy", "limits.at_limit"),
    )
    FIELDS = tuple(k for k, _ in SETTINGS)
    max_unsynced: int
    max_age_s: int
    max_value_per_account: int
    policy: str

    def __init__(self, **values):
        """Keywords of SETTINGS; SettingError if one is unknown or out of its bounds."""
        settings.assign(self, self.SETTINGS, values)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**d)


CHUNK = 256  # passages per chunk of the queue: its largest column is 2 KB, one heap block run


def _column(code, size):
    return array(code, bytes(size * CHUNK))


class OfflineLimits:
    """The unsynced passages, oldest first, as a queue of fixed-size chunks of array columns,
    so a gate holds its whole `max_unsynced` in an MCU's heap without one large block: per
    chunk the passages' seq (8 bytes) and time (4), and, only once a passage in it has a
    value, their account_id (8) and value (4). 12 bytes a passage at the default `gate.value`
    of 0, 24 with values, where a tuple in a list took ~72 on MicroPython's unix port
    (docs/mcu.md). Plus the unsynced value of each account that has some (accounts back at
    zero are dropped)."""

    def __init__(self, config=None):
        self.config = config or LimitsConfig()
        self._clear()
        self.flagged = 0  # passages accepted over a bound under the "flag" policy

    def _clear(self):
        self._chunks = []  # [[seqs, times, accounts or None, values or None]], oldest first
        self._head = 0  # entries of the first chunk already acknowledged
        self._tail = CHUNK  # entries used in the last chunk (CHUNK: a new one is due)
        self._count = 0
        self._value = {}  # account_id -> unsynced value, only accounts above zero

    # -- following the journal -----------------------------------------------------------
    def load(self, journal) -> int:
        """Rebuild from the journal's unsynced records; returns the unsynced passage count."""
        self._clear()
        for raw in journal.unsynced():
            self.committed(records.decode(raw))
        return self.unsynced()

    def committed(self, rec) -> None:
        if rec.kind != records.KIND_PASSAGE:
            return
        if self._tail == CHUNK:
            self._chunks.append([_column("Q", 8), _column("I", 4), None, None])
            self._tail = 0
        chunk = self._chunks[-1]
        i = self._tail
        chunk[0][i] = rec.seq
        chunk[1][i] = rec.time
        if rec.value:
            if chunk[3] is None:
                chunk[2] = _column("Q", 8)
                chunk[3] = _column("I", 4)
            key = records.account_key(rec.issuer, rec.account_id)  # per issuer, as the gate's
            chunk[2][i] = key
            chunk[3][i] = rec.value
            self._value[key] = self._value.get(key, 0) + rec.value
        self._tail = i + 1
        self._count += 1

    def acked(self, up_to_seq: int) -> None:
        chunks = self._chunks
        tally = self._value
        while self._count:
            seqs, _times, accounts, values = chunks[0]
            h = self._head
            if seqs[h] > up_to_seq:
                return
            if values is not None and values[h]:
                account = accounts[h]
                left = tally.get(account, 0) - values[h]
                if left > 0:
                    tally[account] = left
                else:
                    tally.pop(account, None)
            self._count -= 1
            h += 1
            if h == CHUNK or not self._count:  # the first chunk is used up: drop it
                chunks.pop(0)
                h = 0
                if not chunks:
                    self._tail = CHUNK
            self._head = h

    # -- the questions the gate asks -----------------------------------------------------
    def unsynced(self) -> int:
        return self._count

    def oldest_time(self):
        """Gate time of the oldest unsynced passage, or None."""
        return self._chunks[0][1][self._head] if self._count else None

    def unsynced_value(self, account_id: int) -> int:
        return self._value.get(account_id, 0)

    def bound_reached(self, account_id: int, value: int, now: int, account_limit=None):
        """Which bound accepting this passage would cross: "count", "age", "value" or None.

        `account_limit` is the offline limit the validator found for this code (the credential's
        own, lowered while the trust list is stale or the clock untrusted); the account's value
        bound is the lower of it and the configured one."""
        c = self.config
        cap = c.max_value_per_account
        if account_limit is not None and account_limit < cap:
            cap = account_limit
        if self.unsynced() + 1 > c.max_unsynced:
            return "count"
        oldest = self.oldest_time()
        if oldest is not None and now - oldest > c.max_age_s:
            return "age"
        if self._value.get(account_id, 0) + value > cap:
            return "value"
        return None

    def check(self, account_id: int, value: int, now: int, account_limit=None):
        """None if the passage may be accepted offline, else the reason to refuse it."""
        if self.config.policy == REFUSE and self.bound_reached(
            account_id, value, now, account_limit
        ):
            return OFFLINE_LIMIT
        return None

    def flags(self, account_id: int, value: int, now: int, account_limit=None) -> int:
        """Record flags for a passage accepted now (FLAG_OVER_LIMIT under the flag policy)."""
        if self.config.policy == FLAG and self.bound_reached(account_id, value, now, account_limit):
            self.flagged += 1
            return records.FLAG_OVER_LIMIT
        return 0

    def status(self, now: int) -> dict:
        oldest = self.oldest_time()
        return {
            "unsynced": self.unsynced(),
            "oldest_age_s": 0 if oldest is None else max(0, now - oldest),
            "accounts_with_value": len(self._value),
            "flagged": self.flagged,
        }
