"""The operator's keys on disk, and X.509 certificates for TLS on the station network.

faregate's own signatures (ride codes, trust lists, images, sync and service authentication) are
raw ES256 over exact bytes (drivers.linux.crypto_openssl). TLS needs X.509, so the operator CA also
issues ordinary certificates for the back office (server) and for gates (client).

Keys are PEM (PKCS#8), written with mode 0600; an optional passphrase encrypts them.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drivers.linux import crypto_openssl as es256
from firmware.storage.fs import DISK


def new_key() -> ec.EllipticCurvePrivateKey:
    return es256.generate_key()


def save_key(key: ec.EllipticCurvePrivateKey, path: str, passphrase: bytes | None = None) -> None:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    DISK.write_secret(path, data)  # 0600 from creation, even over an older 0644 file


def is_encrypted(path: str) -> bool | None:
    """Whether a PEM private key file is encrypted (PKCS#8 "ENCRYPTED PRIVATE KEY", or a
    legacy PEM with a DEK-Info header); None when the file cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in head or b"DEK-Info:" in head


def load_key(path: str, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("%s is not a P-256 private key" % path)
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    key: ec.EllipticCurvePrivateKey, common_name: str, now: datetime.datetime, days: int = 3650
) -> x509.Certificate:
    """A self-signed CA certificate for the operator's TLS."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def issue_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject_key: ec.EllipticCurvePublicKey,
    common_name: str,
    now: datetime.datetime,
    server: bool,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    days: int = 825,
) -> x509.Certificate:
    """A TLS leaf certificate: server (back office) or client (gate)."""
    import ipaddress

    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def split_names(names: list[str], ips: list[str]) -> tuple[list[str], list[str]]:
    """A server certificate's subject alternative names from `keys tls --name/--ip`: host
    names as DNS names; a --name that is an address goes with the addresses. Raises
    ValueError for an --ip that is not an address."""
    import ipaddress

    dns: list[str] = []
    addrs: list[str] = []
    for n in names:
        try:
            addrs.append(str(ipaddress.ip_address(n)))
        except ValueError:
            dns.append(n)
    for a in ips:
        try:
            addrs.append(str(ipaddress.ip_address(a)))
        except ValueError:
            raise ValueError("--ip %s is not an IP address" % a) from None
    return list(dict.fromkeys(dns)), list(dict.fromkeys(addrs))


def cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and addresses a server certificate is valid for."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in alt.get_values_for_type(x509.DNSName)] + [
        str(a) for a in alt.get_values_for_type(x509.IPAddress)
    ]


def save_cert(cert: x509.Certificate, path: str) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def tls_files(
    directory: str, now: datetime.datetime
) -> tuple[str, tuple[str, str], tuple[str, str]]:
    """A throwaway operator CA with a server ("bo") and a client ("gate") certificate, written
    into `directory` (for tests and benchmarks). Returns (ca.pem, (bo.pem, bo.key),
    (gate.pem, gate.key))."""
    os.makedirs(directory, exist_ok=True)
    ca_key = new_key()
    ca = make_ca(ca_key, "faregate test operator CA", now)
    out = {}
    for name, server in (("bo", True), ("gate", False)):
        k = new_key()
        cert = issue_cert(ca_key, ca, k.public_key(), name, now, server=server)
        out[name] = (os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key"))
        save_key(k, out[name][1])
        save_cert(cert, out[name][0])
    save_cert(ca, os.path.join(directory, "ca.pem"))
    return os.path.join(directory, "ca.pem"), out["bo"], out["gate"]
