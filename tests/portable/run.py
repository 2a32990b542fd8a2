"""Run the portable suite on this interpreter (meant for MicroPython; works on CPython too).

    micropython tests/portable/run.py [-k SUBSTRING] [MODULE ...]

Run from the repository root. Prints one line per failure with its traceback, then a closing
line `N passed, N failed`; exits 1 if anything failed.
"""

import gc
import os
import sys

if "." not in sys.path:
    sys.path.insert(0, ".")
if hasattr(gc, "threshold") and hasattr(gc, "mem_free"):  # MicroPython
    # collect after every eighth of the free heap is allocated, as an MCU gate does
    # (drivers/mcu/entry.py): in a small heap that keeps garbage from fragmenting it
    gc.threshold(gc.mem_free() // 8)

try:
    from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def _print_exc(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e)  # MicroPython
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def main(argv):
    keyword = None
    names = []
    i = 0
    while i < len(argv):
        if argv[i] == "-k":
            keyword = argv[i + 1]
            i += 2
            continue
        names.append(argv[i])
        i += 1
    if not names:
        names = sorted(
            f[:-3]
            for f in os.listdir("tests/portable")
            if f.startswith("test_") and f.endswith(".py")
        )
    passed = failed = skipped = 0
    start = ticks_ms()
    for name in names:
        modname = "tests.portable." + name
        try:
            gc.collect()  # one heap for the whole suite: start each module clean
            __import__(modname)
            mod = sys.modules[modname]
        except Exception as e:
            print("FAIL %s (import)" % modname)
            _print_exc(e)
            failed += 1
            continue
        tests = sorted(k for k in dir(mod) if k.startswith("test_"))
        for t in tests:
            if keyword and keyword not in t and keyword not in name:
                continue
            fn = getattr(mod, t)
            try:
                fn()
                passed += 1
            except Exception as e:
                if type(e).__name__ == "Skipped":
                    skipped += 1
                    print("SKIP %s.%s: %s" % (name, t, e))
                    continue
                failed += 1
                print("FAIL %s.%s" % (name, t))
                _print_exc(e)
    secs = ticks_diff(ticks_ms(), start) / 1000
    print("portable suite on %s: %.1f s" % (sys.implementation.name, secs))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
