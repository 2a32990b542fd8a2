"""Build firmware images inside portable tests, where no ES256 signer exists.

Images are signed with the stand-in scheme of tests/portable/codes.py (HashVerifier); the real
ES256 path is tested on CPython (tests/test_images.py) with `cryptography`.
"""

import hashlib

from firmware.maintenance.update_agent import UpdateAgent
from protocol import image
from tests.portable.codes import HashVerifier, fake_sig

RELEASE_PUB = b"\x02" + bytes(range(100, 132))
OTHER_PUB = b"\x03" + bytes(range(140, 172))

FILES = {
    "firmware/__init__.py": b"",
    "firmware/hello.py": b"def hello():\n    return 'hi'\n",
    "protocol/__init__.py": b"",
}


def make(
    version=(1, 0, 0),
    counter=1,
    profile=image.PROFILE_LINUX,
    files=None,
    pub=RELEASE_PUB,
    signed=True,
    mpy=(0, 0),
):
    files = FILES if files is None else files
    entries = [
        image.FileEntry(p, len(files[p]), hashlib.sha256(files[p]).digest()) for p in sorted(files)
    ]
    m = image.Manifest(profile, version, counter, 1767254400, entries, mpy)
    data = image.build(m, files)
    if signed:
        data = image.with_signature(data, image.key_id(pub), lambda msg: fake_sig(pub, msg))
    return data


def device(profile="linux", keys=(RELEASE_PUB,), capacity=1 << 20):
    d = {
        "profile": profile,
        "release_keys": [k.hex() for k in keys],
        "slot_capacity": capacity,
        "max_trial_boots": 1,
    }
    if profile == "mcu":
        d["mpy"] = "6.3"
    return d


def agent(state_dir, dev=None, running=None):
    return UpdateAgent(state_dir, HashVerifier(), dev or device(), running)


def confirmed_gate(state_dir, data=None):
    """A gate whose slot a runs `data` (default: version 1.0.0, counter 1), confirmed."""
    from firmware.maintenance import boot

    a = agent(state_dir)
    a.stage(data or make())
    a.request_test()
    slot, trial = boot.choose(state_dir)
    assert (slot, trial) == ("a", True)
    assert agent(state_dir, running="a").confirm()
    return a
