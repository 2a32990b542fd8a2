"""Helpers for the CPython image and flashing tests: release keys, images, simulated gates."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drivers.linux import crypto_openssl as es256
from host_sim.hardware.sim_device import SimDevice
from provisioning import image_build, operator_keys, pki
from provisioning.console import ServiceClient
from provisioning.transport import Transport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_TIME = 1767254400


class Release:
    """A release key on disk (PEM) and its public half."""

    def __init__(self, directory: str, name: str = "release") -> None:
        self.key = pki.new_key()
        self.path = os.path.join(directory, name + ".pem")
        pki.save_key(self.key, self.path)
        self.pub = es256.public_bytes(self.key)


class Operator:
    """An operator directory (`faregate keys init`) and a technician credential from it."""

    def __init__(self, directory: str, role: str = "provision", now: int = BUILD_TIME) -> None:
        self.dir = os.path.join(directory, "operator")
        operator_keys.init_operator(self.dir, "Test Metro", now)
        self.cred_dir = os.path.join(directory, "tech-" + role)
        operator_keys.issue_technician(self.dir, self.cred_dir, 7, "alice", role, 3650, now)
        self.cred = operator_keys.Credential(self.cred_dir)


def build(
    release: Release | None,
    version: str,
    counter: int,
    profile: str = "linux",
    src: str = ROOT,
) -> bytes:
    data = image_build.build(src, profile, version, counter, BUILD_TIME)
    return image_build.sign(data, release.key) if release else data


def write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def patched_tree(directory: str, patches: dict[str, str]) -> str:
    """A copy of this checkout's packages with some files replaced (broken images)."""
    src = os.path.join(directory, "src")
    for pkg in image_build.PACKAGES:
        shutil.copytree(
            os.path.join(ROOT, pkg),
            os.path.join(src, pkg),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for rel, text in patches.items():
        with open(os.path.join(src, rel), "w") as f:
            f.write(text)
    return src


def claim(port: str, op: Operator) -> dict[str, Any]:
    """The first session with a blank gate: it takes the operator's root as its anchor."""
    with Transport(port, timeout=5) as link:
        client = ServiceClient(link)
        client.hello()
        return client.authenticate(op.cred.signer, op.cred.raw, op.cred.anchor, claim=True)


@contextmanager
def running_gate(
    state_dir: str,
    factory: bytes | None,
    keys: list[bytes],
    op: Operator | None = None,
    **kw: Any,
) -> Iterator[SimDevice]:
    """A simulated gate (programmed with `factory` if given, claimed by `op` if given)
    running, its console serving, until the block ends."""
    if factory is not None:
        SimDevice.program(state_dir, factory, keys, 1017)
    gate = SimDevice(state_dir, **kw)
    gate.start()
    try:
        assert gate.ready.wait(60), "the gate did not come up: %s" % gate.dir
        if op is not None:
            claim(gate.path, op)
        yield gate
    finally:
        gate.stop()
