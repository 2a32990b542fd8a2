"""Attacks on a gate's boot (issue 16): someone who can write the gate's filesystem, but holds no
release key, tries to run code the operator did not release, or an older release.

Before issue 16 the boot shim compared each slot's files with the hashes in `slot_X.json`, an
index as writable as the files, and never looked at the security counter: editing a file and
its index hash ran the edit; setting boot.json's `floor` back ran an older image. Now the shim
verifies the slot's signed head with the release keys, the files against that signed manifest,
and the signed counter against a rollback counter kept outside the slots and boot.json
(firmware/maintenance/boot_verify.py). Real ES256 images; the shim's own P-256 verifier."""

import hashlib
import json
import os

import pytest

from drivers.linux import crypto_openssl as es256
from firmware.maintenance import boot
from firmware.maintenance.update_agent import UpdateAgent
from protocol import image, reasons

RELEASE = es256.OpenSSLSigner(es256.generate_key())
FILES = {
    "firmware/__init__.py": b"",
    "firmware/hello.py": b"def hello():\n    return 'hi'\n",
}


def make(version, counter, files=None, signer=RELEASE):
    files = files or FILES
    entries = [
        image.FileEntry(p, len(files[p]), hashlib.sha256(files[p]).digest()) for p in sorted(files)
    ]
    m = image.Manifest(image.PROFILE_LINUX, version, counter, 1767254400, entries)
    return image.with_signature(image.build(m, files), image.key_id(signer.public_key), signer.sign)


def device(counter="file"):
    return {
        "profile": "linux",
        "release_keys": [RELEASE.public_key.hex()],
        "slot_capacity": 1 << 20,
        "max_trial_boots": 1,
        "rollback_counter": counter,
    }


def agent(d, dev, running=None):
    return UpdateAgent(d, es256.verifier(), dev, running)


def boot_once(d, dev):
    """One boot of the gate, the way launch() makes its choice."""
    return boot.choose(d, 1, boot.boot_check(d, dev))


def install(d, dev, version, counter, running=None):
    """Stage, boot on trial, confirm: the image runs confirmed in the other slot."""
    a = agent(d, dev, running)
    a.stage(make(version, counter))
    slot = a.request_test()
    assert boot_once(d, dev) == (slot, True)
    assert agent(d, dev, slot).confirm()
    assert boot_once(d, dev) == (slot, False)  # confirmed: its counter is the floor now
    return slot


@pytest.fixture
def gate(tmp_path):
    d = str(tmp_path / "gate")
    os.makedirs(d)
    dev = device()
    install(d, dev, (1, 0, 0), 1)
    return d, dev


def edit_file_and_index(d, slot, path, data):
    """The attacker's edit: a file changed, and its entry in slot_X.json made to match."""
    with open(os.path.join(boot.slot_dir(d, slot), path), "wb") as f:
        f.write(data)
    index_path = boot.slot_dir(d, slot) + ".json"
    with open(index_path) as f:
        index = json.load(f)
    for entry in index["files"]:
        if entry[0] == path:
            entry[1], entry[2] = len(data), hashlib.sha256(data).hexdigest()
    with open(index_path, "w") as f:
        json.dump(index, f)


def test_a_trial_image_altered_after_install_is_refused_at_boot_with_its_own_reason(gate):
    d, dev = gate
    a = agent(d, dev, "a")
    a.stage(make((2, 0, 0), 2))
    a.request_test()
    edit_file_and_index(d, "b", "firmware/hello.py", b"import os; os.system('steal')\n")
    assert boot.choose(d) == ("b", True)  # the index alone (the old check) would run it
    st = boot.load_state(d)
    st["trial"], st["slots"]["b"]["state"], st["pending"] = None, "pending", "b"
    boot.save_state(d, st)  # (undo that boot)
    assert boot_once(d, dev) == ("a", False)
    last = boot.load_state(d)["last"]
    assert last["event"] == "reverted" and last["slot"] == "b"
    assert last["reason"].startswith(
        "boot_bad_signature: firmware/hello.py differs from the signed"
    )
    assert reasons.number("boot_bad_signature") == 294


def test_a_confirmed_image_altered_in_place_does_not_run(gate):
    d, dev = gate
    install(d, dev, (2, 0, 0), 2, running="a")
    edit_file_and_index(d, "b", "firmware/hello.py", b"print('not released')\n")
    slot, _trial = boot_once(d, dev)
    # the previous image has counter 1, below the floor 2: nothing may boot
    assert slot is None
    last = boot.load_state(d)["last"]
    assert last["event"] == "refused" and last["reason"].startswith("boot_bad_signature")


def test_a_signed_head_rewritten_to_match_the_edit_fails_its_signature(gate):
    d, dev = gate
    a = agent(d, dev, "a")
    a.stage(make((2, 0, 0), 2))
    a.request_test()
    evil = b"print('evil')\n"
    edit_file_and_index(d, "b", "firmware/hello.py", evil)
    head_path = boot.slot_dir(d, "b") + boot.HEAD_SUFFIX
    with open(head_path, "rb") as f:
        head = f.read()
    old = hashlib.sha256(FILES["firmware/hello.py"]).digest()
    assert old in head
    head = head.replace(old, hashlib.sha256(evil).digest())
    head = head.replace(
        len(FILES["firmware/hello.py"]).to_bytes(4, "big") + hashlib.sha256(evil).digest(),
        len(evil).to_bytes(4, "big") + hashlib.sha256(evil).digest(),
    )
    with open(head_path, "wb") as f:
        f.write(head)
    assert boot_once(d, dev) == ("a", False)
    last = boot.load_state(d)["last"]
    assert last["reason"] == "boot_bad_signature: the release signature does not verify"


def test_a_slot_signed_by_another_key_or_without_a_head_does_not_boot(gate, tmp_path):
    d, dev = gate
    a = agent(d, dev, "a")
    a.stage(make((2, 0, 0), 2))
    a.request_test()
    os.remove(boot.slot_dir(d, "b") + boot.HEAD_SUFFIX)
    assert boot_once(d, dev) == ("a", False)
    assert boot.load_state(d)["last"]["reason"].startswith("boot_bad_signature: no signed head")


def test_a_counter_rolled_back_in_boot_json_does_not_allow_an_older_image(gate):
    d, dev = gate
    install(d, dev, (2, 0, 0), 2, running="a")  # slot b, counter 2; a holds 1.0.0 (counter 1)
    with open(os.path.join(d, "rollback_counter.json")) as f:
        assert json.load(f)["counter"] == 2
    # the attacker makes the old image the active one and sets the floor back to 0
    st = boot.load_state(d)
    st["floor"] = 0
    st["active"] = "a"
    st["slots"]["a"]["state"], st["slots"]["b"]["state"] = "confirmed", "previous"
    boot.save_state(d, st)
    assert boot.choose(d) == ("a", False)  # what the old shim did: the older image runs
    assert boot_once(d, dev) == ("b", False)  # now: refused, and the gate falls back to 2.0.0
    last = boot.load_state(d)["last"]
    assert last["event"] == "fell_back" and last["reason"].startswith("boot_rollback: security")
    assert reasons.number("boot_rollback") == 295
    # and an older image staged as an update is refused before it boots, too
    with pytest.raises(Exception) as e:
        agent(d, dev, "b").stage(make((1, 5, 0), 1))
    assert getattr(e.value, "reason", "") == "image_rollback"


def test_an_otp_counter_cannot_be_lowered_by_any_write(tmp_path):
    from firmware.maintenance import boot_verify

    otp = boot_verify.SimOtp(str(tmp_path / "otp.bin"), words=4)
    counter = boot_verify.OtpCounter(otp)
    assert counter.read() == 0
    counter.raise_to(5)
    counter.raise_to(3)  # lower: nothing programmed
    assert counter.read() == 5 and otp.read()[4:] == bytes(12)
    for i in range(4):  # any word programmed with anything: bits only ever set
        otp.program(i, 0)
        otp.program(i, 1)
        assert counter.read() >= 5
    counter2 = boot_verify.OtpCounter(boot_verify.SimOtp(str(tmp_path / "otp2.bin"), words=2))
    counter2.raise_to(1)
    counter2.raise_to(2)
    with pytest.raises(boot_verify.CounterDamaged, match="full"):
        counter2.raise_to(3)


def test_a_gate_on_an_otp_counter_refuses_the_older_image_whatever_its_files_say(tmp_path):
    d = str(tmp_path / "gate")
    os.makedirs(d)
    dev = device("otp:otp.bin")
    install(d, dev, (1, 0, 0), 1)
    install(d, dev, (2, 0, 0), 3, running="a")
    assert not os.path.exists(os.path.join(d, "rollback_counter.json"))
    st = boot.load_state(d)
    st["floor"], st["active"] = 0, "a"
    st["slots"]["a"]["state"], st["slots"]["b"]["state"] = "confirmed", "previous"
    boot.save_state(d, st)
    assert boot_once(d, dev) == ("b", False)
    assert boot.load_state(d)["last"]["reason"].startswith("boot_rollback")


def test_a_damaged_counter_store_boots_nothing_and_says_why(gate):
    d, dev = gate
    with open(os.path.join(d, "rollback_counter.json"), "w") as f:
        f.write("{not json")
    assert boot_once(d, dev) == (None, False)
    last = boot.load_state(d)["last"]
    assert last["reason"] == "boot_counter_damaged" and "damaged" in last["detail"]
    assert reasons.number("boot_counter_damaged") == 296
