"""The operator's key directory and technicians' credential directories, on disk.

Operator directory (`faregate keys init --dir DIR`), private keys mode 0600:
    root.key / root.pub        operator root: every gate's trust anchor; signs device
                               certificates and technician credentials (protocol.certs)
    issuer.key / issuer.pub    signs riders' credentials (ride codes)
    release.key / release.pub  signs firmware images
    sync.key / sync.pub        the back office signs its sync sessions with it
                               (`faregate backoffice serve`); gates hold sync.pub as
                               their config's sync.host_key
    ca.pem                     X.509 CA certificate of the root key, for TLS (provisioning.pki)
    devices/<id>.cert          every device certificate issued (for the back office registry)

Technician credential directory (`faregate keys technician ... --out DIR`):
    technician.key             the technician's private key (stays on the laptop)
    technician.cred            compact credential: root-signed, with a role and an expiry
    operator-root.pub          the anchor a blank gate is claimed with

`.pub` files hold the SEC1 compressed point in hex. Keys are PEM (PKCS#8); if FAREGATE_PASSPHRASE
is set they are written encrypted with it and read with it. Every row `init_operator` and
`show_operator` return says whether its private key file is encrypted (`encrypted`: true,
false, or null for ca.pem and a missing key); `unencrypted(rows)` names the ones in clear.
"""

import datetime
import os
import time

from drivers.linux import crypto_openssl as es256
from drivers.linux.crypto_openssl import OpenSSLSigner as Signer  # .key, .public_key, .sign(msg)
from protocol import certs
from protocol.errors import EXIT_AUTH, EXIT_USAGE
from provisioning import pki
from provisioning.errors import ProvisioningError

KEY_NAMES = ("root", "issuer", "release", "sync")
PASSPHRASE_ENV = "FAREGATE_PASSPHRASE"


class KeyFileError(ProvisioningError):
    """A key or credential file is missing, unreadable or not what it should be."""

    reason = "bad_key_file"
    exit_code = EXIT_USAGE

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(message, remedy=remedy)


class CredentialExpired(KeyFileError):
    """The technician credential is outside its validity by this laptop's clock."""

    reason = "credential_expired"
    exit_code = EXIT_AUTH


def passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def write_pub(path: str, pub: bytes) -> None:
    with open(path, "w") as f:
        f.write(pub.hex() + "\n")


def read_pub(path: str) -> bytes:
    try:
        with open(path) as f:
            pub = bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        raise KeyFileError("%s not found" % path, "check the path") from None
    except ValueError:
        raise KeyFileError("%s is not a hex public key" % path, "restore it from backup") from None
    if len(pub) != certs.PUB_LEN or pub[0] not in (2, 3):
        raise KeyFileError("%s is not a compressed P-256 point" % path, "restore it from backup")
    return pub


def load_signer(path: str) -> Signer:
    try:
        return Signer(pki.load_key(path, passphrase()))
    except FileNotFoundError:
        raise KeyFileError("key file %s not found" % path, "check the path") from None
    except TypeError:
        raise KeyFileError(
            "key %s is encrypted" % path, "set %s to its passphrase" % PASSPHRASE_ENV
        ) from None
    except ValueError as e:
        raise KeyFileError(
            "cannot read key %s: %s" % (path, e),
            "check %s, or restore the key from backup" % PASSPHRASE_ENV,
        ) from None


def new_signer(path: str) -> Signer:
    key = pki.new_key()
    pki.save_key(key, path, passphrase())
    return Signer(key)


def init_operator(directory: str, operator: str, now: int) -> list[dict]:
    """Create whatever is missing of the operator directory; never overwrite. Returns one
    row per key: name, key id, public key, and whether it was created now."""
    os.makedirs(directory, exist_ok=True)
    rows = []
    for name in KEY_NAMES:
        key_path = os.path.join(directory, name + ".key")
        pub_path = os.path.join(directory, name + ".pub")
        created = not os.path.exists(key_path)
        signer = new_signer(key_path) if created else load_signer(key_path)
        write_pub(pub_path, signer.public_key)
        rows.append(_row(name, signer.public_key, "created" if created else "kept", key_path))
    ca_path = os.path.join(directory, "ca.pem")
    created = not os.path.exists(ca_path)
    if created:
        root = load_signer(os.path.join(directory, "root.key"))
        when = datetime.datetime.fromtimestamp(now, datetime.UTC)
        pki.save_cert(pki.make_ca(root.key, operator + " operator CA", when), ca_path)
    rows.append(
        {
            "name": "ca",
            "key_id": rows[0]["key_id"],
            "public_key": rows[0]["public_key"],
            "action": "created" if created else "kept",
            "path": ca_path,
            "encrypted": None,  # a certificate: its private key is root.key
        }
    )
    os.makedirs(os.path.join(directory, "devices"), exist_ok=True)
    return rows


def _row(name: str, pub: bytes, action: str, path: str) -> dict:
    return {
        "name": name,
        "key_id": "%08x" % certs.key_id(pub),
        "public_key": pub.hex(),
        "action": action,
        "path": path,
        "encrypted": pki.is_encrypted(path),
    }


def unencrypted(rows: list[dict]) -> list[str]:
    """The private key files of `rows` written in clear."""
    return [r["path"] for r in rows if r.get("encrypted") is False]


def show_operator(directory: str) -> list[dict]:
    rows = []
    for name in KEY_NAMES:
        pub_path = os.path.join(directory, name + ".pub")
        if os.path.exists(pub_path):
            pub = read_pub(pub_path)
            rows.append(_row(name, pub, "present", os.path.join(directory, name + ".key")))
        else:
            rows.append(
                {
                    "name": name,
                    "key_id": "",
                    "public_key": "",
                    "action": "missing",
                    "path": "",
                    "encrypted": None,
                }
            )
    return rows


def issue_technician(
    directory: str, out: str, tech_id: int, name: str, role: str, days: int, now: int
) -> certs.Cert:
    """Make a technician key in `out` and a credential for it signed by the operator root."""
    root = load_signer(os.path.join(directory, "root.key"))
    os.makedirs(out, exist_ok=True)
    key_path = os.path.join(out, "technician.key")
    tech = load_signer(key_path) if os.path.exists(key_path) else new_signer(key_path)
    cert = certs.Cert(
        certs.KIND_TECHNICIAN,
        tech_id,
        certs.key_id(root.public_key),
        now - 300,
        now + days * 86400,
        tech.public_key,
        certs.ROLES[role],
        name,
    )
    raw = certs.sign(cert, root)
    with open(os.path.join(out, "technician.cred"), "wb") as f:
        f.write(raw)
    write_pub(os.path.join(out, "operator-root.pub"), root.public_key)
    return certs.parse(raw)


class Credential:
    """A technician's credential directory, loaded and checked against its own anchor."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        if not os.path.isdir(directory):
            raise KeyFileError(
                "technician credential directory %s not found" % directory,
                "pass --cred DIR or set FAREGATE_CRED (made by `faregate keys technician`)",
            )
        self.signer = load_signer(os.path.join(directory, "technician.key"))
        self.anchor = read_pub(os.path.join(directory, "operator-root.pub"))
        path = os.path.join(directory, "technician.cred")
        try:
            with open(path, "rb") as f:
                self.raw = f.read()
            self.cert = certs.parse(self.raw)
        except FileNotFoundError:
            raise KeyFileError("%s not found" % path, "reissue the credential") from None
        except certs.FormatError as e:
            raise KeyFileError("%s: %s" % (path, e), "reissue the credential") from None
        if self.cert.public_key != self.signer.public_key:
            raise KeyFileError(
                "%s is for another key than technician.key" % path, "reissue the credential"
            )
        if not certs.verify(self.cert, self.anchor, es256.OpenSSLVerifier()):
            raise KeyFileError(
                "%s is not signed by operator-root.pub" % path, "reissue the credential"
            )

    def check_time(self, now: int) -> None:
        if now >= self.cert.valid_until:  # like the gate: only expiry counts
            raise CredentialExpired(
                "technician credential %s expired %s"
                % (
                    self.dir,
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.cert.valid_until)),
                ),
                "ask the operator for a new one (`faregate keys technician`)",
            )
