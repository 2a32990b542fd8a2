"""A/B slots: the persisted update state, its transition table, and the boot shim.

The gate keeps two slots, `slot_a/` and `slot_b/`, in its state directory, and one state file,
`boot.json`, replaced atomically on every transition, so a power cut at any instant leaves the
state before the step or the state after it. The semantics are MCUboot's test/confirm/revert:

    slot state  event       next state   who
    ----------  ----------  -----------  ---------------------------------------------------
    empty       stage       staging      agent: a transfer into the inactive slot begins
    staged      stage       staging        (also from reverted, previous, refused, staging)
    staging     staged      staged       agent: signature, target, counter, hashes all good
    staging     abort       empty        agent: the image was refused or discarded
    staged      test        pending      agent: the operator asked for a trial boot
    pending     cancel      staged       agent
    pending     boot        trial        shim: boot counter written BEFORE the app starts
    trial       boot        reverted     shim: booted again with no confirm (crash, hang, reset)
    trial       confirm     confirmed    app: self-test passed; this slot becomes the active one
    trial       revert      reverted     app: self-test failed
    confirmed   superseded  previous     agent: the other slot was confirmed
    confirmed   corrupt     refused      shim: the active slot's files fail their hashes...
    previous    fallback    confirmed    shim: ...so the previous confirmed image runs again

The active (confirmed) slot is never written while another is staged or on trial. A trial
slot gets `max_trial_boots` boots (default 1) to confirm; the shim counts them in the state
file before it hands over, so a trial that crashes, hangs until a watchdog reset, or loses
power is reverted by the next boot without anybody's help.

This file is also the gate's bootloader: a copy sits at the root of the state directory and is
run as `python boot.py STATE` or `micropython boot.py STATE`. So it imports nothing but the
interpreter's own modules, and its state format is versioned (`"v": 1`).
"""

import json
import os
import sys

STATE_VERSION = 1
STATE_FILE = "boot.json"
SLOTS = ("a", "b")
EXIT_HALT = 0  # the app stopped on purpose: the supervisor powers off
EXIT_REBOOT = 75  # the app asks for a reboot (an update to try, a revert)
EXIT_NO_IMAGE = 76  # no slot can boot

TABLE = {
    ("empty", "stage"): "staging",
    ("staged", "stage"): "staging",
    ("reverted", "stage"): "staging",
    ("previous", "stage"): "staging",
    ("refused", "stage"): "staging",
    ("staging", "stage"): "staging",
    ("staging", "staged"): "staged",
    ("staging", "abort"): "empty",
    ("staged", "test"): "pending",
    ("pending", "cancel"): "staged",
    ("pending", "boot"): "trial",
    ("trial", "boot"): "reverted",
    ("trial", "confirm"): "confirmed",
    ("trial", "revert"): "reverted",
    ("confirmed", "superseded"): "previous",
    ("confirmed", "corrupt"): "refused",
    ("previous", "fallback"): "confirmed",
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


def save_state(state_dir: str, st: dict) -> None:
    """Replace boot.json atomically (temporary file, durable write, rename, directory sync).
    The same steps as firmware.platform.write_atomic, repeated because the bootloader copy of
    this file can import nothing from a slot."""
    path = state_dir + "/" + STATE_FILE
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


def step(st: dict, slot: str, event: str) -> str:
    """Apply one event of the table to a slot in `st` (in memory); return the new state."""
    rec = st["slots"][slot]
    nxt = TABLE.get((rec["state"], event))
    if nxt is None:
        raise StateError("slot %s is %s: %s is not allowed" % (slot, rec["state"], event))
    rec["state"] = nxt
    return nxt


def _files_ok(state_dir: str, slot: str):
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


def choose(state_dir: str, max_trial_boots: int = 1):
    """The boot decision, made durable before anything of the slot runs.
    Returns (slot, trial) or (None, False) when nothing can boot."""
    st = load_state(state_dir)
    st["boots"] = st.get("boots", 0) + 1
    trial = st.get("trial")
    if trial:
        rec = st["slots"][trial]
        if rec.get("attempts", 0) >= max_trial_boots:
            step(st, trial, "boot")  # trial -> reverted
            st["trial"] = None
            st["last"] = {"event": "reverted", "slot": trial, "reason": "trial_not_confirmed"}
            st["last"]["version"] = rec.get("version")
        else:
            rec["attempts"] = rec.get("attempts", 0) + 1
    elif st.get("pending"):
        slot = st["pending"]
        step(st, slot, "boot")  # pending -> trial
        st["pending"] = None
        st["trial"] = slot
        st["slots"][slot]["attempts"] = 1
    slot = st.get("trial") or st.get("active")
    is_trial = slot is not None and slot == st.get("trial")
    if slot is not None:
        bad = _files_ok(state_dir, slot)
        if bad and is_trial:
            step(st, slot, "revert")
            st["trial"] = None
            st["last"] = {"event": "reverted", "slot": slot, "reason": "trial_corrupt: " + bad}
            slot, is_trial = st.get("active"), False
            bad = _files_ok(state_dir, slot) if slot else "no active slot"
        if bad and slot is not None:
            # the confirmed image is damaged: fall back to the previous confirmed one
            prev = other(slot)
            if st["slots"][prev]["state"] == "previous" and not _files_ok(state_dir, prev):
                step(st, slot, "corrupt")
                step(st, prev, "fallback")
                st["active"] = prev
                st["last"] = {
                    "event": "fell_back",
                    "slot": prev,
                    "reason": "active_corrupt: " + bad,
                }
                slot = prev
            else:
                slot = None
    save_state(state_dir, st)
    return slot, is_trial


def launch(state_dir: str, argv=None) -> int:
    """Pick the slot, then import its entry module and run it. Returns the process exit code."""
    try:
        with open(state_dir + "/device.json") as f:
            device = json.load(f)
    except (OSError, ValueError):
        print("boot: no device.json in %s" % state_dir)
        return EXIT_NO_IMAGE
    slot, trial = choose(state_dir, int(device.get("max_trial_boots", 1)))
    if slot is None:
        print("boot: no bootable slot in %s" % state_dir)
        return EXIT_NO_IMAGE
    sys.path.insert(0, slot_dir(state_dir, slot))
    name = device.get("entry") or (
        "drivers.mcu.entry" if device.get("profile") == "mcu" else "drivers.linux.entry"
    )
    ctx = {"state_dir": state_dir, "slot": slot, "trial": trial, "device": device, "argv": argv}
    __import__(name)
    code = sys.modules[name].main(ctx)
    return EXIT_HALT if code is None else int(code)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: boot.py STATE_DIR")
        sys.exit(2)
    sys.exit(launch(sys.argv[1].rstrip("/"), sys.argv[2:]))
