"""An ANPR camera on the Linux parking gate: the camera pushes each plate read over HTTP.

    http://0.0.0.0:8090/anpr          (the gate listens; the camera is told to POST there)
    http://0.0.0.0:8090/anpr?max_body=262144

The protocol is the "HTTP listening" push of Hikvision's ISAPI (docs/drivers.md, "ANPR
cameras", says why this one): for every read the camera opens a TCP connection and sends an
HTTP/1.1 POST whose body is an `EventNotificationAlert` XML document with `eventType` ANPR,
either alone (Content-Type application/xml) or as the first part of a multipart/form-data body
whose other parts are the pictures. What the gate takes from it:

    ANPR/licensePlate       the plate as read ("unknown" or empty: the camera saw no plate)
    ANPR/confidenceLevel    0..100 (how sure the camera is of the characters)
    pictureInfoList/pictureInfo/fileName, or the first picture part's filename
                            the image reference: where the camera or NVR keeps the picture
    dateTime                the camera's time, kept as text for the technician

The gate answers every request `200 OK` with `Connection: close` once it has parsed it (a
camera retries what is not answered), `400` for a body that is not an ANPR alert (counted as
anpr_malformed), `413` over `max_body`. Heartbeats (`eventType` videoloss, or a `heartBeat`
alert) are answered and dropped.

`parse_alert(body, content_type)` is sans-IO (bytes in, a PlateRead out, AnprError for what is
not one); `AnprListener` owns the socket, non-blocking, polled by the gate loop (`poll()` ->
the reads that finished since). Tests talk to it with host_sim/hardware/anpr_camera.py over a
real socket. `python -m drivers.linux.anpr_http --help`: the technician's check.
"""

import argparse
import binascii
import re
import selectors
import socket
import sys
import time
import xml.etree.ElementTree as ET
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

from protocol.errors import FormatError, UsageError

MAX_BODY = 256 * 1024  # an alert with two JPEG parts of a 2 MP camera fits; more is refused
MAX_HEAD = 8192
MAX_CLIENTS = 8  # cameras (and retries) talking at once; more wait in the backlog
CLIENT_TIMEOUT_S = 5.0  # a connection that has not sent its request by then is closed
NO_PLATE = ("", "unknown", "unknow", "none", "noplate")


class AnprError(FormatError):
    """A push that is not an ANPR alert (reason anpr_malformed)."""

    reason = "anpr_malformed"


class PlateRead(NamedTuple):
    plate: str  # as the camera read it (normalize with protocol.platelist.normalize)
    confidence: int  # 0..100
    image: str  # the image reference ("" when the camera sent none)
    camera_time: str  # the alert's dateTime, as sent

    @property
    def image_tag(self) -> int:
        """u32 tag of the image reference (CRC-32): what the gate's records carry (they have
        no room for the reference itself); 0 when there is none."""
        return binascii.crc32(self.image.encode()) & 0xFFFFFFFF if self.image else 0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, path: tuple[str, ...]) -> ET.Element | None:
    """The first element along `path` of local names (ISAPI documents carry a namespace)."""
    node: ET.Element | None = root
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def _text(root: ET.Element, *path: str) -> str:
    node = _find(root, path)
    return (node.text or "").strip() if node is not None else ""


def _multipart(body: bytes, content_type: str) -> tuple[bytes, str]:
    """(the XML part, the first picture's filename) of a multipart/form-data body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise AnprError("multipart body without a boundary")
    xml_part, picture = None, ""
    for part in body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        head_text = head.decode("latin-1").lower()
        if data.endswith(b"\r\n"):
            data = data[:-2]
        if xml_part is None and ("xml" in head_text or data.lstrip().startswith(b"<")):
            xml_part = data
        elif not picture:
            fn = re.search(r'filename="([^"]*)"', head.decode("latin-1"))
            picture = fn.group(1) if fn else ""
    if xml_part is None:
        raise AnprError("multipart body without an XML part")
    return xml_part, picture


def parse_alert(body: bytes, content_type: str = "application/xml") -> PlateRead | None:
    """One pushed body -> a PlateRead, or None for a heartbeat or another event type.

    Raises AnprError (anpr_malformed) for a body that does not parse, an ANPR alert without a
    plate element, or a confidence outside 0..100."""
    picture = ""
    if "multipart" in content_type.lower():
        body, picture = _multipart(body, content_type)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise AnprError("not XML: %s" % e) from None
    if _local(root.tag) != "EventNotificationAlert":
        raise AnprError("not an EventNotificationAlert: <%s>" % _local(root.tag))
    if _text(root, "eventType").lower() != "anpr":
        return None
    if _find(root, ("ANPR", "licensePlate")) is None:
        raise AnprError("ANPR alert without ANPR/licensePlate")
    plate = _text(root, "ANPR", "licensePlate")
    raw = _text(root, "ANPR", "confidenceLevel") or "0"
    if not raw.isdigit() or int(raw) > 100:
        raise AnprError("confidenceLevel %r is not 0..100" % raw)
    if plate.lower() in NO_PLATE:
        plate = ""
    image = _text(root, "pictureInfoList", "pictureInfo", "fileName") or picture
    return PlateRead(plate, int(raw), image, _text(root, "dateTime"))


def _response(status: int, why: str) -> bytes:
    body = why.encode() + b"\r\n"
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, why.encode(), len(body))
    ) + body


class _Client:
    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.buf = b""
        self.since = now
        self.need: int | None = None  # total bytes of head + body, once the head is in
        self.head: dict[str, str] = {}
        self.request = ""


class AnprListener:
    """The gate's end of the push: a listening socket, polled.

    poll() -> [PlateRead]   reads whose requests finished since the last poll (never blocks)
    counts                  {"reads", "heartbeats", "anpr_malformed", "too_large", "timeouts"}
    close()
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 8090,
        path: str = "/anpr",
        max_body: int = MAX_BODY,
        clock=time.monotonic,
    ) -> None:
        self.path = path
        self.max_body = max_body
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(MAX_CLIENTS)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.counts = dict.fromkeys(
            ("reads", "heartbeats", "anpr_malformed", "too_large", "timeouts"), 0
        )

    def poll(self, wait_s: float = 0.0) -> list[PlateRead]:
        out: list[PlateRead] = []
        for key, _ev in self.sel.select(wait_s):
            if key.data is None:
                self._accept()
            else:
                self._read(key.data, out)
        now = self.clock()
        for key in list(self.sel.get_map().values()):
            c = key.data
            if c is not None and now - c.since > CLIENT_TIMEOUT_S:
                self.counts["timeouts"] += 1
                self._drop(c)
        return out

    def _accept(self) -> None:
        try:
            sock, _addr = self.sock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, _Client(sock, self.clock()))

    def _drop(self, c: _Client) -> None:
        self.sel.unregister(c.sock)
        c.sock.close()

    def _answer(self, c: _Client, status: int, why: str) -> None:
        try:
            c.sock.setblocking(True)
            c.sock.settimeout(1.0)
            c.sock.sendall(_response(status, why))
        except OSError:
            pass  # the camera went away: it retries what was not answered
        self._drop(c)

    def _read(self, c: _Client, out: list[PlateRead]) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        c.buf += data
        if c.need is None:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(c.buf) > MAX_HEAD:
                    self.counts["anpr_malformed"] += 1
                    self._answer(c, 400, "Bad Request")
                return
            lines = c.buf[:end].decode("latin-1").split("\r\n")
            c.request = lines[0]
            for line in lines[1:]:
                name, _, value = line.partition(":")
                c.head[name.strip().lower()] = value.strip()
            length = c.head.get("content-length", "0")
            if not length.isdigit():
                self.counts["anpr_malformed"] += 1
                self._answer(c, 400, "Bad Request")
                return
            if int(length) > self.max_body:
                self.counts["too_large"] += 1
                self._answer(c, 413, "Payload Too Large")
                return
            c.need = end + 4 + int(length)
        if len(c.buf) < c.need:
            return
        body = c.buf[c.need - int(c.head.get("content-length", "0")) : c.need]
        parts = c.request.split()
        if len(parts) < 2 or parts[0] != "POST" or urlsplit(parts[1]).path != self.path:
            self.counts["anpr_malformed"] += 1
            self._answer(c, 404, "Not Found")
            return
        try:
            read = parse_alert(body, c.head.get("content-type", "application/xml"))
        except AnprError:
            self.counts["anpr_malformed"] += 1
            self._answer(c, 400, "Bad Request")
            return
        if read is None:
            self.counts["heartbeats"] += 1
        else:
            self.counts["reads"] += 1
            out.append(read)
        self._answer(c, 200, "OK")

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            if key.data is not None:
                key.data.sock.close()
        self.sel.close()
        self.sock.close()


def from_url(url: str, machine=None, ticks=None) -> AnprListener:
    """`http://HOST:PORT/PATH?max_body=N`: the listener the camera pushes to."""
    del machine, ticks
    u = urlsplit(url)
    if u.scheme != "http" or u.port is None:
        raise UsageError("an ANPR URL is http://HOST:PORT/PATH, not %r" % url, "bad_config")
    opts = dict(parse_qsl(u.query))
    unknown = sorted(set(opts) - {"max_body"})
    if unknown:
        raise UsageError("unknown ANPR URL option(s): %s" % ", ".join(unknown), "bad_config")
    max_body = int(opts.get("max_body", MAX_BODY))
    return AnprListener(u.hostname or "0.0.0.0", u.port, u.path or "/anpr", max_body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m drivers.linux.anpr_http",
        description="Listen for an ANPR camera's pushes (Hikvision ISAPI HTTP listening: a "
        "POST of an EventNotificationAlert per plate read) and print each read: plate, "
        "confidence, image reference and its tag. Point the camera's 'alarm server' / HTTP "
        "listening host at this machine and PORT, path PATH, then drive a car (or hold a "
        "plate) past it. Exit status 0 when at least one read arrived, 1 when none did.",
    )
    ap.add_argument("--listen", default="0.0.0.0:8090", help="HOST:PORT (default %(default)s)")
    ap.add_argument("--path", default="/anpr", help="the URL path the camera posts to")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    listener = AnprListener(host or "0.0.0.0", int(port), args.path)
    print("listening on %s:%d%s" % (host or "0.0.0.0", listener.port, args.path), flush=True)
    end = time.monotonic() + args.seconds
    n = 0
    try:
        while time.monotonic() < end:
            for r in listener.poll(0.2):
                n += 1
                print(
                    "plate %r confidence %d image %r (tag %08x) at %s"
                    % (r.plate, r.confidence, r.image, r.image_tag, r.camera_time),
                    flush=True,
                )
    finally:
        listener.close()
    print("%d read(s); counts %s" % (n, listener.counts))
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
