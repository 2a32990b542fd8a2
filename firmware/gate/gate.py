"""One gate: scanned texts and hardware events in, a durable journal and actuator commands out.

The hardware objects are handed in (duck-typed; see drivers/portable/interfaces.py):
    barrier.open() / barrier.close()   display.show(text)   clock.now() -> unix seconds
    indicator.signal(name)             (optional: LEDs and buzzer)
The gate's behaviour between scans lives in its mode's table (firmware/gate/modes.py and
firmware/gate/{metro,parking,store,bus}.py), run by protocol/fsm.py: the table is the only thing
that moves the gate's state, and an event with no row is ignored and logged (hardware sends
events in any state). This module runs the table's actions.

A scan, in order (docs/gate-modes.md):
  1. validator.check(text, now, leaving)              -> the ride-code checks
  2. mode policy: the state welcomes scans (else gate_busy, out_of_service, ...),
     anti-passback / sessions (policy.check), offline limits (limits.check) if given
  3. on accept: journal.append(passage) BEFORE anything opens, then validator.committed(code),
     then the "paid" event, whose actions open the barrier
  4. on refusal: journal.append(reject) for audit; the display says why
A technician's test card (text starting with TEST_CARD_PREFIX,
protocol/service.py) is only acknowledged on the display: not verified, not
journaled. When the gate works degraded, its idle display shows `notice(now)`
(firmware/verify/validator.py: a stale trust list, an untrusted clock) instead of the ready prompt.
During an emergency accepted codes are journaled with FLAG_EMERGENCY and no policy (logged, not
charged). Alarms and notable events (tailgating, jams, passage_not_taken, emergency start/end,
...) are journaled as KIND_EVENT records; every transition is in `machine.log`.
What the gate is doing is read through `snapshot()` (plain values: state, pending-passage
timer, riders accepted but not through, counts, last machine step), never its attributes.
"""

from firmware import platform
from firmware.gate import modes
from firmware.storage.journal import JournalError
from firmware.verify.validator import FLAG_CLOCK_UNTRUSTED, Decision
from protocol import reasons, records
from protocol.fsm import Machine
from protocol.service import TEST_CARD_PREFIX

# policy answers that accept the passage under their own reason (firmware/gate/policy.py;
# not imported here: the policies load with their mode)
ACCEPTING = ("group_member",)
AIM_MARK = "]"  # a text a reader left its AIM identifier on: not a QR read (qrengine.line_text)


def _account(code) -> int:
    """The account key (protocol.records.account_key) the gate's tables keep a rider under."""
    cred = code.credential
    return records.account_key(cred.issuer_key_id, cred.account_id)


class NullDisplay:
    """For gates without a display: remembers the last line (for status and self-test)."""

    last = ""

    def show(self, text: str) -> None:
        self.last = text


class Gate:
    def __init__(
        self,
        validator,
        journal,
        barrier,
        display,
        clock,
        station: int = 0,
        mode: int = 0,
        direction: int = 0,
        config=None,
        policy=None,
        limits=None,
        indicator=None,
        ticks=None,
        on_transition=None,
    ):
        self.validator = validator
        self.journal = journal
        self.barrier = barrier
        self.display = display if display is not None else NullDisplay()
        self.clock = clock
        self.station = station
        self.mode = mode or modes.MODE_METRO
        self.direction = direction
        self.config = modes.config(config)
        self.spec = modes.build(self.mode, config, policy)
        self.policy = self.spec.policy
        # offline limits (firmware/verify/limits.OfflineLimits): .check(account_id, value, now) ->
        # None or a reason, optional .flags(...) -> record flags; it follows the journal's commits
        self.limits = limits
        listeners = getattr(journal, "listeners", None)
        if listeners is not None and hasattr(limits, "committed") and limits not in listeners:
            listeners.append(limits)
        self.indicator = indicator
        self.ticks = ticks or platform.ticks_ms
        self.machine = Machine(self.spec.table, modes.IDLE, on_transition=on_transition)
        self.timer: tuple = ()  # (event to fire, started at ticks_ms, duration ms) or ()
        self.pending: list = []  # [(code, direction, policy token)] accepted, not yet passed
        self.resync = None  # callable -> [events] re-announcing sensor levels (set by the loop)
        self.notice = None  # callable now -> "" or a line for the idle display (degraded)
        self.stamp = None  # callable(record) before each record is journaled (bus: the stop)
        self.counts: dict = {}  # reason -> count, for status and reports
        self.journal_failures = 0  # event/reject records the journal could not take
        self._actions: dict = {
            "open": self._open,
            "hold_open": self._open,
            "close": self._close,
            "start": self._start,
            "stop": self._stop,
            "alarm": self._alarm,
            "event": self._event,
            "emergency_passage": self._emergency_passage,
            "void": self._void,
            "done": self._done,
            "show": self._show,
            "signal": self._signal,
            "resync": self._resync,
        }

    @property
    def state(self) -> str:
        return self.machine.state

    def snapshot(self) -> dict:
        """What the gate is doing now, as plain values (a copy: changing it changes nothing).
        The one read interface for a technician's status and the station simulator:

            state      the mode table's state ("idle", "open", "jammed", ...)
            timer      None, or (event it fires, ms left; 0 or less: due at the next tick)
            pending    accepted riders or vehicles that have not passed yet
            counts     decisions and test cards so far, by reason: {reason: n}
            last_step  None, or the newest machine step (state, event, next state;
                       firmware/fsm.py's log entry without its ticks)
        """
        t = self.timer
        log = self.machine.log
        return {
            "state": self.machine.state,
            "timer": (t[0], t[2] - platform.ticks_diff(self.ticks(), t[1])) if t else None,
            "pending": len(self.pending),
            "counts": dict(self.counts),
            "last_step": tuple(log[-1][1:4]) if log else None,
        }

    def restore(self) -> int:
        """After a reboot: rebuild anti-passback / sessions from the unsynced journal records,
        and the replay cache's recent entries (the journal is their source of truth: a power
        cut between the journal's sync and the replay log's must not let a code pass twice)."""
        rebuild = getattr(self.validator.replay, "rebuild", None)
        if rebuild is not None:
            rebuild(self.journal.unsynced(), self.clock.now())
        return self.policy.rebuild(self.journal.unsynced())

    # -- inputs ----------------------------------------------------------------------------
    def on_scan(self, text, direction=None) -> Decision:
        """A scanned text from a reader. `direction` overrides the gate's (two-reader doors)."""
        if isinstance(text, str) and text.startswith(TEST_CARD_PREFIX):
            self.counts["test_card"] = self.counts.get("test_card", 0) + 1
            self.display.show(reasons.display_text("test_card"))
            return Decision(False, "test_card")
        now = self.clock.now()
        if direction is None:
            direction = self.direction
        emergency = self.machine.state in modes.EMERGENCY_STATES
        if isinstance(text, str) and text.startswith(AIM_MARK):
            d = Decision(False, "wrong_symbology")  # the reader read it as another symbology
        else:
            d = self.validator.check(text, now, direction == records.DIR_EXIT)
        return self._decide(d, direction, now, emergency)

    def _decide(self, d, direction, now, emergency) -> Decision:
        """Policy, limits, journal and the `paid` event for a validated decision `d` (a
        scan's, or a plate's: firmware/gate/plates.admit; a d.code with `plate` true is not
        the validator's, whose replay cache is then not told)."""
        if d.accept and not emergency:
            reason = self.spec.scans.get(self.machine.state, "gate_busy")
            account = _account(d.code)  # per issuer: two issuers' account 42 are two riders
            note = None
            if reason is None and direction:
                reason = self.policy.check(account, direction, now)
                if reason in ACCEPTING:  # accepted, with its own reason (group_member)
                    note, reason = reason, None
            if reason is None and self.limits is not None:
                reason = self.limits.check(account, self.config["value"], now, d.offline_limit)
            if reason is not None:
                d = Decision(False, reason, d.code)
            elif note is not None:
                d = Decision(True, note, d.code, d.offline_limit, d.flags)
        if d.accept:
            flags = records.FLAG_EMERGENCY if emergency else 0
            if FLAG_CLOCK_UNTRUSTED in d.flags:
                flags |= records.FLAG_CLOCK_UNTRUSTED
            if self.limits is not None and hasattr(self.limits, "flags") and not emergency:
                flags |= self.limits.flags(
                    _account(d.code), self.config["value"], now, d.offline_limit
                )
            try:
                self.journal.append(
                    self._record(records.KIND_PASSAGE, d.reason, now, d.code, direction, flags)
                )
            except JournalError as e:
                d = Decision(False, e.reason, d.code)
            else:
                if not getattr(d.code, "plate", False):
                    self.validator.committed(d.code)
                if not emergency:
                    account = _account(d.code)
                    token = self.policy.commit(account, direction, now) if direction else None
                    self.pending.append((d.code, direction, token))
                self.counts[d.reason] = self.counts.get(d.reason, 0) + 1
                self.display.show(reasons.display_text(d.reason))
                self.on_event("paid")
                return d
        self._append(self._record(records.KIND_REJECT, d.reason, now, d.code, direction))
        self.counts[d.reason] = self.counts.get(d.reason, 0) + 1
        self.display.show(reasons.display_text(d.reason))
        self._signal("reject")
        return d

    def on_event(self, event: str) -> tuple:
        """A hardware or console event (sensors, barrier, fire alarm, service). Returns the
        actions run."""
        actions = self.machine.step(event, self.ticks())
        for action in actions:
            verb, _, arg = action.partition(":")
            self._actions[verb](arg)
        return actions

    def tick(self) -> None:
        """Call often (every loop turn): fires due timers and expires store sessions."""
        t = self.timer
        if t and platform.ticks_diff(self.ticks(), t[1]) >= t[2]:
            event = t[0]
            self.timer = ()
            self.on_event(event)
        for reason, account in self.policy.expire(self.clock.now()):
            self._journal_event(reason, account=account)

    # -- actions (named in the mode tables) ------------------------------------------------
    def _open(self, _arg="") -> None:
        self.barrier.open()

    def _close(self, _arg="") -> None:
        self.barrier.close()

    def _start(self, name: str) -> None:
        self.timer = (name + "_timeout", self.ticks(), self.spec.timers[name])

    def _stop(self, _arg="") -> None:
        self.timer = ()

    def _alarm(self, reason: str) -> None:
        self._journal_event(reason)
        self.display.show(reasons.display_text(reason))
        self._signal("alarm")

    def _event(self, reason: str) -> None:
        self._journal_event(reason)

    def _emergency_passage(self, _arg="") -> None:
        self._journal_event("emergency_passage", flags=records.FLAG_EMERGENCY)

    def _void(self, _arg="") -> None:
        """The accepted rider(s) never passed: undo the policy and journal passage_not_taken
        so the back office voids the passage (the rider may scan again)."""
        pending, self.pending = self.pending, []
        for code, direction, token in pending:
            if token is not None:
                self.policy.revert(token)
            self._journal_event("passage_not_taken", code=code, direction=direction)

    def _done(self, _arg="") -> None:
        self.pending = []

    def _show(self, name: str) -> None:
        if name == "ready" and self.notice is not None:
            line = self.notice(self.clock.now())
            if line:
                self.display.show(line)
                return
        self.display.show(modes.PROMPTS.get(name) or reasons.display_text(name))

    def show_idle(self) -> None:
        """Show what the resting gate shows (the ready prompt, or the degraded notice)."""
        if self.machine.state == modes.IDLE:
            self._show("ready")

    def _signal(self, name: str) -> None:
        if self.indicator is not None:
            self.indicator.signal(name)

    def _resync(self, _arg="") -> None:
        if self.resync is not None:
            for event in self.resync():
                self.on_event(event)

    # -- journal ---------------------------------------------------------------------------
    def _record(self, kind, reason, now, code=None, direction=None, flags=0) -> records.Record:
        rec = records.Record(
            kind,
            reasons.number(reason),
            0,
            0,
            now,
            self.mode,
            self.direction if direction is None else direction,
            self.station,
            flags=flags,
        )
        if code is not None:
            raw = code.raw
            if len(raw) == records.CODE_LEN:
                rec.keep_code(raw)  # the rider's evidence, and the issuer, in the record
            else:
                rec.issuer = code.credential.issuer_key_id
                rec.account_id = code.credential.account_id
                rec.cred_no = code.credential.cred_no
                rec.counter = code.counter
        if kind == records.KIND_PASSAGE:
            rec.value = self.config["value"]
        if self.stamp is not None:
            self.stamp(rec)
        return rec

    def _journal_event(self, reason, code=None, direction=None, flags=0, account=0) -> None:
        rec = self._record(records.KIND_EVENT, reason, self.clock.now(), code, direction, flags)
        if account:
            rec.issuer, rec.account_id = records.split_account_key(account)
        self._append(rec)

    def _append(self, rec) -> None:
        try:
            self.journal.append(rec)
        except JournalError:
            self.journal_failures += 1  # the audit trail is full; the decision still stands
