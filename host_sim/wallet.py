"""The issuing wallet: issuer keys sign credentials, rider device keys sign presentations.

This is what a wallet operator's backend and a rider's phone do, in one place for tests and
the simulator. Keys are `cryptography` EC keys; signatures are raw r||s (ES256).
"""

from cryptography.hazmat.primitives.asymmetric import ec

from drivers import crypto_openssl as es256
from protocol import ridecode


class Issuer:
    def __init__(self, key_id: int, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.key_id = key_id
        self.key = key or es256.generate_key()

    @property
    def public_key(self) -> bytes:
        return es256.public_bytes(self.key)

    def issue(
        self,
        rider: "Rider",
        account_id: int,
        valid_from: int,
        valid_until: int,
        cred_no: int = 1,
        scope: int = 0xFFFF,
        risk_class: int = 0,
        offline_limit: int = 5000,
    ) -> bytes:
        cred = ridecode.Credential(
            self.key_id,
            account_id,
            cred_no,
            valid_from,
            valid_until,
            scope,
            risk_class,
            offline_limit,
            rider.public_key,
        )
        body = cred.body()
        cred_bytes = body + es256.sign(self.key, body)
        rider.credential = cred_bytes
        return cred_bytes


class Rider:
    """A phone: holds its device key and a credential, mints presentations offline."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.key = key or es256.generate_key()
        self.credential = b""
        self.counter = 0

    @property
    def public_key(self) -> bytes:
        return es256.public_bytes(self.key)

    def present(self, now: int) -> str:
        """Mint the ride code text the phone would show at time `now`."""
        if not self.credential:
            raise ValueError("rider has no credential yet")
        self.counter += 1
        msg = ridecode.rider_signing_input(self.credential, now, self.counter)
        return ridecode.encode(self.credential, now, self.counter, es256.sign(self.key, msg))


def render_png(text: str, path: str, box_size: int = 4, border: int = 4) -> str:
    """Render ride-code text as a QR PNG (alphanumeric mode, ECC level M)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    qr.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
    qr.make(fit=True)
    qr.make_image().save(path)
    return path
