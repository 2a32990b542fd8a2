"""The operator's root keys and what they sign (protocol/rootmeta.py), on disk.

Root keys (`faregate keys root-init --dir DIR --count N --threshold K`) are DIR/root-1.key ..
root-N.key (mode 0600, encrypted with FAREGATE_PASSPHRASE if set) and their .pub files; each
should live on its own offline medium with its own holder, brought together only to sign. The
files they sign, each signed in turn by as many holders as the threshold needs (`root-sign`
adds the signatures of the keys it is given to what is there):

    root-v<N>.meta   root metadata version N: every role's keys and threshold
    <name>.fgsc      a root-signed config (security settings) for one gate
    <name>.fgrl      a release: the gate's next factory reset forgets its binding

Defaults for a role's keys come from the operator directory of `faregate keys init`: sync.pub
for sync, release.pub for release, root.pub (today's signer of lists and credentials) for lists
and technician.
"""

import glob
import json
import os
import struct

from protocol import certs, rootmeta
from provisioning import operator_keys
from provisioning.operator_keys import KeyFileError

DAY = 86400
DEFAULT_ROLE_FILES = {
    rootmeta.SYNC: "sync.pub",
    rootmeta.RELEASE: "release.pub",
    rootmeta.LISTS: "root.pub",
    rootmeta.TECHNICIAN: "root.pub",
}


def root_key_paths(directory: str) -> list[str]:
    """DIR/root-<i>.key in order of i."""
    paths = glob.glob(os.path.join(directory, "root-*.key"))
    return sorted(paths, key=lambda p: int(os.path.basename(p)[5:-4] or 0))


def make_root_keys(directory: str, count: int) -> list[tuple[str, bytes, bool]]:
    """Create DIR/root-1.key .. root-COUNT.key where missing; never overwrite. Returns (path,
    public key, created now) for each."""
    os.makedirs(directory, exist_ok=True)
    out = []
    for i in range(1, count + 1):
        path = os.path.join(directory, "root-%d.key" % i)
        created = not os.path.exists(path)
        signer = operator_keys.new_signer(path) if created else operator_keys.load_signer(path)
        operator_keys.write_pub(path[:-4] + ".pub", signer.public_key)
        out.append((path, signer.public_key, created))
    return out


def role_keys(directory: str, role: int, given: list[str]) -> list[bytes]:
    """The public keys of `role`: the .pub files (or hex) `given`, else the directory's default."""
    if not given:
        path = os.path.join(directory, DEFAULT_ROLE_FILES[role])
        if not os.path.exists(path):
            raise KeyFileError(
                "%s not found (the %s role's default key)" % (path, rootmeta.ROLE_NAMES[role]),
                "run `faregate keys init --dir %s`, or give --%s-key"
                % (directory, rootmeta.ROLE_NAMES[role]),
            )
        given = [path]
    return [_pub(g) for g in given]


def _pub(spec: str) -> bytes:
    if os.path.exists(spec):
        return operator_keys.read_pub(spec)
    try:
        pub = bytes.fromhex(spec)
    except ValueError:
        raise KeyFileError(
            "%s: no such .pub file, nor a hex key" % spec, "check the path"
        ) from None
    if len(pub) != certs.PUB_LEN or pub[0] not in (2, 3):
        raise KeyFileError("%s is not a compressed P-256 key" % spec, "give a .pub file")
    return pub


def build(version: int, now: int, days: int, roles: dict) -> bytes:
    """The unsigned body of root metadata `version`, valid `days` from `now`."""
    try:
        return rootmeta.encode(rootmeta.Root(version, now, now + days * DAY, roles))
    except rootmeta.FormatError as e:
        raise KeyFileError(str(e), "check --threshold and the keys given") from None


def sign(data: bytes, key_paths: list[str]) -> bytes:
    """`data` with the signatures of the private keys at `key_paths` added."""
    signers = [operator_keys.load_signer(p) for p in key_paths]
    body = data[: rootmeta.body_len(data)]
    sigs = [(certs.key_id(s.public_key), bytes(s.sign(body))) for s in signers]
    return rootmeta.add_signatures(data, sigs)


def read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise KeyFileError("%s not found" % path, "check the path") from None


def write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def describe(data: bytes) -> dict:
    """What a root metadata, root-signed config or release file holds, for `root-show`."""
    n = rootmeta.body_len(data)
    sigs = rootmeta.split(data, n)[1] if len(data) > n else []
    out: dict = {"signatures": ["%08x" % kid for kid, _s in sigs]}
    magic = bytes(data[:4])
    if magic == rootmeta.MAGIC:
        root = rootmeta.parse_body(data[:n])
        out.update(kind="root", version=root.version, issued_at=root.issued_at)
        out["expires"] = root.expires
        out["roles"] = {
            rootmeta.ROLE_NAMES[r]: {
                "threshold": root.threshold(r),
                "keys": ["%08x" % k for k in root.key_ids(r)],
            }
            for r in rootmeta.ROLES
        }
    elif magic == rootmeta.CONFIG_MAGIC:
        _f, device_id, sv, _n = struct.unpack(">BIII", data[4:17])
        out.update(kind="config", device_id=device_id, security_version=sv)
        out["config"] = json.loads(bytes(data[17:n]).decode())
    else:
        _f, device_id, version = struct.unpack(">BII", data[4:13])
        out.update(kind="release", device_id=device_id, root_version=version)
    return out
