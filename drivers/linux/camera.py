"""A camera reader on the Linux gate: OpenCV VideoCapture frames through a decoder.

    cam:0                          /dev/video0 (any VideoCapture index)
    video:frames/f%03d.png         a video file or an image sequence VideoCapture can open
    ...?decoder=zbar&all=1         pick a decoder (drivers/linux/decode.py); all=1 also reports
                                   texts that are not shaped like ride codes (default: only
                                   ride codes, so a QR code on a poster is never a scan)

`read(timeout_s)` returns the next code text, as a QR engine does. A phone held at the reader
is seen in many frames: the same text is returned once per `holdoff_ms` (a refreshed code,
being a different text, comes through at once). A frame that barely differs from the last
one that held no code is not decoded again (an empty reader costs almost nothing).
"""

from typing import Any

import numpy as np

from drivers.linux import decode
from drivers.portable.qrengine import ticks_diff, ticks_ms


class CameraSource:
    def __init__(
        self,
        capture: Any,
        decoder: Any = None,
        holdoff_ms: int = 3000,
        ticks: Any = None,
        still_threshold: float = 1.5,
    ) -> None:
        self.capture = capture  # .read() -> (ok, frame), like cv2.VideoCapture
        self.decoder = decoder or decode.Pipeline(decode.looks_like_ride_code)
        self.holdoff_ms = holdoff_ms
        self.ticks = ticks or ticks_ms
        self.still_threshold = still_threshold  # mean grey-level change that counts as still
        self._last_text: str | None = None
        self._last_at = 0
        self._empty_thumb: np.ndarray | None = None  # thumbnail of the last frame without a code
        self._queue: list[str] = []
        self.stats = {"frames": 0, "decoded": 0, "skipped_still": 0, "repeats": 0, "ended": 0}

    def read(self, timeout_s: float = 1.0) -> str | None:
        start = self.ticks()
        while True:
            if self._queue:
                return self._queue.pop(0)
            ok, frame = self.capture.read()
            if not ok or frame is None:
                self.stats["ended"] += 1
                return None
            self._frame(frame)
            if not self._queue and ticks_diff(self.ticks(), start) >= timeout_s * 1000:
                return None

    def _frame(self, frame: Any) -> None:
        import cv2

        self.stats["frames"] += 1
        gray = decode.to_gray(frame)
        thumb = cv2.resize(gray, (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._empty_thumb is not None:
            if float(np.abs(thumb - self._empty_thumb).mean()) < self.still_threshold:
                self.stats["skipped_still"] += 1
                return
        texts = self.decoder.decode(gray)
        if not texts:
            self._empty_thumb = thumb
            return
        self._empty_thumb = None
        now = self.ticks()
        for text in texts:
            if text == self._last_text and ticks_diff(now, self._last_at) < self.holdoff_ms:
                self.stats["repeats"] += 1
                self._last_at = now
                continue
            self._last_text = text
            self._last_at = now
            self.stats["decoded"] += 1
            self._queue.append(text)

    def close(self) -> None:
        release = getattr(self.capture, "release", None)
        if release:
            release()


def from_url(url: str, machine: Any = None, ticks: Any = None) -> CameraSource:
    import cv2

    scheme, _, rest = url.partition(":")
    target, _, query = rest.partition("?")
    opts = dict(p.partition("=")[::2] for p in query.split("&") if p)
    if scheme == "cam":
        capture = cv2.VideoCapture(int(target or "0"))
        if "width" in opts:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(opts["width"]))
        if "height" in opts:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(opts["height"]))
    elif scheme == "video":
        capture = cv2.VideoCapture(target)
    else:
        raise ValueError("not a camera URL: %r" % url)
    if not capture.isOpened():
        raise OSError("cannot open camera %r" % url)
    accept = None if opts.get("all") == "1" else decode.looks_like_ride_code
    dec = decode.make_decoder(opts.get("decoder", "faregate"), accept)
    return CameraSource(capture, dec, int(opts.get("holdoff_ms", "3000")), ticks)
