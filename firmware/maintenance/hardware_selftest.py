"""The technician's self-test of a gate: storage, clock, signature backend, scanner, barrier and
passage sensors, in that order (`faregate device selftest`; firmware.maintenance.console runs it).

(firmware.maintenance.trial_selftest is the other self-test: the one a trial firmware image must
pass before the
gate confirms it. The "crypto" check here reuses its known-answer test.)

CHECKS is the whole list: name -> check(ctx) -> (ok, detail). `ctx` carries what the checks
touch (all handed in):
    ctx.dir        the state directory (storage is written, read back and removed)
    ctx.fs         the gate's storage object (firmware/storage/fs.py), which every store uses
    ctx.clock      .now(); ctx.clock_set: was the clock set by a technician
    ctx.host_time  the technician laptop's time (0: unknown)
    ctx.scanner    .read(timeout_s) -> text | None     (the QR engine or camera)
    ctx.barrier    .open(), optional .close() and .is_open() (position feedback)
    ctx.pairs      [(name, pair)]: the passage beams and vehicle loops, as the gate loop reads
                   them (`pair.read() -> (a, b)`, True = blocked; drivers/portable/interfaces.py)
    ctx.scan_timeout_s
    ctx.verifier   .verify(pub, msg, sig) -> bool: the signature backend the gate uses
The scanner check waits for the technician's test card: a QR code whose text starts with
TEST_CARD_PREFIX (print one with `faregate device test-card`).
"""

from firmware import settings
from firmware.maintenance import trial_selftest as selftest
from firmware.storage.fs import DISK
from protocol.service import EARLIEST_TIME, TEST_CARD_PREFIX

MIN_FREE_BYTES = 64 * 1024
MAX_SKEW_S = 5


class Context:
    def __init__(
        self,
        directory,
        clock,
        clock_set,
        host_time,
        hw,
        scan_timeout_s: int = settings.default("selftest.scan_timeout_s"),
        verifier=None,
        fs=DISK,
    ):
        self.dir = directory
        self.fs = fs
        self.clock = clock
        self.clock_set = clock_set
        self.host_time = host_time
        readers = hw.readers() if hw is not None else []
        self.scanner = readers[0][0] if readers else None
        self.barrier = getattr(hw, "barrier", None)
        self.pairs = [
            (name, getattr(hw, attr))
            for name, attr in (("beam", "beams"), ("loop", "loops"))
            if getattr(hw, attr, None) is not None
        ]
        self.scan_timeout_s = scan_timeout_s
        self.verifier = verifier


def check_storage(ctx):
    path = ctx.dir + "/selftest.tmp"
    pattern = bytes(range(3, 256, 7)) * 28  # about 1 KB, built without growing a buffer
    ctx.fs.write_atomic(path, pattern)
    back = ctx.fs.read_file(path)
    ctx.fs.remove_if_exists(path)
    if back != pattern:
        return False, "storage read back different bytes: replace the storage card"
    free = ctx.fs.free_bytes(ctx.dir)
    if free is not None and free < MIN_FREE_BYTES:
        return False, "only %d bytes free: sync the gate, then check the storage" % free
    return True, "write, read back, remove ok" + ("; %d MB free" % (free >> 20) if free else "")


def check_clock(ctx):
    now = ctx.clock.now()
    if not ctx.clock_set or now < EARLIEST_TIME:
        return False, "clock not set: run `faregate device set-time`"
    if ctx.host_time:
        skew = now - ctx.host_time
        if skew > MAX_SKEW_S or skew < -MAX_SKEW_S:
            return False, (
                "clock is %+d s off the laptop's: run `faregate device set-time` (beyond "
                "clock.set_bound_s with --root-key, or sync)" % skew
            )
        return True, "set; %+d s from the laptop" % skew
    return True, "set"


def check_crypto(ctx):
    if ctx.verifier is None:
        return False, "no signature verifier: the gate cannot check ride codes"
    problem = selftest.check_crypto(ctx.verifier)
    if problem:
        return False, problem
    return True, "SHA-256 and ES256 known answers right"


def check_scanner(ctx):
    if ctx.scanner is None:
        return False, "no scanner configured"
    text = ctx.scanner.read(ctx.scan_timeout_s)
    if text is None:
        return False, "no code read in %d s: hold the test card at the reader" % ctx.scan_timeout_s
    if not text.startswith(TEST_CARD_PREFIX):
        return False, "read %r, which is not a test card" % text[:24]
    return True, "read test card %s" % text[:32]


def check_barrier(ctx):
    b = ctx.barrier
    if b is None:
        return False, "no barrier configured"
    feedback = hasattr(b, "is_open")
    b.open()
    if feedback and not b.is_open():
        return False, "barrier did not open: check for a jam or the motor fuse"
    if hasattr(b, "close"):
        b.close()
        if feedback and b.is_open():
            return False, "barrier did not close: check for a jam"
    return True, "opened and closed" if feedback else "cycled (no position feedback)"


def check_sensors(ctx):
    if not ctx.pairs:
        return True, "no passage sensors fitted"
    blocked = []
    for name, pair in ctx.pairs:
        a, b = pair.read()
        blocked += [name + " " + side for side, level in (("A", a), ("B", b)) if level]
    if blocked:
        return False, "blocked at rest: %s: clear the lane or clean the sensor" % ", ".join(blocked)
    return True, "%d clear" % (2 * len(ctx.pairs))


CHECKS = (
    ("storage", check_storage),
    ("clock", check_clock),
    ("crypto", check_crypto),
    ("scanner", check_scanner),
    ("barrier", check_barrier),
    ("sensors", check_sensors),
)


def run(ctx) -> dict:
    """Run every check, even after a failure, and report them all."""
    results = []
    for name, fn in CHECKS:
        try:
            ok, detail = fn(ctx)
        except Exception as e:  # a driver failing must show up as a failed check
            ok, detail = False, "error: %r" % (e,)
        results.append({"name": name, "ok": bool(ok), "detail": detail})
    return {"passed": all(r["ok"] for r in results), "checks": results}
