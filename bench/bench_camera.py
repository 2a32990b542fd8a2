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
any text on a frame without a ride code is a false positive. Times are reported twice: wall
clock, and the decoding thread's CPU time (on a machine whose cores are shared with other jobs,
the wall clock of a frame that takes more than a scheduler slice also counts the other jobs'
turns; the CPU time is what the frame costs one core). Both beside zxing-cpp alone's, measured
in the same run: the ratio is the figure that carries over between machines.
`python -m bench.bench_camera SEED...` prints decoding by degradation group (docs/drivers.md).
FAREGATE_P3_FRAMES=N changes the number of code frames per set (default 600; a quarter as many
frames without a code).
"""

import argparse
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
        for key, how in (
            ("median_ms", "time (wall clock)"),
            ("median_cpu_ms", "CPU time (one core)"),
        ):
            rows.append(
                row(
                    "P3",
                    "%s, %s: median %s per frame" % (label, who, how),
                    r[key],
                    "ms",
                    ref[key] if ours else None,
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


# the pipeline's passes by the stage docs/drivers.md names them by
STAGES = {
    "zxing": "first pass",
    "histogram": "histogram",
    "up2": "scaled",
    "sharp15": "scaled",
    "sharp2": "scaled",
    "adaptive": "adaptive",
    "linear15": "gamma",
    "linear3": "gamma",
    "linear_adaptive": "gamma",
    "linear_smooth3": "gamma smoothed",
    "linear_smooth3h": "gamma smoothed",
    "roi_linear4": "region 4x",
}


def group_table(fset: list[frames.Frame]) -> str:
    """A markdown table: per degradation group (phone_frames.GROUPS) of the set's code frames,
    how many zxing-cpp alone reads, how many the pipeline reads, and which stage read them."""
    accept = decode.looks_like_ride_code
    pipe, raw = decode.Pipeline(accept), decode.ZxingRaw(accept)
    stages = list(dict.fromkeys(STAGES.values()))
    counts: dict[str, dict[str, int]] = {}
    for f in fset:
        if f.text is None:
            continue
        ours = f.text in pipe.decode(f.image)
        stage = STAGES[pipe.last_pass] if ours and pipe.last_pass else "missed"
        alone = f.text in raw.decode(f.image)
        for g in ["all code frames", *phone_frames.groups(f.meta)]:
            c = counts.setdefault(g, dict.fromkeys(["n", "alone", "ours", *stages, "missed"], 0))
            c["n"] += 1
            c["alone"] += alone
            c["ours"] += ours
            c[stage] += 1
    head = ["group", "frames", "zxing-cpp alone", "pipeline", *stages, "missed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in ["all code frames", *phone_frames.GROUPS, "none of these"]:
        if g not in counts:
            continue
        c = counts[g]
        pct = ["%.1f %%" % (100.0 * c[k] / c["n"]) for k in ("alone", "ours")]
        cells = [g, str(c["n"]), *pct, *(str(c[k]) for k in [*stages, "missed"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


BENCHES = {"P3": p3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_camera",
        description="Decoding by degradation group on phone_frames.py seeds (tune on DEV_SEEDS "
        "only): the table in docs/drivers.md. P3 itself: python -m bench --only P3.",
    )
    ap.add_argument("seeds", nargs="+", type=int, help="phone_frames.py seeds, e.g. 200 201")
    ap.add_argument("--frames", type=int, default=300, help="code frames per seed (300)")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    fset: list[frames.Frame] = []
    for seed in args.seeds:
        fset += phone_frames.frame_set(seed, _texts(args.frames))
    print(group_table(fset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
