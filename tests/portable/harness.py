"""The few helpers portable tests need, written for CPython and MicroPython alike.

Portable tests are plain modules `tests/portable/test_*.py` with `test_*` functions taking no
arguments and using `assert`. pytest collects them on CPython; `tests/portable/run.py` runs
them on the MicroPython unix port.
"""

import os
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or another type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def mkdtemp(prefix="fgtest"):
    """A new empty directory under $TMPDIR (or /tmp)."""
    base = os.getenv("TMPDIR") or "/tmp"
    while True:
        name = "%s/%s-%s" % (base, prefix, "".join("%02x" % b for b in os.urandom(6)))
        try:
            os.mkdir(name)
            return name
        except OSError:
            pass


def rmtree(path):
    for entry in os.listdir(path):
        p = path + "/" + entry
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def repo_root():
    """The repository root (tests run from it on both interpreters)."""
    return os.getcwd()


def read_json(path):
    import json

    with open(path) as f:
        return json.load(f)


class Skipped(Exception):
    """Raised by skip() outside pytest; tests/portable/run.py counts it as skipped."""


def skip(reason):
    """Skip the current test, saying why (pytest's skip under pytest, Skipped elsewhere)."""
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(reason)
    raise Skipped(reason)


def vectors(*parts):
    """Path of a file under tests/vectors/ (the project's own copies, see its READMEs).

    A missing file fails the test: the vectors are part of the repository, never optional.
    """
    path = repo_root() + "/tests/vectors/" + "/".join(parts)
    try:
        os.stat(path)
    except OSError:
        raise AssertionError("%s is missing from the checkout" % path) from None
    return path
