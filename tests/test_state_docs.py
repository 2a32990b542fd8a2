"""docs/ shows every state table written with protocol/fsm.py as the code has it (the gate
modes have their own page and test, tests/test_gate_docs.py): this test fails when a table
changes and its page does not. Regenerate the blocks with

    PYTHONPATH=. .venv/bin/python -m tests.test_state_docs
"""

import os
import re
import subprocess
import sys

from firmware.compose import device
from firmware.maintenance import boot, console
from host_sim.hardware.sim_device import micropython_binary
from protocol import flash, fsm, service, sync
from protocol import messages as m

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES = {service.HELLO: "HELLO", service.AUTH: "AUTH", service.REQUEST: "REQUEST"}
FRAMES[console.FLASH] = "flash frame (0x%02X..0x4F)" % flash.BEGIN


def _console_event(e) -> str:
    return FRAMES.get(e, e)


def _sync_event(e) -> str:
    direction, ftype = e
    return "%s %s" % (direction, m.NAMES[ftype])


# block name -> (page, table, how its events read)
TABLES = {
    "console": ("docs/state-machines.md", console.TABLE, _console_event),
    "lifecycle": ("docs/state-machines.md", device.LIFECYCLE, str),
    "sync-device": ("docs/state-machines.md", sync.TRANSITIONS[sync.DEVICE], _sync_event),
    "sync-host": ("docs/state-machines.md", sync.TRANSITIONS[sync.HOST], _sync_event),
    "boot": ("docs/firmware-images.md", boot.TABLE, str),
}
# modules that own a state table: none dispatches by name
MACHINES = (
    "protocol/fsm.py",
    "protocol/sync.py",
    "firmware/maintenance/console.py",
    "firmware/maintenance/boot.py",
    "firmware/maintenance/update_agent.py",
    "firmware/compose/device.py",
    "firmware/gate/gate.py",
)


def render(name: str) -> str:
    _page, table, event = TABLES[name]
    flat = fsm.rows(table)
    guarded = any(isinstance(row, fsm.Guarded) for row in table.values())
    head = ["state", "event"] + (["guard"] if guarded else []) + ["next state", "actions"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for state, ev, guard, nxt, actions in flat:
        cells = ["any" if state == fsm.ANY else str(state), event(ev)]
        if guarded:
            cells.append("-" if guard is None else guard)
        cells += ["(same)" if nxt is fsm.SAME else str(nxt), ", ".join(actions) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def blocks(text: str) -> dict[str, str]:
    pat = re.compile(r"<!-- table:([\w-]+) -->\n(.*?)\n<!-- /table -->", re.S)
    return {mt.group(1): mt.group(2) for mt in pat.finditer(text)}


def test_docs_show_the_state_tables_the_code_runs():
    pages: dict[str, dict[str, str]] = {}
    for name, (page, _t, _e) in TABLES.items():
        if page not in pages:
            with open(os.path.join(ROOT, page)) as f:
                pages[page] = blocks(f.read())
        assert pages[page].get(name) == render(name), "%s: table %s is stale" % (page, name)
    for page, found in pages.items():
        assert sorted(found) == sorted(n for n, t in TABLES.items() if t[0] == page), page


def test_no_state_machine_dispatches_by_name():
    for path in MACHINES:
        with open(os.path.join(ROOT, path)) as f:
            assert "getattr(self, " not in f.read(), path


def test_the_bootloader_copy_steps_its_table_alone(tmp_path):
    """boot.py runs alone in a gate's state directory (`python -I boot.py`, or micropython): its
    table and step need nothing of the tree."""
    with open(boot.__file__, "rb") as f:
        (tmp_path / "boot.py").write_bytes(f.read())
    (tmp_path / "check.py").write_text(
        "import sys\nsys.path.insert(0, '.')\nimport boot\n"
        "st = boot.empty_state()\nboot.step(st, 'a', 'stage')\n"
        "print(st['slots']['a']['state'], [k for k in sys.modules if k[:8] in "
        "('protocol', 'firmware')])\n"
    )
    for interpreter in ([sys.executable, "-I"], [micropython_binary()]):
        out = subprocess.run(
            interpreter + ["check.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.split() == ["staging", "[]"], interpreter


if __name__ == "__main__":
    for name in TABLES:
        print(
            "%s\n<!-- table:%s -->\n%s\n<!-- /table -->\n" % (TABLES[name][0], name, render(name))
        )
