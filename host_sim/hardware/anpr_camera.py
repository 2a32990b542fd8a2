"""A simulated ANPR camera: pushes plate reads to a gate over a real TCP socket, as a
Hikvision-style camera does in "HTTP listening" mode (drivers/linux/anpr_http.py has the
protocol; docs/drivers.md, "ANPR cameras").

    cam = SimAnprCamera("127.0.0.1", listener.port)
    status = cam.push("B AB 1234", 97)                  # -> 200
    cam.push("B AB 1284", 61, multipart=True)            # a misread, pictures attached
    cam.heartbeat()

What a car park's camera gets wrong is the scenario's business (host_sim/station/carpark.py
draws misreads and confidences); this module only speaks the protocol, including its faults on
demand: `push_raw(body)` for a body that is not an alert, `stall()` for a connection that
never finishes its request.
"""

import socket
from xml.sax.saxutils import escape

NS = "http://www.isapi.org/ver20/XMLSchema"
BOUNDARY = "boundary-faregate-sim"
JPEG_STUB = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"  # the picture part's bytes


def alert_xml(plate: str, confidence: int, image: str, when: str, event: str = "ANPR") -> bytes:
    pictures = (
        "<pictureInfoList><pictureInfo><fileName>%s</fileName><type>licensePlatePicture"
        "</type></pictureInfo></pictureInfoList>" % escape(image)
        if image
        else ""
    )
    anpr = (
        "<ANPR><country>0</country><licensePlate>%s</licensePlate><line>1</line>"
        "<direction>forward</direction><confidenceLevel>%d</confidenceLevel>"
        "<plateType>unknown</plateType><plateColor>white</plateColor></ANPR>"
        % (escape(plate), confidence)
        if event == "ANPR"
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<EventNotificationAlert version="2.0" '
        'xmlns="%s"><ipAddress>192.0.2.40</ipAddress><portNo>80</portNo><protocol>HTTP'
        "</protocol><channelID>1</channelID><dateTime>%s</dateTime><activePostCount>1"
        "</activePostCount><eventType>%s</eventType><eventState>active</eventState>"
        "<eventDescription>%s</eventDescription>%s%s</EventNotificationAlert>"
        % (NS, escape(when), event, event, anpr, pictures)
    ).encode()


class SimAnprCamera:
    def __init__(
        self, host: str, port: int, path: str = "/anpr", timeout_s: float = 5.0, pump=None
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.timeout_s = timeout_s
        self.sent = 0
        self._n = 0
        self.pump = pump  # the gate's poll(wait_s), when the camera and gate share a thread

    def _image(self) -> str:
        self._n += 1
        return "sim/%06d.jpg" % self._n

    def push(
        self,
        plate: str,
        confidence: int,
        image: str | None = None,
        when: str = "2026-12-03T10:00:00+00:00",
        multipart: bool = False,
        pump=None,
    ) -> int:
        """One read, as the camera posts it; the gate's HTTP status."""
        image = self._image() if image is None else image
        if not multipart:
            return self.push_raw(alert_xml(plate, confidence, image, when), "application/xml", pump)
        xml = alert_xml(plate, confidence, "", when)
        body = (
            (
                '--%s\r\nContent-Disposition: form-data; name="anpr.xml"; '
                'filename="anpr.xml"\r\nContent-Type: application/xml\r\n\r\n' % BOUNDARY
            ).encode()
            + xml
            + (
                '\r\n--%s\r\nContent-Disposition: form-data; name="licensePlatePicture.jpg"; '
                'filename="%s"\r\nContent-Type: image/jpeg\r\n\r\n' % (BOUNDARY, image)
            ).encode()
            + JPEG_STUB
            + ("\r\n--%s--\r\n" % BOUNDARY).encode()
        )
        return self.push_raw(body, "multipart/form-data; boundary=%s" % BOUNDARY, pump)

    def heartbeat(self) -> int:
        return self.push_raw(alert_xml("", 0, "", "", event="videoloss"), "application/xml")

    def push_raw(self, body: bytes, content_type: str = "application/xml", pump=None) -> int:
        """Post `body`; the gate's HTTP status (0: no status line). `pump(wait_s)` is called
        while the answer is awaited: the gate's own poll, when both run in one thread."""
        pump = pump or self.pump
        head = (
            "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (self.path, self.host, self.port, content_type, len(body))
        ).encode()
        with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as s:
            s.sendall(head + body)
            reply = b""
            if pump is not None:
                s.setblocking(False)
            for _turn in range(int(self.timeout_s / 0.005) + 1):
                if b"\r\n" in reply:
                    break
                if pump is not None:
                    pump(0.005)
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                reply += chunk
        self.sent += 1
        parts = reply.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def stall(self) -> socket.socket:
        """A connection that sends half a request head and then nothing (the caller closes)."""
        s = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        s.sendall(b"POST %s HTTP/1.1\r\nContent-Len" % self.path.encode())
        return s
