"""Mode policy after validation: anti-passback (metro, parking) and sessions (store door).

Both keep a small table keyed by account id and share one interface, which firmware/gate/gate.py
calls around a passage:

    check(account_id, direction, now) -> None or a reason name   (before journaling; the
                                        names in gate.ACCEPTING accept, under that reason)
    commit(account_id, direction, now) -> undo token             (after the journal commit)
    revert(token)                       the rider never passed: undo the commit
    expire(now) -> [(reason, account_id), ...]                   events to journal (tick)
    rebuild(records)                    after a reboot, from the journal's unsynced records

Directions are those of protocol.records: 1 entry, 2 exit, 0 none (no policy applies).
A table can be shared by several gates of one station (entry and exit lines on the station
LAN); one gate alone sees only its own passages. Memory is bounded by `capacity`.
"""

from firmware import settings
from protocol import reasons, records

ENTRY = records.DIR_ENTRY
EXIT = records.DIR_EXIT


def _bound(table: dict, capacity: int, now: int, window_s: int) -> None:
    if len(table) < capacity:
        return
    for k in [k for k in table if now - table[k] >= window_s]:
        del table[k]
    if len(table) >= capacity:  # still full of fresh entries: drop the oldest half
        cut = sorted(table.values())[len(table) // 2]
        for k in [k for k in table if table[k] <= cut]:
            del table[k]


class Passback:
    """Anti-passback: no second entry while inside, no second exit, optionally no exit
    without an entry. `window_s` bounds how long a passage counts."""

    def __init__(
        self,
        window_s: int = settings.default("gate.passback_s"),
        require_entry: bool = settings.default("gate.require_entry"),
        capacity: int = 50000,
    ):
        self.window_s = window_s
        self.require_entry = require_entry
        self.capacity = capacity
        self.inside: dict = {}  # account_id -> entry time
        self.exited: dict = {}  # account_id -> exit time

    def _fresh(self, table: dict, account: int, now: int) -> bool:
        t = table.get(account)
        return t is not None and 0 <= now - t < self.window_s

    def check(self, account: int, direction: int, now: int):
        if direction == ENTRY and self._fresh(self.inside, account, now):
            return "anti_passback"
        if direction == EXIT:
            if self._fresh(self.exited, account, now):
                return "already_exited"
            if self.require_entry and not self._fresh(self.inside, account, now):
                return "no_entry"
        return None

    def commit(self, account: int, direction: int, now: int):
        token = (account, self.inside.get(account), self.exited.get(account))
        if direction == ENTRY:
            _bound(self.inside, self.capacity, now, self.window_s)
            self.inside[account] = now
            self.exited.pop(account, None)
        elif direction == EXIT:
            _bound(self.exited, self.capacity, now, self.window_s)
            self.exited[account] = now
            self.inside.pop(account, None)
        return token

    def revert(self, token) -> None:
        account, inside, exited = token
        for table, old in ((self.inside, inside), (self.exited, exited)):
            if old is None:
                table.pop(account, None)
            else:
                table[account] = old

    def expire(self, now: int) -> list:
        return []

    def rebuild(self, raws) -> int:
        return _replay(self, raws)


class Sessions:
    """Store door: an entry starts a session for the account, an exit scan ends it, and a
    session left open longer than `max_s` ends by timeout (journaled as session_expired so the
    back office can close and charge it). Nobody is refused an exit: a store never locks a
    rider in. Group entry (`group_max` > 1, gate.group_max): while a session is open, further
    entries on the same account admit the members of the shopper's group (accepted as
    `group_member`) up to group_max people in all, then `group_full`. With group_max 1 an
    entry with a session open simply continues that session."""

    def __init__(
        self,
        max_s: int = settings.default("gate.session_max_s"),
        capacity: int = 10000,
        group_max: int = settings.default("gate.group_max"),
    ):
        self.max_s = max_s
        self.capacity = capacity
        self.group_max = group_max
        self.open: dict = {}  # account_id -> session start
        self.members: dict = {}  # account_id -> people admitted in its open session (groups)

    def check(self, account: int, direction: int, now: int):
        if direction == ENTRY and self.group_max > 1 and account in self.open:
            if self.members.get(account, 1) >= self.group_max:
                return "group_full"
            return "group_member"
        return None

    def commit(self, account: int, direction: int, now: int):
        token = (account, self.open.get(account), self.members.get(account))
        if direction == ENTRY:
            if account not in self.open:
                _bound(self.open, self.capacity, now, self.max_s)
                self.open[account] = now
                self.members.pop(account, None)
            elif self.group_max > 1:
                self.members[account] = self.members.get(account, 1) + 1
        elif direction == EXIT:
            self.open.pop(account, None)
            self.members.pop(account, None)
        return token

    def revert(self, token) -> None:
        account, old, members = token
        if old is None:
            self.open.pop(account, None)
        else:
            self.open[account] = old
        if members is None:
            self.members.pop(account, None)
        else:
            self.members[account] = members

    def expire(self, now: int) -> list:
        gone = sorted(k for k in self.open if now - self.open[k] >= self.max_s)
        for k in gone:
            del self.open[k]
            self.members.pop(k, None)
        return [("session_expired", k) for k in gone]

    def rebuild(self, raws) -> int:
        return _replay(self, raws)


def _replay(policy, raws) -> int:
    """Replay passages from raw journal records (oldest first) into a policy after a reboot;
    a passage later voided (passage_not_taken) is undone, a store session that expired is
    closed. Returns how many passages count."""
    not_taken = reasons.number("passage_not_taken")
    expired = reasons.number("session_expired")
    tokens: dict = {}
    n = 0
    for raw in raws:
        rec = records.decode(raw)
        if rec.flags & records.FLAG_EMERGENCY:
            continue
        account = records.account_key(rec.issuer, rec.account_id)  # the gate's key per issuer
        if rec.kind == records.KIND_PASSAGE:
            tokens[account] = policy.commit(account, rec.direction, rec.time)
            n += 1
        elif rec.kind == records.KIND_EVENT and rec.reason == not_taken:
            token = tokens.pop(account, None)
            if token is not None:
                policy.revert(token)
                n -= 1
        elif rec.kind == records.KIND_EVENT and rec.reason == expired:
            policy.commit(account, EXIT, rec.time)
    return n
