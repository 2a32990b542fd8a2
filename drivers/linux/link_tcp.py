"""The gate's sync link over TCP on the station network, inside TLS.

    link = TcpLink.connect("bo.station", 7700, tls=client_context(ca, cert, key))
    run_session(client, link)          # firmware.sync.client

TLS (certificates from the operator CA, provisioning/pki.py) keeps account ids off the station
network in clear; the sync protocol's own signatures still authenticate both ends, so serial
and TCP share one protocol. `tls=None` is plain TCP, for tests on loopback only.
"""

import socket
import ssl

from firmware.sync.client import SyncClient, run_session


class TcpLink:
    """A connected socket with the link interface: send(bytes), recv(timeout) -> bytes
    (b"" when the peer closed, None on timeout), close()."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = "tcp"

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout_s: float = 5.0,
    ) -> "TcpLink":
        sock = socket.create_connection((host, port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            name = server_hostname or host
            try:
                sock = tls.wrap_socket(sock, server_hostname=name)
            except ssl.SSLCertVerificationError as e:
                sock.close()
                raise _named(e, name) from e
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        link = cls(sock)
        link.name = "%s:%d" % (host, port)
        return link

    send_timeout_s = 5.0

    def send(self, data: bytes) -> None:
        # recv(0) leaves the socket non-blocking, where sendall fails as soon as the kernel's
        # send buffer is full (a slow back office): give the send its own timeout instead.
        self.sock.settimeout(self.send_timeout_s)
        self.sock.sendall(data)

    def recv(self, timeout_s: float) -> bytes | None:
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(262144)
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            return None
        except ConnectionResetError:
            return b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "TcpLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = (62, 64)


def _named(e: ssl.SSLCertVerificationError, name: str) -> ssl.SSLCertVerificationError:
    """A certificate that does not name the host: say what to do (still the same error type)."""
    if e.verify_code not in _NAME_MISMATCH:
        return e
    err = ssl.SSLCertVerificationError(
        e.errno,
        "%s: the back office's certificate does not name %s, the [sync] host this gate "
        "connects to; issue it with `faregate keys tls --server --name HOST --ip ADDR`"
        % (e.verify_message, name),
    )
    err.verify_code, err.verify_message = e.verify_code, e.verify_message
    return err


def client_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """TLS for a gate: trust only the operator CA; present the gate's client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def sync_once(
    client: SyncClient,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 5.0,
) -> int:
    """One sync session over TCP. Returns the records the back office acknowledged."""
    with TcpLink.connect(host, port, tls, timeout_s=timeout_s) as link:
        run_session(client, link, timeout_s)
    return client.acked
