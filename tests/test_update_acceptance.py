"""Issue 7's acceptance scenario end to end, run the way an operator and a technician run it.

The operator's keys (`faregate keys init`, `faregate keys technician`); one simulated gate
(`faregate sim device`, trusting the operator's release.pub) found by port auto-detection and
provisioned (`faregate provision`); an image built and signed (`faregate image build`,
`faregate image sign` with operator/release.key) and flashed over the pty inside the console's
authenticated session (`faregate flash`): trial boot, self-test, confirm, and
`faregate device status` showing the new version. Then a trial image that crashes at boot: the
gate reverts by itself and keeps the confirmed version.
"""

import json
import os
import subprocess

from provisioning import ports
from tests.conftest import faregate_argv
from tests.imagekit import patched_tree
from tests.simgate import Field


def test_build_sign_flash_confirm_status_and_a_crashing_trial_reverts(tmp_path) -> None:
    def cli(*args: str) -> None:
        subprocess.run(faregate_argv(*args), check=True, capture_output=True, cwd=str(tmp_path))

    cli("keys", "init", "--dir", "op", "--operator", "Metro Test")
    cli("keys", "technician", "--dir", "op", "--name", "alice", "--id", "7", "--out", "alice")
    field = Field(tmp_path, str(tmp_path / "op"), {"alice": str(tmp_path / "alice")})
    try:
        gate = field.gate(extra=("--release-key", str(tmp_path / "op" / "release.pub")))
        assert field.run("provision", "--site", field.site, "--port", gate.port).returncode == 0
        port = [] if not ports.usb_ports() else ["--port", gate.port]  # else: auto-detected

        # the operator: build, then sign with the release key of `faregate keys init`
        p = field.run(  # from tmp_path: --src defaults to the faregate tree that runs
            "image", "build", "--version", "1.1.0", "--counter", "2", "--out", "v1.1.0.fgi"
        )
        assert p.returncode == 0 and "UNSIGNED" in p.stdout, p.stderr
        p = field.run("image", "sign", "v1.1.0.fgi", "--key", "op/release.key")
        assert p.returncode == 0 and "signed v1.1.0.fgi" in p.stdout, p.stderr

        # the technician: flash it; the gate boots it on trial, self-tests and confirms it
        p = field.run("flash", "v1.1.0.fgi", *port)
        assert p.returncode == 0, p.stdout + p.stderr
        out = p.stdout.splitlines()
        assert out[0] == "Connected to gate 1017 (in_service) on %s" % (port[1:] or [gate.link])[0]
        assert out[1] == "Gate: linux profile, slot a running 0.1.0 (security counter 1)"
        assert "Hash of data verified. Staged 1.1.0 in slot b." in out
        assert out[-1] == "Gate confirmed 1.1.0 in slot b after its self-test."
        assert "app: self-test passed, slot b confirmed" in gate.console()
        assert [e["ev"] for e in gate.log_events("flash_activate", 1)] == ["flash_activate"]

        p = field.run("device", "status", *port)
        assert p.returncode == 0, p.stderr
        assert "firmware:      1.1.0 in slot b, confirmed (security counter 2)" in p.stdout
        assert "other slot:    a: previous (0.1.0)" in p.stdout
        assert "last update:   confirmed 1.1.0 in slot b" in p.stdout
        p = field.run("device", "identify", *port)
        assert p.stdout.startswith("gate 1017: in_service, faregate-sim 1.1.0"), p.stdout

        # a trial image that crashes as it boots: the gate goes back to 1.1.0 by itself
        src = patched_tree(
            str(tmp_path / "broken"),
            {"drivers/linux/entry.py": "def main(ctx):\n    raise RuntimeError('boom')\n"},
        )
        p = field.run(
            "image",
            "build",
            "--src",
            src,
            "--version",
            "2.0.0",
            "--counter",
            "3",
            "--key",
            "op/release.key",
            "--out",
            "v2.0.0.fgi",
        )
        assert p.returncode == 0, p.stderr
        p = field.run("flash", "v2.0.0.fgi", *port, "--json")
        assert p.returncode == 1, p.stdout + p.stderr
        *_, last, result = field.events(p)
        assert result["event"] == "result" and result["outcome"] == "reverted", result
        assert last["event"] == "reverted", last
        assert last["status"]["slot"] == "b" and last["status"]["version"] == "1.1.0"
        assert last["status"]["last"]["reason"] == "trial_not_confirmed"
        assert any("RuntimeError: boom" in line for line in gate.console())
        p = field.run("device", "status", *port, "--json")
        img = json.loads(p.stdout.splitlines()[-1])["image"]
        assert (img["slot"], img["version"], img["floor"]) == ("b", "1.1.0", 2)
        assert img["last"]["event"] == "reverted" and img["last"]["version"] == "2.0.0"
        assert os.path.exists(tmp_path / "gate" / "slot_a")  # the refused trial stays for study
    finally:
        field.close()
