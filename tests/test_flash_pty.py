"""Flashing a simulated gate over a real pty with pyserial: the whole update path.

Each gate is host_sim.hardware.sim_device.SimDevice: a bootloader that picks slot a or b, the
image's own code running in a child process (CPython for linux, the MicroPython unix port for mcu),
and its service console on a pty. The gate is claimed by a test operator; `faregate flash`
runs as a subprocess with that operator's technician credential, as a technician runs it.
"""

import json
import os
import subprocess

import pytest

from firmware.maintenance import boot
from protocol import image
from provisioning.console import ServiceClient
from provisioning.flasher import FlashClient, Refused
from provisioning.transport import Transport
from tests.conftest import faregate_argv
from tests.imagekit import (
    ROOT,
    Operator,
    Release,
    build,
    claim,
    patched_tree,
    running_gate,
    write,
)


def flash_cli(op: Operator, port: str, img: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        faregate_argv(
            "flash", "--port", port, img, "--cred", op.cred_dir, "--boot-timeout", "30", *extra
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def release(keydir: str) -> Release:
    return Release(keydir)


@pytest.fixture(scope="module")
def op(keydir: str) -> Operator:
    return Operator(keydir)


@pytest.fixture(scope="module")
def v1(release: Release) -> bytes:
    return build(release, "1.0.0", 1)


def test_build_to_confirmed_in_two_commands(tmp_path, release, op, v1) -> None:
    img = os.path.join(tmp_path, "gate.fgi")
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op) as gate:
        r = subprocess.run(
            faregate_argv(
                "image",
                "build",
                "--version",
                "1.1.0",
                "--counter",
                "2",
                "--key",
                release.path,
                "--out",
                img,
            ),
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr
        r = flash_cli(op, gate.path, img)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Connected to gate 1017 (claimed) on %s" % gate.path in r.stdout
        assert "Gate: linux profile, slot a running 1.0.0" in r.stdout
        assert "Hash of data verified. Staged 1.1.0 in slot b." in r.stdout
        assert "Gate confirmed 1.1.0 in slot b after its self-test." in r.stdout
        st = gate.state()
        assert st["active"] == "b" and st["floor"] == 2
        assert st["slots"]["a"]["state"] == "previous"
        assert gate.boots == [boot.EXIT_REBOOT]  # one reboot into the trial, no crash


def test_each_refusal_over_the_pty(tmp_path, release, op) -> None:
    other = Release(str(tmp_path), "other")
    factory = build(release, "1.0.0", 3)
    good = build(release, "1.1.0", 3)
    tampered = bytearray(good)
    tampered[-100] ^= 0x01  # a byte of the last file; header and manifest untouched
    cases = [
        ("unsigned", build(None, "1.1.0", 3), 4, "image_unsigned"),
        ("unknown-key", build(other, "1.1.0", 3), 4, "image_unknown_key"),
        ("tampered", bytes(tampered), 1, "image_hash_mismatch"),
        ("wrong-target", build(release, "1.1.0", 3, profile="mcu"), 1, "image_wrong_target"),
        ("rollback", build(release, "0.9.0", 2), 1, "image_rollback"),
    ]
    with running_gate(str(tmp_path / "gate"), factory, [release.pub], op) as gate:
        for name, data, code, reason in cases:
            r = flash_cli(op, gate.path, write(str(tmp_path), name + ".fgi", data))
            assert r.returncode == code, (name, r.stdout, r.stderr)
            assert reason in r.stderr and "fix:" in r.stderr, (name, r.stderr)
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["a"]["version"] == "1.0.0"
        assert st["last"] == {
            "event": "refused",
            "reason": "image_rollback",
            "message": "security counter 2 is below 3, the gate's confirmed counter",
        }
        assert gate.boots == []  # never rebooted


def test_flash_frames_outside_an_authenticated_session_are_refused(tmp_path, release, v1):
    """On the service port, image frames need a session with the provision role: none at
    all, a new session not yet authenticated, or a maintain-only credential are refused."""
    v2 = build(release, "1.2.0", 2)
    head = v2[: image.parse_header(v2).head_len]
    maint = Operator(str(tmp_path / "m"), role="maintain")
    with running_gate(str(tmp_path / "gate"), v1, [release.pub]) as gate:
        with Transport(gate.path, timeout=2) as link:
            flasher = FlashClient(link)
            with pytest.raises(Refused) as e:
                flasher.begin(v2, len(head))
            assert e.value.reason == "svc_not_provisioned"  # a blank gate: claim it first
            client = ServiceClient(link)
            client.hello()
            client.authenticate(maint.cred.signer, maint.cred.raw, maint.cred.anchor, True)
            client.hello()  # a new session, not yet authenticated
            for ask in (lambda: flasher.begin(v2, len(head)), flasher.query, flasher.activate):
                with pytest.raises(Refused) as e:
                    ask()
                assert e.value.reason == "svc_unauthenticated" and e.value.exit_code == 4
            client.authenticate(maint.cred.signer, maint.cred.raw, maint.cred.anchor, False)
            with pytest.raises(Refused) as e:
                flasher.begin(v2, len(head))
            assert e.value.reason == "svc_forbidden"
        r = flash_cli(maint, gate.path, write(str(tmp_path), "v2.fgi", v2))
        assert r.returncode == 4 and "svc_forbidden" in r.stderr, r.stderr
        assert "use one with role full" in r.stderr
        st = gate.state()
        assert st["slots"]["b"]["state"] == "empty" and "staging.part" not in os.listdir(gate.dir)
        assert st["last"] == {"event": "confirmed", "slot": "a", "version": "1.0.0"}
        with open(os.path.join(gate.dir, "service.log")) as f:
            refused = [json.loads(line) for line in f if '"refused"' in line]
        assert [e["reason"] for e in refused] == [
            "svc_not_provisioned",
            "svc_unauthenticated",
            "svc_unauthenticated",
            "svc_unauthenticated",
            "svc_forbidden",
            "svc_forbidden",
        ]


def test_truncated_transfer_is_refused_and_resumes(tmp_path, release, op, v1) -> None:
    v2 = build(release, "1.2.0", 2)
    img = write(str(tmp_path), "v2.fgi", v2)
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op) as gate:
        with Transport(gate.path, timeout=2) as link:
            client = ServiceClient(link)
            client.hello()
            client.authenticate(op.cred.signer, op.cred.raw, op.cred.anchor, False)
            flasher = FlashClient(link)
            offset, chunk, window = flasher.begin(v2, image.parse_header(v2).head_len)
            assert offset == 0
            flasher.send(v2, 0, chunk, window, stop_at=len(v2) // 2)  # the cable is pulled
            with pytest.raises(Refused) as e:
                flasher.end()
            assert e.value.reason == "image_truncated"
        assert gate.state()["slots"]["b"]["state"] == "staging"
        r = flash_cli(op, gate.path, img)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Resuming at 0x%08x" % (len(v2) // 2) in r.stdout, r.stdout
        assert "Gate confirmed 1.2.0 in slot b" in r.stdout


def test_crashing_trial_image_reverts_by_itself(tmp_path, release, op, v1) -> None:
    src = patched_tree(
        str(tmp_path),
        {"drivers/linux/entry.py": "def main(ctx):\n    raise RuntimeError('boom at boot')\n"},
    )
    img = write(str(tmp_path), "crash.fgi", build(release, "2.0.0", 2, src=src))
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op) as gate:
        r = flash_cli(op, gate.path, img)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Gate REVERTED to slot a running 1.0.0" in r.stdout
        assert "trial_not_confirmed" in r.stdout
        # and why: what the trial raised, and where
        assert "trial_not_confirmed: crashed: RuntimeError: boom at boot at entry.py:2" in r.stdout
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["b"]["state"] == "reverted"
        assert st["last"]["detail"] == "crashed: RuntimeError: boom at boot at entry.py:2"
        assert "crash" not in st  # said in `last`, then forgotten
        assert st["floor"] == 1  # a trial that never confirmed raises nothing
        assert gate.boots[0] == boot.EXIT_REBOOT and gate.boots[1] == 1  # reboot, crash
        with open(os.path.join(gate.dir, "console.log")) as f:
            assert "boom at boot" in f.read()


def test_activate_only_and_rollback_send_no_image(tmp_path, release, op, v1) -> None:
    """--no-activate stages; --activate-only boots it later; --rollback boots the previous
    image again: neither resends a byte, both go through the trial, and a rollback below the
    gate's confirmed security counter is refused before anything moves."""
    same = write(str(tmp_path), "v11.fgi", build(release, "1.1.0", 1))
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op) as gate:
        r = flash_cli(op, gate.path, same, "--no-activate")
        assert r.returncode == 0 and "Not activated (--no-activate)" in r.stdout, r.stderr
        assert gate.state()["slots"]["b"]["state"] == "staged" and gate.boots == []
        r = flash_cli(op, gate.path, "--activate-only", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        events = [json.loads(line) for line in r.stdout.splitlines()]
        assert not [e for e in events if e["event"] in ("progress", "written", "verified")]
        result = events[-1]
        assert result["event"] == "result" and result["ok"] and result["exit_code"] == 0
        assert (result["command"], result["outcome"]) == ("flash", "confirmed")
        assert (result["slot"], result["version"]) == ("b", "1.1.0")
        r = flash_cli(op, gate.path, "--rollback")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Rolling back to 1.0.0 in slot a for a trial boot" in r.stdout
        assert "Gate confirmed 1.0.0 in slot a after its self-test." in r.stdout
        assert "Writing" not in r.stdout
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["b"]["state"] == "previous"
        assert gate.boots == [boot.EXIT_REBOOT] * 2
        # nothing staged to activate now: said before anything moves
        r = flash_cli(op, gate.path, "--activate-only")
        assert r.returncode == 1 and "slot b holds no staged image (it is previous)" in r.stderr
        r = flash_cli(op, gate.path, same, "--rollback")
        assert r.returncode == 2 and "--rollback sends nothing" in r.stderr
        # a newer security counter confirmed: the older image may not come back
        r = flash_cli(op, gate.path, write(str(tmp_path), "v12.fgi", build(release, "1.2.0", 2)))
        assert r.returncode == 0 and "Gate confirmed 1.2.0 in slot b" in r.stdout, r.stderr
        r = flash_cli(op, gate.path, "--rollback")
        assert r.returncode == 1 and "image_rollback" in r.stderr, r.stderr
        assert "security counter 1, below 2" in r.stderr
        st = gate.state()
        assert st["active"] == "b" and st["slots"]["a"]["state"] == "previous"
        assert gate.boots == [boot.EXIT_REBOOT] * 3


def test_failing_self_test_reverts(tmp_path, release, op, v1) -> None:
    """Two broken trials: a module that does not import, and a service console that cannot
    start (the trial is only confirmed once the console it will serve with is up)."""
    cases = {
        "protocol/broken.py": ("import no_such_module\n", "imports: protocol.broken"),
        "firmware/maintenance/console.py": (
            "class ServiceConsole:\n    pass\n",
            "service console: Type",
        ),
    }
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op) as gate:
        for n, (path, (text, why)) in enumerate(sorted(cases.items())):
            src = patched_tree(str(tmp_path / str(n)), {path: text})
            img = write(str(tmp_path), "broken.fgi", build(release, "2.0.%d" % n, 2, src=src))
            r = flash_cli(op, gate.path, img, "--json")
            assert r.returncode == 1, r.stdout + r.stderr
            events = [json.loads(line) for line in r.stdout.splitlines()]
            *_, last, result = events
            assert last["event"] == "reverted"
            assert result["event"] == "result" and result["command"] == "flash"
            assert not result["ok"] and result["exit_code"] == 1
            assert result["outcome"] == "reverted" and result["reason"].startswith("self_test")
            assert last["status"]["last"]["reason"].startswith("self_test_failed: "), last
            assert why in last["status"]["last"]["reason"], last
            assert any(e["event"] == "progress" for e in events)
        assert gate.boots == [boot.EXIT_REBOOT] * 4
        assert gate.state()["active"] == "a"


def test_mcu_image_runs_from_mpy_on_micropython(tmp_path, release, op) -> None:
    m1 = build(release, "1.0.0", 1, profile="mcu")
    with running_gate(str(tmp_path / "gate"), m1, [release.pub]) as gate:
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["a"]["state"] == "confirmed"
        with open(os.path.join(gate.dir, "console.log")) as f:
            log = f.read()
        # the self-test imported every module from the slot's .mpy files, on MicroPython,
        # and the service console serves there too
        assert "self-test passed, slot a confirmed" in log
        assert gate.info["state"] == "blank" and gate.info["version"] == "1.0.0"
        assert not [p for p in _files(gate.dir + "/slot_a") if p.endswith(".py")]
        m2 = write(str(tmp_path), "m2.fgi", build(release, "1.1.0", 2, profile="mcu"))
        claim(gate.path, op)  # credentials checked with protocol/p256.py, on MicroPython
        r = flash_cli(op, gate.path, m2)
        assert r.returncode == 0 and "Gate confirmed 1.1.0" in r.stdout, r.stdout + r.stderr
        assert gate.state()["floor"] == 2


def _files(top: str) -> list[str]:
    return [os.path.join(d, f) for d, _s, fs in os.walk(top) for f in fs]


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16])
def test_power_cut_at_a_random_point_of_an_update(tmp_path, release, op, v1, seed) -> None:
    """The gate loses power (SIGKILL) somewhere between the first byte and the confirm; it
    must come back running a confirmed image, and the same flash command must then finish."""
    import random
    import time

    rng = random.Random(seed)
    img = write(str(tmp_path), "v2.fgi", build(release, "1.1.0", 2))
    # paced at 1 Mbaud so the transfer takes about a second and the cut lands inside it
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], op, baud=1_000_000) as gate:
        proc = subprocess.Popen(
            faregate_argv(
                "flash",
                "--port",
                gate.path,
                img,
                "--cred",
                op.cred_dir,
                "--timeout",
                "2",
                "--boot-timeout",
                "20",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        time.sleep(rng.uniform(0.1, 2.0))
        at = gate.state()
        gate.power_cut()
        print("seed %d: power cut with slot b %s" % (seed, at["slots"]["b"]["state"]))
        proc.communicate(timeout=60)
        st = gate.wait_state(lambda s: s.get("active") in ("a", "b") and not s.get("trial"))
        running = st["slots"][st["active"]]
        assert running["state"] == "confirmed", "seed %d: %r" % (seed, st)
        r = flash_cli(op, gate.path, img)
        assert r.returncode == 0, "seed %d: %s %s" % (seed, r.stdout, r.stderr)
        st = gate.state()
        assert st["slots"][st["active"]]["version"] == "1.1.0" and st["floor"] == 2, seed
