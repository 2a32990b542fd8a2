"""Every error faregate raises on purpose descends from protocol.errors.FaregateError and carries
a reason and an exit code; the trees drawn in the roots' docstrings are the real ones; the
`faregate` command prints any of them as one line with its remedy and returns its code."""

import ast
import builtins
import importlib
import inspect
import re

from host_sim import errors as host_sim_errors
from protocol import errors
from provisioning import errors as provisioning_errors
from provisioning.cli import device as device_cli
from provisioning.cli import main as cli
from provisioning.site import SiteError, SiteErrors
from tests.test_import_contract import faregate_files, module_name

EXIT_CODES = (
    errors.EXIT_FAILED,
    errors.EXIT_USAGE,
    errors.EXIT_DEVICE,
    errors.EXIT_AUTH,
    errors.EXIT_INTERNAL,
)
# exceptions defined in faregate that are not FaregateErrors, and why
NOT_FAREGATE = {
    "firmware.maintenance.boot.StateError": "the boot shim imports nothing, not even protocol/",
    "firmware.maintenance.boot_verify.CounterDamaged": "the boot shim's verifier imports nothing "
    "either",
    "host_sim.hardware.powerdisk.PowerLost": "a simulated power failure, not an error: a "
    "BaseException so the firmware cannot catch it",
}


def exception_classes() -> dict[str, type]:
    """Every exception class defined in faregate's packages, by dotted name."""
    found = {}
    for path in faregate_files():
        name = module_name(path)
        if name.endswith((".manifest", ".__main__")):
            continue  # build metadata; the command's entry point
        mod = importlib.import_module(name)
        for attr, value in vars(mod).items():
            if inspect.isclass(value) and issubclass(value, BaseException):
                if value.__module__ == name:
                    found[name + "." + attr] = value
    return found


def test_every_error_descends_from_the_root_with_a_reason_and_an_exit_code():
    classes = exception_classes()
    assert "provisioning.transport.PortOpenError" in classes and len(classes) > 25
    wrong = []
    for name, cls in sorted(classes.items()):
        if name in NOT_FAREGATE:
            assert not issubclass(cls, errors.FaregateError)
            continue
        if not issubclass(cls, errors.FaregateError):
            wrong.append("%s is not a FaregateError" % name)
        elif cls.exit_code not in EXIT_CODES or not (cls.reason and isinstance(cls.reason, str)):
            wrong.append("%s: exit_code %r, reason %r" % (name, cls.exit_code, cls.reason))
    assert not wrong, wrong


def drawn_tree(doc: str) -> list[tuple[int, list[str], list[str], int | None]]:
    """(depth column, class names, built-ins it also subclasses, stated exit code or None) for
    each line of the tree in `doc` (from its first line naming FaregateError to a blank line)."""
    lines = doc.splitlines()
    root = re.compile(r" *\w+( \(FaregateError\))?(  |$)")
    start = next(i for i, line in enumerate(lines) if root.match(line) and "FaregateError" in line)
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        mark = line.find("+-- ")
        if mark < 0 and line.strip().startswith("|"):
            continue  # a description's second line
        col = mark + 4 if mark >= 0 else len(line) - len(line.lstrip())
        head = line[col:].split("  ")[0]
        names = [part.strip().split(" ")[0] for part in head.split(", ")]
        also = re.findall(r"\(\+ (\w+)\)", head)
        code = re.search(r"\bexit (\d)\b(?! for)", line[col:])
        rows.append((col, names, also, int(code.group(1)) if code else None))
    return rows


def check_tree(doc: str, classes: dict[str, type], complete_under: str = "") -> list[str]:
    by_name: dict[str, list[type]] = {}
    for cls in classes.values():
        by_name.setdefault(cls.__name__, []).append(cls)
    wrong = []
    stack: list[tuple[int, list[type], int]] = []  # (column, classes, exit code) of ancestors
    drawn = set()
    for col, names, also, code in drawn_tree(doc):
        while stack and stack[-1][0] >= col:
            stack.pop()
        parent = stack[-1] if stack else (0, [errors.FaregateError], errors.EXIT_FAILED)
        want = code if code is not None else parent[2]
        row = []
        for name in names:
            fits = [
                c
                for c in by_name.get(name, [])
                if any(issubclass(c, p) for p in parent[1])
                and c.exit_code == want
                and all(issubclass(c, getattr(builtins, b)) for b in also)
            ]
            if not fits:
                wrong.append("%s: drawn under %s with exit %d" % (name, parent[1], want))
            row += fits
            drawn.update(fits)
        stack.append((col, row, want))
    if complete_under:
        missing = [
            n
            for n, c in classes.items()
            if n.startswith(complete_under)
            and issubclass(c, errors.FaregateError)
            and c not in drawn
            and not n.startswith("provisioning.cli.")
        ]
        wrong += ["%s is not drawn" % n for n in missing]
    return wrong


def docstring(module) -> str:
    """As written (Python 3.13 strips a docstring's common indentation)."""
    with open(module.__file__) as f:
        return ast.get_docstring(ast.parse(f.read()), clean=False) or ""


def test_the_drawn_trees_are_the_classes():
    classes = exception_classes()
    assert not check_tree(docstring(errors), classes)
    assert not check_tree(docstring(provisioning_errors), classes, "provisioning.")
    assert not check_tree(docstring(host_sim_errors), classes, "host_sim.")
    # and the check can fail: a wrong exit code, a wrong parent, a missing class
    assert check_tree("    FaregateError  exit 1\n     +-- SimError  exit 3\n", classes)
    assert check_tree("    FaregateError\n     +-- FormatError\n     |    +-- NoBackend\n", classes)
    assert check_tree("    FaregateError\n     +-- SimError\n", classes, "host_sim.")


def test_an_error_from_below_is_one_line_with_its_remedy_and_exit_code(monkeypatch, capsys):
    from provisioning.transport import NotAnswering

    def silent(args):
        raise NotAnswering("no answer from /dev/ttyUSB0", "check the cable")

    monkeypatch.setattr(device_cli, "cmd_test_card", silent)
    assert cli.main(["device", "test-card"]) == errors.EXIT_DEVICE == 3
    assert capsys.readouterr().err.splitlines() == [
        "faregate: error: no answer from /dev/ttyUSB0 (fix: check the cable)"
    ]


def test_an_error_gathering_several_prints_each_then_the_last(monkeypatch, capsys):
    def bad_site(args):
        raise SiteErrors(
            [
                SiteError("s.toml", 9, "lane", "must be >= 1", "use 1 or more"),
                SiteError("s.toml", 2, "station.id", "missing"),
            ]
        )

    monkeypatch.setattr(device_cli, "cmd_test_card", bad_site)
    assert cli.main(["device", "test-card"]) == errors.EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "faregate: error: s.toml:2: station.id: missing",
        "faregate: error: s.toml:9: lane: must be >= 1 (and 1 more above) (fix: use 1 or more)",
    ]
