"""P3: camera decoding on generated phone frames, faregate's pipeline beside the raw libraries.

Two sets, each made of ride codes from fixed keys (so every run sees the same pixels) plus
frames with no ride code, scored with the ride-code filter on, as at the gate:

    tuned     host_sim/hardware/frames.py, seed 3: the generator the pipeline was first tuned on
              (tilt, rotation, blur, glare, moire, JPEG, dim and inverted screens)
    held-out  host_sim/hardware/phone_frames.py, seed TEST_SEED: an independent, harder
              generator (half as many again small codes of 2-3 px modules, screens of 2 px
              per module, sensor noise over the blur, tilt to 60 degrees, more dim and
              dark-mode screens, deeper moire). The pipeline may be tuned on its DEV_SEEDS
              only; TEST_SEED was not looked at while tuning. This is the figure P3's target
              is about. (Seeds 9001 and 9002 held out an easier version of this generator,
              with dev seeds 100-199; they are retired with it: docs/drivers.md.)

Every decoder sees the same frames in the same run, on one core (OpenCV limited to one
thread). A frame counts as decoded when the decoder returns its text; any other text is wrong;
any text on a frame without a ride code is a false positive.
FAREGATE_P3_FRAMES=N changes the number of code frames per set (default 600; a quarter as many
frames without a code).
"""

import os

from bench.util import row
from drivers.linux import decode
from host_sim.hardware import frames, phone_frames

SEED = 3  # frames.py
DEV_SEEDS = range(200, 300)  # phone_frames.py seeds the pipeline may be tuned on
TEST_SEED = 9101  # phone_frames.py, held out: measured, never tuned on
DECODERS = ("faregate", "zxing", "zbar", "opencv", "opencv-aruco")


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


def _rows(label: str, fset: list[frames.Frame], n: int, target: bool) -> list[dict]:
    accept = decode.looks_like_ride_code
    results = {}
    for name in DECODERS:
        try:
            dec = decode.make_decoder(name, accept)
        except ImportError:
            continue  # pyzbar without libzbar0: the table simply lacks that line
        results[name] = frames.evaluate(dec, fset)
    ref = results["zxing"]
    rows = []
    for name, r in results.items():
        who = "faregate pipeline" if name == "faregate" else name + " alone"
        what = "%s, %s: share of %d code frames decoded (wrong %d; false pos. %d of %d empty)" % (
            label,
            who,
            n,
            r["wrong"],
            r["false_pos"],
            n // 4,
        )
        ours = name == "faregate"
        goal = ours and target
        rows.append(
            row(
                "P3",
                what,
                r["rate"],
                "%",
                ref["rate"] if ours else None,
                ">= 98%, 0 wrong, 0 false pos." if goal else "",
            )
        )
        rows.append(
            row(
                "P3",
                "%s, %s: median time per frame" % (label, who),
                r["median_ms"],
                "ms",
                ref["median_ms"] if ours else None,
                "<= 4 ms" if goal else "",
            )
        )
    return rows


def p3() -> list[dict]:
    import cv2

    cv2.setNumThreads(1)
    n = int(os.environ.get("FAREGATE_P3_FRAMES", "600"))
    texts = _texts(n)
    held_out = phone_frames.frame_set(TEST_SEED, texts, n_empty=n // 4)
    rows = _rows("held-out phone_frames seed %d" % TEST_SEED, held_out, n, True)
    del held_out
    tuned = frames.frame_set(SEED, texts, n_empty=n // 4)
    return rows + _rows("frames.py seed %d" % SEED, tuned, n, False)


BENCHES = {"P3": p3}
