"""PKCS#11 URIs (RFC 7512), the device-key URL of a gate whose key lives in a token. Parsing only.

    pkcs11:token=gate;object=device?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin

    part    attribute       meaning here
    path    token           the token's label (CKA_LABEL of the token), required
            object          the key's label (CKA_LABEL), required: the key pair is made with it
            id              the key's CKA_ID, percent-encoded bytes (optional)
            serial          the token's serial number (optional: picks one of several alike)
            manufacturer,   the token's manufacturer and model (optional, checked when given)
            model
            type            "private" if given: the object is the private key
    query   module-path     the PKCS#11 module (.so) to load, required
            pin-source      where the user PIN is: "file:PATH" or a bare PATH; a file's first
                            line is the PIN (RFC 7512 section 2.4)
            pin-value       the PIN itself (RFC 7512 allows it; a file keeps it out of config)

Values are percent-encoded (RFC 3986); attribute names are case-sensitive, as in the RFC. An
attribute named twice, an unknown attribute, a missing token, object or module-path, or both PIN
attributes at once is refused (Pkcs11UriError, reason `key_url_bad`), as pyserial refuses an
unknown URL option: a misspelt attribute must not pick another token. Vendor attributes
(`x-...`) are refused too: none is known here.
"""

from protocol.errors import UsageError

SCHEME = "pkcs11:"
MAX_URI = 4096
PATH_ATTRS = ("token", "object", "id", "serial", "manufacturer", "model", "type")
QUERY_ATTRS = ("module-path", "pin-source", "pin-value")
REQUIRED = ("token", "object", "module-path")
_HEX = "0123456789abcdefABCDEF"


class Pkcs11UriError(UsageError):
    """A device-key URL that is not a PKCS#11 URI this gate can use (exit code 2)."""

    reason = "key_url_bad"
    remedy = "write it as pkcs11:token=LABEL;object=LABEL?module-path=/path/to/module.so (RFC 7512)"


class Pkcs11Uri:
    """A parsed URI: `attrs` holds every attribute given, decoded (`id` as bytes, the rest str)."""

    def __init__(self, attrs: dict) -> None:
        self.attrs = attrs

    @property
    def token(self) -> str:
        return self.attrs["token"]

    @property
    def label(self) -> str:
        return self.attrs["object"]

    @property
    def key_id(self) -> bytes | None:
        return self.attrs.get("id")

    @property
    def module(self) -> str:
        return self.attrs["module-path"]

    def pin_file(self) -> str | None:
        src = self.attrs.get("pin-source")
        if src is None:
            return None
        return src[len("file:") :] if src.startswith("file:") else src

    def token_match(self) -> dict:
        """The token attributes to look a token up by (label, and serial etc. when given)."""
        out = {"token_label": self.token}
        if "serial" in self.attrs:
            out["token_serial"] = self.attrs["serial"].encode()
        return out


def unquote(text: str) -> bytes:
    """Percent-decode `text` strictly: every % is followed by two hex digits."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise Pkcs11UriError(
                    "bad percent-encoding at %r in a PKCS#11 URI" % text[i : i + 3]
                )
            out.append(int(pair, 16))
            i += 3
        else:
            if ord(c) < 0x21 or ord(c) > 0x7E:
                raise Pkcs11UriError("a PKCS#11 URI must be printable ASCII (percent-encode)")
            out += c.encode()
            i += 1
    return bytes(out)


def _attributes(part: str, sep: str, known: tuple, where: str, attrs: dict) -> None:
    if not part:
        return
    for item in part.split(sep):
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise Pkcs11UriError("%s attribute %r is not NAME=VALUE" % (where, item))
        if name not in known:
            raise Pkcs11UriError(
                "unknown %s attribute %r (known: %s)" % (where, name, ", ".join(known))
            )
        if name in attrs:
            raise Pkcs11UriError("attribute %r is given twice" % name)
        raw = unquote(value)
        if name == "id":
            attrs[name] = raw
            continue
        try:
            attrs[name] = raw.decode("utf-8")
        except UnicodeError:
            raise Pkcs11UriError("attribute %r is not UTF-8" % name) from None


def parse(url: str) -> Pkcs11Uri:
    """A `pkcs11:` URL as a Pkcs11Uri; raises Pkcs11UriError for anything else."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise Pkcs11UriError("not a PKCS#11 URI (it starts with %r)" % SCHEME)
    if len(url) > MAX_URI:
        raise Pkcs11UriError("PKCS#11 URI of %d characters is over %d" % (len(url), MAX_URI))
    path, _, query = url[len(SCHEME) :].partition("?")
    attrs: dict = {}
    _attributes(path, ";", PATH_ATTRS, "path", attrs)
    _attributes(query, "&", QUERY_ATTRS, "query", attrs)
    for name in REQUIRED:
        if not attrs.get(name):
            raise Pkcs11UriError("a device-key URI needs %s=..." % name)
    if "pin-source" in attrs and "pin-value" in attrs:
        raise Pkcs11UriError("give pin-source or pin-value, not both")
    if attrs.get("type", "private") != "private":
        raise Pkcs11UriError("type=%s: the device key's object is its private key" % attrs["type"])
    return Pkcs11Uri(attrs)
