"""A table-driven state machine: the one place a gate mode's behaviour is written down.

A table maps `(state, event)` to `(next_state, actions)`:

    TABLE = {
        ("idle", "paid"): ("authorized", ("open", "start:pass")),
        (ANY, "fire_alarm"): ("emergency", ("hold_open", "event:emergency_open")),
    }

Lookup tries the exact `(state, event)` first, then `(ANY, event)`. `next_state` may be `SAME`.
An event with no row leaves the state alone and is logged as ignored: hardware sends events
in any state (a beam flickers while the gate is closed), and dropping them must be visible.

Actions are strings `verb` or `verb:argument`; the machine does not run them, it returns them
and the owner (firmware/gate/gate.py) runs them in order. Every step is logged, transitions and
ignored events alike, in a bounded list of `(ticks_ms, state, event, next_state)`; an optional
`on_transition(entry)` callback sees each entry as it happens (a log file, a console).
"""

ANY = "*"
SAME = None
IGNORED = "-"  # next_state in a log entry for an event that had no row


class Machine:
    def __init__(self, table: dict, state: str, log_size: int = 256, on_transition=None):
        self.table = table
        self.state = state
        self.log: list = []
        self.log_size = log_size
        self.on_transition = on_transition

    def step(self, event: str, ticks_ms: int = 0) -> tuple:
        """Apply `event`; return the actions to run (empty for an ignored event)."""
        row = self.table.get((self.state, event))
        if row is None:
            row = self.table.get((ANY, event))
        if row is None:
            self._log((ticks_ms, self.state, event, IGNORED))
            return ()
        nxt, actions = row
        if nxt is SAME:
            nxt = self.state
        self._log((ticks_ms, self.state, event, nxt))
        self.state = nxt
        return actions

    def _log(self, entry) -> None:
        self.log.append(entry)
        if len(self.log) > self.log_size:
            self.log = self.log[-(self.log_size // 2) :]
        if self.on_transition is not None:
            self.on_transition(entry)

    def events_from(self, state: str) -> list:
        """Events that have a row for `state` (exact or wildcard), for docs and tests."""
        out = []
        for s, e in self.table:
            if (s == state or s == ANY) and e not in out:
                out.append(e)
        return sorted(out)


def merge(*tables) -> dict:
    """Merge tables; a later table's rows win over an earlier one's for the same key."""
    out: dict = {}
    for t in tables:
        for k in t:
            out[k] = t[k]
    return out


def states_of(table: dict) -> list:
    """Every concrete state named in a table (as a source or a destination)."""
    out = []
    for (s, _e), (nxt, _a) in table.items():
        for name in (s, nxt):
            if name is not SAME and name != ANY and name not in out:
                out.append(name)
    return sorted(out)
