"""A second, harder generator of camera frames of phones at a reader, independent of frames.py.

frames.py is the set the decoding pipeline was tuned on; this one exists so the pipeline can be
measured on frames it has not seen. It models the scene differently and runs its own chain, in
the order a camera sees the light:

    screen     the phone's screen as a grid of pixels (lit area and dark gaps, so the grid beats
               against the sensor: moire), showing the code at 3-9 screen pixels per module;
               dark mode (light modules on dark), dim backlight, a reflection (a window's band
               or a lamp's spot) added on the glass
    geometry   the phone turned in 3-D (tilt up to 50 degrees in any direction) and rotated,
               projected by a pinhole camera, over a background and a hand; the code's modules
               2 to 5.5 camera px wide (never foreshortened under MIN_MODULE_PX)
    optics     a defocus disc (pillbox, radius 0.5-1.7 px but at most 0.55 module), sometimes
               motion too, computed at twice the sensor's resolution and then integrated over
               each sensor pixel
    sensor     photon shot noise (Poisson in electrons) and read noise, over the blur
    exposure   auto-exposure and analogue gain (a dim screen: fewer electrons, more gain),
               clipping, a display gamma
    JPEG       quality 20-90 (75 % of frames)

`frame(text, rng)` renders one frame (text None: no ride code; the phone shows something else,
perhaps a QR code that is not a ride code, or there is no phone, only a textured surface).
`frame_set(seed, texts, n_empty)` makes a reproducible set: the same seed, the same pixels.
Frames are frames.Frame objects (image, text, meta), so frames.evaluate scores them.
"""

import math
from typing import Any

import cv2
import numpy as np

from host_sim.hardware.frames import Frame, qr_modules

W, H = 640, 480
SS = 2  # the optics are computed at SS times the sensor's resolution, then integrated
SUB = 2  # render px per screen pixel (one lit, one gap row/column's worth of attenuation)
QUIET = 4
MIN_MODULE_PX = 1.8  # foreshortened module width floor: under it the code is below Nyquist
EMPTY_KINDS = ("surface", "icons", "text", "photo", "stripes", "finders", "speckle", "foreign")
FOREIGN = ("HTTPS://EXAMPLE.COM/MENU?T=12", "WIFI:S:CAFE;T:WPA;P:HUNTER2;;", "FG1:HELLO")


def draw(rng: np.random.Generator, has_code: bool) -> dict[str, Any]:
    """The conditions of one frame; this distribution is the set's definition (docs/drivers.md)."""
    p: dict[str, Any] = {"has_code": has_code}
    # half the codes are small: 2-3 camera px per module (a phone held at arm's length)
    small = rng.random() < 0.4
    p["module_px"] = float(rng.uniform(2.0, 3.0) if small else rng.uniform(3.0, 5.5))
    p["screen_ppm"] = int(rng.integers(2, 10))  # screen pixels per module (2: the grid beats most)
    p["grid_depth"] = float(rng.uniform(0.4, 0.8) if rng.random() < 0.45 else rng.uniform(0, 0.2))
    p["dark_mode"] = bool(rng.random() < 0.3)
    p["backlight"] = float(rng.uniform(0.08, 0.45) if rng.random() < 0.35 else rng.uniform(0.6, 1))
    r = rng.random()
    p["reflection"] = "band" if r < 0.18 else ("spot" if r < 0.32 else "none")
    p["refl_level"] = float(rng.uniform(0.1, 0.6))
    p["refl_width"] = float(rng.uniform(0.08, 0.35))  # in code sides
    p["refl_angle"] = float(rng.uniform(0, 180))
    p["refl_at"] = (float(rng.uniform(-0.45, 0.45)), float(rng.uniform(-0.45, 0.45)))
    p["tilt"] = float(rng.uniform(0, 60) if rng.random() < 0.75 else rng.uniform(0, 8))
    p["tilt_dir"] = float(rng.uniform(0, 360))
    p["rotation"] = float(rng.uniform(0, 360))
    p["at"] = (float(rng.uniform(0.3, 0.7) * W), float(rng.uniform(0.3, 0.7) * H))
    p["focal"] = float(rng.uniform(450, 750))
    # blur floors like MIN_MODULE_PX: a disc wider than 1.1 modules, or a smear longer than 1.5,
    # leaves the finest module pattern under the noise (no decoder reads it, no person either)
    p["defocus"] = float(rng.uniform(0.5, min(1.7, 0.55 * p["module_px"])))  # pillbox radius, px
    smear = float(rng.uniform(1.5, min(4.5, 1.5 * p["module_px"])))
    p["motion"] = smear if rng.random() < 0.2 else 0.0
    p["motion_angle"] = float(rng.uniform(0, 180))
    p["read_noise"] = float(rng.uniform(2.0, 11.0))  # electrons, added after the blur
    p["full_well"] = float(rng.uniform(500, 2500))  # electrons of a bright white at unit gain
    p["max_gain"] = float(rng.uniform(4, 10))
    p["gamma"] = float(rng.uniform(1.8, 2.4))
    p["jpeg"] = int(rng.integers(20, 91)) if rng.random() < 0.75 else 0
    p["hand"] = bool(rng.random() < 0.6)
    return p


# the degradation groups docs/drivers.md reports decoding by (a frame is in every group whose
# condition its draw meets, so the groups overlap; "none of these" is the rest)
GROUPS: dict[str, Any] = {
    "small modules (2-3 px)": lambda p: p["module_px"] < 3.0,
    "strong tilt (over 40 degrees)": lambda p: p["tilt"] > 40,
    "dim screen (backlight under 0.5)": lambda p: p["backlight"] < 0.5,
    "dark mode": lambda p: p["dark_mode"],
    "deep moire (gap depth 0.4 or more)": lambda p: p["grid_depth"] >= 0.4,
    "2-3 screen px per module": lambda p: p["screen_ppm"] <= 3,
    "reflection (band or spot)": lambda p: p["reflection"] != "none",
    "motion blur": lambda p: p["motion"] > 0,
    "defocus over 0.4 module": lambda p: p["defocus"] > 0.4 * p["module_px"],
    "sensor noise (read noise over 8 e- or white under 1000 e-)": lambda p: (
        p["read_noise"] > 8 or p["full_well"] < 1000
    ),
    "JPEG quality under 40": lambda p: 0 < p["jpeg"] < 40,
}


def groups(p: dict) -> list[str]:
    """The degradation groups of one frame's draw (GROUPS), or ["none of these"]."""
    return [name for name, test in GROUPS.items() if test(p)] or ["none of these"]


def _f32(points: Any) -> np.ndarray:
    return np.array(points, np.float32)


# -- screen -------------------------------------------------------------------------------------


def _screen_content(mods: np.ndarray | None, p: dict, rng: np.random.Generator) -> np.ndarray:
    """What the app draws, one value (0 black .. 1 white) per screen pixel, light theme; the
    code (quiet zone included) fills the middle of a screen a little wider than it."""
    n = mods.shape[0] if mods is not None else 65
    ppm = p["screen_ppm"]
    side = n * ppm
    sw, sh = int(side * 1.15), int(side * 1.6)
    scr = np.full((sh, sw), 0.97, np.float32)
    x0, y0 = (sw - side) // 2, (sh - side) // 2
    scr[: int(sh * 0.06)] = 0.55  # status and title bar
    for _ in range(int(rng.integers(2, 6))):  # labels above and below the code
        y = (
            int(rng.uniform(0.08, 0.16) * sh)
            if rng.random() < 0.5
            else int(rng.uniform(0.84, 0.95) * sh)
        )
        x, w = int(rng.uniform(0.05, 0.3) * sw), int(rng.uniform(0.2, 0.6) * sw)
        scr[y : y + max(2, ppm), x : x + w] = 0.15
    box = scr[y0 : y0 + side, x0 : x0 + side]
    if mods is not None:
        box[:] = np.where(np.kron(mods, np.ones((ppm, ppm), bool)), 0.03, 0.97)
    else:
        _other_screen(box, p, rng)
    p["code_box"] = (x0 + QUIET * ppm, y0 + QUIET * ppm, side - 2 * QUIET * ppm)
    return scr


def _other_screen(box: np.ndarray, p: dict, rng: np.random.Generator) -> None:
    """A screen that is not a ride code, drawn into the code's place."""
    s = box.shape[0]
    kind = p["kind"]
    yy, xx = np.mgrid[0:s, 0:s]
    if kind == "icons":
        k = int(rng.integers(3, 6))
        c = s // k
        for i in range(k * k):
            y, x = (i // k) * c + c // 6, (i % k) * c + c // 6
            box[y : y + 2 * c // 3, x : x + 2 * c // 3] = rng.uniform(0.05, 0.8)
    elif kind == "text":
        for row in range(int(rng.integers(8, 20))):
            y = row * s // 20
            for x in range(0, int(s * rng.uniform(0.5, 1.0)), max(3, s // 30)):
                if rng.random() < 0.8:
                    box[y : y + max(2, s // 45), x : x + max(2, s // 45)] = 0.1
    elif kind == "photo":
        small = rng.uniform(0, 1, (6, 6)).astype(np.float32)
        box[:] = cv2.resize(small, (s, s), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    elif kind == "stripes":  # a one-dimensional barcode, or a ticket's stripes
        widths = rng.integers(1, 5, 80) * max(1, s // 160)
        edges = np.cumsum(widths)
        box[:] = np.where(np.searchsorted(edges, xx) % 2 == 0, 0.05, 0.97)
    elif kind == "finders":  # three finder patterns and a random module field without a code
        m = s // 33
        field = rng.random((33, 33)) < 0.5
        box[: 33 * m, : 33 * m] = np.where(np.kron(field, np.ones((m, m), bool)), 0.03, 0.97)
        for cy, cx in ((0, 0), (0, 26 * m), (26 * m, 0)):
            r = np.maximum(abs(yy - cy - 3.5 * m), abs(xx - cx - 3.5 * m)) / m
            ring = (r < 3.5) & ((r >= 2.5) | (r < 1.5))
            box[(r < 4.5) & ~ring] = 0.97
            box[ring] = 0.03
    elif kind == "speckle":
        box[:] = (rng.random((s, s)) < 0.5) * 0.9 + 0.05
    elif kind == "foreign":  # a QR code that is not a ride code: it decodes, and must be dropped
        mods = qr_modules(str(rng.choice(FOREIGN)))
        m = s // mods.shape[0]
        code = np.where(np.kron(mods, np.ones((m, m), bool)), 0.03, 0.97)
        box[: code.shape[0], : code.shape[1]] = code


def _panel(content: np.ndarray, p: dict) -> np.ndarray:
    """The lit panel: each screen pixel SUB x SUB render px, its last row and column dimmed by
    the gap between pixels; dark mode inverts the app's colours; the backlight scales it."""
    light = 1.0 - content if p["dark_mode"] else content
    big = np.kron(light, np.ones((SUB, SUB), np.float32))
    gap = np.ones((SUB, SUB), np.float32)
    gap[-1, :] = gap[:, -1] = 1.0 - p["grid_depth"]
    big *= np.tile(gap, (light.shape[0], light.shape[1]))
    return big * p["backlight"]


# -- geometry -----------------------------------------------------------------------------------


def _homography(p: dict, code_box: tuple, size: tuple[int, int]) -> np.ndarray:
    """Render px of the panel -> camera px at SS x: the panel's plane centred on the code,
    scaled so a module is module_px wide, tilted towards tilt_dir, rotated, then projected."""
    bx, by, bs = (v * SUB for v in code_box)
    n_mods = code_box[2] / p["screen_ppm"]
    scale = p["module_px"] * n_mods / bs * SS  # camera px (SS x) per render px at the centre
    t, d, r = (math.radians(p[k]) for k in ("tilt", "tilt_dir", "rotation"))
    axis = np.array([math.cos(d), math.sin(d), 0.0])
    rot_tilt, _ = cv2.Rodrigues((axis * t).reshape(3, 1))
    rot_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rot = rot_z @ rot_tilt
    f = p["focal"] * SS
    cx, cy = bx + bs / 2, by + bs / 2
    src, dst = [], []
    for x, y in ((0, 0), (size[0], 0), (size[0], size[1]), (0, size[1])):
        v = rot @ np.array([(x - cx) * scale, (y - cy) * scale, 0.0]) + np.array([0, 0, f])
        src.append([x, y])
        dst.append([f * v[0] / v[2] + p["at"][0] * SS, f * v[1] / v[2] + p["at"][1] * SS])
    return cv2.getPerspectiveTransform(_f32(src), _f32(dst))


def _fits(p: dict, hmat: np.ndarray) -> bool:
    """The code lies inside the frame, and no module is foreshortened under MIN_MODULE_PX."""
    bx, by, bs = (v * SUB for v in p["code_box"])
    quad = _f32([[[bx, by]], [[bx + bs, by]], [[bx + bs, by + bs]], [[bx, by + bs]]])
    pts = cv2.perspectiveTransform(quad, hmat)[:, 0, :] / SS
    inside = (pts[:, 0] > 8).all() and (pts[:, 0] < W - 8).all()
    inside = inside and (pts[:, 1] > 8).all() and (pts[:, 1] < H - 8).all()
    n_mods = p["code_box"][2] / p["screen_ppm"]
    sides = [np.linalg.norm(pts[i] - pts[(i + 1) % 4]) / n_mods for i in range(4)]
    return bool(inside and min(sides) >= MIN_MODULE_PX)


def _surroundings(rng: np.random.Generator, p: dict) -> np.ndarray:
    """Radiance behind the phone, SS x: a lit surface with texture and a shadowed edge."""
    base = rng.uniform(0.1, 0.6)
    low = rng.normal(0, 0.12, (6, 8)).astype(np.float32)
    img = base + cv2.resize(low, (W * SS, H * SS), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 0.05, (H * SS, W * SS)).astype(np.float32), (0, 0), 1.5)
    img = img + fine
    if p.get("kind") == "surface":  # no phone: a woven or grained surface fills the view
        yy, xx = np.mgrid[0 : H * SS, 0 : W * SS].astype(np.float32)
        per = rng.uniform(4, 14)
        a = math.radians(rng.uniform(0, 180))
        u = xx * math.cos(a) + yy * math.sin(a)
        v = -xx * math.sin(a) + yy * math.cos(a)
        img = img + 0.25 * np.sign(np.sin(u * 2 * math.pi / per) * np.sin(v * 2 * math.pi / per))
    return np.clip(img, 0, 1.5).astype(np.float32)


# -- optics, sensor, exposure, JPEG ---------------------------------------------------------


def _blur(img: np.ndarray, p: dict) -> np.ndarray:
    """Defocus disc and motion, at SS x, then each sensor pixel integrates SS x SS of it."""
    r = p["defocus"] * SS
    k = int(math.ceil(r))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    disc = np.clip(r + 0.5 - np.hypot(yy, xx), 0, 1).astype(np.float32)
    img = cv2.filter2D(img, -1, disc / disc.sum(), borderType=cv2.BORDER_REPLICATE)
    if p["motion"]:
        n = int(round(p["motion"] * SS)) | 1
        line = np.zeros((n, n), np.float32)
        line[n // 2, :] = 1
        m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), p["motion_angle"], 1)
        smear = cv2.warpAffine(line, m, (n, n))
        img = cv2.filter2D(img, -1, smear / smear.sum(), borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)


def _sensor(radiance: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    """Electrons with shot and read noise; auto-exposure gain; clipping; gamma; 8 bits."""
    # auto-exposure aims the frame's bright end (98th percentile) at 85 % of full scale; what
    # exposure time cannot give, analogue gain does (up to max_gain), amplifying the noise too
    bright = float(np.percentile(radiance, 98)) + 1e-3
    want = 0.85 / bright  # the exposure the frame needs
    time = min(1.0, want)  # the exposure time is capped (a longer one smears the hand's motion)
    gain = min(p["max_gain"], max(1.0, want))
    electrons = radiance * p["full_well"] * time
    signal = rng.poisson(np.clip(electrons, 0, None)).astype(np.float32)
    signal += rng.normal(0, p["read_noise"], signal.shape).astype(np.float32)
    linear = np.clip(signal * gain / p["full_well"], 0, 1)
    return (np.power(linear, 1.0 / p["gamma"]) * 255 + 0.5).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    if not quality:
        return img
    _ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))


def _reflection(img: np.ndarray, p: dict, hmat: np.ndarray) -> np.ndarray:
    """A reflection on the glass (added light, SS x): a band across the code, or a spot."""
    if p["reflection"] == "none":
        return img
    bx, by, bs = (v * SUB for v in p["code_box"])
    centre = cv2.perspectiveTransform(_f32([[[bx + bs / 2, by + bs / 2]]]), hmat)[0, 0]
    side = p["module_px"] * (p["code_box"][2] / p["screen_ppm"]) * SS
    cx, cy = centre[0] + p["refl_at"][0] * side, centre[1] + p["refl_at"][1] * side
    yy, xx = np.mgrid[0 : H * SS, 0 : W * SS].astype(np.float32)
    a = math.radians(p["refl_angle"])
    width = p["refl_width"] * side
    if p["reflection"] == "band":
        d = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        light = np.exp(-((d / width) ** 2))
    else:
        light = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (0.6 * width) ** 2))
    return img + p["refl_level"] * light.astype(np.float32)


def render(text: str | None, p: dict, rng: np.random.Generator) -> np.ndarray | None:
    """The frame of p's scene, or None when the drawn geometry does not fit (draw again)."""
    mods = qr_modules(text) if text is not None else None
    content = _screen_content(mods, p, rng)
    panel = _panel(content, p)
    bezel = max(4, panel.shape[1] // 25)
    phone = np.full((panel.shape[0] + 2 * bezel, panel.shape[1] + 2 * bezel), 0.02, np.float32)
    phone[bezel:-bezel, bezel:-bezel] = panel
    bx, by, bs = p["code_box"]
    p["code_box"] = (bx + bezel / SUB, by + bezel / SUB, bs)
    hmat = _homography(p, p["code_box"], (phone.shape[1], phone.shape[0]))
    if mods is not None and not _fits(p, hmat):
        return None
    scene = _surroundings(rng, p)
    if p["hand"]:
        hx, hy = p["at"][0] * SS + rng.uniform(-100, 100), H * SS * rng.uniform(0.9, 1.1)
        yy, xx = np.mgrid[0 : H * SS, 0 : W * SS]
        inside = ((xx - hx) / 240.0) ** 2 + ((yy - hy) / 170.0) ** 2 < 1.0
        scene[inside] = rng.uniform(0.3, 0.6)
    if p.get("kind") != "surface":
        warped = cv2.warpPerspective(
            phone, hmat, (W * SS, H * SS), flags=cv2.INTER_LINEAR, borderValue=-1.0
        )
        on_phone = warped >= 0
        scene = np.where(on_phone, _reflection(np.maximum(warped, 0), p, hmat), scene)
    return _jpeg(_sensor(_blur(scene, p), p, rng), p["jpeg"])


def frame(text: str | None, rng: np.random.Generator) -> Frame:
    """One frame showing `text` as a ride code (None: something else, or nothing, in view)."""
    for _ in range(100):
        p = draw(rng, text is not None)
        if text is None:
            p["kind"] = str(rng.choice(EMPTY_KINDS))
        img = render(text, p, rng)
        if img is not None:
            return Frame(img, text, p)
    raise RuntimeError("no geometry fits")  # pragma: no cover - the ranges make this unreachable


def frame_set(seed: int, texts: list[str], n_empty: int = 0) -> list[Frame]:
    """Frames of each text, then `n_empty` frames without a ride code; reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    return [frame(t, rng) for t in texts] + [frame(None, rng) for _ in range(n_empty)]
