"""A store door's basket source (a POS or shelf system, protocol/basketline.py): the baskets it
reports become what each session is charged. Imported only by store doors wired to a source.

    link   .send(bytes)   .lines() -> [bytes]   (drivers/linux/basket_tcp.py; the simulator's)

As the gate's `stamp` (called on every record before it is journaled) it tells the source of
each session's start (OPEN), exit scan (EXIT) and exit-button press (BUTTON), and sets the
exit scan's passage value to the shopper's last BASKET total. As a poller of the gate loop it
reads the source's lines: BASKET updates a shopper's running total; FINAL (the shopper left by
the button, or the shelf system saw them go) ends an open session with a passage of its own,
direction exit, reason basket_final, value the total: the back office charges the session that
basket (host_sim/backoffice/clearing.py, store). A FINAL for an account with no open session is
counted (`late`); a malformed line is dropped and counted (basket_malformed). A link that
fails is counted (`link_errors`) and the door keeps working: sessions are then charged the
exit scans' values. A shopper is named on the line by the account key the door's sessions keep
(protocol.records.account_key: issuer << 40 | account): two issuers' account 42 are two shoppers.
"""

from protocol import basketline, reasons, records
from protocol.errors import FormatError

BUTTON = reasons.number("exit_button")
FINAL = reasons.number("basket_final")


class Baskets:
    def __init__(self, gate, link):
        self.gate = gate
        self.link = link
        self.totals = {}  # account -> last BASKET total
        self.counts = {"baskets": 0, "finals": 0, "late": 0, "basket_malformed": 0}
        self.counts["link_errors"] = 0
        self._prev_stamp = gate.stamp
        gate.stamp = self.stamp

    def _send(self, line) -> None:
        try:
            self.link.send(line)
        except OSError:
            self.counts["link_errors"] += 1

    def stamp(self, rec) -> None:
        if self._prev_stamp is not None:
            self._prev_stamp(rec)
        if rec.kind == records.KIND_PASSAGE and rec.reason != FINAL:
            key = records.account_key(rec.issuer, rec.account_id)
            if rec.direction == records.DIR_ENTRY and key not in self._open():
                self._send(basketline.door_line("OPEN", rec.time, key))
            elif rec.direction == records.DIR_EXIT:
                total = self.totals.pop(key, None)
                if total is not None:
                    rec.value = total
                self._send(basketline.door_line("EXIT", rec.time, key))
        elif rec.kind == records.KIND_EVENT and rec.reason == BUTTON:
            self._send(basketline.door_line("BUTTON", rec.time))

    def _open(self):
        return getattr(self.gate.policy, "open", {})

    def poll(self) -> list:
        try:
            lines = self.link.lines()
        except OSError:
            self.counts["link_errors"] += 1
            return []
        for line in lines:
            try:
                verb, account, total, _items = basketline.parse_source(line)
            except FormatError:
                self.counts["basket_malformed"] += 1
                continue
            if verb == "BASKET":
                self.counts["baskets"] += 1
                self.totals[account] = total
            else:
                self._final(account, total)
        return []

    def _final(self, account, total) -> None:
        gate = self.gate
        self.totals.pop(account, None)
        if account not in self._open():
            self.counts["late"] += 1
            return
        self.counts["finals"] += 1
        now = gate.clock.now()
        rec = gate._record(records.KIND_PASSAGE, "basket_final", now, None, records.DIR_EXIT)
        rec.issuer, rec.account_id = records.split_account_key(account)
        rec.value = total
        gate._append(rec)
        gate.policy.commit(account, records.DIR_EXIT, now)
