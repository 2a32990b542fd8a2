"""Flashing a simulated gate over a real pty with pyserial: the whole update path.

Each gate is host_sim.sim_gate.SimGate: a bootloader that picks slot a or b, the image's own
code running in a child process (CPython for linux, the MicroPython unix port for mcu), and
its service port on a pty. `faregate flash` runs as a subprocess, as an operator runs it.
"""

import json
import os
import subprocess

import pytest

from firmware import boot
from provisioning.flash import FlashClient, FrameLink, Refused, open_port
from tests.conftest import faregate_argv
from tests.imagekit import ROOT, Release, build, patched_tree, running_gate, write


def flash_cli(port: str, img: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        faregate_argv("flash", "--port", port, img, "--boot-timeout", "30", *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return Release(str(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def v1(release: Release) -> bytes:
    return build(release, "1.0.0", 1)


def test_build_to_confirmed_in_two_commands(tmp_path, release: Release, v1: bytes) -> None:
    img = os.path.join(tmp_path, "gate.fgi")
    with running_gate(str(tmp_path / "gate"), v1, [release.pub]) as gate:
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
        r = flash_cli(gate.path, img)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Gate: linux profile, slot a running 1.0.0" in r.stdout
        assert "Hash of data verified. Staged 1.1.0 in slot b." in r.stdout
        assert "Gate confirmed 1.1.0 in slot b after its self-test." in r.stdout
        st = gate.state()
        assert st["active"] == "b" and st["floor"] == 2
        assert st["slots"]["a"]["state"] == "previous"
        assert gate.boots == [boot.EXIT_REBOOT]  # one reboot into the trial, no crash


def test_each_refusal_over_the_pty(tmp_path, release: Release) -> None:
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
    with running_gate(str(tmp_path / "gate"), factory, [release.pub]) as gate:
        for name, data, code, reason in cases:
            r = flash_cli(gate.path, write(str(tmp_path), name + ".fgi", data))
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


def test_truncated_transfer_is_refused_and_resumes(tmp_path, release: Release, v1: bytes) -> None:
    v2 = build(release, "1.2.0", 2)
    img = write(str(tmp_path), "v2.fgi", v2)
    with running_gate(str(tmp_path / "gate"), v1, [release.pub]) as gate:
        port = open_port(gate.path, 115200)
        try:
            client = FlashClient(FrameLink(port))
            from protocol import image

            offset, chunk, window = client.begin(v2, image.parse_header(v2).head_len)
            assert offset == 0
            client.send(v2, 0, chunk, window, stop_at=len(v2) // 2)  # the cable is pulled
            with pytest.raises(Refused) as e:
                client.end()
            assert e.value.reason == "image_truncated"
        finally:
            port.close()
        assert gate.state()["slots"]["b"]["state"] == "staging"
        r = flash_cli(gate.path, img)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Resuming at 0x%08x" % (len(v2) // 2) in r.stdout, r.stdout
        assert "Gate confirmed 1.2.0 in slot b" in r.stdout


def test_crashing_trial_image_reverts_by_itself(tmp_path, release: Release, v1: bytes) -> None:
    src = patched_tree(
        str(tmp_path),
        {"drivers/linux_gate.py": "def main(ctx):\n    raise RuntimeError('boom at boot')\n"},
    )
    img = write(str(tmp_path), "crash.fgi", build(release, "2.0.0", 2, src=src))
    with running_gate(str(tmp_path / "gate"), v1, [release.pub]) as gate:
        r = flash_cli(gate.path, img)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Gate REVERTED to slot a running 1.0.0" in r.stdout
        assert "trial_not_confirmed" in r.stdout
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["b"]["state"] == "reverted"
        assert st["floor"] == 1  # a trial that never confirmed raises nothing
        assert gate.boots[0] == boot.EXIT_REBOOT and gate.boots[1] == 1  # reboot, crash
        with open(os.path.join(gate.dir, "console.log")) as f:
            assert "boom at boot" in f.read()


def test_failing_self_test_reverts(tmp_path, release: Release, v1: bytes) -> None:
    src = patched_tree(str(tmp_path), {"protocol/broken.py": "import no_such_module\n"})
    img = write(str(tmp_path), "broken.fgi", build(release, "2.0.0", 2, src=src))
    with running_gate(str(tmp_path / "gate"), v1, [release.pub]) as gate:
        r = flash_cli(gate.path, img, "--json")
        assert r.returncode == 1, r.stdout + r.stderr
        events = [json.loads(line) for line in r.stdout.splitlines()]
        last = events[-1]
        assert last["event"] == "reverted"
        assert last["status"]["last"]["reason"].startswith("self_test_failed: imports: protocol")
        assert any(e["event"] == "progress" for e in events)
        assert gate.boots == [boot.EXIT_REBOOT, boot.EXIT_REBOOT]


def test_mcu_image_runs_from_mpy_on_micropython(tmp_path, release: Release) -> None:
    m1 = build(release, "1.0.0", 1, profile="mcu")
    with running_gate(str(tmp_path / "gate"), m1, [release.pub], profile="mcu") as gate:
        st = gate.state()
        assert st["active"] == "a" and st["slots"]["a"]["state"] == "confirmed"
        with open(os.path.join(gate.dir, "console.log")) as f:
            log = f.read()
        # the self-test imported every module from the slot's .mpy files, on MicroPython
        assert "self-test passed, slot a confirmed" in log
        assert not [p for p in _files(gate.dir + "/slot_a") if p.endswith(".py")]
        m2 = write(str(tmp_path), "m2.fgi", build(release, "1.1.0", 2, profile="mcu"))
        r = flash_cli(gate.path, m2)
        if os.path.exists(os.path.join(ROOT, "protocol", "p256.py")):
            assert r.returncode == 0 and "Gate confirmed 1.1.0" in r.stdout, r.stderr
        else:  # no pure-Python verifier yet: the gate must refuse what it cannot check
            assert r.returncode == 4 and "no_verifier" in r.stderr, r.stderr
            assert "Gate: mcu profile, slot a running 1.0.0" in r.stdout


def _files(top: str) -> list[str]:
    return [os.path.join(d, f) for d, _s, fs in os.walk(top) for f in fs]


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16])
def test_power_cut_at_a_random_point_of_an_update(
    tmp_path, release: Release, v1: bytes, seed: int
) -> None:
    """The gate loses power (SIGKILL) somewhere between the first byte and the confirm; it
    must come back running a confirmed image, and the same flash command must then finish."""
    import random
    import time

    rng = random.Random(seed)
    img = write(str(tmp_path), "v2.fgi", build(release, "1.1.0", 2))
    # paced at 1 Mbaud so the transfer takes about a second and the cut lands inside it
    with running_gate(str(tmp_path / "gate"), v1, [release.pub], baud=1_000_000) as gate:
        proc = subprocess.Popen(
            faregate_argv(
                "flash", "--port", gate.path, img, "--timeout", "2", "--boot-timeout", "20"
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
        r = flash_cli(gate.path, img)
        assert r.returncode == 0, "seed %d: %s %s" % (seed, r.stdout, r.stderr)
        st = gate.state()
        assert st["slots"][st["active"]]["version"] == "1.1.0" and st["floor"] == 2, seed
