"""Every module of the portable core (and the portable drivers) imports on this interpreter."""

import os
import sys


def _modules(package):
    out = []
    for root, _dirs, files in _walk(package):
        for f in files:
            if f.endswith(".py") and f != "manifest.py":  # build metadata, not code
                name = (root + "/" + f[:-3]).replace("/", ".")
                out.append(name[: -len(".__init__")] if name.endswith(".__init__") else name)
    return sorted(out)


def _walk(top):
    files = []
    dirs = []
    for entry in os.listdir(top):
        if entry == "__pycache__":
            continue
        if os.stat(top + "/" + entry)[0] & 0x4000:
            dirs.append(entry)
        else:
            files.append(entry)
    yield top, dirs, files
    for d in dirs:
        yield from _walk(top + "/" + d)


def test_every_portable_module_imports():
    names = _modules("protocol") + _modules("firmware") + _modules("drivers/portable")
    assert "protocol.ridecode" in names and "firmware.gate.gate" in names
    failed = []
    for name in names:
        try:
            __import__(name)
        except Exception as e:  # report them all, not just the first
            failed.append("%s: %r" % (name, e))
    assert not failed, "%s: %s" % (sys.implementation.name, "; ".join(failed))
