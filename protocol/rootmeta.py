"""Root metadata: which keys a gate trusts for each role, and the root's threshold signatures.

As in TUF's root.json, one small signed blob names, for every role, its keys and how many of
them must sign (its threshold); the root role signs the blob itself, so the root can rotate
every key, its own included. docs/security.md ("Roles", "Root rotation", "Claiming") has the
rules and a vector. Pure functions, strict parsing (exact lengths, known roles in order, nothing
trailing), portable to MicroPython.

Roles and what each signs (SIGNS; firmware/compose/roles.py and the console apply it):

    1 root        this metadata (and its successor), root-signed configs (security settings),
                  releases of a claimed gate, set-time beyond the technician's bound
    2 sync        sync sessions (the back office's CHALLENGE and every host message): config
                  that changes no security setting, fare tables, the offers themselves
    3 release     firmware images (protocol/image.py)
    4 lists       trust lists and deny lists (protocol/trustlist.py, denylist.py)
    5 technician  technician credentials (protocol/certs.py) and device certificates

Root metadata (version 1), big-endian:

    4   magic "FGRM"
    1   u8  format (1)
    4   u32 version           1, 2, ... ; a gate takes only version held + 1
    4   u32 issued_at         unix time
    4   u32 expires           unix time: a gate refuses a root past it (root_expired)
    1   u8  n_roles           5: every role once, in role order
    n_roles x  u8 role | u8 threshold (1..n_keys) | u8 n_keys (1..8) | n_keys x 33-byte SEC1
                          compressed public key (distinct within the role)
    --- the signed body ends here ---
    1   u8  n_sigs            1..16
    n_sigs x   u32 key_id (protocol.certs.key_id) | 64-byte ES256 signature (r || s) over
                          the body; key ids distinct

A root-signed statement (a security config, a release) has the same tail: body | u8 n_sigs |
n x (u32 key_id | 64 sig), its body starting with its own magic:

    security config  "FGSC" | u8 format 1 | u32 device_id | u32 security_version
                     | u32 len | len bytes of the config's JSON
    release          "FGRL" | u8 format 1 | u32 device_id | u32 root version released

A signature counts towards a threshold when its key id is one of the role's keys, each key
once, and it verifies over the body.
"""

import struct

from protocol import sigtail
from protocol.certs import key_id
from protocol.errors import FormatError

MAGIC = b"FGRM"
CONFIG_MAGIC = b"FGSC"
RELEASE_MAGIC = b"FGRL"
FORMAT = 1
PUB_LEN = 33
SIG_LEN = 64
MAX_KEYS = 8  # per role
MAX_SIGS = 16
MAX_CONFIG = 16 * 1024  # the console's config limit (protocol/service.py BLOBS)

ROOT = 1
SYNC = 2
RELEASE = 3
LISTS = 4
TECHNICIAN = 5
ROLES = (ROOT, SYNC, RELEASE, LISTS, TECHNICIAN)
ROLE_NAMES = {
    ROOT: "root",
    SYNC: "sync",
    RELEASE: "release",
    LISTS: "lists",
    TECHNICIAN: "technician",
}
ROLE_IDS = {
    "root": ROOT,
    "sync": SYNC,
    "release": RELEASE,
    "lists": LISTS,
    "technician": TECHNICIAN,
}
# what each role signs, for docs/security.md and the tools' --help (the gate's checks follow it)
SIGNS = {
    ROOT: "root metadata, root-signed configs (security settings), releases, set-time beyond "
    "the bound",
    SYNC: "sync sessions: configs that change no security setting, fare tables, offers",
    RELEASE: "firmware images",
    LISTS: "trust lists and deny lists",
    TECHNICIAN: "technician credentials and device certificates",
}
# the reasons (protocol/reasons.py, 280-289) its checks and the gate's raise
REASONS = (
    "root_malformed",
    "root_threshold",
    "root_rollback",
    "root_expired",
    "config_needs_root",
    "claim_foreign",
    "release_refused",
    "svc_bad_credential",
)
MAX_LEN = 4 + 1 + 12 + 1 + len(ROLES) * (3 + MAX_KEYS * PUB_LEN) + 1 + MAX_SIGS * (4 + SIG_LEN)


class Root:
    """One root metadata: `roles` maps each role to (threshold, [SEC1 public keys])."""

    def __init__(self, version, issued_at, expires, roles, body=b"", sigs=()):
        self.version = version
        self.issued_at = issued_at
        self.expires = expires
        self.roles = roles
        self.body = body  # the signed bytes, once encoded or parsed
        self.sigs = list(sigs)  # [(key_id, sig)]

    def keys(self, role):
        return self.roles[role][1]

    def threshold(self, role):
        return self.roles[role][0]

    def key_ids(self, role):
        return [key_id(k) for k in self.keys(role)]


def implicit(anchor, sync_key=None):
    """The root a gate claimed with only an operator root key (`anchor`) trusts: version 0,
    that key alone for every role but sync (`sync_key`, the config's sync.host_key, if any)."""
    roles = {}
    for role in ROLES:
        roles[role] = (1, [bytes(anchor)])
    roles[SYNC] = (1, [bytes(sync_key)] if sync_key else [])
    return Root(0, 0, 0xFFFFFFFF, roles)


def _bad(message):
    return FormatError(message, "root_malformed")


def encode(root) -> bytes:
    """The signed body of `root` (its roles checked as `parse` checks them)."""
    out = [MAGIC, struct.pack(">BIIIB", FORMAT, root.version, root.issued_at, root.expires, 5)]
    for role in ROLES:
        if role not in root.roles:
            raise _bad("role %s has no keys" % ROLE_NAMES[role])
        threshold, keys = root.roles[role]
        _check_role(role, threshold, keys)
        out.append(struct.pack(">BBB", role, threshold, len(keys)))
        out.extend(bytes(k) for k in keys)
    if len(root.roles) != len(ROLES):
        raise _bad("unknown role")
    return b"".join(out)


def _check_role(role, threshold, keys):
    name = ROLE_NAMES[role]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise _bad("role %s has %d keys (1..%d)" % (name, len(keys), MAX_KEYS))
    if not 1 <= threshold <= len(keys):
        raise _bad("role %s: threshold %d of %d keys" % (name, threshold, len(keys)))
    ids = []
    for k in keys:
        if len(k) != PUB_LEN or k[0] not in (2, 3):
            raise _bad("role %s: a key is not a compressed P-256 point" % name)
        if key_id(k) in ids:
            raise _bad("role %s names a key twice" % name)
        ids.append(key_id(k))


def sign(body, signers) -> bytes:
    """`body` with the signatures of `signers` (objects with .public_key, .sign(msg))."""
    return sigtail.sign(body, signers, "root_malformed")


def attach(body, sigs) -> bytes:
    """`body` with signatures [(key_id, 64-byte sig)] (collected from several key holders)."""
    return sigtail.attach(body, sigs, "root_malformed")


def split(data, body_len):
    """(body, [(key_id, sig)]) of a signed blob whose body is `body_len` bytes."""
    return sigtail.split(data, body_len, "root_malformed")


def parse(data) -> Root:
    """A Root from its bytes, strictly (FormatError root_malformed); signatures not checked."""
    root, at = _parse_body(bytes(data))
    root.body, root.sigs = split(data, at)
    return root


def body_len(data) -> int:
    """How many leading bytes of `data` (root metadata, a root-signed config or a release,
    signed or not yet) are its signed body."""
    data = bytes(data)
    magic = data[:4]
    if magic == MAGIC:
        return _parse_body(data)[1]
    if magic == CONFIG_MAGIC and len(data) >= 17:
        return 17 + struct.unpack(">I", data[13:17])[0]
    if magic == RELEASE_MAGIC:
        return 13
    raise _bad("not root metadata, a root-signed config or a release (magic %r)" % magic)


def add_signatures(data, sigs) -> bytes:
    """`data` (a body, or one already signed) with `sigs` [(key_id, sig)] added (a key that
    signed before: its new signature replaces the old): how key holders sign in turn."""
    n = body_len(data)
    body = bytes(data)[:n]
    held = split(data, n)[1] if len(data) > n else []
    mine = [kid for kid, _s in sigs]
    return attach(body, [s for s in held if s[0] not in mine] + list(sigs))


def parse_body(data) -> Root:
    """The Root of an unsigned body (what `faregate keys root-rotate` writes), strictly."""
    root, at = _parse_body(bytes(data))
    if at != len(data):
        raise _bad("%d bytes after the body" % (len(data) - at))
    return root


def _parse_body(data):
    """(Root without signatures, length of its body) of root metadata."""
    if len(data) > MAX_LEN:
        raise _bad("root metadata of %d bytes is over %d" % (len(data), MAX_LEN))
    if len(data) < 18 or data[:4] != MAGIC:
        raise _bad("not root metadata (magic %r)" % data[:4])
    fmt, version, issued_at, expires, n_roles = struct.unpack(">BIIIB", data[4:18])
    if fmt != FORMAT:
        raise _bad("root metadata format %d, this gate knows %d" % (fmt, FORMAT))
    if n_roles != len(ROLES):
        raise _bad("%d roles, expected %d" % (n_roles, len(ROLES)))
    at = 18
    roles = {}
    for role in ROLES:
        if len(data) < at + 3:
            raise _bad("root metadata cut short in its roles")
        got, threshold, n = data[at], data[at + 1], data[at + 2]
        if got != role:
            raise _bad("role %d where role %d (%s) belongs" % (got, role, ROLE_NAMES[role]))
        at += 3
        if len(data) < at + n * PUB_LEN:
            raise _bad("root metadata cut short in role %s" % ROLE_NAMES[role])
        keys = [data[at + i * PUB_LEN : at + (i + 1) * PUB_LEN] for i in range(n)]
        _check_role(role, threshold, keys)
        roles[role] = (threshold, keys)
        at += n * PUB_LEN
    return Root(version, issued_at, expires, roles, data[:at]), at


def signers(body, sigs, keys, verifier) -> list:
    """The key ids among `keys` whose signature in `sigs` verifies over `body`."""
    by_id = {}
    for k in keys:
        by_id[key_id(k)] = k
    good = []
    for kid, sig in sigs:
        pub = by_id.get(kid)
        if pub is not None and kid not in good and verifier.verify(pub, body, sig):
            good.append(kid)
    return good


def check_threshold(root, role, body, sigs, verifier, what) -> None:
    """FormatError root_threshold unless a threshold of `root`'s `role` keys signed `body`."""
    need = root.threshold(role)
    got = len(signers(body, sigs, root.keys(role), verifier))
    if got < need:
        raise FormatError(
            "%s: %d valid signature(s) of the %s role (version %d), %d needed"
            % (what, got, ROLE_NAMES[role], root.version, need),
            "root_threshold",
        )


def lists_keys(root):
    """(keys, threshold, {key id: role name} of the other roles' keys) of root's lists role:
    what firmware.verify.truststore.ListKeys takes, so that a list signed by, say, the sync key
    is refused as list_wrong_role rather than list_unknown_key."""
    roles = {}
    for role in ROLES:
        if role != LISTS:
            for k in root.keys(role):
                roles.setdefault(key_id(k), ROLE_NAMES[role])
    return root.keys(LISTS), root.threshold(LISTS), roles


def check_update(trusted, data, verifier, now) -> Root:
    """The root metadata `data`, if a gate that trusts `trusted` may take it in its place: the
    next version, signed by a threshold of the trusted root keys and of its own, not expired.
    Raises FormatError (root_malformed, root_rollback, root_threshold, root_expired)."""
    new = parse(data)
    if new.version <= trusted.version:
        raise FormatError(
            "root version %d is not above version %d held" % (new.version, trusted.version),
            "root_rollback",
        )
    if new.version != trusted.version + 1:
        raise FormatError(
            "root version %d skips version %d: take them in order"
            % (new.version, trusted.version + 1),
            "root_rollback",
        )
    check_threshold(trusted, ROOT, new.body, new.sigs, verifier, "root version %d" % new.version)
    check_threshold(new, ROOT, new.body, new.sigs, verifier, "root version %d" % new.version)
    if now >= new.expires:
        raise FormatError(
            "root version %d expired at %d (gate time %d)" % (new.version, new.expires, now),
            "root_expired",
        )
    return new


# -- root-signed statements ------------------------------------------------------------------
def security_config(device_id, security_version, config_json) -> bytes:
    """The body of a root-signed config (sign it with `sign`)."""
    cfg = bytes(config_json)
    if len(cfg) > MAX_CONFIG:
        raise _bad("config of %d bytes is over %d" % (len(cfg), MAX_CONFIG))
    head = struct.pack(">BIII", FORMAT, device_id, security_version, len(cfg))
    return CONFIG_MAGIC + head + cfg


def parse_security_config(data):
    """-> (device_id, security_version, config JSON bytes, body, sigs)."""
    data = bytes(data)
    if len(data) < 17 or data[:4] != CONFIG_MAGIC:
        raise _bad("not a root-signed config")
    fmt, device_id, sv, n = struct.unpack(">BIII", data[4:17])
    if fmt != FORMAT:
        raise _bad("root-signed config format %d, this gate knows %d" % (fmt, FORMAT))
    if n > MAX_CONFIG:
        raise _bad("config of %d bytes is over %d" % (n, MAX_CONFIG))
    body, sigs = split(data, 17 + n)
    return device_id, sv, body[17:], body, sigs


def release(device_id, root_version) -> bytes:
    """The body of a release: the root lets gate `device_id` forget its binding at reset."""
    return RELEASE_MAGIC + struct.pack(">BII", FORMAT, device_id, root_version)


def parse_release(data):
    """-> (device_id, root_version, body, sigs)."""
    data = bytes(data)
    if len(data) < 13 or data[:4] != RELEASE_MAGIC:
        raise _bad("not a release")
    fmt, device_id, version = struct.unpack(">BII", data[4:13])
    if fmt != FORMAT:
        raise _bad("release format %d, this gate knows %d" % (fmt, FORMAT))
    body, sigs = split(data, 13)
    return device_id, version, body, sigs
