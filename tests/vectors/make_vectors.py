"""Generate tests/vectors/ridecode-v1.json: ride-code test vectors for other implementations.

    python tests/vectors/make_vectors.py            (re)write the file
    python tests/vectors/make_vectors.py --check    exit 1 if the file differs from a fresh run

Every signature is ES256 with RFC 6979 deterministic nonces (protocol/p256.py), so a wallet in
another language that signs the same way reproduces every byte; one that signs with random
nonces can still check it verifies each case. The secrets of these keys are published here:
they are test keys, never to be trusted anywhere.

Each case: the code text and bytes, the time the gate checks it at (`at`), codes the gate
accepted before (`before`, for replay cases), and the reason the gate must give. The gate's
state (root key, trust list, deny list, settings) is in "gate". docs/ridecode.md explains it.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from protocol import denylist, p256, ridecode, trustlist  # noqa: E402

OUT = os.path.join(ROOT, "tests", "vectors", "ridecode-v1.json")
T = 1767254400  # 2026-01-01T08:00:00Z, the gate's time for most cases
DAY = 86400

KEYS = {
    "operator_root": 0x0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F01,
    "issuer_1": 0x1111111111111111111111111111111111111111111111111111111111111111,
    "issuer_2": 0x2222222222222222222222222222222222222222222222222222222222222222,
    "rider_a": 0xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,
    "rider_b": 0xBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB,
    "forger": 0x0BADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBADBAD,
}

CONFIG = {
    "gate_scope": 1,
    "window_s": 60,
    "skew_s": 10,
    "stale_policy": "grace",
    "stale_grace_s": DAY,
    "stale_offline_limit": 0,
    "clock_policy": "limit",
    "clock_offline_limit": 0,
    "cache_size": 4096,
}


def build() -> dict:
    s = {name: p256.Signer(d) for name, d in KEYS.items()}
    root, i1, i2, ra, rb = (
        s["operator_root"],
        s["issuer_1"],
        s["issuer_2"],
        s["rider_a"],
        s["rider_b"],
    )
    keys = [
        trustlist.IssuerKey(1, i1.public_key, 0x00FF, T - 30 * DAY, T + DAY),
        trustlist.IssuerKey(2, i2.public_key, 0x00FF, T - 3600, T + 365 * DAY),
        trustlist.IssuerKey(3, i2.public_key, 0x00FF, T + DAY, T + 365 * DAY),
        # a key of a future algorithm (id 2, 40-byte key): listed, unusable for ES256 codes
        trustlist.IssuerKey(4, bytes(range(40)), 0x00FF, T - DAY, T + 365 * DAY, alg=2),
    ]
    trust = trustlist.build(1, T - 3600, T + 7 * DAY, keys, root.sign)
    denied_account = 0xDE1
    denied_cred = (0xDE2, 3)
    deny = denylist.build_snapshot(
        1,
        T - 600,
        [denylist.account_key(1, denied_account), denylist.credential_key(1, *denied_cred)],
        root,
    )

    def cred(
        issuer=i1,
        key_id=1,
        account=42,
        cred_no=1,
        vf=T - 3600,
        vu=T + 12 * 3600,
        scope=1,
        risk=0,
        limit=5000,
        rider=ra,
    ) -> bytes:
        c = ridecode.Credential(
            key_id, account, cred_no, vf, vu, scope, risk, limit, rider.public_key
        )
        body = c.body()
        return body + issuer.sign(body)

    def code(c=None, time=T - 5, counter=1, rider=ra) -> bytes:
        c = c if c is not None else cred()
        msg = ridecode.rider_signing_input(c, time, counter)
        return c + ridecode.presentation_body(time, counter) + rider.sign(msg)

    def with_bytes(raw: bytes, offset: int, value: bytes) -> bytes:
        return raw[:offset] + value + raw[offset + len(value) :]

    def text(raw: bytes) -> str:
        return ridecode.encode_bytes(raw)

    cases = []

    def case(name, what, expect, raw=None, txt=None, at=T, before=(), valid_bytes=True):
        entry = {"name": name, "what": what, "expect": expect, "at": at}
        if txt is None:
            txt = text(raw)
        entry["text"] = txt
        if raw is not None:
            entry["hex"] = raw.hex()
            if valid_bytes:
                entry["issuer_signing_input"] = raw[: ridecode.CRED_BODY_LEN].hex()
                entry["rider_signing_input"] = raw[: ridecode.CRED_LEN + 8].hex()
        if before:
            entry["before"] = [text(b) for b in before]
        cases.append(entry)

    good = code()
    case("valid_basic", "issuer key 1, rider A, shown 5 s after it was made", "accepted", good)
    case(
        "valid_rotated_key",
        "credential from issuer key 2 during the rotation overlap",
        "accepted",
        code(cred(i2, 2, account=43, vf=T - 600)),
    )
    c_max = cred(
        i2,
        2,
        account=ridecode.MAX_ACCOUNT_ID,
        cred_no=ridecode.MAX_CRED_NO,
        vf=T - 600,
        scope=0x00FF,
        risk=255,
        limit=0xFFFFFFFF,
    )
    case(
        "valid_max_fields",
        "largest account id, credential number, risk class and limit",
        "accepted",
        code(c_max, counter=0xFFFFFFFF),
    )
    case(
        "valid_window_edge",
        "presentation exactly window_s (60 s) old",
        "accepted",
        code(time=T - 60),
    )
    case(
        "valid_skew_edge",
        "presentation exactly skew_s (10 s) ahead of the gate",
        "accepted",
        code(time=T + 10),
    )
    # ECDSA malleability: (r, n - s) verifies too. Gates accept it; nothing keys on signatures.
    s_ = int.from_bytes(good[-32:], "big")
    high_s = good[:-32] + (p256.N - s_).to_bytes(32, "big")
    case(
        "valid_malleated_rider_signature",
        "rider signature (r, n-s): also valid ES256",
        "accepted",
        high_s,
        valid_bytes=True,
    )
    case(
        "valid_stale_trust_in_grace",
        "trust list 1 day past valid_until, policy grace 1 day",
        "accepted",
        code(cred(i2, 2, account=44, vf=T + 7 * DAY - 10, vu=T + 8 * DAY), time=T + 7 * DAY + 100),
        at=T + 7 * DAY + 100,
    )

    case("bad_prefix", "version prefix FG2:", "bad_prefix", txt="FG2:" + text(good)[4:])
    case("bad_length_short", "last triple missing", "bad_length", txt=text(good)[:-3])
    case("bad_base45_alphabet", "a lower-case letter", "bad_base45", txt=text(good)[:-1] + "a")
    case(
        "bad_base45_overflow", "last triple GGW = 65536", "bad_base45", txt=text(good)[:-3] + "GGW"
    )
    case(
        "bad_version",
        "version byte 2",
        "bad_version",
        with_bytes(good, 0, b"\x02"),
        valid_bytes=False,
    )
    case(
        "unknown_alg",
        "algorithm byte 2",
        "unknown_alg",
        with_bytes(good, 1, b"\x02"),
        valid_bytes=False,
    )
    case(
        "malformed_cred_no_zero",
        "credential number 0 (reserved)",
        "malformed",
        with_bytes(good, 9, b"\x00\x00\x00"),
        valid_bytes=False,
    )
    case(
        "malformed_validity",
        "valid_until == valid_from",
        "malformed",
        with_bytes(good, 16, good[12:16]),
        valid_bytes=False,
    )
    case(
        "malformed_rider_key",
        "rider key prefix 04 (uncompressed marker)",
        "malformed",
        with_bytes(good, 27, b"\x04"),
        valid_bytes=False,
    )
    case(
        "unknown_issuer",
        "issuer key id 9 is not in the trust list",
        "unknown_issuer",
        code(cred(i1, 9)),
    )
    case(
        "issuer_out_of_scope",
        "scope 0x0100 outside issuer key 1's 0x00FF",
        "issuer_out_of_scope",
        code(cred(scope=0x0101)),
    )
    case(
        "issuer_key_not_yet_valid",
        "key 3 starts tomorrow",
        "issuer_key_not_yet_valid",
        code(cred(i2, 3, vf=T + DAY, vu=T + 2 * DAY)),
    )
    case(
        "issuer_key_expired",
        "key 1 ended; checked 1 day later",
        "issuer_key_expired",
        code(cred(vf=T - 3600, vu=T + 3600), time=T + DAY + 5),
        at=T + DAY + 5,
    )
    case(
        "issuer_alg_mismatch",
        "key 4 is listed for algorithm 2, the code is ES256",
        "issuer_alg_mismatch",
        code(cred(i1, 4)),
    )
    case(
        "credential_outlives_key",
        "credential valid past key 1's valid_until",
        "credential_outlives_key",
        code(cred(vu=T + 2 * DAY)),
    )
    case(
        "forged_issuer_signature",
        "credential signed by a key that is not issuer 1",
        "bad_issuer_signature",
        code(cred(s["forger"])),
    )
    tampered = with_bytes(good, 8, bytes([good[8] ^ 1]))
    case(
        "tampered_credential",
        "account id changed after signing",
        "bad_issuer_signature",
        tampered,
        valid_bytes=False,
    )
    case(
        "credential_not_yet_valid",
        "credential starts in an hour",
        "credential_not_yet_valid",
        code(cred(vf=T + 3600, vu=T + 7200), time=T),
    )
    case(
        "credential_expired",
        "credential ended an hour ago",
        "credential_expired",
        code(cred(vf=T - 7200, vu=T - 3600)),
    )
    case(
        "out_of_scope",
        "credential scope 0x0002, gate serves 0x0001",
        "out_of_scope",
        code(cred(scope=2)),
    )
    case(
        "forged_rider_signature",
        "presentation signed by rider B's key",
        "bad_rider_signature",
        code(rider=rb),
    )
    other = code(cred(account=77, rider=rb), counter=5, rider=rb)
    swapped = good[: ridecode.CRED_LEN] + other[ridecode.CRED_LEN :]
    case(
        "swapped_presentation",
        "credential A with rider B's presentation",
        "bad_rider_signature",
        swapped,
        valid_bytes=False,
    )
    case(
        "presentation_future",
        "made 11 s ahead of the gate (skew 10)",
        "presentation_future",
        code(time=T + 11),
    )
    case(
        "presentation_stale",
        "made 61 s ago (window 60): a screenshot",
        "presentation_stale",
        code(time=T - 61),
    )
    case("replayed_same", "the same code shown twice", "replayed", good, before=[good])
    case(
        "replayed_older",
        "counter 1 after counter 2 was accepted",
        "replayed",
        good,
        before=[code(counter=2)],
    )
    case(
        "denied_account",
        "account 0xDE1 is deny-listed",
        "denied",
        code(cred(account=denied_account)),
    )
    case(
        "denied_credential",
        "credential 3 of account 0xDE2 is deny-listed",
        "denied",
        code(cred(account=denied_cred[0], cred_no=denied_cred[1])),
    )
    case(
        "not_denied_other_issuer",
        "account 0xDE1 of issuer key 2: the deny entry is issuer key 1's",
        "accepted",
        code(cred(i2, 2, account=denied_account, vf=T - 600)),
    )
    case(
        "not_denied_sibling_credential",
        "credential 4 of account 0xDE2 is not",
        "accepted",
        code(cred(account=denied_cred[0], cred_no=4)),
    )
    case(
        "trust_list_stale",
        "trust list past valid_until + grace",
        "trust_list_stale",
        code(cred(i2, 2, vf=T + 8 * DAY, vu=T + 9 * DAY), time=T + 8 * DAY + 100),
        at=T + 8 * DAY + 100,
    )

    return {
        "format": "faregate ride code v1 test vectors (docs/ridecode.md)",
        "generated_by": "tests/vectors/make_vectors.py",
        "keys": {
            name: {"secret": "%064x" % d, "public": s[name].public_key.hex()}
            for name, d in KEYS.items()
        },
        "gate": {
            "roots": {"1": root.public_key.hex()},
            "trust_list": trust.hex(),
            "deny_list": deny.hex(),
            "config": CONFIG,
        },
        "cases": cases,
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    fresh = render()
    if "--check" in argv:
        with open(OUT) as f:
            same = f.read() == fresh
        print("%s is %s" % (OUT, "up to date" if same else "STALE: run make_vectors.py"))
        return 0 if same else 1
    with open(OUT, "w") as f:
        f.write(fresh)
    print("wrote %s (%d cases)" % (OUT, len(json.loads(fresh)["cases"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
