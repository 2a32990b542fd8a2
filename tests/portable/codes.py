"""Build ride codes, trust lists and deny lists inside portable tests, with real ES256.

protocol/p256.py signs on both interpreters (RFC 6979, so everything here is deterministic).
The keys are fixed test keys; never use them for anything else.
"""

import hashlib

from protocol import denylist, p256, ridecode, trustlist

NOW = 1767254400  # 2026-01-01T08:00:00Z

ISSUER = p256.Signer(0x1D1D0001)
ISSUER2 = p256.Signer(0x1D1D0002)  # a second issuer key (rotation)
RIDER = p256.Signer(0x2A2A0001)
RIDER2 = p256.Signer(0x2A2A0002)
ROOT = p256.Signer(0x3C3C0001)  # the operator root that signs lists
FORGER = p256.Signer(0x4E4E0001)  # not trusted by anyone

ISSUER_PUB = ISSUER.public_key
RIDER_PUB = RIDER.public_key
ROOTS = {1: ROOT.public_key}

HOST_PUB = b"\x03" + bytes(range(2, 34))  # the back office's stand-in sync key (sync_kit.MiniHost)

VERIFIER = p256.Verifier()  # shared, so fixed-base tables are built once per run


def credential(
    account_id=42,
    valid_from=NOW - 3600,
    valid_until=NOW + 86400,
    scope=1,
    key_id=1,
    issuer=ISSUER,
    cred_no=1,
    rider=RIDER,
    offline_limit=5000,
    risk_class=0,
):
    c = ridecode.Credential(
        key_id,
        account_id,
        cred_no,
        valid_from,
        valid_until,
        scope,
        risk_class,
        offline_limit,
        rider.public_key,
    )
    body = c.body()
    return body + issuer.sign(body)


def code(cred=None, time=NOW, counter=1, rider=RIDER):
    cred = cred or credential()
    sig = rider.sign(ridecode.rider_signing_input(cred, time, counter))
    return ridecode.encode(cred, time, counter, sig)


def issuer_key(key_id=1, signer=ISSUER, scope=0xFF, valid_from=0, valid_until=0xFFFFFFFF):
    return trustlist.IssuerKey(key_id, signer.public_key, scope, valid_from, valid_until)


def trust_blob(version=1, keys=None, valid_until=NOW + 7 * 86400, signer=ROOT, root_key_id=1):
    keys = keys if keys is not None else [issuer_key()]
    return trustlist.build(version, NOW - 600, valid_until, keys, signer.sign, root_key_id)


def deny_snapshot(version, keys, signer=ROOT, valid_until=0):
    """A signed deny snapshot of `keys` (entries: protocol.denylist.entry, or bare u64 keys,
    which are issuer 0's); `signer`: one signer or a list (the lists role's)."""
    return denylist.build_snapshot(version, NOW - 60, keys, signer, valid_until=valid_until)


def deny_delta(from_v, to_v, adds=(), removes=(), signer=ROOT, valid_until=0):
    return denylist.build_delta(from_v, to_v, NOW - 30, adds, removes, signer, valid_until)


# A stand-in signature scheme (sig = SHA-256(key || message) twice), kept for tests of other
# formats (images) that predate real signing here; ride-code tests use the real keys above.


def fake_sig(pub, message):
    h = hashlib.sha256(bytes(pub) + bytes(message)).digest()
    return h + h


class HashVerifier:
    def verify(self, pub, message, sig):
        return bytes(sig) == fake_sig(pub, message)
