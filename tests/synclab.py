"""A gate, a back office and the links between them, for the sync tests.

`Lab(tmp_path)` makes the keys (the operator's sync key, a device key, a TLS CA with server and
client certificates from provisioning/pki.py), a registered device, a journal, and a client
factory; `lab.link(kind)` opens a link of one kind to a back office serving the lab's store:

    "pipe"  in memory, the HostSession called directly
    "pty"   a real pseudo-terminal: the gate opens its path with pyserial, the back office
            serves the master side in a thread
    "tls"   the asyncio TCP server with TLS on loopback, client certificate required
"""

import datetime
import os
import select
import threading

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.linux.link_serial import SerialLink
from drivers.linux.link_tcp import TcpLink, client_context
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import (
    BackOfficeThread,
    HostKeys,
    HostSession,
    serve_link,
    server_context,
)
from host_sim.hardware.devices import ManualClock
from protocol import records

NOW = 1_767_254_400
DEVICE_ID = 17


class PipeLink:
    """The gate's end of an in-memory link whose other end is a HostSession."""

    def __init__(self, session: HostSession) -> None:
        self.session = session
        self.inbox = b""
        self.name = "pipe"

    def send(self, data: bytes) -> None:
        self.inbox += self.session.receive(data)

    def recv(self, timeout_s: float) -> bytes | None:
        data, self.inbox = self.inbox, b""
        return data or None

    def close(self) -> None:
        pass


class FdLink:
    """A link over a raw file descriptor (the master side of a pty)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.name = "pty-master"

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def recv(self, timeout_s: float) -> bytes | None:
        r, _, _ = select.select([self.fd], [], [], timeout_s)
        if not r:
            return None
        try:
            return os.read(self.fd, 65536)
        except OSError:
            return b""


class Lab:
    def __init__(self, tmp, segment_records: int = 16384, db: str | None = None) -> None:
        import tty

        from provisioning import pki

        self.tmp = str(tmp)
        self.clock = ManualClock(NOW)
        self.verifier = OpenSSLVerifier()
        self.host_signer = OpenSSLSigner(generate_key())
        self.device_signer = OpenSSLSigner(generate_key())
        self.keys = HostKeys(self.host_signer, self.verifier)
        self.db = db or os.path.join(self.tmp, "bo.sqlite")  # a SQLite file, or a PG URL
        self.store = Store(self.db)
        self.store.add_device(DEVICE_ID, self.device_signer.public_key, NOW, "lane 1")
        os.makedirs(os.path.join(self.tmp, "gate"), exist_ok=True)
        self.journal = Journal(
            os.path.join(self.tmp, "gate"), DEVICE_ID, segment_records=segment_records
        )
        self._cleanup: list = []
        self._tty = tty
        self._pki = pki

    def client(self, **kw) -> SyncClient:
        kw.setdefault("batch_size", 200)
        return SyncClient(
            self.journal,
            kw.pop("signer", self.device_signer),
            self.verifier,
            kw.pop("host_pub", self.host_signer.public_key),
            self.clock,
            **kw,
        )

    def passages(self, n: int, first_account: int = 1000) -> None:
        for i in range(n):
            self.journal.append(
                records.Record(
                    records.KIND_PASSAGE, 0, 0, 0, NOW + i, 1, 1, 3, first_account + i, 1, 1, 250
                )
            )

    def link(self, kind: str):
        if kind == "pipe":
            return PipeLink(HostSession(self.store, self.host_signer, self.verifier, self.clock))
        if kind == "pty":
            master, slave = os.openpty()
            self._tty.setraw(slave)
            path = os.ttyname(slave)
            stop = threading.Event()
            t = threading.Thread(
                target=serve_link,
                args=(self.store, self.keys, FdLink(master), stop, self.clock),
                daemon=True,
            )
            t.start()
            serial_link = SerialLink(path)

            def close() -> None:
                stop.set()
                t.join(5)
                serial_link.close()
                os.close(master)
                os.close(slave)

            self._cleanup.append(close)
            return serial_link
        if kind == "tls":
            ca, srv, cli = self.tls_files()
            bo = BackOfficeThread(
                self.db, self.keys, server_context(srv[0], srv[1], ca), self.clock
            )
            self._cleanup.append(bo.stop)
            link = TcpLink.connect("127.0.0.1", bo.port, client_context(ca, cli[0], cli[1]))
            self._cleanup.append(link.close)
            return link
        raise ValueError(kind)

    def tls_files(self):
        now = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
        return self._pki.tls_files(os.path.join(self.tmp, "tls"), now)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            fn()
        self.journal.close()
        self.store.close()
