"""docs/gate-modes.md shows each mode's table as the code has it: this test fails when a table
changes and the page does not. Regenerate the blocks with

    PYTHONPATH=. .venv/bin/python -m tests.test_gate_docs
"""

import os
import re

from firmware.gate import bus as mode_bus
from firmware.gate import metro as mode_metro
from firmware.gate import modes
from firmware.gate import parking as mode_parking
from firmware.gate import plates as mode_plates
from firmware.gate import store as mode_store
from protocol import reasons
from protocol.fsm import ANY

DOC = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "gate-modes.md"
)
TABLES = {
    "common": (modes.COMMON, modes.COMMON_SCANS),
    "metro": (mode_metro.TABLE, mode_metro.SCANS),
    "parking": (mode_parking.TABLE, mode_parking.SCANS),
    "parking_plates": (mode_plates.TABLE, mode_plates.SCANS),
    "store": (mode_store.TABLE, mode_store.SCANS),
    "bus": (mode_bus.TABLE, mode_bus.SCANS),
}


def render(name: str) -> str:
    table, scans = TABLES[name]
    order = list(scans) + [s for s, _e in table if s not in scans and s != ANY]
    order = [ANY] + [s for i, s in enumerate(order) if s not in order[:i]]
    lines = ["| state | event | next state | actions |", "|---|---|---|---|"]
    for (state, event), (nxt, actions) in sorted(
        table.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])
    ):
        shown = "any" if state == ANY else state
        lines.append(
            "| %s | %s | %s | %s |"
            % (shown, event, "(same)" if nxt is None else nxt, ", ".join(actions) or "-")
        )
    lines += ["", "| state | a scan is |", "|---|---|"]
    for state, refusal in scans.items():
        lines.append(
            "| %s | %s |" % (state, "welcome" if refusal is None else "refused: " + refusal)
        )
    return "\n".join(lines)


def blocks(text: str) -> dict[str, str]:
    pat = re.compile(r"<!-- table:(\w+) -->\n(.*?)\n<!-- /table -->", re.S)
    return {m.group(1): m.group(2) for m in pat.finditer(text)}


def test_docs_show_the_tables_the_code_runs():
    with open(DOC) as f:
        found = blocks(f.read())
    assert sorted(found) == sorted(TABLES)
    for name in TABLES:
        assert found[name] == render(name), "docs/gate-modes.md: table %s is stale" % name


def test_every_reason_a_table_journals_exists():
    from protocol import reasons

    for table, _scans in TABLES.values():
        for _nxt, actions in table.values():
            for a in actions:
                verb, _, arg = a.partition(":")
                if verb in ("alarm", "event"):
                    assert arg in reasons.REASONS, a
                if verb == "show":
                    assert arg in modes.PROMPTS or arg in reasons.REASONS, a
    for _t, scans in TABLES.values():
        for refusal in scans.values():
            assert refusal is None or refusal in reasons.REASONS


if __name__ == "__main__":
    for name in TABLES:
        print("<!-- table:%s -->\n%s\n<!-- /table -->\n" % (name, render(name)))


def test_every_reason_has_its_own_number():
    """Records, displays and the back office carry reasons by number: two names on one number
    would make one read as the other (two helpers once both took 58)."""
    by_number = {}
    for name, (n, _display, _doc) in reasons.REASONS.items():
        assert n not in by_number, "%s and %s both use %d" % (by_number[n], name, n)
        by_number[n] = name
