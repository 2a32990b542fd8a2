"""A store door's link to its basket source (POS or shelf system) over TCP.

    tcp://pos.store.lan:7410            (hardware "basket"; protocol/basketline.py, docs/drivers.md)

Non-blocking: `lines()` returns the whole lines received since the last call (never waits),
`send(bytes)` writes one line. A connection that fails is opened again at the next call, at
most once every `retry_s`; meanwhile both raise OSError, which the door counts and rides
out (firmware/gate/baskets.py).
"""

import socket
import time
from urllib.parse import parse_qsl, urlsplit

from protocol.basketline import MAX_LINE
from protocol.errors import UsageError


class BasketLink:
    def __init__(self, host: str, port: int, retry_s: float = 2.0, clock=time.monotonic) -> None:
        self.host = host
        self.port = port
        self.retry_s = retry_s
        self.clock = clock
        self.sock: socket.socket | None = None
        self.buf = b""
        self._next_try = 0.0
        self.overlong = 0

    def _conn(self) -> socket.socket:
        if self.sock is not None:
            return self.sock
        now = self.clock()
        if now < self._next_try:
            raise OSError("basket source %s:%d: waiting to reconnect" % (self.host, self.port))
        self._next_try = now + self.retry_s
        s = socket.create_connection((self.host, self.port), timeout=1.0)
        s.setblocking(False)
        self.sock, self.buf = s, b""
        return s

    def _fail(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def send(self, line: bytes) -> None:
        s = self._conn()
        try:
            s.setblocking(True)
            s.settimeout(1.0)
            s.sendall(line)
            s.setblocking(False)
        except OSError:
            self._fail()
            raise

    def lines(self) -> list[bytes]:
        s = self._conn()
        while True:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                break
            except OSError:
                self._fail()
                raise
            if not data:
                self._fail()
                break
            self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            out.append(line)
        if len(self.buf) > MAX_LINE:  # no end in sight: not the protocol
            self.overlong += 1
            out.append(self.buf)
            self.buf = b""
        return out

    def close(self) -> None:
        self._fail()


def from_url(url: str, machine=None, ticks=None) -> BasketLink:
    del machine, ticks
    u = urlsplit(url)
    if u.scheme != "tcp" or not u.hostname or u.port is None:
        raise UsageError("a basket source URL is tcp://HOST:PORT, not %r" % url, "bad_config")
    opts = dict(parse_qsl(u.query))
    unknown = sorted(set(opts) - {"retry_s"})
    if unknown:
        raise UsageError("unknown basket URL option(s): %s" % ", ".join(unknown), "bad_config")
    return BasketLink(u.hostname, u.port, float(opts.get("retry_s", 2.0)))
