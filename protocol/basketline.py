"""The basket-source line protocol: a store's POS or shelf system and its door, one ASCII line
each way per message (LF-terminated, at most MAX_LINE bytes). Pure functions; docs/drivers.md
("Basket sources") has the protocol with an example exchange.

    door -> source   OPEN <account> <unix time>      a session started (entry accepted)
                     EXIT <account> <unix time>      an exit scan ended it
                     BUTTON <unix time>              someone left by the exit button
    source -> door   BASKET <account> <total> <items>   the shopper's basket so far
                     FINAL <account> <total> <items>    the shopper left: the session ends
                                                        with this basket (e.g. after BUTTON)

account: the door's decimal account key (protocol.records.account_key: issuer << 40 | account
id, 1..MAX_ACCOUNT); total: the basket in minor units (0..MAX_TOTAL); items: 0..9999.
A line that is not one of these raises FormatError("basket_malformed").
"""

from protocol.errors import FormatError

MAX_LINE = 96
MAX_TOTAL = 100000000  # a basket of a million in major units: more is a source's mistake
MAX_ITEMS = 9999
MAX_ACCOUNT = (1 << 56) - 1  # an account key: issuer (16 bits) << 40 | account id


def _bad(line):
    return FormatError("not a basket-source line: %r" % (line[:MAX_LINE],), "basket_malformed")


def _num(text, top):
    if not text.isdigit() or len(text) > 17:
        return None
    n = int(text)
    return n if n <= top else None


def parse_source(line):
    """A line from the source -> (verb, account, total, items); verb "BASKET" or "FINAL"."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except UnicodeError:
            raise _bad(repr(line)) from None
    parts = line.strip().split()
    if len(line) > MAX_LINE or len(parts) != 4 or parts[0] not in ("BASKET", "FINAL"):
        raise _bad(line)
    account = _num(parts[1], MAX_ACCOUNT)
    total = _num(parts[2], MAX_TOTAL)
    items = _num(parts[3], MAX_ITEMS)
    if account is None or total is None or items is None or not account:
        raise _bad(line)
    return parts[0], account, total, items


def door_line(verb, time, account=None) -> bytes:
    """A line from the door: OPEN / EXIT with an account, BUTTON without."""
    if verb == "BUTTON":
        return b"BUTTON %d\n" % time
    if verb not in ("OPEN", "EXIT") or not account:
        raise ValueError("door line %r" % verb)
    return b"%s %d %d\n" % (verb.encode(), account, time)


def parse_door(line):
    """A door line -> (verb, account or 0, time) (the simulated source's side)."""
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("ascii", "replace")
    parts = line.strip().split()
    if parts and parts[0] == "BUTTON" and len(parts) == 2 and parts[1].isdigit():
        return "BUTTON", 0, int(parts[1])
    if (
        len(parts) == 3
        and parts[0] in ("OPEN", "EXIT")
        and parts[1].isdigit()
        and parts[2].isdigit()
    ):
        return parts[0], int(parts[1]), int(parts[2])
    raise _bad(line)
