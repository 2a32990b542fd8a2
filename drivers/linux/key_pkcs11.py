"""The gate's device key inside a PKCS#11 token (an HSM, a secure element, SoftHSM2), through
python-pkcs11. Linux gates.

Chosen by the device-key URL's scheme (drivers/portable/registry.py, kind "key"), the gate's
`device.json` entry `"device_key": "pkcs11:token=gate;object=device?module-path=...&pin-source=..."`
(drivers/linux/pkcs11_uri.py has the URI's attributes). The result is a key holder, what
firmware/storage/device_store.DeviceStore takes instead of its `device.key` file:

    key = from_url(url)
    key.generate()          GEN_KEY: a P-256 key pair made inside the token (CKA_SENSITIVE,
                            not CKA_EXTRACTABLE): the private key never leaves it
    key.signer()            None when the token holds no key of that label; else a TokenSigner:
                            .public_key (SEC1 compressed), .sign(msg) -> r||s (CKM_ECDSA over
                            SHA-256(msg), the mechanism every P-256 token has)
    key.forget()            factory reset: the key pair is destroyed in the token

Everything the device key signs goes through it: the sync AUTH, the console's identity proof and
GEN_KEY proof. What it cannot do: give OpenSSL a key file for the TLS client certificate (Python's
ssl module loads keys only from files), so a token-keyed gate syncs over a serial link or to a
back office on its own machine (docs/security.md "Device key in a token").

Errors (each a FaregateError and an OSError, so the sync pump and the console report them and
carry on): TokenUnavailable (`key_token_unavailable`: the module does not load, no token has the
label, the token went away), TokenPinError (`key_token_pin`: the PIN is wrong, locked, or its file
unreadable), TokenKeyError (`key_token_failed`: the object is not a P-256 key, or signing failed).
One session is kept open and logged in; a token that was removed and put back is opened again at
the next use (at most every RETRY_S while it is missing). A PIN the token refused is never sent
again: a real token locks its user PIN after a few wrong tries, so the gate waits until the PIN
file says something else.
"""

import hashlib
import os
import threading
import time
from typing import Any

from drivers.linux import pkcs11_uri
from protocol.errors import EXIT_AUTH, EXIT_DEVICE, FaregateError

CURVE = "secp256r1"
RETRY_S = 5.0  # a token that was not there is looked for again this much later, not every turn
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF


class TokenError(FaregateError, OSError):
    """The device key's token cannot be used (exit code 3)."""

    reason = "key_token_unavailable"
    exit_code = EXIT_DEVICE
    remedy = "check the token is present and the device_key URL's token and module-path"


class TokenUnavailable(TokenError):
    """The PKCS#11 module does not load, no token has the URL's label, or it went away."""

    reason = "key_token_unavailable"


class TokenPinError(TokenError):
    """The token refused the PIN (wrong, locked, expired) or the PIN file cannot be read."""

    reason = "key_token_pin"
    exit_code = EXIT_AUTH
    remedy = "check the PIN file the URL's pin-source names (its first line is the user PIN)"


class TokenKeyError(TokenError):
    """The token's object is not a usable P-256 key, or the token failed to sign."""

    reason = "key_token_failed"
    remedy = "the token holds another kind of key under this label: give the URL another object"


def compress_point(ec_point: bytes) -> bytes:
    """SEC1 compressed form of CKA_EC_POINT (DER OCTET STRING of 04||x||y, or the bare point)."""
    raw = bytes(ec_point)
    if len(raw) == 67 and raw[0] == 0x04 and raw[1] == 65:
        raw = raw[2:]
    if len(raw) != 65 or raw[0] != 0x04:
        raise TokenKeyError("the token's key is not an uncompressed P-256 point")
    x, y = raw[1:33], int.from_bytes(raw[33:], "big")
    if not 0 <= y < _P:
        raise TokenKeyError("the token's key is not a P-256 point")
    return bytes((2 + (y & 1),)) + x


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError as e:
        raise TokenUnavailable("python-pkcs11 is not installed (requirements.txt): %s" % e) from e
    return pkcs11


class TokenSigner:
    """The signer object the portable core takes (`.sign`, `.public_key`), key in the token."""

    def __init__(self, key: "TokenKey", public_key: bytes) -> None:
        self.key = key
        self.public_key = public_key

    def sign(self, message: bytes) -> bytes:
        return self.key.sign_digest(hashlib.sha256(bytes(message)).digest())


class TokenKey:
    kind = "pkcs11"

    def __init__(self, uri: pkcs11_uri.Pkcs11Uri) -> None:
        self.uri = uri
        self._session: Any = None
        self._lock = threading.Lock()  # the TLS worker thread never signs, but be safe
        self._bad_pin: tuple | None = None  # (PIN, error) the token refused
        self._missing: tuple | None = None  # (monotonic time, error) the token was not there

    def describe(self) -> str:
        """The URL without its PIN, for status lines and logs."""
        return "pkcs11:token=%s;object=%s" % (self.uri.token, self.uri.label)

    # -- the token ---------------------------------------------------------------------
    def _pin(self) -> str | None:
        if "pin-value" in self.uri.attrs:
            return self.uri.attrs["pin-value"]
        path = self.uri.pin_file()
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except (OSError, UnicodeError) as e:
            raise TokenPinError("cannot read the token's PIN file %s: %s" % (path, e)) from None

    def _token(self, p11: Any) -> Any:
        if not os.path.exists(self.uri.module):
            raise TokenUnavailable("no PKCS#11 module at %s" % self.uri.module)
        try:
            lib = p11.lib(self.uri.module)
        except p11.PKCS11Error as e:
            raise TokenUnavailable("PKCS#11 module %s: %s" % (self.uri.module, e)) from None
        for attempt in (0, 1):
            try:
                token = lib.get_token(**self.uri.token_match())
            except p11.NoSuchToken:
                if attempt == 0:
                    lib.reinitialize()  # a token initialised or plugged in since the start
                    continue
                raise TokenUnavailable(
                    "no PKCS#11 token labelled %r in %s" % (self.uri.token, self.uri.module)
                ) from None
            except p11.MultipleTokensReturned:
                raise TokenUnavailable(
                    "several tokens are labelled %r: add serial= to the URL" % self.uri.token
                ) from None
            for attr in ("manufacturer", "model"):
                want = self.uri.attrs.get(attr)
                if want is not None and getattr(token, attr + "_id", want) != want:
                    raise TokenUnavailable("token %r is not %s %r" % (self.uri.token, attr, want))
            return token
        raise TokenUnavailable("no PKCS#11 token labelled %r" % self.uri.token)

    def _open(self) -> Any:
        if self._session is not None:
            return self._session
        if self._missing is not None and time.monotonic() - self._missing[0] < RETRY_S:
            raise self._missing[1]
        pin = self._pin()
        if self._bad_pin is not None and self._bad_pin[0] == pin:
            raise self._bad_pin[1]
        p11 = _pkcs11()
        try:
            token = self._token(p11)
        except TokenUnavailable as e:
            self._missing = (time.monotonic(), e)
            raise
        self._missing = None
        try:
            try:
                self._session = token.open(user_pin=pin, rw=True)
            except p11.UserAlreadyLoggedIn:  # login is per process: another session did it
                self._session = token.open(rw=True)
        except (p11.PinIncorrect, p11.PinLocked, p11.PinExpired, p11.PinInvalid) as e:
            err = TokenPinError(
                "token %r refused the PIN (%s); it is not sent again until the PIN changes"
                % (self.uri.token, type(e).__name__)
            )
            self._bad_pin = (pin, err)
            raise err from None
        except p11.PKCS11Error as e:
            raise TokenUnavailable(
                "cannot open token %r: %s" % (self.uri.token, type(e).__name__)
            ) from None
        return self._session

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # already gone with its token
                pass

    def _with_session(self, job: Any) -> Any:
        """Run job(session, pkcs11); once more on a fresh session if the token went away."""
        p11 = _pkcs11()
        gone = (p11.SessionHandleInvalid, p11.SessionClosed, p11.TokenNotPresent, p11.DeviceRemoved)
        with self._lock:
            for attempt in (0, 1):
                session = self._open()
                try:
                    return job(session, p11)
                except gone:
                    self._drop()
                    if attempt:
                        raise TokenUnavailable("token %r went away" % self.uri.token) from None
                except p11.UserNotLoggedIn:
                    self._drop()
                    raise TokenPinError(
                        "token %r needs a PIN: add pin-source= to the URL" % self.uri.token
                    ) from None
                except p11.PKCS11Error as e:
                    raise TokenKeyError(
                        "token %r: %s" % (self.uri.token, type(e).__name__ or e)
                    ) from None
        raise TokenUnavailable("token %r went away" % self.uri.token)

    def _find(self, session: Any, p11: Any, cls: Any) -> list:
        attrs = {p11.Attribute.CLASS: cls, p11.Attribute.LABEL: self.uri.label}
        if self.uri.key_id is not None:
            attrs[p11.Attribute.ID] = self.uri.key_id
        return list(session.get_objects(attrs))

    # -- the key holder ------------------------------------------------------------------
    def signer(self) -> TokenSigner | None:
        def job(session: Any, p11: Any) -> TokenSigner | None:
            privs = self._find(session, p11, p11.ObjectClass.PRIVATE_KEY)
            if not privs:
                return None
            if len(privs) > 1:
                raise TokenKeyError(
                    "token %r holds several keys %r" % (self.uri.token, self.uri.label)
                )
            pubs = self._find(session, p11, p11.ObjectClass.PUBLIC_KEY)
            if len(pubs) != 1 or privs[0].key_type != p11.KeyType.EC:
                raise TokenKeyError(
                    "token %r: %r is not one EC key pair" % (self.uri.token, self.uri.label)
                )
            return TokenSigner(self, compress_point(pubs[0][p11.Attribute.EC_POINT]))

        return self._with_session(job)

    def sign_digest(self, digest: bytes) -> bytes:
        def job(session: Any, p11: Any) -> bytes:
            privs = self._find(session, p11, p11.ObjectClass.PRIVATE_KEY)
            if len(privs) != 1:
                raise TokenKeyError("token %r lost its key %r" % (self.uri.token, self.uri.label))
            sig = bytes(privs[0].sign(digest, mechanism=p11.Mechanism.ECDSA))
            if len(sig) != 64:
                raise TokenKeyError(
                    "token %r gave a %d-byte signature" % (self.uri.token, len(sig))
                )
            return sig

        return self._with_session(job)

    def generate(self) -> None:
        """Make the key pair inside the token (a no-op when it holds one of this label)."""

        def job(session: Any, p11: Any) -> None:
            from pkcs11.util.ec import encode_named_curve_parameters

            if self._find(session, p11, p11.ObjectClass.PRIVATE_KEY):
                return
            A = p11.Attribute
            params = session.create_domain_parameters(
                p11.KeyType.EC, {A.EC_PARAMS: encode_named_curve_parameters(CURVE)}, local=True
            )
            common: dict = {A.LABEL: self.uri.label, A.TOKEN: True}
            if self.uri.key_id is not None:
                common[A.ID] = self.uri.key_id
            public = dict(common)
            public[A.VERIFY] = True
            private = dict(common)
            private.update({A.SIGN: True, A.PRIVATE: True, A.SENSITIVE: True})
            private[A.EXTRACTABLE] = False
            params.generate_keypair(store=True, public_template=public, private_template=private)

        self._with_session(job)

    def forget(self) -> None:
        """Destroy the key pair in the token (a factory reset)."""

        def job(session: Any, p11: Any) -> None:
            for cls in (p11.ObjectClass.PRIVATE_KEY, p11.ObjectClass.PUBLIC_KEY):
                for obj in self._find(session, p11, cls):
                    obj.destroy()

        self._with_session(job)

    def close(self) -> None:
        with self._lock:
            self._drop()


class UnusableKey:
    """A key holder whose URL could not be opened: every use raises the error it failed with,
    so the console still starts and the technician sees why."""

    kind = "unusable"

    def __init__(self, error: FaregateError) -> None:
        self.error = error

    def signer(self) -> None:
        raise self.error

    def generate(self) -> None:
        raise self.error

    def forget(self) -> None:
        raise self.error


def from_url(url: str, machine: Any = None, ticks: Any = None) -> TokenKey:
    """The key holder a `pkcs11:` URL names (registry.open_device("key", url))."""
    return TokenKey(pkcs11_uri.parse(url))
