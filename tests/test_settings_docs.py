"""The settings tables in docs/ are firmware/settings.py's SCHEMA: this test fails when a row
changes and the page does not. Regenerate the blocks with

    PYTHONPATH=. .venv/bin/python -m tests.test_settings_docs
"""

import os
import re

from firmware import settings
from firmware.verify.validator import ValidatorConfig

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
BLOCKS = {  # block -> page
    "all": "service-console.md",
    "gate": "gate-modes.md",
    "validator": "ridecode.md",
}


def _bounds(row) -> str:
    _name, kind, bounds, _default, _unit, _doc = row
    if kind == "choice":
        return ", ".join(bounds)
    if kind == "bool":
        return "true, false"
    span = "%d" % bounds[0] if bounds[0] == bounds[1] else "%d..%d" % bounds
    if kind in ("str", "hex"):
        return span + " bytes"
    return ("each " if kind == "ints" else "") + span


def _default(row) -> str:
    name, default = row[0], row[3]
    if name in settings.REQUIRED:
        return "required"
    if default is None:
        return "-"
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def _doc(row) -> str:
    aliases = settings.ALIASES.get(row[0], {})
    return row[5] + "".join(" (`%s`: `%s`, an older name)" % kv for kv in aliases.items())


def render(block: str) -> str:
    if block == "all":
        lines = ["| setting | type | bounds | default | unit | meaning |", "|---" * 6 + "|"]
        for r in settings.SCHEMA:
            cells = ("`%s`" % r[0], r[1], _bounds(r), _default(r), r[4], _doc(r))
            lines.append("| %s |" % " | ".join(cells))
    elif block == "gate":
        lines = ["| setting | default | unit | bounds | meaning |", "|---|---|---|---|---|"]
        for short in settings.section("gate"):
            r = settings.row("gate." + short)
            cells = ("`%s`" % short, _default(r), r[4], _bounds(r), _doc(r))
            lines.append("| %s |" % " | ".join(cells))
    else:
        lines = ["| key | gate config | default | meaning |", "|---|---|---|---|"]
        for key, name in ValidatorConfig.SETTINGS:
            r = settings.row(name)
            cells = ("`%s`" % key, "`%s`" % name, str(r[3]), _doc(r))
            lines.append("| %s |" % " | ".join(cells))
    return "\n".join(lines)


def blocks(text: str) -> dict[str, str]:
    pat = re.compile(r"<!-- settings:(\w+) -->\n(.*?)\n<!-- /settings -->", re.S)
    return {m.group(1): m.group(2) for m in pat.finditer(text)}


def test_docs_show_the_settings_the_code_has():
    for block, page in BLOCKS.items():
        with open(os.path.join(DOCS, page)) as f:
            found = blocks(f.read())
        assert list(found) == [block], "docs/%s: want one settings:%s block" % (page, block)
        assert found[block] == render(block), "docs/%s: settings table is stale" % page


def test_no_page_states_the_stale_trust_default_otherwise():
    with open(os.path.join(DOCS, "ridecode.md")) as f:
        text = f.read()
    assert "`grace` (default" not in text
    assert settings.default("validation.stale_trust") == "refuse"


if __name__ == "__main__":
    for block, page in BLOCKS.items():
        print("%s:\n<!-- settings:%s -->\n%s\n<!-- /settings -->\n" % (page, block, render(block)))
