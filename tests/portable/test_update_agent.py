"""firmware.maintenance.update_agent and firmware.maintenance.boot: staging, refusals, trial boot,
confirm, revert.

Signatures use the stand-in scheme (tests/portable/images.py); the same checks run with real
ES256 over a pty in tests/test_images.py.
"""

import hashlib
import json
import os

from firmware.maintenance import boot
from firmware.maintenance.update_agent import ImageRefused
from protocol import image
from tests.portable.harness import mkdtemp, raises, rmtree
from tests.portable.images import OTHER_PUB, agent, confirmed_gate, device, make


def _gate(fn):
    d = mkdtemp()
    try:
        fn(d)
    finally:
        rmtree(d)


def _refused(state_dir, data, dev=None):
    return raises(ImageRefused, agent(state_dir, dev).stage, data).reason


def test_factory_image_boots_on_trial_and_confirms():
    def body(d):
        confirmed_gate(d)
        st = boot.load_state(d)
        assert st["active"] == "a" and st["trial"] is None and st["floor"] == 1
        assert st["slots"]["a"]["state"] == "confirmed"
        with open(d + "/slot_a/firmware/hello.py", "rb") as f:
            assert f.read() == b"def hello():\n    return 'hi'\n"
        assert boot.choose(d) == ("a", False)

    _gate(body)


def test_update_confirmed_raises_floor_and_keeps_previous():
    def body(d):
        confirmed_gate(d)
        s = agent(d, running="a").stage(make(version=(1, 1, 0), counter=3))
        assert s["slot"] == "b" and s["version"] == "1.1.0"
        assert boot.load_state(d)["slots"]["b"]["state"] == "staged"
        assert boot.choose(d) == ("a", False)  # staged is not enough to switch
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        assert agent(d, running="b").confirm()
        st = boot.load_state(d)
        assert st["active"] == "b" and st["floor"] == 3
        assert st["slots"]["a"]["state"] == "previous"
        assert agent(d, running="b").status()["version"] == "1.1.0"
        assert boot.choose(d) == ("b", False)

    _gate(body)


def test_trial_that_never_confirms_is_reverted_by_the_next_boot():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)  # boot counter spent before the app runs
        # ... the app crashes here, or hangs until the watchdog resets the board ...
        assert boot.choose(d) == ("a", False)
        st = boot.load_state(d)
        assert st["slots"]["b"]["state"] == "reverted" and st["active"] == "a"
        assert st["last"]["event"] == "reverted" and st["floor"] == 1
        assert st["last"]["reason"] == "trial_not_confirmed"
        status = agent(d, running="a").status()
        assert status["slot"] == "a" and status["last"]["event"] == "reverted"

    _gate(body)


def test_trial_that_never_confirms_says_how_many_boots_it_spent():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        assert boot.choose(d) == ("a", False)  # hung: nothing noted
        last = boot.load_state(d)["last"]
        assert last["reason"] == "trial_not_confirmed"
        assert last["detail"] == "no confirmation after 1 boot(s)"

    _gate(body)


def test_crashed_trial_reports_what_it_raised():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        try:
            raise RuntimeError("boom at boot")
        except RuntimeError as e:
            boot.note_crash(d, "b", e)  # what launch() does before the process dies
        assert boot.load_state(d)["crash"]["error"].startswith("RuntimeError: boom at boot at ")
        assert boot.choose(d) == ("a", False)
        st = boot.load_state(d)
        assert st["last"]["reason"] == "trial_not_confirmed" and "crash" not in st
        assert st["last"]["detail"].startswith("crashed: RuntimeError: boom at boot at ")
        assert "test_update_agent.py:" in st["last"]["detail"], st["last"]
        # a crash after the trial was confirmed (or of a confirmed slot) notes nothing
        boot.note_crash(d, "a", RuntimeError("later"))
        assert "crash" not in boot.load_state(d)

    _gate(body)


def test_rollback_boots_the_previous_image_on_trial():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(1, 1, 0), counter=1))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        assert agent(d, running="b").confirm()
        assert raises(ImageRefused, agent(d, running="b").request_test).reason == "image_truncated"
        assert agent(d, running="b").request_rollback() == "a"
        st = boot.load_state(d)
        assert st["slots"]["a"]["state"] == "pending" and st["last"]["rollback"]
        assert boot.choose(d) == ("a", True)
        assert agent(d, running="a").confirm()
        st = boot.load_state(d)
        assert st["active"] == "a" and st["slots"]["b"]["state"] == "previous"
        assert agent(d, running="a").status()["version"] == "1.0.0"

    _gate(body)


def test_rollback_refusals():
    def body(d):
        confirmed_gate(d)
        a = agent(d, running="a")
        assert raises(ImageRefused, a.request_rollback).reason == "update_no_previous"
        a.stage(make(version=(1, 1, 0), counter=2))
        a.request_test()
        assert boot.choose(d) == ("b", True)
        assert raises(ImageRefused, agent(d, running="b").request_rollback).reason == (
            "update_busy"
        )
        assert agent(d, running="b").confirm()
        # 1.0.0 has security counter 1, the gate's floor is now 2
        e = raises(ImageRefused, agent(d, running="b").request_rollback)
        assert e.reason == "image_rollback" and "below 2" in str(e)
        assert boot.load_state(d)["slots"]["a"]["state"] == "previous"

    _gate(body)


def test_failed_self_test_reverts():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        assert boot.choose(d) == ("b", True)
        assert agent(d, running="b").revert("self_test_failed: storage")
        assert boot.choose(d) == ("a", False)
        assert boot.load_state(d)["last"]["reason"] == "self_test_failed: storage"

    _gate(body)


def test_corrupt_trial_slot_is_not_booted():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        with open(d + "/slot_b/firmware/hello.py", "ab") as f:
            f.write(b"# flipped on flash\n")
        assert boot.choose(d) == ("a", False)
        assert boot.load_state(d)["last"]["reason"].startswith("trial_corrupt")

    _gate(body)


def test_corrupt_active_slot_falls_back_to_previous():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        boot.choose(d)
        agent(d, running="b").confirm()
        os.remove(d + "/slot_b/firmware/hello.py")
        assert boot.choose(d) == ("a", False)
        st = boot.load_state(d)
        assert st["active"] == "a" and st["slots"]["b"]["state"] == "refused"

    _gate(body)


def test_refusals_each_have_their_reason():
    def body(d):
        confirmed_gate(d, make(counter=5))
        assert _refused(d, make(signed=False)) == "image_unsigned"
        assert _refused(d, make(counter=6, pub=OTHER_PUB)) == "image_unknown_key"
        assert _refused(d, make(counter=4)) == "image_rollback"
        mcu = make(profile=image.PROFILE_MCU, mpy=(6, 3), counter=6)
        assert _refused(d, mcu) == "image_wrong_target"
        assert _refused(d, b"FGIM" + bytes(100)) == "image_malformed"
        big = make(counter=6, files={"firmware/big.py": bytes(4000)})
        assert _refused(d, big, device(capacity=2000)) == "image_too_large"
        # a manifest field changed after signing: the signature no longer verifies
        good = make(version=(1, 1, 0), counter=6)
        h = image.parse_header(good)
        assert _refused(d, good[:92] + b"\x09" + good[93:]) == "image_bad_signature"
        # a file byte changed after signing: the manifest hash catches it
        tampered = good[:-3] + bytes([good[-3] ^ 1]) + good[-2:]
        assert _refused(d, tampered) == "image_hash_mismatch"
        assert h.total_len == len(good)
        # none of it touched the running slot
        st = boot.load_state(d)
        assert st["active"] == "a" and st["slots"]["b"]["state"] in ("empty", "refused")
        assert boot.choose(d) == ("a", False)

    _gate(body)


def test_mcu_gate_checks_the_mpy_abi():
    def body(d):
        dev = device("mcu")
        ok = make(profile=image.PROFILE_MCU, mpy=(6, 3))
        assert agent(d, dev).stage(ok)["mpy"] == "6.3"
        other = make(profile=image.PROFILE_MCU, mpy=(6, 2), counter=2)
        assert raises(ImageRefused, agent(d, dev).stage, other).reason == "image_wrong_target"

    _gate(body)


def _transfer(a, data, upto):
    h = image.parse_header(data)
    offset, crc = a.begin(len(data), hashlib.sha256(data).digest(), data[: h.head_len])
    while offset < upto:
        offset = a.write(offset, data[offset : min(offset + 1000, upto)])
    return offset


def test_truncated_transfer_is_refused_then_resumes_after_power_cut():
    def body(d):
        confirmed_gate(d)
        data = make(version=(1, 5, 0), counter=2, files={"firmware/x.py": bytes(range(256)) * 40})
        a = agent(d, running="a")
        assert _transfer(a, data, 6000) == 6000
        assert raises(ImageRefused, a.finish).reason == "image_truncated"
        # power cut: a fresh agent (new boot) resumes from what is durable, with its CRC
        from binascii import crc32

        b = agent(d, running="a")
        h = image.parse_header(data)
        offset, crc = b.begin(len(data), hashlib.sha256(data).digest(), data[: h.head_len])
        assert offset == 6000 and crc == crc32(data[:6000]) & 0xFFFFFFFF
        assert b.write(7000, data[7000:8000]) == 6000  # out of order: ignored, asks for 6000
        while offset < len(data):
            offset = b.write(offset, data[offset : offset + 1000])
        assert b.finish()["version"] == "1.5.0"
        assert not os.listdir(d).count("staging.part")

    _gate(body)


def test_another_image_restarts_the_staging():
    def body(d):
        confirmed_gate(d)
        a = agent(d, running="a")
        first = make(version=(1, 5, 0), counter=2, files={"firmware/x.py": bytes(9000)})
        _transfer(a, first, 4000)
        second = make(version=(1, 6, 0), counter=2)
        h = image.parse_header(second)
        offset, _crc = a.begin(len(second), hashlib.sha256(second).digest(), second[: h.head_len])
        assert offset == 0

    _gate(body)


def test_no_update_while_a_trial_runs():
    def body(d):
        confirmed_gate(d)
        agent(d, running="a").stage(make(version=(2, 0, 0), counter=2))
        agent(d, running="a").request_test()
        boot.choose(d)
        e = raises(ImageRefused, agent(d, running="b").stage, make(version=(3, 0, 0), counter=2))
        assert e.reason == "update_busy"

    _gate(body)


def test_every_transition_is_in_the_table():
    st = boot.empty_state()
    assert boot.step(st, "a", "stage") == "staging"
    raises(boot.StateError, boot.step, st, "a", "confirm")
    for (state, event), (nxt, _actions) in boot.TABLE.items():
        st["slots"]["b"] = {"state": state}
        assert boot.step(st, "b", event) == nxt


def test_the_table_moves_the_slot_pointers():
    st = boot.empty_state()
    for event in ("stage", "staged", "test"):
        boot.step(st, "b", event)
    assert st["pending"] == "b" and st["trial"] is None
    boot.step(st, "b", "boot")
    assert st["pending"] is None and st["trial"] == "b" and st["slots"]["b"]["attempts"] == 1
    boot.step(st, "b", "retry")
    assert st["slots"]["b"]["attempts"] == 2
    boot.step(st, "b", "confirm")
    assert st["trial"] is None and st["active"] == "b" and "attempts" not in st["slots"]["b"]
    st["slots"]["b"]["version"] = "2.0.0"
    boot.step(st, "b", "superseded")
    boot.step(st, "b", "stage")
    assert st["slots"]["b"] == {"state": "staging"}  # the old image is forgotten


def test_state_file_is_replaced_whole():
    def body(d):
        st = boot.empty_state()
        st["floor"] = 9
        boot.save_state(d, st)
        with open(d + "/boot.json") as f:
            assert json.load(f)["floor"] == 9
        assert "boot.json.tmp" not in os.listdir(d)
        with open(d + "/boot.json", "w") as f:
            f.write('{"v": 99}')
        raises(boot.StateError, boot.load_state, d)

    _gate(body)
