"""A serial link that carries faregate frames: open a port, send a frame, wait for the answer,
retry on silence. Used by the service console client, and by firmware flashing inside its
session (provisioning/flasher.py).

    link = Transport("/dev/ttyUSB0")           # or a pty path, or any pyserial URL (loop://)
    reply = link.exchange(ftype, payload, want=lambda fr: fr.type == X)
    link.close()

Errors subclass TransportError (a ProvisioningError, exit code 3, and the matching built-in,
as python-can does) and carry a `remedy` for the one-line message the CLI prints:
    PortOpenError   the port does not exist, is not a serial port, is busy or not permitted
    NotAnswering    no wanted frame after every retry (TimeoutError)
    Disconnected    the port went away mid-exchange: cable pulled, gate lost power (ConnectionError)
"""

import errno
import time
from collections.abc import Callable
from typing import Any

import serial

from protocol import frames
from protocol.errors import EXIT_DEVICE
from provisioning.errors import ProvisioningError

DEFAULT_BAUD = 115200


class TransportError(ProvisioningError):
    reason = "link"
    exit_code = EXIT_DEVICE

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message, remedy=remedy)


class PortOpenError(TransportError, OSError):
    reason = "port_unusable"


class NotAnswering(TransportError, TimeoutError):
    reason = "no_answer"


class Disconnected(TransportError, ConnectionError):
    reason = "disconnected"
    remedy = "check the cable and the gate's power, then run the same command again"


def _open_error(url: str, e: Exception) -> PortOpenError:
    code = getattr(e, "errno", None)
    text = str(e)
    if code == errno.ENOENT or "No such file" in text:
        return PortOpenError(
            "port %s does not exist" % url, "check --port (`ls /dev/tty*`), or omit it to detect"
        )
    if code == errno.EACCES or "Permission denied" in text:
        return PortOpenError(
            "no permission to open %s" % url,
            "sudo usermod -aG dialout $USER, then log out and in again",
        )
    if code == errno.EBUSY or "exclusively lock" in text or "busy" in text.lower():
        return PortOpenError(
            "port %s is in use by another program" % url, "close the other program and retry"
        )
    if "ioctl" in text or code == errno.ENOTTY:
        return PortOpenError("%s is not a serial port" % url, "check --port")
    return PortOpenError("cannot open %s: %s" % (url, text), "check --port and the cable")


def _why(e: Exception) -> str:
    text = str(e)
    if "returned no data" in text:  # pyserial's words for a vanished device
        return "the port closed"
    return text


class Transport:
    def __init__(
        self,
        url: str,
        baudrate: int = DEFAULT_BAUD,
        timeout: float = 2.0,
        retries: int = 2,
        opener: Callable[..., Any] = serial.serial_for_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self.decoder = frames.FrameDecoder()
        self.bytes_in = 0
        self._queue: list[frames.Frame] = []
        try:
            self.port = opener(url, baudrate=baudrate, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            raise _open_error(url, e) from None
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass

    def send(self, ftype: int, payload: bytes) -> None:
        data = frames.encode(ftype, payload)
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise Disconnected(
                "lost the gate on %s while sending (cable pulled or gate off: %s)"
                % (self.url, _why(e))
            ) from None

    def recv(self, timeout: float) -> frames.Frame | None:
        """The next frame, or None after `timeout` seconds of no whole frame."""
        deadline = self.clock() + timeout
        while not self._queue:
            left = deadline - self.clock()
            if left <= 0:
                return None
            try:
                self.port.timeout = min(left, 0.1)
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise Disconnected(
                    "lost the gate on %s (cable pulled or gate off: %s)" % (self.url, _why(e))
                ) from None
            if chunk:
                self.bytes_in += len(chunk)
                self._queue.extend(self.decoder.feed(chunk))
        return self._queue.pop(0)

    def discard_input(self) -> None:
        """Drop what arrived and was not read: late answers from before a gate's reboot."""
        self._queue.clear()
        self.decoder = frames.FrameDecoder()
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            raise Disconnected("lost the gate on %s (%s)" % (self.url, _why(e))) from None

    def exchange(
        self,
        ftype: int,
        payload: bytes,
        want: Callable[[frames.Frame], bool],
        timeout: float | None = None,
        retries: int | None = None,
    ) -> frames.Frame:
        """Send, and return the first frame `want` accepts; resend after each silent
        `timeout`. Frames it does not want (late answers to an earlier try) are dropped."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        for _attempt in range(retries + 1):
            self.send(ftype, payload)
            deadline = self.clock() + timeout
            while True:
                left = deadline - self.clock()
                fr = self.recv(left) if left > 0 else None
                if fr is None:
                    break
                if want(fr):
                    return fr
        garbage = self.decoder.stats["garbage_bytes"]
        if self.bytes_in and garbage:
            raise NotAnswering(
                "no faregate service console on %s: got %d bytes that are not faregate frames"
                % (self.url, garbage),
                "is this the gate's service port (not its scanner or another device)?",
            )
        raise NotAnswering(
            "the gate on %s is not answering (%d tries, %.1f s each)"
            % (self.url, retries + 1, timeout),
            "check the cable is in the gate's SERVICE port and the gate is powered on",
        )

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
