"""Camera-frame QR decoding on the Linux gate: faregate's pipeline and the raw libraries.

Decoders, chosen by name (`faregate decode --decoder NAME`, the camera URL's `decoder=`):

    faregate      the pipeline below (default)
    zxing         zxing-cpp, one call, default settings
    zbar          pyzbar (needs Debian's libzbar0)
    opencv        OpenCV's QRCodeDetector
    opencv-aruco  OpenCV's QRCodeDetectorAruco

The pipeline: zxing-cpp first, on the frame as it is (without try_rotate and try_downscale:
the same reads on 640x480 frames for about a fifth less CPU); only if that finds nothing
acceptable, recovery passes in order, stopping at the first that does:
    histogram   zxing-cpp with its GlobalHistogram binarizer (dim or low-contrast screens)
    up2         scaled 2x (bicubic): small codes, 2-3 px per module
    sharp15     scaled 1.5x and unsharp-masked: defocus and motion blur
    sharp2      scaled 2x and unsharp-masked: the same, further away
    adaptive    scaled 1.5x, OpenCV's adaptive Gaussian threshold, then zxing-cpp on the
                binary image: glare and uneven light
    linear15    the camera's gamma undone (grey ** 2.5), scaled 1.5x and unsharp-masked:
                2-3 px modules blurred over their width
    linear3     gamma undone, scaled 3x: the same, smaller still
    linear_adaptive  gamma undone, scaled 2x, adaptive threshold over a smaller window
                (31 px): blurred small modules under uneven light
    linear_smooth3   gamma undone, smoothed (sigma 0.7 px: shot and read noise over the blur),
                scaled 3x, unsharp-masked: noisy 2-3 px modules on dim screens
    linear_smooth3h  the same, sharpened harder, GlobalHistogram binarizer
    roi_linear4 on region() only (the frame's area of finest detail: the phone), gamma
                undone, scaled 4x: strongly tilted codes whose foreshortened modules are
                under 2 px (4x the whole frame would cost 16 frames' worth)
About two frames in three decode in the first pass (about 1 ms of CPU here); a frame with no
code runs them all (tens of ms: the camera reader does not decode a frame that did not change).
docs/drivers.md has what each pass buys, by degradation.

Never a wrong payload: QR's Reed-Solomon check rejects damaged reads in every pass (zxing-cpp
returns only valid results), and with `accept` (e.g. `looks_like_ride_code`) a text of the
wrong shape is dropped, however it was read, so a stray QR code on a poster is not a scan.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zxingcpp

from protocol import base45, ridecode

Accept = Callable[[str], bool]
_QR = zxingcpp.BarcodeFormat.QRCode
_ALPHABET = frozenset(base45.ALPHABET)
_BOOL = zxingcpp.Binarizer.BoolCast


def looks_like_ride_code(text: str) -> bool:
    """The shape of a ride code's text: its prefix, its exact length, base45 characters."""
    if not text.startswith(ridecode.PREFIX) or len(text) != ridecode.TEXT_LEN:
        return False
    body = text[len(ridecode.PREFIX) :]
    return all(c in _ALPHABET for c in body)


def _zxing(image: np.ndarray, **kw: Any) -> list[str]:
    found = zxingcpp.read_barcodes(image, formats=_QR, **kw)  # type: ignore[arg-type]
    return [r.text for r in found if r.valid]


def _fast(image: np.ndarray, **kw: Any) -> list[str]:
    """zxing-cpp without the attempts a QR code at the reader never needs: try_rotate only turns
    linear barcodes, and a 640x480 frame (or a frame scaled up on purpose) is never too big to
    read, so try_downscale only repeats the search on smaller copies. Light-on-dark codes are
    still tried (try_invert): dark-mode screens."""
    return _zxing(image, try_rotate=False, try_downscale=False, **kw)


def _up(image: np.ndarray, f: float) -> np.ndarray:
    import cv2

    return cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)


def _sharpen(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.addWeighted(image, 2.0, cv2.GaussianBlur(image, (0, 0), sigma), -1.0, 0)


_LINEAR = np.array([round(255 * (v / 255) ** 2.5) for v in range(256)], np.uint8)


def _linear(image: np.ndarray) -> np.ndarray:
    """Undo the camera's gamma (about 2.2-2.5): in light-linear values a blurred edge between a
    light and a dark module crosses the middle where the edge is, so a module too blurred to
    threshold in gamma-encoded grey (dark modules shrink, light ones grow) can be read again."""
    import cv2

    return cv2.LUT(image, _LINEAR)


def _smooth_sharp(image: np.ndarray, sigma: float, amount: float, f: float = 3.0) -> np.ndarray:
    """Gamma undone, noise smoothed, scaled f x, then unsharp masking of `amount` at `sigma`."""
    import cv2

    up = _up(cv2.GaussianBlur(_linear(image), (0, 0), 0.7), f)
    return cv2.addWeighted(up, 1 + amount, cv2.GaussianBlur(up, (0, 0), sigma), -amount, 0)


def _adaptive(image: np.ndarray, f: float = 1.5, block: int = 45, c: int = 5) -> np.ndarray:
    import cv2

    up = _up(image, f)
    return cv2.adaptiveThreshold(
        up, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, c
    )


# the region of interest: where the frame has fine detail (a band-pass of the frame at a quarter
# of its size, averaged over 7x7), the largest connected area above ROI_LEVEL of its peak, its
# bounding box widened by ROI_MARGIN quarter-size px on each side
ROI_SCALE = 4
ROI_LEVEL = 0.2
ROI_MARGIN = 6


def region(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of the frame the code is in, for the recovery passes. A phone's
    screen and its code are the frame's finest detail; the background (out of focus, further
    away) and a hand are smooth. A frame without detail gives the whole frame."""
    import cv2

    h, w = gray.shape[:2]
    sw, sh = max(1, w // ROI_SCALE), max(1, h // ROI_SCALE)
    small = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    band = cv2.boxFilter(np.abs(small - cv2.GaussianBlur(small, (0, 0), 1.5)), -1, (7, 7))
    peak = float(band.max())
    if peak <= 0:
        return 0, 0, w, h
    mask = (band > ROI_LEVEL * peak).astype(np.uint8)
    n, _labels, stats, _c = cv2.connectedComponentsWithStats(mask)
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[i, :4])
    m, k = ROI_MARGIN, ROI_SCALE
    return (
        max(0, (x - m) * k),
        max(0, (y - m) * k),
        min(w, (x + bw + m) * k),
        min(h, (y + bh + m) * k),
    )


_HIST = zxingcpp.Binarizer.GlobalHistogram

# (name, where, fn): "frame" passes see the whole frame, "roi" passes the region() crop
PASSES: list[tuple[str, str, Callable[[np.ndarray], list[str]]]] = [
    ("zxing", "frame", lambda g: _fast(g)),
    ("histogram", "frame", lambda g: _fast(g, binarizer=_HIST)),
    ("up2", "frame", lambda g: _zxing(_up(g, 2.0))),
    ("sharp15", "frame", lambda g: _zxing(_sharpen(_up(g, 1.5), 3.0))),
    ("sharp2", "frame", lambda g: _zxing(_sharpen(_up(g, 2.0), 4.0))),
    ("adaptive", "frame", lambda g: _zxing(_adaptive(g), binarizer=_BOOL)),
    ("linear15", "frame", lambda g: _zxing(_sharpen(_up(_linear(g), 1.5), 3.0))),
    ("linear3", "frame", lambda g: _zxing(_up(_linear(g), 3.0))),
    (
        "linear_adaptive",
        "frame",
        lambda g: _zxing(_adaptive(_linear(g), 2.0, 31, 2), binarizer=_BOOL),
    ),
    ("linear_smooth3", "frame", lambda g: _zxing(_smooth_sharp(g, 3.0, 1.0))),
    ("linear_smooth3h", "frame", lambda g: _zxing(_smooth_sharp(g, 4.0, 2.0), binarizer=_HIST)),
    ("roi_linear4", "roi", lambda g: _zxing(_up(_linear(g), 4.0))),
]


class Pipeline:
    """zxing-cpp on the frame, then the recovery passes (most on the region the code is in).
    `decode(gray) -> [texts]`; `last_pass` names the pass that succeeded (or None)."""

    name = "faregate"

    def __init__(self, accept: Accept | None = None, passes: list[str] | None = None) -> None:
        self.accept = accept
        self.passes = [p for p in PASSES if passes is None or p[0] in passes]
        self.last_pass: str | None = None

    def decode(self, gray: np.ndarray) -> list[str]:
        self.last_pass = None
        crop: np.ndarray | None = None
        for name, where, fn in self.passes:
            image = gray
            if where == "roi":
                if crop is None:
                    x0, y0, x1, y1 = region(gray)
                    crop = np.ascontiguousarray(gray[y0:y1, x0:x1])
                image = crop
            texts = _filter(fn(image), self.accept)
            if texts:
                self.last_pass = name
                return texts
        return []


class ZxingRaw:
    name = "zxing"

    def __init__(self, accept: Accept | None = None) -> None:
        self.accept = accept

    def decode(self, gray: np.ndarray) -> list[str]:
        return _filter(_zxing(gray), self.accept)


class ZbarRaw:
    name = "zbar"

    def __init__(self, accept: Accept | None = None) -> None:
        from pyzbar import pyzbar  # raises ImportError without libzbar0

        self._pyzbar = pyzbar
        self.accept = accept

    def decode(self, gray: np.ndarray) -> list[str]:
        z = self._pyzbar
        found = z.decode(gray, symbols=[z.ZBarSymbol.QRCODE])
        return _filter([r.data.decode("latin-1") for r in found], self.accept)


class OpenCVRaw:
    name = "opencv"

    def __init__(self, accept: Accept | None = None, aruco: bool = False) -> None:
        import cv2

        self.accept = accept
        self.detector = cv2.QRCodeDetectorAruco() if aruco else cv2.QRCodeDetector()
        if aruco:
            self.name = "opencv-aruco"

    def decode(self, gray: np.ndarray) -> list[str]:
        try:
            text, _points, _straight = self.detector.detectAndDecode(gray)
        except Exception:  # OpenCV raises cv2.error on some degenerate detections
            return []
        return _filter([text] if text else [], self.accept)


DECODERS: dict[str, Callable[..., Any]] = {
    "faregate": Pipeline,
    "zxing": ZxingRaw,
    "zbar": ZbarRaw,
    "opencv": OpenCVRaw,
    "opencv-aruco": lambda accept=None: OpenCVRaw(accept, aruco=True),
}


def make_decoder(name: str = "faregate", accept: Accept | None = None) -> Any:
    """A decoder by name (see DECODERS). Raises KeyError for an unknown name and ImportError
    when the library behind it is missing (pyzbar without libzbar0)."""
    return DECODERS[name](accept=accept)


def _filter(texts: list[str], accept: Accept | None) -> list[str]:
    out = []
    for t in texts:
        if (accept is None or accept(t)) and t not in out:
            out.append(t)
    return out


def to_gray(image: Any) -> np.ndarray:
    """A numpy grey image from a numpy array (grey, BGR or BGRA), a PIL image, or a path."""
    import cv2

    if isinstance(image, str):
        data = np.fromfile(image, np.uint8)  # raises OSError for a missing file
        gray = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if gray is None:
            raise OSError("cannot decode image file %s" % image)
        return gray
    if not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("L"))
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def decode_image(image: Any, decoder: str = "faregate", accept: Accept | None = None) -> list[str]:
    """Decode every QR code in `image` (a numpy array, a PIL image, or a file path)."""
    return make_decoder(decoder, accept).decode(to_gray(image))


def timed_decode(dec: Any, gray: np.ndarray) -> tuple[list[str], float]:
    """(texts, milliseconds) for one frame."""
    t0 = time.perf_counter()
    texts = dec.decode(gray)
    return texts, (time.perf_counter() - t0) * 1000.0
