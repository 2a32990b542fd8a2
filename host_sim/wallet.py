"""The issuing wallet: the operator's root key, issuer keys, and riders' phones.

What a wallet operator's backend and a rider's phone do, in one place for tests, the simulator
and `faregate wallet`:
- `Operator` holds the root key and signs trust lists and deny lists (the lists role's key
  under the implicit root of a gate without root metadata; `lists_signers` for others);
- `Issuer` signs credentials (one issuer key id each);
- `Rider` is a phone: its device key, its credential, a counter; `present(now)` mints a code;
- `mint_bad(kind, ...)` mints a deliberately bad code of each kind in BAD_KINDS, with the reason
  a gate must give for it.

Signers are `cryptography` keys by default (drivers/linux/crypto_openssl.py); any object with
`.sign(msg) -> r||s` and `.public_key` works, e.g. protocol.p256.Signer for deterministic
(RFC 6979) test vectors.
"""

from typing import Any

from drivers.linux import crypto_openssl as es256
from protocol import denylist, ridecode, trustlist


def new_signer() -> es256.OpenSSLSigner:
    return es256.OpenSSLSigner(es256.generate_key())


def _signer(key: Any) -> Any:
    if key is None:
        return new_signer()
    if hasattr(key, "sign") and hasattr(key, "public_key") and isinstance(key.public_key, bytes):
        return key
    return es256.OpenSSLSigner(key)  # a cryptography private key


class Operator:
    """The transit operator's root key: signs the trust list and deny lists gates install."""

    def __init__(self, key: Any = None, root_key_id: int = 1, lists_signers: Any = None) -> None:
        self.signer = _signer(key)
        self.root_key_id = root_key_id
        # who signs deny and plate lists: the lists role's threshold of keys (root metadata),
        # else the root key alone (the implicit root: docs/security.md, "Roles")
        self.lists_signers = list(lists_signers) if lists_signers else [self.signer]

    @property
    def public_key(self) -> bytes:
        return bytes(self.signer.public_key)

    def roots(self) -> dict[int, bytes]:
        return {self.root_key_id: self.public_key}

    def trust_list(
        self, version: int, keys: list[trustlist.IssuerKey], issued_at: int, valid_until: int
    ) -> bytes:
        return trustlist.build(
            version, issued_at, valid_until, keys, self.signer.sign, self.root_key_id
        )

    def deny_snapshot(self, version: int, keys: list[int], issued_at: int) -> bytes:
        """A deny snapshot of `keys` (protocol.denylist.entry: issuer << 64 | key)."""
        return denylist.build_snapshot(version, issued_at, keys, self.lists_signers)

    def deny_delta(
        self,
        from_version: int,
        to_version: int,
        issued_at: int,
        adds: list[int] = (),  # type: ignore[assignment]
        removes: list[int] = (),  # type: ignore[assignment]
    ) -> bytes:
        return denylist.build_delta(
            from_version, to_version, issued_at, adds, removes, self.lists_signers
        )


class Issuer:
    def __init__(self, key_id: int, key: Any = None) -> None:
        self.key_id = key_id
        self.signer = _signer(key)

    @property
    def key(self) -> Any:
        """The cryptography private key (OpenSSL-backed issuers only)."""
        return self.signer.key

    @property
    def public_key(self) -> bytes:
        return bytes(self.signer.public_key)

    def trust_entry(
        self, scope: int = 0xFFFF, valid_from: int = 0, valid_until: int = 0xFFFFFFFF
    ) -> trustlist.IssuerKey:
        return trustlist.IssuerKey(self.key_id, self.public_key, scope, valid_from, valid_until)

    def credential(
        self,
        rider_pub: bytes,
        account_id: int,
        valid_from: int,
        valid_until: int,
        cred_no: int = 1,
        scope: int = 0xFFFF,
        risk_class: int = 0,
        offline_limit: int = 5000,
        key_id: int | None = None,
    ) -> bytes:
        """A signed credential (124 bytes) for a rider's device key."""
        cred = ridecode.Credential(
            self.key_id if key_id is None else key_id,
            account_id,
            cred_no,
            valid_from,
            valid_until,
            scope,
            risk_class,
            offline_limit,
            rider_pub,
        )
        body = cred.body()
        return body + bytes(self.signer.sign(body))

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
        """Issue a credential to `rider` (it is stored on the phone) and return it."""
        cred = self.credential(
            rider.public_key,
            account_id,
            valid_from,
            valid_until,
            cred_no,
            scope,
            risk_class,
            offline_limit,
        )
        rider.credential = cred
        rider.counter = 0
        return cred


class Rider:
    """A phone: holds its device key and a credential, mints presentations offline."""

    def __init__(self, key: Any = None, credential: bytes = b"", counter: int = 0) -> None:
        self.signer = _signer(key)
        self.credential = credential
        self.counter = counter
        self.last_code = ""

    @property
    def key(self) -> Any:
        return self.signer.key

    @property
    def public_key(self) -> bytes:
        return bytes(self.signer.public_key)

    def present(self, now: int) -> str:
        """Mint the ride code text the phone would show at time `now`."""
        if not self.credential:
            raise ValueError("rider has no credential yet")
        self.counter += 1
        self.last_code = present_with(self.signer, self.credential, now, self.counter)
        return self.last_code


def present_with(signer: Any, credential: bytes, time: int, counter: int) -> str:
    msg = ridecode.rider_signing_input(credential, time, counter)
    return ridecode.encode(credential, time, counter, bytes(signer.sign(msg)))


# kind -> (the reason a gate gives, what is wrong)
BAD_KINDS: dict[str, tuple[str, str]] = {
    "expired": ("credential_expired", "the credential ended an hour ago"),
    "not_yet_valid": ("credential_not_yet_valid", "the credential starts in an hour"),
    "forged_issuer": (
        "bad_issuer_signature",
        "credential signed by a key that is not the issuer's",
    ),
    "tampered": ("bad_issuer_signature", "one credential byte changed (another account id)"),
    "unknown_issuer": ("unknown_issuer", "issuer key id 999, not in any trust list"),
    "forged_rider": ("bad_rider_signature", "presentation signed by another device key"),
    "swapped": ("bad_rider_signature", "this credential with another phone's presentation"),
    "stale": ("presentation_stale", "presentation made an hour ago (a screenshot)"),
    "future": ("presentation_future", "presentation dated an hour ahead"),
    "out_of_scope": ("out_of_scope", "credential for scope bit 15 only"),
    "replayed": ("replayed", "the rider's previous code shown again"),
    "truncated": ("bad_length", "the last three characters are missing"),
}


def mint_bad(kind: str, issuer: Issuer, rider: Rider, now: int, account_id: int = 0) -> str:
    """A bad code of `kind` (BAD_KINDS) for this rider and issuer, as a gate would see it at
    `now`. The rider's own credential is left alone except for "replayed" (its last code)."""
    cred = ridecode.parse_credential(rider.credential) if rider.credential else None
    account = account_id or (cred.account_id if cred else 1)
    cred_no = cred.cred_no if cred else 1
    scope = cred.scope if cred else 0xFFFF

    def fresh_cred(**kw: Any) -> bytes:
        args: dict[str, Any] = {
            "valid_from": now - 3600,
            "valid_until": now + 86400,
            "cred_no": cred_no,
            "scope": scope,
        }
        args.update(kw)
        signer = args.pop("signer", None)
        c = issuer.credential(rider.public_key, account, **args)
        if signer is not None:  # re-sign the same body with someone else's key
            c = c[: ridecode.CRED_BODY_LEN] + bytes(signer.sign(c[: ridecode.CRED_BODY_LEN]))
        return c

    def code(c: bytes, t: int = now, signer: Any = rider.signer) -> str:
        rider.counter += 1
        return present_with(signer, c, t, rider.counter)

    if kind == "expired":
        return code(fresh_cred(valid_from=now - 7200, valid_until=now - 3600))
    if kind == "not_yet_valid":
        return code(fresh_cred(valid_from=now + 3600, valid_until=now + 7200))
    if kind == "forged_issuer":
        return code(fresh_cred(signer=new_signer()))
    if kind == "tampered":
        good = rider.credential or fresh_cred()
        raw = bytearray(good)
        raw[8] ^= 0x01  # lowest byte of the account id: claims another account
        return code(bytes(raw))
    if kind == "unknown_issuer":
        stranger = Issuer(999)
        c = stranger.credential(rider.public_key, account, now - 3600, now + 86400, cred_no)
        return code(c)
    if kind == "forged_rider":
        return code(rider.credential or fresh_cred(), signer=new_signer())
    if kind == "swapped":
        other = Rider()
        mine = ridecode.parse_text(code(rider.credential or fresh_cred())).raw
        theirs = ridecode.parse_text(code(fresh_cred(), signer=other.signer)).raw
        return ridecode.encode_bytes(mine[: ridecode.CRED_LEN] + theirs[ridecode.CRED_LEN :])
    if kind == "stale":
        return code(rider.credential or fresh_cred(), t=now - 3600)
    if kind == "future":
        return code(rider.credential or fresh_cred(), t=now + 3600)
    if kind == "out_of_scope":
        return code(fresh_cred(scope=0x8000))
    if kind == "replayed":
        if not rider.last_code:
            raise ValueError("the rider has shown no code yet: nothing to replay")
        return rider.last_code
    if kind == "truncated":
        return code(rider.credential or fresh_cred())[:-3]
    raise ValueError("unknown bad-code kind %r (known: %s)" % (kind, ", ".join(BAD_KINDS)))


def render_png(text: str, path: str, box_size: int = 4, border: int = 4) -> str:
    """Render ride-code text as a QR PNG (alphanumeric mode, ECC level M)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    qr.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
    qr.make(fit=True)
    qr.make_image().save(path)
    return path
