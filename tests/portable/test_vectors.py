"""The published ride-code vectors (tests/vectors/ridecode-v1.json) give the reason they claim.

The same check another implementation would run: install the vector gate's trust and deny
lists, accept the `before` codes, check the case at `at`. Here with protocol/p256 on both
interpreters; tests/test_vectors.py repeats it with OpenSSL and checks the file is current.
"""

from firmware.verify.denystore import DenyStore
from firmware.verify.truststore import TrustStore
from firmware.verify.validator import Validator, ValidatorConfig
from protocol import p256, ridecode
from tests.portable.harness import read_json, repo_root

VECTORS = "/tests/vectors/ridecode-v1.json"


def load():
    return read_json(repo_root() + VECTORS)


def gate_validator(vectors, verifier):
    g = vectors["gate"]
    roots = {int(k): bytes.fromhex(v) for k, v in g["roots"].items()}
    trust = TrustStore(roots, verifier)
    trust.install(bytes.fromhex(g["trust_list"]))
    deny = DenyStore(None, roots, verifier)
    deny.install(bytes.fromhex(g["deny_list"]))
    return Validator(verifier, trust, deny, ValidatorConfig.from_dict(g["config"]))


def run_cases(vectors, verifier):
    """-> list of (case name, expected reason, reason given) that disagree."""
    wrong = []
    for case in vectors["cases"]:
        v = gate_validator(vectors, verifier)
        for text in case.get("before", ()):
            d = v.check(text, case["at"])
            assert d.accept, (case["name"], "before", d.reason)
            v.committed(d.code)
        d = v.check(case["text"], case["at"])
        if d.reason != case["expect"]:
            wrong.append((case["name"], case["expect"], d.reason))
    return wrong


def test_every_vector_gets_its_reason_with_the_pure_python_verifier():
    vectors = load()
    assert len(vectors["cases"]) >= 30
    assert not run_cases(vectors, p256.Verifier())


def test_vector_bytes_and_signatures_are_consistent():
    vectors = load()
    keys = vectors["keys"]
    for name, k in keys.items():
        assert p256.Signer(bytes.fromhex(k["secret"])).public_key.hex() == k["public"], name
    for case in vectors["cases"]:
        if "hex" not in case:
            continue
        raw = bytes.fromhex(case["hex"])
        assert ridecode.encode_bytes(raw) == case["text"], case["name"]
        if "issuer_signing_input" in case:
            assert raw.hex().startswith(case["rider_signing_input"])
            assert case["rider_signing_input"].startswith(case["issuer_signing_input"])
    reasons = set(c["expect"] for c in vectors["cases"])
    for must in ("accepted", "bad_issuer_signature", "bad_rider_signature", "replayed", "denied"):
        assert must in reasons
