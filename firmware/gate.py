"""One gate: a scanned text in, a decision, a durable record, the barrier, the display.

The hardware objects are handed in (duck-typed; see drivers/interfaces.py):
    barrier.open()        display.show(text)        clock.now() -> unix seconds
A passage is committed to the journal before the barrier opens; if the journal cannot take
it, the barrier stays shut and the rider is told. Rejects are journaled too, for audit.
"""

from firmware.journal import JournalError
from firmware.validator import Decision
from protocol import reasons, records


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
    ):
        self.validator = validator
        self.journal = journal
        self.barrier = barrier
        self.display = display
        self.clock = clock
        self.station = station
        self.mode = mode
        self.direction = direction
        self.counts: dict = {}  # reason -> count, for status and reports

    def _record(self, kind, reason, now, code) -> records.Record:
        rec = records.Record(
            kind, reasons.number(reason), 0, 0, now, self.mode, self.direction, self.station
        )
        if code is not None:
            rec.account_id = code.credential.account_id
            rec.cred_no = code.credential.cred_no
            rec.counter = code.counter
        return rec

    def on_scan(self, text) -> Decision:
        now = self.clock.now()
        d = self.validator.check(text, now)
        if d.accept:
            try:
                self.journal.append(self._record(records.KIND_PASSAGE, d.reason, now, d.code))
            except JournalError as e:
                d = Decision(False, e.reason, d.code)
            else:
                self.validator.committed(d.code)
                self.barrier.open()
        if not d.accept:
            try:
                self.journal.append(self._record(records.KIND_REJECT, d.reason, now, d.code))
            except JournalError:
                pass  # the audit trail is full; the reject itself still stands
        self.counts[d.reason] = self.counts.get(d.reason, 0) + 1
        self.display.show(reasons.display_text(d.reason))
        return d
