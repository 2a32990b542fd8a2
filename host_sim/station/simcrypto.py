"""The simulator's signature backend: OpenSSL's (drivers/linux/crypto_openssl.py), with one
verifier for the whole run that remembers the answer for every signature it has checked.

    crypto = SimCrypto()
    Device.open(state_dir, hw, clock, crypto=crypto)   # every gate's verifier: crypto.verifier()
    HostSession(store, signer, crypto.verifier(), ...)  # the back office's, the issuers' too

In one simulated day a rider's signature is checked by the gate that accepts the code, then
again by the back office building each issuer's statement and by the issuer verifying it, and
an issuer's signature over a credential once per passage of its rider. The answer for one
(public key, message, signature) never changes, so the run checks each once: a signature or a
message changed by a tampering operator or a forger is a new triple and is checked for real.
The firmware is unchanged and runs its verifications as it does on a gate (the simulator only
hands it this backend); the answers, and so every report, are the same as with the plain
backend, in less wall time (benchmark P8, docs/scenarios.md).
"""

import hashlib
from typing import Any

from drivers.linux import crypto_openssl
from drivers.linux.crypto_openssl import OpenSSLVerifier


class MemoVerifier(OpenSSLVerifier):
    """OpenSSLVerifier whose verify() remembers each (key, signature, message hash) answer."""

    def __init__(self) -> None:
        super().__init__()
        self._answers: dict[bytes, bool] = {}
        self.checked = 0  # signatures verified for real (the others were remembered)

    def verify(self, pub: bytes, message: bytes, sig: bytes) -> bool:
        k = bytes(pub) + bytes(sig) + hashlib.sha256(message).digest()
        ok = self._answers.get(k)
        if ok is None:
            self.checked += 1
            ok = self._answers[k] = super().verify(pub, message, sig)
        return ok


class SimCrypto:
    """firmware.platform's crypto interface (`verifier()`, `signer(secret)`, ...): OpenSSL's,
    with the one shared MemoVerifier."""

    def __init__(self) -> None:
        self.shared = MemoVerifier()

    def verifier(self) -> MemoVerifier:
        return self.shared

    def __getattr__(self, name: str) -> Any:
        return getattr(crypto_openssl, name)
