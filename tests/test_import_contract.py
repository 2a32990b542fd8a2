"""Dependencies point one way: protocol <- firmware <- drivers <- (host_sim, provisioning) <- CLI.

Every module's imports are read from its source (ast: top-level and function-level imports,
and module names written as strings, such as a registry's "module:function" factories) and
checked against these rules, which README.md's layout section states too:

    protocol            imports no other faregate package
    firmware            imports protocol only (so never a driver implementation)
    drivers             imports protocol and firmware
    host_sim            imports protocol, firmware, drivers, and provisioning's tools (the
                        simulated gate builds its image with the operator's image builder);
                        host_sim.backoffice imports nothing of the simulator (station,
                        hardware) nor the wallet
    provisioning        imports protocol, firmware, drivers; never host_sim
    provisioning.cli    the `faregate` command (with provisioning/__main__.py): may import
                        anything; nothing outside it imports it

so host_sim -> provisioning is the one direction between the two peers. The one allowance: the
boot shim (firmware/maintenance/boot.py) names the entry module of the image it boots
(drivers.linux.entry, drivers.mcu.entry) and imports it at run time from the slot: that is
starting the image, not depending on it.
"""

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("protocol", "firmware", "drivers", "host_sim", "provisioning")
CLI = ("provisioning.cli", "provisioning.__main__")
SIMULATOR = ("host_sim.station", "host_sim.hardware", "host_sim.wallet")
# (importing module, imported module): allowed, see the docstring
ALLOWED = {
    ("firmware.maintenance.boot", "drivers.linux.entry"),
    ("firmware.maintenance.boot", "drivers.mcu.entry"),
}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def broken_rule(importer: str, target: str) -> str | None:
    """Why `importer` must not import `target` (both dotted faregate names), or None."""
    src, dst = importer.split(".")[0], target.split(".")[0]
    if _within(importer, CLI):
        return None
    if _within(target, CLI):
        return "only the CLI imports the CLI"
    allowed = {
        "protocol": ("protocol",),
        "firmware": ("protocol", "firmware"),
        "drivers": ("protocol", "firmware", "drivers"),
        "host_sim": ("protocol", "firmware", "drivers", "host_sim", "provisioning"),
        "provisioning": ("protocol", "firmware", "drivers", "provisioning"),
    }[src]
    if dst not in allowed:
        return "%s may import only %s" % (src, ", ".join(allowed))
    if _within(importer, ("host_sim.backoffice",)) and _within(target, SIMULATOR):
        return "the back office never imports the simulator or the wallet"
    return None


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def imported_names(source: str, module: str, is_package: bool):
    """(line, dotted name) for every import in `source`, and every string naming a module."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                if not is_package:
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            yield node.lineno, base
            for alias in node.names:  # `from provisioning import cli` imports provisioning.cli
                yield node.lineno, base + "." + alias.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.split(":")[0]
            if (
                name.split(".")[0] in PACKAGES
                and "." in name
                and name.replace(".", "").replace("_", "").isalnum()
            ):
                yield node.lineno, name


def _exists(name: str) -> bool:
    path = os.path.join(ROOT, *name.split("."))
    return os.path.isdir(path) or os.path.isfile(path + ".py")


def violations(files: list[str]) -> list[str]:
    out = []
    for path in files:
        module = module_name(path)
        with open(path) as f:
            source = f.read()
        for line, name in imported_names(source, module, path.endswith("__init__.py")):
            if name.split(".")[0] not in PACKAGES or not _exists(name):
                continue  # the standard library, a third party, or a name imported from a module
            if (module, name) in ALLOWED:
                continue
            why = broken_rule(module, name)
            if why:
                rel = os.path.relpath(path, ROOT)
                out.append("%s:%d: %s imports %s (%s)" % (rel, line, module, name, why))
    return out


def faregate_files() -> list[str]:
    files = []
    for pkg in PACKAGES:
        for root, dirs, names in os.walk(os.path.join(ROOT, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    return files


def test_every_module_imports_along_the_layers():
    files = faregate_files()
    assert len(files) > 100 and any(f.endswith("provisioning/cli/main.py") for f in files)
    found = violations(files)
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch):
    """A planted module with each forbidden kind of import: every one is reported, with its line."""
    pkg = tmp_path / "drivers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    bad = pkg / "bad.py"
    bad.write_text(
        "import host_sim\n"  # 1: an upward import
        "from protocol import frames\n"  # 2: allowed
        "def f():\n"
        "    from provisioning.cli import main\n"  # 4: function-level, the CLI
        "    from . import bad\n"  # 5: relative, allowed
        'FACTORY = "host_sim.station:run"\n'  # 6: a module named in a string
    )
    for name in ("host_sim/station", "provisioning/cli", "protocol"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "protocol" / "frames.py").write_text("")
    (tmp_path / "provisioning" / "cli" / "main.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    found = violations([str(bad)])
    lines = sorted(int(v.split(":")[1]) for v in found)
    assert lines == [1, 4, 4, 6], found
    assert "only the CLI imports the CLI" in " ".join(found)


def test_the_rules_state_the_layers():
    assert broken_rule("firmware.gate.gate", "drivers.linux.camera")
    assert broken_rule("protocol.frames", "firmware.platform")
    assert broken_rule("drivers.linux.entry", "provisioning.image_build")
    assert broken_rule("provisioning.site", "host_sim.station.scenario")
    assert broken_rule("host_sim.station.simulation", "provisioning.cli.main")
    assert broken_rule("host_sim.backoffice.server", "host_sim.wallet")
    assert broken_rule("host_sim.backoffice.server", "host_sim.hardware.simhw")
    assert not broken_rule("host_sim.hardware.sim_device", "provisioning.image_build")
    assert not broken_rule("host_sim.backoffice.server", "host_sim.errors")
    assert not broken_rule("provisioning.cli.sim", "host_sim.station.simulation")
    assert not broken_rule("provisioning.__main__", "provisioning.cli.main")


# -- SQL lives in the store ------------------------------------------------------------------
# The back office's one store interface: only these modules talk to a database.
STORE_MODULES = ("host_sim.backoffice.store", "host_sim.backoffice.backends")
DRIVERS = ("sqlite3", "psycopg", "asyncpg")
SQL_CALLS = ("execute", "executemany", "executescript")
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX|UNIQUE)|ALTER\s+TABLE|DROP\s+TABLE|PRAGMA)\b",
    re.S,
)


def sql_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for each database use in `source`: a driver imported, a cursor's execute
    called, or a string that is an SQL statement."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            out += [
                (node.lineno, "imports " + n) for n in names if n and n.split(".")[0] in DRIVERS
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SQL_CALLS:
                out.append((node.lineno, "calls ." + node.func.attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_TEXT.match(node.value):
                out.append((node.lineno, "SQL %r" % node.value[:40]))
    return out


def test_no_module_outside_the_store_runs_sql():
    found = []
    for path in faregate_files():
        module = module_name(path)
        if module in STORE_MODULES:
            continue
        with open(path) as f:
            found += ["%s:%d: %s" % (module, n, what) for n, what in sql_uses(f.read())]
    assert not found, "SQL outside host_sim/backoffice/store.py:\n" + "\n".join(found)
    with open(os.path.join(ROOT, "host_sim", "backoffice", "store.py")) as f:
        assert len(sql_uses(f.read())) > 20  # the check sees the store's own queries


def test_the_sql_check_sees_each_kind_of_use():
    planted = (
        "import sqlite3\n"
        "from psycopg import sql\n"
        "db.execute('x')\n"
        "q = 'SELECT seq FROM records'\n"
        "u = '''UPDATE devices SET x=1'''\n"
        "ok = 'select a date from the list'\n"
    )
    assert [n for n, _ in sql_uses(planted)] == [1, 2, 3, 4, 5]


def test_the_back_office_never_imports_the_simulator():
    files = [f for f in faregate_files() if module_name(f).startswith("host_sim.backoffice")]
    assert len(files) >= 10
    for path in files:
        module = module_name(path)
        with open(path) as f:
            for line, name in imported_names(f.read(), module, path.endswith("__init__.py")):
                assert not _within(name, SIMULATOR), "%s:%d imports %s" % (module, line, name)
