"""P1: ride-code verification throughput against the two-signature limit, same run."""

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.util import rate, row
from drivers.crypto_openssl import OpenSSLVerifier
from firmware.validator import IssuerKey, Validator, ValidatorConfig
from host_sim.wallet import Issuer, Rider

NOW = 1_767_254_400


def p1() -> list[dict]:
    issuer = Issuer(key_id=1)
    riders = [Rider() for _ in range(50)]
    for i, r in enumerate(riders):
        issuer.issue(r, account_id=i + 1, valid_from=NOW - 60, valid_until=NOW + 86400)
    n = 2000
    codes = [riders[i % len(riders)].present(NOW) for i in range(n)]

    # Reference: two cryptography verifies per code (issuer's, rider's), keys already loaded.
    key = issuer.key.public_key()
    msg = b"x" * 64
    der = issuer.key.sign(msg, ec.ECDSA(hashes.SHA256()))
    alg = ec.ECDSA(hashes.SHA256())

    def two_verifies(k: int) -> None:
        for _ in range(k):
            key.verify(der, msg, alg)
            key.verify(der, msg, alg)

    limit = rate(two_verifies, n)

    v = Validator(
        OpenSSLVerifier(),
        {1: IssuerKey(1, issuer.public_key)},
        config=ValidatorConfig(gate_scope=1, window_s=60, skew_s=10),
    )

    def verify_all(k: int) -> None:
        for text in codes[:k]:
            if not v.check(text, NOW).accept:
                raise AssertionError("benchmark code refused")

    ours = rate(verify_all, n)
    return [
        row(
            "P1",
            "ride-code verification, full pipeline, one core",
            ours,
            "codes/s",
            limit,
            ">= 0.85 x two-verify limit",
        )
    ]


BENCHES = {"P1": p1}
