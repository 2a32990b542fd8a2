"""The self-test a trial image must pass before the gate confirms it (firmware.compose.app).

Each check returns nothing when it passes and a short line when it fails:
- every module of the running slot imports, from the slot itself (nothing shadows it: on an MCU
  image every module must come from its .mpy file);
- SHA-256 answers its known value, and the signature verifier accepts a known ES256 signature
  and refuses it with one bit flipped (a known-answer test of the backend the gate will use);
- the state directory takes a durable atomic write and reads it back.
"""

import hashlib
import json

from firmware.maintenance import boot
from firmware.platform import read_file, remove_if_exists, write_atomic

KAT_PUB = bytes.fromhex("02fd6294895262137b6a3c781b3f356598f45f66e88cb0f8afd8532ffa02879d00")
KAT_MSG = b"faregate self-test"
KAT_SIG = bytes.fromhex(
    "be24f20c974e653f82b6c5765d047d302e297cd8d355d3f6397b24f1f17b46e2"
    "5105a018e261d8ec51fe1c0c90b55ea3c5066f7c88c28dff91453561ffbd865a"
)
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def slot_modules(state_dir: str, slot: str) -> list:
    """Module names of the slot's files, from the index the update agent wrote."""
    with open(boot.slot_dir(state_dir, slot) + ".json") as f:
        index = json.load(f)
    names = []
    for path, _size, _digest in index["files"]:
        for ext in (".py", ".mpy"):
            if path.endswith(ext):
                name = path[: -len(ext)].replace("/", ".")
                if name.endswith(".__init__"):
                    name = name[: -len(".__init__")]
                names.append(name)
    return sorted(names)


def check_imports(state_dir: str, slot: str, profile: str):
    import sys

    where = boot.slot_dir(state_dir, slot) + "/"
    bad = []
    for name in slot_modules(state_dir, slot):
        try:
            __import__(name)
        except Exception as e:  # an import error of any kind is a failed self-test
            bad.append("%s: %r" % (name, e))
            continue
        f = getattr(sys.modules[name], "__file__", "") or ""
        if not f.startswith(where):
            bad.append("%s loaded from %s, not from the slot" % (name, f))
        elif profile == "mcu" and not f.endswith(".mpy"):
            bad.append("%s loaded from source, not .mpy" % name)
    if bad:
        return "imports: " + "; ".join(bad[:5])
    return None


def check_crypto(verifier):
    if hashlib.sha256(b"abc").digest().hex() != SHA256_ABC:
        return "sha256 gives a wrong answer"
    if verifier is None:
        return None  # reported by status as "verifier": false; images are refused meanwhile
    if not verifier.verify(KAT_PUB, KAT_MSG, KAT_SIG):
        return "verifier refuses a known good ES256 signature"
    flipped = KAT_SIG[:10] + bytes([KAT_SIG[10] ^ 1]) + KAT_SIG[11:]
    if verifier.verify(KAT_PUB, KAT_MSG, flipped):
        return "verifier accepts a corrupted ES256 signature"
    return None


def check_storage(state_dir: str):
    path = state_dir + "/selftest.probe"
    data = b"probe" + bytes(range(64))
    try:
        write_atomic(path, data)
        ok = read_file(path) == data
        remove_if_exists(path)
    except OSError as e:
        return "storage: %r" % e
    return None if ok else "storage: read back differs"


def run(ctx: dict, verifier) -> list:
    """All checks; returns the list of failures (empty when the image is good)."""
    state_dir, slot = ctx["state_dir"], ctx["slot"]
    profile = ctx.get("device", {}).get("profile", "linux")
    results = [
        check_imports(state_dir, slot, profile),
        check_crypto(verifier),
        check_storage(state_dir),
    ]
    return [r for r in results if r]
