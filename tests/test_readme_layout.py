"""README's layout table is the map a newcomer reads: it names every package of the five code
folders and every module in each, and names nothing that is not there."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ("protocol", "firmware", "drivers", "host_sim", "provisioning")
NOT_MODULES = {"__init__.py", "__main__.py", "manifest.py"}


def _table() -> dict[str, str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([\w/]+)/` \| (.*) \|[^|]*\|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _packages() -> list[str]:
    out = []
    for top in CODE:
        for root, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            if "__init__.py" in files:
                out.append(os.path.relpath(root, ROOT).replace(os.sep, "/"))
    return out


def test_every_package_has_a_row_and_every_row_a_package():
    rows = _table()
    packages = _packages()
    assert sorted(p for p in rows if p.split("/")[0] in CODE) == sorted(packages)


def test_each_row_names_exactly_the_modules_of_its_package():
    rows = _table()
    problems = []
    for pkg in _packages():
        here = os.path.join(ROOT, pkg)
        modules = sorted(
            f[:-3] for f in os.listdir(here) if f.endswith(".py") and f not in NOT_MODULES
        )
        named = set(re.findall(r"`(\w+)`", rows[pkg]))
        for mod in modules:
            if mod not in named:
                problems.append("%s/%s.py is not named in README's layout table" % (pkg, mod))
        for name in named:
            if name not in modules and not os.path.isdir(os.path.join(here, name)):
                problems.append("README names `%s` in %s/, which has no such module" % (name, pkg))
    assert not problems, "\n".join(problems)
