"""Build ride codes inside portable tests, where no ES256 signer exists.

`HashSigner` is a stand-in signature scheme (sig = SHA-256(key || message) twice) with the same
shape as ES256, so the pipeline's order and reasons can be tested on MicroPython. The real
signature backends are tested separately against Wycheproof and `cryptography`.
"""

import hashlib

from protocol import ridecode


def fake_sig(pub, message):
    h = hashlib.sha256(bytes(pub) + bytes(message)).digest()
    return h + h


class HashVerifier:
    def verify(self, pub, message, sig):
        return bytes(sig) == fake_sig(pub, message)


ISSUER_PUB = b"\x02" + bytes(range(32))
RIDER_PUB = b"\x03" + bytes(range(32, 64))
NOW = 1767254400


def credential(
    account_id=42,
    valid_from=NOW - 3600,
    valid_until=NOW + 86400,
    scope=1,
    key_id=1,
    issuer_pub=ISSUER_PUB,
    cred_no=1,
):
    c = ridecode.Credential(
        key_id, account_id, cred_no, valid_from, valid_until, scope, 0, 5000, RIDER_PUB
    )
    body = c.body()
    return body + fake_sig(issuer_pub, body)


def code(cred=None, time=NOW, counter=1, rider_pub=RIDER_PUB):
    cred = cred or credential()
    sig = fake_sig(rider_pub, ridecode.rider_signing_input(cred, time, counter))
    return ridecode.encode(cred, time, counter, sig)
