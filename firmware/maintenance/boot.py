"""A/B slots: the persisted update state, its transition table, and the boot shim.

The gate keeps two slots, `slot_a/` and `slot_b/`, in its state directory, and one state file,
`boot.json`, replaced atomically on every transition, so a power cut at any instant leaves the
state before the step or the state after it. The semantics are MCUboot's test/confirm/revert.

Everything that moves a slot's state, and the pointers `active`, `trial` and `pending`, is in
TABLE below: (slot state, event) -> (next state, actions), applied by `step`, which refuses
(StateError) any event the table has no row for. The update agent (agent events: stage,
staged, abort, test, cancel, superseded; `test` of a previous slot is a rollback), this shim
(boot, retry, corrupt, fallback) and the app after its self-test (confirm, revert) all move
slots through `step` and nothing else.
TABLE has protocol.fsm's shape (no wildcards, no guards) and `fire` is protocol.fsm.fire cut
down to that, because the bootloader imports nothing (tests/test_state_docs.py checks that
both agree on every row). docs/state-machines.md shows the table.

The active (confirmed) slot is never written while another is staged or on trial. A trial
slot gets `max_trial_boots` boots (default 1) to confirm; the shim counts them in the state
file before it hands over, so a trial that crashes, hangs until a watchdog reset, or loses
power is reverted by the next boot without anybody's help. The revert says why: `last` gets
reason `trial_not_confirmed` and a `detail`, `crashed: <exception> at <file:line>` when the
trial's code raised (the shim notes it in `crash` before the process dies), or `no
confirmation after N boot(s)` when nothing was noted (a hang, a watchdog reset, a power cut);
`trial_corrupt: ...` when its files no longer match their hashes; and the app's own
`self_test_failed: <the failing checks>` when the self-test failed.

Boot never needs free space: the shim rewrites boot.json on each boot (the boot counter), but
a write that fails (ENOSPC on a full volume, EIO) only loses that count and the gate boots
its slot; the one exception is a trial whose boot had to be counted: unsaved, it is not run
and the confirmed image boots instead (docs/firmware-images.md).

Verified boot and anti-rollback, as MCUboot does them: launch() checks the slot's release
signature, its files against the signed manifest and the rollback counter kept outside the
slots and outside boot.json, through boot_verify.py (its docstring says how; only the shim
loads it, `boot_check`), with reasons boot_bad_signature, boot_rollback, boot_counter_damaged.

This file is also the gate's bootloader: a copy sits at the root of the state directory and is
run as `python boot.py STATE` or `micropython boot.py STATE`. So it imports nothing but the
interpreter's own modules, and its state format is versioned (`"v": 1`).
"""

import json
import os
import sys

STATE_VERSION = 1
STATE_FILE = "boot.json"
HEAD_SUFFIX = ".head"  # slot_X.head: the image's signed header and manifest (boot_verify.py)
SLOTS = ("a", "b")
EXIT_HALT = 0  # the app stopped on purpose: the supervisor powers off
EXIT_REBOOT = 75  # the app asks for a reboot (an update to try, a revert)
EXIT_NO_IMAGE = 76  # no slot can boot

# actions (ACTIONS below): clear forgets the slot's image; pend / unpend set and clear
# `pending`; start_trial makes it `trial` with its first boot counted, count_boot counts one
# more; end_trial clears `trial`; activate makes the slot `active`
_STAGE = ("staging", ("clear",))
TABLE = {
    ("empty", "stage"): _STAGE,
    ("staged", "stage"): _STAGE,
    ("reverted", "stage"): _STAGE,
    ("previous", "stage"): _STAGE,
    ("refused", "stage"): _STAGE,
    ("staging", "stage"): _STAGE,
    ("staging", "staged"): ("staged", ()),
    ("staging", "abort"): ("empty", ("clear",)),
    ("staged", "test"): ("pending", ("pend",)),
    ("previous", "test"): ("pending", ("pend",)),
    ("pending", "cancel"): ("staged", ("unpend",)),
    ("pending", "boot"): ("trial", ("unpend", "start_trial")),
    ("trial", "retry"): ("trial", ("count_boot",)),
    ("trial", "boot"): ("reverted", ("end_trial",)),
    ("trial", "confirm"): ("confirmed", ("end_trial", "activate")),
    ("trial", "revert"): ("reverted", ("end_trial",)),
    ("confirmed", "superseded"): ("previous", ()),
    ("confirmed", "corrupt"): ("refused", ()),
    ("previous", "fallback"): ("confirmed", ("activate",)),
}


def _clear(st: dict, slot: str) -> None:
    st["slots"][slot] = {"state": st["slots"][slot]["state"]}


def _pend(st: dict, slot: str) -> None:
    st["pending"] = slot


def _unpend(st: dict, slot: str) -> None:
    st["pending"] = None


def _start_trial(st: dict, slot: str) -> None:
    st["trial"] = slot
    st["slots"][slot]["attempts"] = 1


def _count_boot(st: dict, slot: str) -> None:
    rec = st["slots"][slot]
    rec["attempts"] = rec.get("attempts", 0) + 1


def _end_trial(st: dict, slot: str) -> None:
    st["trial"] = None
    st["slots"][slot].pop("attempts", None)


def _activate(st: dict, slot: str) -> None:
    st["active"] = slot


ACTIONS = {
    "clear": _clear,
    "pend": _pend,
    "unpend": _unpend,
    "start_trial": _start_trial,
    "count_boot": _count_boot,
    "end_trial": _end_trial,
    "activate": _activate,
}


class StateError(Exception):
    """An event that the table does not allow in the slot's current state."""


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def slot_dir(state_dir: str, slot: str) -> str:
    return "%s/slot_%s" % (state_dir, slot)


def empty_state() -> dict:
    return {
        "v": STATE_VERSION,
        "active": None,  # the confirmed slot the gate runs
        "trial": None,  # the slot booted on trial (boot counter consumed), not yet confirmed
        "pending": None,  # the slot to try at the next boot
        "floor": 0,  # lowest security counter accepted: the highest one ever confirmed
        "slots": {s: {"state": "empty"} for s in SLOTS},
        "last": None,  # the last update outcome, for status: {"event", "slot", "reason", ...}
        # and, while a trial runs, "crash": {"slot", "boot", "error"} once its code raised
        "boots": 0,
    }


def load_state(state_dir: str) -> dict:
    try:
        with open(state_dir + "/" + STATE_FILE) as f:
            st = json.load(f)
    except OSError:
        return empty_state()
    if not isinstance(st, dict) or st.get("v") != STATE_VERSION:
        raise StateError("%s/%s has an unknown format" % (state_dir, STATE_FILE))
    return st


def _sync(f) -> None:
    f.flush()
    if hasattr(os, "fsync"):  # CPython; MicroPython's flush is its durable write
        os.fsync(f.fileno())


def save_state(state_dir: str, st: dict, name: str = STATE_FILE) -> None:
    """Replace boot.json (or another of the shim's files) atomically (temporary file, durable
    write, rename, directory sync). The same steps as firmware.platform.write_atomic, repeated
    because the bootloader copy of this file can import nothing from a slot."""
    path = state_dir + "/" + name
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(st))
        _sync(f)
    os.rename(path + ".tmp", path)
    if hasattr(os, "fsync") and hasattr(os, "O_RDONLY"):
        fd = os.open(state_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fire(table: dict, state: str, event: str):
    """protocol.fsm.fire for a table without wildcards or guards: (next, actions) or None."""
    return table.get((state, event))


def step(st: dict, slot: str, event: str) -> str:
    """Apply one event of TABLE to a slot in `st` (in memory) and run the row's actions; return
    the new state. The only place a slot's state or the slot pointers change."""
    rec = st["slots"][slot]
    hit = fire(TABLE, rec["state"], event)
    if hit is None:
        raise StateError("slot %s is %s: %s is not allowed" % (slot, rec["state"], event))
    nxt, actions = hit
    rec["state"] = nxt
    for name in actions:
        ACTIONS[name](st, slot)
    return nxt


def _index_ok(state_dir: str, slot: str):
    """Check a slot's files against the hashes its agent recorded. Returns None or a reason."""
    import hashlib

    d = slot_dir(state_dir, slot)
    try:
        with open(d + ".json") as f:
            index = json.load(f)
        files = [(str(p), int(n), str(h)) for p, n, h in index["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "no valid file index"
    buf = bytearray(4096)
    for path, size, digest in files:
        h = hashlib.sha256()
        n = 0
        try:
            with open(d + "/" + path, "rb") as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    h.update(buf[:k] if k < len(buf) else buf)
                    n += k
        except OSError:
            return "missing " + path
        if n != size or _hex(h.digest()) != digest:
            return "hash mismatch in " + path
    return None


def _hex(b: bytes) -> str:
    return "".join("%02x" % x for x in b)


def boot_check(state_dir: str, device: dict):
    """boot_verify.BootCheck, loaded from next to this file: the bootloader's, never a slot's."""
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, here)
    try:
        import boot_verify  # type: ignore[import-not-found]
    finally:
        sys.path.remove(here)
    return boot_verify.BootCheck(state_dir, device, slot_dir, save_state)


def _why(bad: str, prefix: str) -> str:
    return bad if bad.startswith("boot_") else prefix + bad


def choose(state_dir: str, max_trial_boots: int = 1, check=None):
    """The boot decision, made durable before anything of the slot runs. `check`: a
    boot_verify.BootCheck (launch() always gives one); None checks the files against the
    agent's index only. Returns (slot, trial) or (None, False) when nothing can boot."""
    st = load_state(state_dir)
    was = json.dumps(st)
    active = st.get("active")
    st["boots"] = st.get("boots", 0) + 1
    if check is not None and not check.start(st):  # the counter store cannot be read
        try:
            save_state(state_dir, st)
        except OSError:
            pass
        return None, False

    def _files_ok(state_dir, slot):
        return check.slot(slot) if check is not None else _index_ok(state_dir, slot)

    trial = st.get("trial")
    if trial:
        rec = st["slots"][trial]
        attempts = rec.get("attempts", 0)
        if attempts >= max_trial_boots:
            step(st, trial, "boot")  # trial -> reverted
            crash = st.get("crash") or {}
            if crash.get("slot") == trial:
                why = "crashed: " + str(crash.get("error"))
            else:
                why = "no confirmation after %d boot(s)" % attempts
            st["last"] = {"event": "reverted", "slot": trial, "reason": "trial_not_confirmed"}
            st["last"]["detail"] = why
            st["last"]["version"] = rec.get("version")
        else:
            step(st, trial, "retry")
    elif st.get("pending"):
        step(st, st["pending"], "boot")  # pending -> trial
    slot = st.get("trial") or st.get("active")
    is_trial = slot is not None and slot == st.get("trial")
    if slot is not None:
        bad = _files_ok(state_dir, slot)
        if bad and is_trial:
            step(st, slot, "revert")
            st["last"] = {"event": "reverted", "slot": slot, "reason": _why(bad, "trial_corrupt: ")}
            slot, is_trial = st.get("active"), False
            bad = _files_ok(state_dir, slot) if slot else "no active slot"
        if bad and slot is not None:
            # the confirmed image is damaged: fall back to the previous confirmed one
            prev = other(slot)
            if st["slots"][prev]["state"] == "previous" and not _files_ok(state_dir, prev):
                step(st, slot, "corrupt")
                step(st, prev, "fallback")
                st["last"] = {
                    "event": "fell_back",
                    "slot": prev,
                    "reason": _why(bad, "active_corrupt: "),
                }
                slot = prev
            else:
                st["last"] = {"event": "refused", "slot": slot}
                st["last"]["reason"] = _why(bad, "active_corrupt: ")
                slot = None
    if check is not None and slot is not None and slot != st.get("trial"):
        check.booted(slot)  # a confirmed image's counter is the floor from now on
    if not st.get("trial"):
        st.pop("crash", None)  # said in `last`, or about a trial that is over
    changed = _changed(was, st)
    try:
        save_state(state_dir, st)
    except OSError:
        # A full (or failing) volume must not stop the gate booting: only the boot counter
        # is lost, unless a trial's boot had to be counted, in which case the confirmed
        # image boots instead (an uncounted trial could loop for ever).
        _remove(state_dir + "/" + STATE_FILE + ".tmp")
        if changed and is_trial:
            if active is None or _files_ok(state_dir, active):
                return None, False
            return active, False
    return slot, is_trial


def _changed(was: str, st: dict) -> bool:
    """`st` differs from the state read (`was`, JSON) in more than its boot counter."""
    old = json.loads(was)
    old.pop("boots", None)
    new = dict(st)
    new.pop("boots", None)
    return old != new


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def crash_summary(e) -> str:
    """One line for an exception: its type, message and where it was raised (file:line)."""
    where = ""
    tb = getattr(e, "__traceback__", None)  # CPython
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = "%s:%d" % (tb.tb_frame.f_code.co_filename.rsplit("/", 1)[-1], tb.tb_lineno)
    elif hasattr(sys, "print_exception"):  # MicroPython: the traceback's last File line
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)
        for line in buf.getvalue().split("\n"):
            if line.strip().startswith('File "'):
                parts = line.strip().split('"')
                where = "%s:%s" % (parts[1].rsplit("/", 1)[-1], parts[2].split(",")[1].split()[-1])
    text = "%s: %s" % (type(e).__name__, e)
    return (text + (" at " + where if where else ""))[:200]


def note_crash(state_dir: str, slot: str, e) -> None:
    """The trial's code raised `e`: note it (durably, before the process dies) for the revert
    at the next boot to report. Not a slot transition: `step` moves nothing here."""
    try:
        st = load_state(state_dir)
        if st.get("trial") != slot:
            return  # confirmed already (or reverted by the app): not a trial crash
        st["crash"] = {"slot": slot, "boot": st.get("boots", 0), "error": crash_summary(e)}
        save_state(state_dir, st)
    except Exception:  # the crash itself is what matters: never hide it behind this one
        pass


def launch(state_dir: str, argv=None) -> int:
    """Pick the slot, then import its entry module and run it. Returns the process exit code."""
    try:
        with open(state_dir + "/device.json") as f:
            device = json.load(f)
    except (OSError, ValueError):
        print("boot: no device.json in %s" % state_dir)
        return EXIT_NO_IMAGE
    slot, trial = choose(
        state_dir, int(device.get("max_trial_boots", 1)), boot_check(state_dir, device)
    )
    if slot is None:
        print("boot: no bootable slot in %s" % state_dir)
        return EXIT_NO_IMAGE
    sys.path.insert(0, slot_dir(state_dir, slot))
    name = device.get("entry") or (
        "drivers.mcu.entry" if device.get("profile") == "mcu" else "drivers.linux.entry"
    )
    ctx = {"state_dir": state_dir, "slot": slot, "trial": trial, "device": device, "argv": argv}
    try:
        __import__(name)
        code = sys.modules[name].main(ctx)
    except Exception as e:
        if trial:
            note_crash(state_dir, slot, e)
        raise
    return EXIT_HALT if code is None else int(code)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: boot.py STATE_DIR")
        sys.exit(2)
    sys.exit(launch(sys.argv[1].rstrip("/"), sys.argv[2:]))
