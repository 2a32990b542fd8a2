"""Images on the operator's machine: `faregate image build|sign|verify` with the operator's
release key from `faregate keys init`, the MCU profile's .mpy files, what the signature covers
(real ES256 through OpenSSL), and programming a new `faregate sim device` with an image."""

import os
import subprocess

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.maintenance.update_agent import ImageRefused, UpdateAgent
from host_sim.hardware.sim_device import mpy_of_unix_port
from protocol import image
from provisioning import image_build
from tests.conftest import faregate_argv
from tests.imagekit import BUILD_TIME, ROOT, Release, build, write


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        faregate_argv(*args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return Release(str(tmp_path_factory.mktemp("keys")))


def test_cli_build_sign_verify_with_the_operator_release_key(tmp_path) -> None:
    """One way to make keys: `faregate keys init`; images are signed with its release.key
    (encrypted with FAREGATE_PASSPHRASE here) and checked with release.pub or the key."""
    op = os.path.join(tmp_path, "op")
    env = dict(os.environ, FAREGATE_PASSPHRASE="correct horse")
    assert run("keys", "init", "--dir", op, env=env).returncode == 0
    assert run("keys", "init", "--dir", os.path.join(tmp_path, "other")).returncode == 0
    key = os.path.join(op, "release.key")
    pub = os.path.join(op, "release.pub")
    other = os.path.join(tmp_path, "other", "release.pub")
    img = os.path.join(tmp_path, "gate.fgi")
    assert run("image", "keygen", "--out", key).returncode == 2  # gone: keys init makes it

    r = run("image", "build", "--version", "1.4.2", "--counter", "7", "--out", img)
    assert r.returncode == 0 and "UNSIGNED" in r.stdout, r.stderr
    r = run("image", "sign", img, "--key", os.path.join(tmp_path, "nope.key"))
    assert r.returncode == 2 and "faregate keys init" in r.stderr
    r = run("image", "verify", img, "--key", pub)
    assert r.returncode == 4 and "image_unsigned" in r.stderr

    r = run("image", "sign", img, "--key", key)  # no passphrase: refused, says which
    assert r.returncode == 2 and "FAREGATE_PASSPHRASE" in r.stderr, r.stderr
    r = run("image", "sign", img, "--key", key, env=env)
    assert r.returncode == 0 and "signed" in r.stdout, r.stderr
    r = run("image", "verify", img, "--key", key, "--files", env=env)
    assert r.returncode == 0, r.stderr
    assert "linux image 1.4.2, security counter 7" in r.stdout
    assert (
        "firmware/maintenance/update_agent.py" in r.stdout
        and "drivers/mcu/entry.py" not in r.stdout
    )

    assert "image_unknown_key" in run("image", "verify", img, "--key", other).stderr
    r = run("image", "verify", img, "--key", pub, "--profile", "mcu")
    assert r.returncode == 1 and "image_wrong_target" in r.stderr
    r = run("image", "verify", img, "--key", pub, "--floor", "8")
    assert r.returncode == 1 and "image_rollback" in r.stderr
    r = run("image", "verify", img, "--key", pub, "--floor", "7", "--json")
    assert r.returncode == 0 and '"ok": true' in r.stdout

    with open(img, "rb") as f:
        data = bytearray(f.read())
    data[-10] ^= 0x20  # one bit of the last file
    write(str(tmp_path), "tampered.fgi", bytes(data))
    r = run("image", "verify", os.path.join(tmp_path, "tampered.fgi"), "--key", pub)
    assert r.returncode == 1 and "image_hash_mismatch" in r.stderr
    r = run("image", "build", "--version", "1.x", "--out", img)
    assert r.returncode == 2 and "fix:" in r.stderr


def test_signature_covers_every_byte_that_decides_acceptance(release: Release) -> None:
    data = build(release, "1.0.0", 5)
    h = image.parse_header(data)
    device = {"profile": "linux", "release_keys": [release.pub.hex()]}
    agent = UpdateAgent("", OpenSSLVerifier(), device)
    head = data[: h.head_len]
    agent.check_head(head, 0)
    for i in range(h.head_len):  # header, signature and manifest: every byte, one bit each
        bad = bytearray(head)
        bad[i] ^= 0x01
        with pytest.raises(ImageRefused) as e:
            agent.check_head(bytes(bad), 0)
        assert e.value.reason in (
            "image_malformed",
            "image_bad_signature",
            "image_unknown_key",
            "image_unsigned",
            "image_unknown_alg",
            "image_truncated",
        ), i


def test_mcu_image_is_mpy_only_and_matches_the_unix_port(release: Release) -> None:
    assert image_build.mpy_cross_abi() == (6, 3)
    assert mpy_of_unix_port() == "6.3"  # the interpreter that runs the portable tests
    data = build(release, "1.0.0", 1, profile="mcu")
    _h, m, off = image.parse(data)
    assert m.mpy == (6, 3) and m.profile_name == "mcu"
    paths = [f.path for f in m.files]
    assert paths and all(p.endswith(".mpy") for p in paths)
    assert "drivers/mcu/entry.mpy" in paths and "drivers/linux/crypto_openssl.mpy" not in paths
    assert "firmware/maintenance/boot.mpy" in paths and "protocol/image.mpy" in paths
    for _f, start, _end in image.file_spans(m, off):
        assert data[start : start + 2] == b"M\x06"


def test_builds_are_reproducible(release: Release) -> None:
    a = image_build.build(ROOT, "linux", "1.0.0", 1, BUILD_TIME)
    b = image_build.build(ROOT, "linux", "1.0.0", 1, BUILD_TIME)
    assert a == b
    # ES256 signatures are randomized, but both verify
    for signed in (image_build.sign(a, release.key), image_build.sign(b, release.key)):
        assert image_build.check(signed, [release.pub])["signed"]


def test_sim_device_is_programmed_once_with_a_signed_factory_image(tmp_path, release) -> None:
    unsigned = write(str(tmp_path), "unsigned.fgi", build(None, "1.0.0", 1))
    sim = ("sim", "device", "--state", str(tmp_path / "gate"), "--link-dir", str(tmp_path))
    r = run(*sim, "--image", unsigned, "--release-key", release.path)
    assert r.returncode == 2 and "image_unsigned" in r.stderr and "fix:" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "gate" / "device.json")  # still a blank gate
    r = run(*sim, "--release-key", str(tmp_path / "nope.pub"))
    assert r.returncode == 2 and "nope.pub not found" in r.stderr, r.stderr
