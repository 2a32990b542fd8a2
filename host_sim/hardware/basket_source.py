"""A simulated basket source: a store's shelf system (weight shelves and cameras that know
what each shopper takes) behind a real TCP socket, speaking protocol/basketline.py.

    src = SimBasketSource()                   # listens on 127.0.0.1, a free port
    src.take(account, price)                  # a shopper picks an item: BASKET is sent
    src.put_back(account, price)
    src.leave_by_button(account)              # after the door's BUTTON: FINAL is sent
    src.poll()                                # serve the door: accept, read, write

It keeps what the door told it (`door`: OPEN / EXIT / BUTTON lines, parsed) and what it charged
(`sent`), so a scenario's money invariant can check every basket reached a charge.
"""

import selectors
import socket

from protocol import basketline
from protocol.errors import FormatError


class SimBasketSource:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(4)
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.url = "tcp://%s:%d" % (host, self.port)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.server, selectors.EVENT_READ)
        self.client: socket.socket | None = None
        self.buf = b""
        self.baskets: dict[int, list[int]] = {}  # account -> [total, items]
        self.door: list[tuple[str, int, int]] = []
        self.sent: list[bytes] = []
        self.bad_door_lines = 0
        self._out = b""

    def _send(self, line: bytes) -> None:
        self.sent.append(line)
        self._out += line
        self._flush()

    def _flush(self) -> None:
        if self.client is not None and self._out:
            try:
                n = self.client.send(self._out)
                self._out = self._out[n:]
            except BlockingIOError:
                pass

    def take(self, account: int, price: int) -> None:
        b = self.baskets.setdefault(account, [0, 0])
        b[0] += price
        b[1] += 1
        self._send(b"BASKET %d %d %d\n" % (account, b[0], b[1]))

    def put_back(self, account: int, price: int) -> None:
        b = self.baskets.setdefault(account, [0, 0])
        b[0] = max(0, b[0] - price)
        b[1] = max(0, b[1] - 1)
        self._send(b"BASKET %d %d %d\n" % (account, b[0], b[1]))

    def leave_by_button(self, account: int) -> None:
        total, items = self.baskets.pop(account, [0, 0])
        self._send(b"FINAL %d %d %d\n" % (account, total, items))

    def send_raw(self, line: bytes) -> None:
        self._send(line)

    def poll(self, wait_s: float = 0.0) -> None:
        for key, _ev in self.sel.select(wait_s):
            if key.fileobj is self.server:
                c, _a = self.server.accept()
                c.setblocking(False)
                if self.client is not None:
                    self.sel.unregister(self.client)
                    self.client.close()
                self.client = c
                self.sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = self.client.recv(4096) if self.client is not None else b""
            except BlockingIOError:
                continue
            if not data:
                if self.client is not None:
                    self.sel.unregister(self.client)
                    self.client.close()
                self.client = None
                continue
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                try:
                    verb, account, t = basketline.parse_door(line)
                except FormatError:
                    self.bad_door_lines += 1
                    continue
                self.door.append((verb, account, t))
                if verb == "EXIT":
                    self.baskets.pop(account, None)
        self._flush()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.sel.close()
        self.server.close()
