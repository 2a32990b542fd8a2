"""ES256 through `cryptography` (OpenSSL): the Linux gate's signature backend.

The same interface as protocol/p256.py (the MicroPython backend), so the entry point can hand
either to firmware (`firmware.platform.set_crypto(drivers.linux.crypto_openssl)`):
    verifier() -> OpenSSLVerifier      .verify(pub_sec1, msg, sig_rs) -> bool, .prepare_key(pub)
    signer(secret32) -> OpenSSLSigner  .sign(msg) -> sig_rs, .public_key (SEC1 compressed)
"""

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_CURVE = ec.SECP256R1()
_ALG = ec.ECDSA(hashes.SHA256())
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class OpenSSLVerifier:
    """Verifies raw r||s ES256 signatures; caches parsed public keys (issuer keys repeat)."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._keys: dict[bytes, ec.EllipticCurvePublicKey | None] = {}
        self._cache_size = cache_size

    def _key(self, pub: bytes) -> ec.EllipticCurvePublicKey | None:
        key = self._keys.get(pub, False)
        if key is False:
            pub = bytes(pub)
            try:
                key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, pub)
            except ValueError:
                key = None
            if len(self._keys) >= self._cache_size:
                self._keys.clear()
            self._keys[pub] = key
        return key  # type: ignore[return-value]

    def prepare_key(self, pub: bytes) -> bool:
        """Load a key that will verify many signatures (a trusted issuer key)."""
        return self._key(bytes(pub)) is not None

    def verify(self, pub: bytes, message: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        if not (0 < r < _N and 0 < s < _N):
            return False
        key = self._key(pub)
        if key is None:
            return False
        try:
            key.verify(encode_dss_signature(r, s), message, _ALG)
            return True
        except InvalidSignature:
            return False


class OpenSSLSigner:
    """A private key as the signer object the portable core takes: `.sign(msg) -> r||s` (random k,
    as OpenSSL does), `.public_key` (SEC1 compressed). Sync and service authentication use it."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key
        self.public_key = public_bytes(key)

    def sign(self, message: bytes) -> bytes:
        return sign(self.key, message)

    def secret_bytes(self) -> bytes:
        return self.key.private_numbers().private_value.to_bytes(32, "big")


def verifier() -> OpenSSLVerifier:
    return OpenSSLVerifier()


def signer(secret: bytes | int) -> OpenSSLSigner:
    d = secret if isinstance(secret, int) else int.from_bytes(secret, "big")
    return OpenSSLSigner(ec.derive_private_key(d, _CURVE))


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVE)


def public_bytes(key: ec.EllipticCurvePrivateKey, compressed: bool = True) -> bytes:
    fmt = PublicFormat.CompressedPoint if compressed else PublicFormat.UncompressedPoint
    return key.public_key().public_bytes(Encoding.X962, fmt)


def sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(bytes(message), _ALG))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
