"""Images on the operator's machine: `faregate image keygen|build|sign|verify`, the MCU
profile's .mpy files, and what the signature covers (real ES256 through OpenSSL)."""

import os
import subprocess

import pytest

from drivers.crypto_openssl import OpenSSLVerifier
from firmware.update_agent import ImageRefused, UpdateAgent
from host_sim.sim_gate import mpy_of_unix_port
from protocol import image
from provisioning import image_build
from tests.conftest import faregate_argv
from tests.imagekit import BUILD_TIME, ROOT, Release, build, write


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(faregate_argv(*args), capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return Release(str(tmp_path_factory.mktemp("keys")))


def test_cli_keygen_build_sign_verify(tmp_path: os.PathLike[str]) -> None:
    key = os.path.join(tmp_path, "release.pem")
    other = os.path.join(tmp_path, "other.pem")
    img = os.path.join(tmp_path, "gate.fgi")
    r = run("image", "keygen", "--out", key)
    assert r.returncode == 0 and "public key: 0" in r.stdout, r.stderr
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert run("image", "keygen", "--out", other).returncode == 0
    assert run("image", "keygen", "--out", key).returncode == 2  # refuses to overwrite

    r = run("image", "build", "--version", "1.4.2", "--counter", "7", "--out", img)
    assert r.returncode == 0 and "UNSIGNED" in r.stdout, r.stderr
    r = run("image", "verify", img, "--key", key)
    assert r.returncode == 4 and "image_unsigned" in r.stderr

    r = run("image", "sign", img, "--key", key)
    assert r.returncode == 0 and "signed" in r.stdout, r.stderr
    r = run("image", "verify", img, "--key", key, "--files")
    assert r.returncode == 0, r.stderr
    assert "linux image 1.4.2, security counter 7" in r.stdout
    assert "firmware/update_agent.py" in r.stdout and "drivers/mcu_gate.py" not in r.stdout

    assert "image_unknown_key" in run("image", "verify", img, "--key", other).stderr
    r = run("image", "verify", img, "--key", key, "--profile", "mcu")
    assert r.returncode == 1 and "image_wrong_target" in r.stderr
    r = run("image", "verify", img, "--key", key, "--floor", "8")
    assert r.returncode == 1 and "image_rollback" in r.stderr
    r = run("image", "verify", img, "--key", key, "--floor", "7", "--json")
    assert r.returncode == 0 and '"ok": true' in r.stdout

    with open(img, "rb") as f:
        data = bytearray(f.read())
    data[-10] ^= 0x20  # one bit of the last file
    write(str(tmp_path), "tampered.fgi", bytes(data))
    r = run("image", "verify", os.path.join(tmp_path, "tampered.fgi"), "--key", key)
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
    assert "drivers/mcu_gate.mpy" in paths and "drivers/crypto_openssl.mpy" not in paths
    assert "firmware/boot.mpy" in paths and "protocol/image.mpy" in paths
    for _f, start, _end in image.file_spans(m, off):
        assert data[start : start + 2] == b"M\x06"


def test_builds_are_reproducible(release: Release) -> None:
    a = image_build.build(ROOT, "linux", "1.0.0", 1, BUILD_TIME)
    b = image_build.build(ROOT, "linux", "1.0.0", 1, BUILD_TIME)
    assert a == b
    # ES256 signatures are randomized, but both verify
    for signed in (image_build.sign(a, release.key), image_build.sign(b, release.key)):
        assert image_build.check(signed, [release.pub])["signed"]


def test_sim_gate_refuses_a_blank_state_without_a_factory_image(tmp_path) -> None:
    r = run("sim", "gate", "--state", str(tmp_path / "blank"))
    assert r.returncode == 2
    assert "is a blank gate" in r.stderr and "--image FACTORY.fgi" in r.stderr
