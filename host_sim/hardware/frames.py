"""Seeded camera frames of phones held at a gate's reader: 640x480 grey, like a USB camera.

`frame(text, rng)` renders one: the ride code as the wallet app shows it (a white card, or a
dark-mode screen with the code inverted), on a phone held in front of the camera, then the
things that go wrong at real gates, each drawn from `rng` with its own probability:

    tilt / perspective   the phone plane turned up to ~40 degrees about both axes (pinhole camera)
    rotation             any angle in the image plane
    distance             code side 170-330 px (about 3 to 6 px per module at version 10)
    dim screen           screen brightness down to 25 %, camera gain pushing noise up
    inverted             dark-mode screens: light modules on dark
    moire                the screen's pixel grid beating against the sensor's
    glare                a specular highlight, sometimes saturating part of the code
    blur                 defocus (gaussian) or motion (a line kernel)
    noise, JPEG          sensor noise, then JPEG compression at quality 25-90

`frame(None, rng)` renders a frame with no code (empty reader, a phone showing other things,
hands, patterns that look like finder patterns): a decoder must report nothing there.
`frame_set(seed, texts, n_empty)` makes a reproducible set; the same seed, the same pixels.
Every frame comes with `meta`, the parameters drawn, so a failure can be explained.
"""

import math
from typing import Any

import cv2
import numpy as np

from protocol import base45

W, H = 640, 480
FOCAL = 560.0  # pinhole focal length in pixels (about 60 degrees horizontal field of view)
QUIET = 4  # quiet-zone modules around the code


class Frame:
    __slots__ = ("image", "text", "meta")

    def __init__(self, image: np.ndarray, text: str | None, meta: dict[str, Any]) -> None:
        self.image = image
        self.text = text
        self.meta = meta


def qr_modules(text: str) -> np.ndarray:
    """The code's modules (True = dark), quiet zone included; alphanumeric mode, ECC M."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QUIET, box_size=1)
    alnum = all(c in base45.ALPHABET for c in text)  # QR's alphanumeric set is base45's
    mode = qrcode.util.MODE_ALPHA_NUM if alnum else qrcode.util.MODE_8BIT_BYTE
    qr.add_data(qrcode.util.QRData(text, mode=mode))
    qr.make(fit=True)
    return np.array(qr.get_matrix(), dtype=bool)


# -- the phone screen, rendered fine (several render pixels per screen pixel) --------------


def _layout(n: int, ppm: int) -> tuple[int, int, int, int, int, int]:
    """Screen width and height, the code card's top-left and side, the phone's bezel width,
    all in render px, for a code of n modules (quiet zone included)."""
    side = n * ppm
    sw = int(side * 1.18)
    sh = 2 * sw
    return sw, sh, (sw - side) // 2, int(sh * 0.30), side, int(sw * 0.05)


def _screen(mods: np.ndarray | None, rng: np.random.Generator, meta: dict) -> np.ndarray:
    """The phone's screen as emitted light (0..1), at `meta["ppm"]` render px per module."""
    n = 57 + 2 * QUIET if mods is None else mods.shape[0]
    ppm = meta["ppm"]
    sw, sh, x0, y0, side, _pad = _layout(n, ppm)
    inverted = meta["inverted"]
    paper, ink = (0.08, 0.92) if inverted else (1.0, 0.06)
    scr = np.full((sh, sw), paper * 0.97 if inverted else 0.94, np.float32)
    # app chrome: a header bar and some text-like blocks above and below the code
    scr[: int(sh * 0.09)] = rng.uniform(0.25, 0.7)
    for _ in range(int(rng.integers(3, 7))):
        ty = (
            int(rng.uniform(0.12, 0.27) * sh)
            if rng.random() < 0.5
            else int(rng.uniform(0.72, 0.95) * sh)
        )
        tx = int(rng.uniform(0.08, 0.3) * sw)
        tw = int(rng.uniform(0.2, 0.6) * sw)
        scr[ty : ty + max(2, ppm), tx : tx + tw] = ink if rng.random() < 0.7 else 0.5
    if mods is not None:
        card = np.where(np.repeat(np.repeat(mods, ppm, 0), ppm, 1), ink, paper).astype(np.float32)
        scr[y0 : y0 + side, x0 : x0 + side] = card
    else:
        _decoy(scr, rng, meta, x0, y0, side, ink, paper)
    if meta["moire"]:
        # the screen's own pixel grid: dark gaps between pixels, pitch in render px
        pitch = meta["moire_pitch"]
        yy, xx = np.mgrid[0:sh, 0:sw]
        grid = ((xx % pitch) < 1) | ((yy % pitch) < 1)
        scr = scr * np.where(grid, 1.0 - meta["moire_depth"], 1.0).astype(np.float32)
    return scr


def _decoy(scr, rng, meta, x0, y0, side, ink, paper) -> None:
    """What a phone shows when it shows no ride code."""
    kind = str(rng.choice(["blank", "photo", "finders", "checker", "text"]))
    meta["decoy"] = kind
    box = scr[y0 : y0 + side, x0 : x0 + side]
    if kind == "photo":
        small = rng.uniform(0.1, 0.9, (8, 8)).astype(np.float32)
        box[:] = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    elif kind == "finders":
        # three QR-like finder patterns with nothing between them (a logo, a half-loaded code)
        f = side // 6
        for cx, cy in ((0, 0), (side - f, 0), (0, side - f)):
            box[cy : cy + f, cx : cx + f] = ink
            box[cy + f // 7 : cy + f - f // 7, cx + f // 7 : cx + f - f // 7] = paper
            box[cy + 2 * f // 7 : cy + f - 2 * f // 7, cx + 2 * f // 7 : cx + f - 2 * f // 7] = ink
    elif kind == "checker":
        k = int(rng.integers(6, 20))
        yy, xx = np.mgrid[0:side, 0:side]
        box[:] = np.where(((yy * k // side) + (xx * k // side)) % 2 == 0, ink, paper)
    elif kind == "text":
        for row in range(int(rng.integers(6, 14))):
            y = row * side // 14
            box[y : y + max(2, side // 40), : int(rng.uniform(0.4, 1.0) * side)] = ink


# -- the scene: phone in a hand in front of the reader, seen through a pinhole camera -------


def _plane_to_camera(meta: dict) -> np.ndarray:
    """Homography from the phone's render px to camera px: the phone plane, centred on the
    code, scaled, turned in 3-D (tilt_x, tilt_y, then rotation) and projected by a pinhole."""
    s = meta["scale"]  # camera px per render px at zero tilt
    a, b, g = (math.radians(meta[k]) for k in ("tilt_x", "tilt_y", "rotation"))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    r = rz @ rx @ ry
    cx, cy = meta["center"]
    ox, oy = meta["code_center"]
    big = 4000.0  # any four points of the plane define its projective map
    src = np.array([[0, 0], [big, 0], [big, big], [0, big]], np.float32)
    dst = []
    for x, y in src:
        p = r @ np.array([(x - ox) * s, (y - oy) * s, 0.0]) + np.array([0, 0, FOCAL])
        dst.append([FOCAL * p[0] / p[2] + cx, FOCAL * p[1] / p[2] + cy])
    return cv2.getPerspectiveTransform(src, np.array(dst, np.float32))


def _geometry(meta: dict, n: int) -> None:
    """Put scale and the code's centre (phone render px) into meta."""
    ppm = meta["ppm"]
    sw, sh, x0, y0, side, pad = _layout(n, ppm)
    meta["scale"] = meta["code_px"] / ((n - 2 * QUIET) * ppm)
    meta["code_center"] = (pad + x0 + side / 2, pad + y0 + side / 2)


def _background(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0.05, 0.45)
    gy = np.linspace(0, rng.uniform(-0.2, 0.2), H, dtype=np.float32)[:, None]
    gx = np.linspace(0, rng.uniform(-0.2, 0.2), W, dtype=np.float32)[None, :]
    tex = cv2.resize(rng.uniform(-0.08, 0.08, (12, 16)).astype(np.float32), (W, H))
    return np.clip(base + gy + gx + tex, 0, 1).astype(np.float32)


def draw_params(rng: np.random.Generator, has_code: bool) -> dict[str, Any]:
    """Draw the conditions of one frame. The distribution is the test set's definition."""
    m: dict[str, Any] = {}
    m["inverted"] = bool(rng.random() < 0.15)
    m["dim"] = float(rng.uniform(0.25, 0.6)) if rng.random() < 0.2 else 1.0
    m["moire"] = bool(rng.random() < 0.25)
    m["moire_pitch"] = int(rng.integers(3, 6))
    m["moire_depth"] = float(rng.uniform(0.25, 0.6))
    m["code_px"] = float(rng.uniform(150, 340))  # side of the 57 code modules in camera px
    m["ppm"] = 6  # render px per module
    m["rotation"] = float(rng.uniform(0, 360))
    tilt = rng.random() < 0.6
    m["tilt_x"] = float(rng.uniform(-35, 35)) if tilt else float(rng.uniform(-5, 5))
    m["tilt_y"] = float(rng.uniform(-35, 35)) if tilt else float(rng.uniform(-5, 5))
    m["center"] = (float(W / 2 + rng.uniform(-90, 90)), float(H / 2 + rng.uniform(-60, 60)))
    m["glare"] = bool(rng.random() < 0.25)
    m["glare_peak"] = float(rng.uniform(0.3, 1.3))
    m["glare_size"] = float(rng.uniform(20, 75))
    m["glare_at"] = (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4)))
    blur = rng.random()
    m["blur"] = "motion" if blur < 0.12 else ("defocus" if blur < 0.5 else "none")
    m["blur_sigma"] = float(rng.uniform(0.5, 1.3))
    m["motion_len"] = int(rng.integers(3, 6))
    m["motion_angle"] = float(rng.uniform(0, 180))
    m["noise"] = float(rng.uniform(1.0, 5.0))
    m["jpeg"] = int(rng.integers(25, 91)) if rng.random() < 0.7 else 0
    m["ambient"] = float(rng.uniform(0.0, 0.12))
    m["has_code"] = has_code
    return m


def render(mods: np.ndarray | None, meta: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """The camera frame of a phone showing the code `mods` (qr_modules; None: no code)."""
    n = 57 + 2 * QUIET if mods is None else mods.shape[0]
    scr = _screen(mods, rng, meta)
    sh, sw = scr.shape
    _geometry(meta, n)
    # the phone: a dark body a little larger than the screen
    pad = _layout(n, meta["ppm"])[5]
    phone = np.full((sh + 2 * pad, sw + 2 * pad), 0.03, np.float32)
    phone[pad : pad + sh, pad : pad + sw] = scr * meta["dim"] + meta["ambient"]
    hmat = _plane_to_camera(meta)
    bg = _background(rng)
    if rng.random() < 0.5:  # a hand holding the phone from below, behind its edge
        hx, hy = meta["center"][0] + rng.uniform(-80, 80), H + rng.uniform(-60, 20)
        yy, xx = np.mgrid[0:H, 0:W]
        d = ((xx - hx) / 110.0) ** 2 + ((yy - hy) / 80.0) ** 2
        bg = np.where(d < 1.0, np.float32(rng.uniform(0.35, 0.55)), bg)
    warped = cv2.warpPerspective(phone, hmat, (W, H), flags=cv2.INTER_LINEAR, borderValue=-1.0)
    img: np.ndarray = np.where(warped < 0, bg, warped).astype(np.float32)
    if meta["glare"]:
        gx = meta["center"][0] + meta["glare_at"][0] * meta["code_px"]
        gy = meta["center"][1] + meta["glare_at"][1] * meta["code_px"]
        yy, xx = np.mgrid[0:H, 0:W]
        r2 = ((xx - gx) ** 2 + ((yy - gy) * 1.6) ** 2) / (meta["glare_size"] ** 2)
        img = img + meta["glare_peak"] * np.exp(-r2).astype(np.float32)
    # optics and sensor
    if meta["blur"] == "defocus":
        img = cv2.GaussianBlur(img, (0, 0), meta["blur_sigma"])
    elif meta["blur"] == "motion":
        k = np.zeros((meta["motion_len"], meta["motion_len"]), np.float32)
        k[meta["motion_len"] // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(
            (meta["motion_len"] / 2 - 0.5, meta["motion_len"] / 2 - 0.5), meta["motion_angle"], 1
        )
        k = cv2.warpAffine(k, rot, k.shape[::-1])
        img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
    else:
        img = cv2.GaussianBlur(img, (0, 0), 0.5)  # every lens blurs a little
    gain = 1.0 / max(0.35, min(1.0, float(img.max()) if meta["dim"] < 1 else 1.0))
    noise = rng.normal(0, meta["noise"] * gain, img.shape).astype(np.float32)
    out = np.clip(img * 235 * min(gain, 2.5) + 10 + noise, 0, 255).astype(np.uint8)
    if meta["jpeg"]:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, meta["jpeg"]])
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


def _code_in_view(n: int, meta: dict) -> bool:
    """The whole code of n modules (quiet zone excluded) lies inside the frame with a margin."""
    ppm = meta["ppm"]
    _geometry(meta, n)
    _sw, _sh, x0, y0, side, pad = _layout(n, ppm)
    a = pad + QUIET * ppm
    x, y, s = x0 + a, y0 + a, side - 2 * QUIET * ppm
    corners = np.array([[[x, y]], [[x + s, y]], [[x + s, y + s]], [[x, y + s]]], np.float32)
    pts = cv2.perspectiveTransform(corners, _plane_to_camera(meta))[:, 0, :]
    inside = (pts[:, 0] > 6) & (pts[:, 0] < W - 6) & (pts[:, 1] > 6) & (pts[:, 1] < H - 6)
    return bool(inside.all())


def frame(text: str | None, rng: np.random.Generator) -> Frame:
    """One frame showing `text` as a ride code (None: no code in view)."""
    mods = qr_modules(text) if text is not None else None  # encoded once: it costs ~13 ms
    for _ in range(50):
        meta = draw_params(rng, mods is not None)
        if mods is None or _code_in_view(mods.shape[0], meta):
            break
    return Frame(render(mods, meta, rng), text, meta)


def frame_set(seed: int, texts: list[str], n_empty: int = 0) -> list[Frame]:
    """Frames of each text, then `n_empty` frames without a code; reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    out = [frame(t, rng) for t in texts]
    out += [frame(None, rng) for _ in range(n_empty)]
    return out


def evaluate(decoder: Any, fset: list[Frame]) -> dict[str, Any]:
    """Score a decoder (`.decode(gray) -> [texts]`) on a frame set: decoded (frames whose text
    it returned), wrong (any other text it returned on a code frame), false_pos (frames without
    a code where it returned anything), rate (% of code frames decoded), median_ms (wall clock),
    median_cpu_ms (the decoding thread's CPU time: what one core spends on a frame, without the
    time other jobs on a shared machine took the core away), passes (how many frames each
    pipeline pass decoded, by `last_pass`; None: not decoded)."""
    import statistics
    import time

    decoded = wrong = false_pos = 0
    times, cpu = [], []
    passes: dict[str | None, int] = {}
    for f in fset:
        t0, c0 = time.perf_counter(), time.thread_time()
        texts = decoder.decode(f.image)
        cpu.append((time.thread_time() - c0) * 1000.0)
        times.append((time.perf_counter() - t0) * 1000.0)
        if f.text is None:
            false_pos += bool(texts)
        elif f.text in texts:
            decoded += 1
            wrong += len(texts) - 1
            last = getattr(decoder, "last_pass", None)
            passes[last] = passes.get(last, 0) + 1
        else:
            wrong += len(texts)
            passes[None] = passes.get(None, 0) + 1
    n_codes = sum(1 for f in fset if f.text is not None)
    return {
        "decoded": decoded,
        "wrong": wrong,
        "false_pos": false_pos,
        "rate": 100.0 * decoded / n_codes if n_codes else 0.0,
        "median_ms": statistics.median(times) if times else 0.0,
        "median_cpu_ms": statistics.median(cpu) if cpu else 0.0,
        "passes": passes,
    }
