"""The pure-Python P-256 (protocol/p256.py): Wycheproof, RFC 6979, and sign/verify round trips.

Runs on MicroPython too, which is the point: the MCU gate's verifier is checked on the MCU's
interpreter. (tests/test_crypto.py adds the checks against `cryptography` on CPython.)
"""

from protocol import p256
from tests.portable.harness import IS_MICROPYTHON, read_json, vectors

WYCHEPROOF = ("wycheproof", "ecdsa_secp256r1_sha256_p1363_test.json")

# RFC 6979, appendix A.2.5 (P-256, SHA-256)
RFC6979_KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC6979_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
RFC6979_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
RFC6979 = [
    (
        b"sample",
        0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
        0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
        0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8,
    ),
    (
        b"test",
        0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
        0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
        0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083,
    ),
]


def _wycheproof_groups():
    data = read_json(vectors(*WYCHEPROOF))
    assert data["algorithm"] == "ECDSA" and data["numberOfTests"] == 262
    for group in data["testGroups"]:
        pub = bytes.fromhex(group["publicKey"]["uncompressed"])
        cases = []
        for tc in group["tests"]:
            if tc["result"] in ("valid", "invalid"):
                cases.append((tc, bytes.fromhex(tc["msg"]), bytes.fromhex(tc["sig"])))
        yield pub, cases


def _wycheproof_cases():
    for pub, cases in _wycheproof_groups():
        for tc, msg, sig in cases:
            yield tc, pub, msg, sig


def test_wycheproof_p1363_every_valid_and_invalid_case():
    v = p256.Verifier()
    seen = {"valid": 0, "invalid": 0}
    wrong = []
    for tc, pub, msg, sig in _wycheproof_cases():
        seen[tc["result"]] += 1
        if v.verify(pub, msg, sig) != (tc["result"] == "valid"):
            wrong.append(tc["tcId"])
    assert seen["valid"] > 100 and seen["invalid"] > 50, seen
    assert not wrong, "p256.Verifier disagrees with Wycheproof on tcId %s" % wrong


def test_wycheproof_with_precomputed_key_tables_and_plain_reference():
    # The fixed-base table path (trusted issuer keys) and the plain reference, on every case
    # on CPython; on MicroPython on every 8th key (a table takes ~65 ms and ~100 KB there).
    v = p256.Verifier()
    wrong = []
    step = 8 if IS_MICROPYTHON else 1
    checked = 0
    for i, (pub, cases) in enumerate(_wycheproof_groups()):
        if i % step:
            continue
        table = v.prepare_key(pub)
        for tc, msg, sig in cases:
            want = tc["result"] == "valid"
            if table and v.verify(pub, msg, sig) != want:
                wrong.append(("table", tc["tcId"]))
            if p256.verify_plain(pub, msg, sig) != want:
                wrong.append(("plain", tc["tcId"]))
            checked += 1
        v.forget_keys()
    assert checked > 20 and not wrong, wrong


def test_rfc6979_deterministic_signatures():
    s = p256.Signer(RFC6979_KEY)
    assert s.public_point == (RFC6979_UX, RFC6979_UY)
    for msg, k, r, sig_s in RFC6979:
        h1 = __import__("hashlib").sha256(msg).digest()
        assert next(p256.rfc6979_nonces(RFC6979_KEY, h1)) == k
        assert s.sign(msg) == r.to_bytes(32, "big") + sig_s.to_bytes(32, "big")
        assert p256.Verifier().verify(s.public_key, msg, s.sign(msg))


def test_sign_verify_round_trip_and_tampering():
    s = p256.Signer(b"\x01" * 32)
    v = p256.Verifier()
    for i in range(5):
        msg = b"challenge %d" % i
        sig = s.sign(msg)
        assert v.verify(s.public_key, msg, sig)
        assert p256.verify_plain(s.public_key, msg, sig)
        assert not v.verify(s.public_key, msg + b"!", sig)
        bad = bytearray(sig)
        bad[40] ^= 1
        assert not v.verify(s.public_key, msg, bytes(bad))
    # the same key, uncompressed
    assert v.verify(p256.encode_point(s.public_point, False), b"x", s.sign(b"x"))


def test_malformed_keys_and_signatures_are_false_not_errors():
    s = p256.Signer(7)
    sig = s.sign(b"m")
    v = p256.Verifier()
    n = p256.N.to_bytes(32, "big")
    for pub, bad_sig in (
        (b"", sig),
        (b"\x02" + b"\xff" * 32, sig),  # x >= p
        (b"\x05" + s.public_key[1:], sig),  # bad prefix
        (b"\x04" + bytes(64), sig),  # not on the curve
        (s.public_key, sig[:63]),
        (s.public_key, bytes(64)),  # r = s = 0
        (s.public_key, n + sig[32:]),  # r = n
        (s.public_key, sig[:32] + n),  # s = n
    ):
        assert v.verify(pub, b"m", bad_sig) is False
        assert p256.verify_plain(pub, b"m", bad_sig) is False


def test_secret_range_and_generate():
    for bad in (0, p256.N):
        try:
            p256.Signer(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("secret %d accepted" % bad)
    draws = iter([b"\xff" * 32, (5).to_bytes(32, "big")])  # first draw >= n is redrawn
    s = p256.generate(lambda n: next(draws))
    assert s.secret_bytes() == (5).to_bytes(32, "big")
