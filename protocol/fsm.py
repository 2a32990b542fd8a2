"""The one table-driven state machine of faregate: gate modes, service console, device lifecycle
and the sync connections are written with it (the A/B slot table in firmware/maintenance/boot.py
has the same shape and a copy of `fire`, because the bootloader imports nothing).

A table maps `(state, event)` to a row `(next_state, actions)`:

    TABLE = {
        ("idle", "paid"): ("authorized", ("open", "start:pass")),
        (ANY, "fire_alarm"): ("emergency", ("hold_open", "event:emergency_open")),
        ("claimed", "change"): Guarded(("complete", "in_service", ("build",)),
                                       (OTHERWISE, SAME, ())),
    }

Lookup tries the exact `(state, event)` first, then `(ANY, event)`. `next_state` may be `SAME`.
A `Guarded` row holds alternatives `(guard, next_state, actions)` tried in order: `guard` names
a predicate the owner hands in (`guards={"complete": fn}`), OTHERWISE always holds.

Actions are names (`verb` or `verb:argument`); the machine does not run them, it returns them
and the owner runs them in order (firmware/gate/gate.py, the console's dispatch dict).

What happens to an event with no row is the machine's one policy, chosen at construction:
- ignore (the default): the state stays and the event is logged as ignored. Hardware sends
  events in any state (a beam flickers while the gate is closed), and dropping them must be
  visible;
- refuse (`refuse=True`): `Illegal` is raised, here and nowhere else (h11's
  LocalProtocolError), for machines where such an event is a bug or an attack.

Every step is logged in a bounded list of `(ticks_ms, state, event, next_state)`; an optional
`on_transition(entry)` callback sees each entry as it happens (a log file, a console).
"""

from protocol.errors import UsageError

ANY = "*"
SAME = None
OTHERWISE = "otherwise"  # the guard of a Guarded alternative that always holds
IGNORED = "-"  # next_state in a log entry for an event that had no row


class Illegal(UsageError):
    """An event the table has no row for in the current state (a refusing machine only)."""

    reason = "illegal_event"

    def __init__(self, state, event):
        super().__init__("event %r is not allowed in state %r" % (event, state))
        self.state = state
        self.event = event


class Guarded:
    """A row with alternatives `(guard, next_state, actions)`, the first whose guard holds."""

    def __init__(self, *alternatives):
        self.alternatives = alternatives

    def pick(self, guards):
        for guard, nxt, actions in self.alternatives:
            if guard == OTHERWISE or guards[guard]():
                return nxt, actions
        return None


def fire(table: dict, state, event, guards=None):
    """The `(next_state, actions)` that `event` takes `state` to, or None when no row applies.
    Pure: the owner keeps the state (Machine below, or a record on disk)."""
    row = table.get((state, event))
    if row is None:
        row = table.get((ANY, event))
    if isinstance(row, Guarded):
        row = row.pick(guards or {})
    if row is None:
        return None
    nxt, actions = row
    return (state if nxt is SAME else nxt), actions


def rows(table: dict):
    """Every row flattened to `(state, event, guard, next_state, actions)`, in table order with
    a Guarded row's alternatives in theirs (guard None: an unguarded row): what docs render and
    tests walk."""
    out = []
    for (state, event), row in table.items():
        alternatives = row.alternatives if isinstance(row, Guarded) else ((None,) + tuple(row),)
        for guard, nxt, actions in alternatives:
            out.append((state, event, guard, nxt, actions))
    return out


class Machine:
    def __init__(
        self,
        table: dict,
        state,
        log_size: int = 256,
        on_transition=None,
        refuse: bool = False,
        guards=None,
    ):
        self.table = table
        self.state = state
        self.log: list = []
        self.log_size = log_size
        self.on_transition = on_transition
        self.refuse = refuse
        self.guards = guards or {}  # guard name -> fn() -> bool, for Guarded rows

    def step(self, event, ticks_ms: int = 0) -> tuple:
        """Apply `event`; return the actions to run (empty for an ignored event). Raises
        Illegal for an event with no row when the machine refuses them."""
        hit = fire(self.table, self.state, event, self.guards)
        if hit is None:
            if self.refuse:
                raise Illegal(self.state, event)
            self._log((ticks_ms, self.state, event, IGNORED))
            return ()
        nxt, actions = hit
        self._log((ticks_ms, self.state, event, nxt))
        self.state = nxt
        return actions

    def _log(self, entry) -> None:
        self.log.append(entry)
        if len(self.log) > self.log_size:
            self.log = self.log[-(self.log_size // 2) :]
        if self.on_transition is not None:
            self.on_transition(entry)

    def events_from(self, state) -> list:
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
    for s, _e, _g, nxt, _a in rows(table):
        for name in (s, nxt):
            if name is not SAME and name != ANY and name not in out:
                out.append(name)
    return sorted(out)
