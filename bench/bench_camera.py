"""P3: camera decoding on generated phone frames, faregate's pipeline beside the raw libraries.

The set (host_sim/hardware/frames.py, seed 3; the codes come from fixed keys, so every run sees the
same pixels): 640x480 grey frames of ride codes as phones held at a reader look (tilt, rotation,
blur, glare, moire, JPEG, dim and inverted screens), plus frames with no code at all (empty
reader, phones showing other things, finder-like patterns). Every decoder sees the same frames
in the same run, on one core (OpenCV limited to one thread), with the ride-code filter on, as at
the gate. A frame counts as decoded when the decoder returns its text; any other text is wrong;
any text on a frame without a code is a false positive.
FAREGATE_P3_FRAMES=N changes the number of code frames (default 600; a quarter as many empty).
"""

import os

from bench.util import row
from drivers.linux import decode
from host_sim.hardware import frames

SEED = 3


def _texts(n: int) -> list[str]:
    """n ride codes from 20 riders, the same every run (fixed keys, RFC 6979 signatures)."""
    from host_sim.wallet import Issuer, Rider
    from protocol import p256

    now = 1_767_254_400
    issuer = Issuer(key_id=1, key=p256.Signer(0x5EED0001))
    riders = [Rider(key=p256.Signer(0x5EED1000 + i)) for i in range(20)]
    for i, r in enumerate(riders):
        issuer.issue(r, account_id=500 + i, valid_from=now - 60, valid_until=now + 86_400)
    return [riders[i % 20].present(now + i) for i in range(n)]


def p3() -> list[dict]:
    import cv2

    cv2.setNumThreads(1)
    n = int(os.environ.get("FAREGATE_P3_FRAMES", "600"))
    fset = frames.frame_set(SEED, _texts(n), n_empty=n // 4)
    accept = decode.looks_like_ride_code
    results = {}
    for name in ("faregate", "zxing", "zbar", "opencv", "opencv-aruco"):
        try:
            dec = decode.make_decoder(name, accept)
        except ImportError:
            continue  # pyzbar without libzbar0: the table simply lacks that line
        results[name] = frames.evaluate(dec, fset)
    ref = results["zxing"]
    rows = []
    for name, r in results.items():
        label = "faregate pipeline" if name == "faregate" else name + " alone"
        what = "%s: share of %d code frames decoded (wrong %d; false pos. %d of %d empty)" % (
            label,
            n,
            r["wrong"],
            r["false_pos"],
            n // 4,
        )
        ours = name == "faregate"
        rows.append(
            row(
                "P3",
                what,
                r["rate"],
                "%",
                ref["rate"] if ours else None,
                ">= 98%, 0 wrong, 0 false pos." if ours else "",
            )
        )
        rows.append(
            row(
                "P3",
                "%s: median time per frame" % label,
                r["median_ms"],
                "ms",
                ref["median_ms"] if ours else None,
                "<= 4 ms" if ours else "",
            )
        )
    return rows


BENCHES = {"P3": p3}
