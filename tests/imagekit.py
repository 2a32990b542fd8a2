"""Helpers for the CPython image and flashing tests: release keys, images, simulated gates."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drivers import crypto_openssl as es256
from host_sim.sim_gate import SimGate
from provisioning import image_build, pki

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_TIME = 1767254400


class Release:
    """A release key on disk (PEM) and its public half."""

    def __init__(self, directory: str, name: str = "release") -> None:
        self.key = pki.new_key()
        self.path = os.path.join(directory, name + ".pem")
        pki.save_key(self.key, self.path)
        self.pub = es256.public_bytes(self.key)


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


@contextmanager
def running_gate(
    state_dir: str, factory: bytes | None, keys: list[bytes], profile: str = "linux", **kw: Any
) -> Iterator[SimGate]:
    """A simulated gate (programmed with `factory` if given) running until the block ends."""
    if factory is not None:
        SimGate.create(state_dir, factory, keys, profile)
    gate = SimGate(state_dir, **kw)
    gate.start()
    try:
        gate.wait_state(
            lambda st: st.get("active") and not st.get("trial") and not st.get("pending")
        )
        yield gate
    finally:
        gate.stop()
