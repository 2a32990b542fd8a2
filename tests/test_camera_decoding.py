"""Camera decoding: the pipeline against the raw libraries on generated phone frames, zero
wrong payloads and zero false positives, `faregate decode`, and the camera reader through a
real OpenCV VideoCapture and through the simulated camera.

The set here is small (make test); `make bench ONLY=P3` measures the large one.
"""

import json
import subprocess

import cv2
import numpy as np
import pytest

from drivers.linux import camera, decode
from drivers.portable import registry
from host_sim.hardware import camera as simcam
from host_sim.hardware import frames, phone_frames
from tests.conftest import faregate_argv
from tests.portable import codes

SEED = 2024


def ride_codes(n: int) -> list[str]:
    out = []
    for i in range(n):
        cred = codes.credential(account_id=1000 + i % 7)
        out.append(codes.code(cred, time=codes.NOW + i, counter=i + 1))
    return out


@pytest.fixture(scope="module")
def frame_set():
    texts = ride_codes(40)
    return frames.frame_set(SEED, texts, n_empty=16)


def score(dec, fset):
    r = frames.evaluate(dec, fset)
    return r["decoded"], r["wrong"], r["false_pos"]


def test_pipeline_decodes_what_zxing_alone_misses_and_never_lies(frame_set):
    accept = decode.looks_like_ride_code
    ours = score(decode.Pipeline(accept), frame_set)
    raw = score(decode.ZxingRaw(accept), frame_set)
    n = sum(1 for f in frame_set if f.text)
    assert ours[1] == 0 and ours[2] == 0  # no wrong payload, no false positive
    assert raw[1] == 0 and raw[2] == 0
    assert ours[0] >= raw[0]
    # on this seed zxing-cpp alone reads 38 of 40, the pipeline 39; the one frame nobody reads
    # has glare saturating the middle of a dark-mode code (more than ECC level M can restore)
    assert ours[0] > raw[0] and ours[0] >= n - 1, (ours, raw)


def test_every_frame_zxing_decodes_the_pipeline_decodes_in_its_first_pass(frame_set):
    pipe = decode.Pipeline(decode.looks_like_ride_code)
    for f in frame_set:
        if f.text and f.text in decode.ZxingRaw().decode(f.image):
            assert pipe.decode(f.image) == [f.text] and pipe.last_pass == "zxing"


def test_no_decoder_reports_anything_on_frames_without_a_code():
    rng = np.random.default_rng(SEED + 1)
    empty = [frames.frame(None, rng) for _ in range(24)]
    assert len({f.meta["decoy"] for f in empty}) >= 4  # blank, photo, finders, checker, text
    decoders = [decode.Pipeline(), decode.ZxingRaw(), decode.OpenCVRaw()]
    try:
        decoders.append(decode.ZbarRaw())
    except ImportError:
        pass  # libzbar0 missing: the Makefile's install target says how to add it
    for dec in decoders:
        assert score(dec, empty) == (0, 0, 0), dec.name


def test_a_foreign_qr_code_is_read_but_never_passed_on_as_a_ride_code():
    rng = np.random.default_rng(SEED + 2)
    foreign = ["HTTPS://EXAMPLE.COM/MENU", "FG1:" + "A" * 50, "WIFI:S:CAFE;T:WPA;P:X;;"]
    fset = [frames.frame(t, rng) for t in foreign]
    for f in fset:
        assert decode.Pipeline().decode(f.image) == [f.text]  # it is there, and readable
        assert decode.Pipeline(decode.looks_like_ride_code).decode(f.image) == []


def test_looks_like_ride_code():
    good = ride_codes(1)[0]
    assert decode.looks_like_ride_code(good)
    assert not decode.looks_like_ride_code(good[:-1])
    assert not decode.looks_like_ride_code(good[:-1] + "a")  # not base45
    assert not decode.looks_like_ride_code("XX1:" + good[4:])


def test_frames_are_reproducible_from_the_seed():
    t = ride_codes(2)
    a = frames.frame_set(7, t, 1)
    b = frames.frame_set(7, t, 1)
    c = frames.frame_set(8, t, 1)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not np.array_equal(a[0].image, c[0].image)
    assert a[0].image.shape == (480, 640) and a[0].image.dtype == np.uint8


# phone_frames.py: the independent, harder generator P3's held-out figure comes from (these seeds
# are from bench_camera.DEV_SEEDS, the ones tuning may look at; TEST_SEED is never used here)
PHONE_SEED = 226


def test_phone_frames_are_reproducible_from_the_seed():
    t = ride_codes(2)
    a = phone_frames.frame_set(PHONE_SEED, t, 1)
    b = phone_frames.frame_set(PHONE_SEED, t, 1)
    c = phone_frames.frame_set(PHONE_SEED + 1, t, 1)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not np.array_equal(a[0].image, c[0].image)
    assert a[0].image.shape == (480, 640) and a[0].image.dtype == np.uint8
    assert [f.text for f in a] == t + [None]


def test_phone_frames_draw_from_documented_ranges():
    rng = np.random.default_rng(PHONE_SEED)
    draws = [phone_frames.draw(rng, True) for _ in range(400)]
    mods = [d["module_px"] for d in draws]
    assert 2.0 <= min(mods) < 2.1 and max(mods) <= 5.5  # modules down to 2 px
    assert 0.3 < sum(m < 3.0 for m in mods) / len(mods) < 0.5  # 40 % of codes at 2-3 px
    assert min(d["screen_ppm"] for d in draws) == 2  # 2 screen px per module: the worst moire
    assert 55 < max(d["tilt"] for d in draws) <= 60 and any(d["dark_mode"] for d in draws)
    assert min(d["backlight"] for d in draws) < 0.15  # dim screens
    assert all(d["defocus"] <= 0.55 * d["module_px"] for d in draws)  # the blur floor


def test_pipeline_reads_phone_frames_zxing_alone_misses():
    accept = decode.looks_like_ride_code
    fset = phone_frames.frame_set(PHONE_SEED, ride_codes(6))
    pipe = decode.Pipeline(accept)
    passes = []
    for f in fset:
        assert pipe.decode(f.image) == [f.text]
        passes.append(pipe.last_pass)
    raw = score(decode.ZxingRaw(accept), fset)
    assert raw == (1, 0, 0)  # zxing-cpp alone misses five: small, blurred, tilted, dim codes
    assert passes.count("zxing") == 1 and {"up2", "sharp2", "linear3"} <= set(passes), passes


# one frame per recovery stage, from a short set of a dev seed: zxing-cpp alone misses it, every
# pass before the stage misses it, the stage reads it (the group is the frame's worst trouble)
RESCUES = [
    (206, 3, "histogram", "dim screen (backlight under 0.5)"),
    (221, 2, "linear15", "motion blur"),
    (220, 7, "adaptive", "strong tilt (over 40 degrees)"),
    (240, 0, "linear_adaptive", "defocus over 0.4 module"),
    (205, 4, "linear_smooth3", "sensor noise (read noise over 8 e- or white under 1000 e-)"),
    (225, 3, "roi_linear4", "strong tilt (over 40 degrees)"),
]


@pytest.mark.parametrize("seed,index,stage,group", RESCUES)
def test_each_recovery_stage_rescues_a_frame_of_its_group(seed, index, stage, group):
    f = phone_frames.frame_set(seed, ride_codes(index + 1))[index]
    assert group in phone_frames.groups(f.meta)
    accept = decode.looks_like_ride_code
    assert decode.ZxingRaw(accept).decode(f.image) == []
    names = [p[0] for p in decode.PASSES]
    before = decode.Pipeline(accept, passes=names[: names.index(stage)])
    assert before.decode(f.image) == [] and before.last_pass is None
    pipe = decode.Pipeline(accept)
    assert pipe.decode(f.image) == [f.text] and pipe.last_pass == stage
    alone = decode.Pipeline(accept, passes=[stage])  # the stage by itself reads it too
    assert alone.decode(f.image) == [f.text]


def test_region_holds_every_code_zxing_finds():
    fset = phone_frames.frame_set(PHONE_SEED + 10, ride_codes(8))
    checked = crops = 0
    for f in fset:
        found = [r for r in decode.zxingcpp.read_barcodes(f.image) if r.text == f.text]
        if not found:
            continue
        x0, y0, x1, y1 = decode.region(f.image)
        crops += (x1 - x0) * (y1 - y0) < 0.6 * f.image.size  # a close-up phone fills the view
        pos = found[0].position
        for corner in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left):
            assert x0 <= corner.x <= x1 and y0 <= corner.y <= y1, (corner, (x0, y0, x1, y1))
        checked += 1
    assert checked >= 4 and crops >= checked // 2
    flat = np.full((480, 640), 128, np.uint8)  # nothing in view: the whole frame
    assert decode.region(flat) == (0, 0, 640, 480)


def test_evaluate_reports_cpu_time_and_the_passes_that_read():
    fset = phone_frames.frame_set(PHONE_SEED, ride_codes(6))
    r = frames.evaluate(decode.Pipeline(decode.looks_like_ride_code), fset)
    assert r["decoded"] == 6 and sum(r["passes"].values()) == 6 and None not in r["passes"]
    assert r["median_cpu_ms"] > 0 and r["median_ms"] > 0


def test_group_table_counts_every_code_frame_once_per_group():
    from bench import bench_camera

    fset = phone_frames.frame_set(PHONE_SEED, ride_codes(6))
    table = bench_camera.group_table(fset).splitlines()
    assert table[0].startswith("| group | frames | zxing-cpp alone | pipeline | first pass")
    by_group: dict[str, int] = {"all code frames": len(fset)}
    for f in fset:
        for g in phone_frames.groups(f.meta):
            by_group[g] = by_group.get(g, 0) + 1
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        n = int(cells[1])
        assert n == by_group[cells[0]]
        assert sum(int(c) for c in cells[4:]) == n  # each frame read by one stage, or missed


def test_nothing_is_read_on_phone_frames_without_a_ride_code():
    rng = np.random.default_rng(PHONE_SEED + 4)
    empty = [phone_frames.frame(None, rng) for _ in range(10)]
    assert len({f.meta["kind"] for f in empty}) >= 6  # of EMPTY_KINDS
    for dec in (decode.Pipeline(decode.looks_like_ride_code), decode.ZxingRaw()):
        assert score(dec, [f for f in empty if f.meta["kind"] != "foreign"]) == (0, 0, 0)
    foreign = [f for f in empty if f.meta["kind"] == "foreign"]
    assert foreign  # a phone showing some other QR code: read, and dropped by the shape filter
    assert all(decode.Pipeline().decode(f.image) for f in foreign)
    assert score(decode.Pipeline(decode.looks_like_ride_code), foreign) == (0, 0, 0)


def test_decoders_by_name():
    assert set(decode.DECODERS) == {"faregate", "zxing", "zbar", "opencv", "opencv-aruco"}
    assert decode.make_decoder("opencv-aruco").name == "opencv-aruco"
    with pytest.raises(KeyError):
        decode.make_decoder("tesseract")


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(SEED + 3)
    code = ride_codes(1)[0]
    files = {}
    for name, text in (("code.png", code), ("empty.png", None), ("poster.jpg", "HELLO WORLD")):
        path = tmp_path / name
        cv2.imwrite(str(path), frames.frame(text, rng).image)
        files[name] = (str(path), text)
    return files


def test_cli_decode_json_lines(image_files):
    paths = [image_files[n][0] for n in ("code.png", "empty.png", "poster.jpg")]
    out = subprocess.run(faregate_argv("decode", "--json", *paths), capture_output=True, text=True)
    assert out.returncode == 1  # one file held no code
    *lines, result = [json.loads(line) for line in out.stdout.splitlines()]
    assert (result["event"], result["ok"], result["exit_code"]) == ("result", False, 1)
    assert (result["files"], result["missing"]) == (3, 1)
    assert [o["file"] for o in lines] == paths
    assert lines[0]["texts"] == [image_files["code.png"][1]]
    assert lines[1]["texts"] == [] and lines[2]["texts"] == ["HELLO WORLD"]
    assert all(isinstance(o["ms"], float) and o["ms"] > 0 for o in lines)
    assert lines[0]["decoder"] == "faregate" and lines[0]["pass"] is not None
    assert "no code found in 1 of 3" in out.stderr


def test_cli_decode_ride_codes_only_and_other_decoders(image_files):
    code_png, code = image_files["code.png"]
    poster = image_files["poster.jpg"][0]
    out = subprocess.run(
        faregate_argv("decode", "--ride-codes-only", code_png, poster),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stdout.splitlines()[0].startswith(code_png + ": 1 code in ")
    assert out.stdout.splitlines()[1] == "  " + code
    assert out.stdout.splitlines()[2].startswith(poster + ": 0 codes in ")
    for name in ("zxing", "opencv"):
        r = subprocess.run(
            faregate_argv("decode", "--decoder", name, "--json", poster),
            capture_output=True,
            text=True,
        )
        assert r.returncode in (0, 1) and json.loads(r.stdout.splitlines()[0])["decoder"] == name


def test_cli_decode_unreadable_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out = subprocess.run(faregate_argv("decode", str(bad)), capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "faregate: error: cannot read image %s (fix: give an existing PNG/JPEG/BMP file)" % bad
    )


def test_camera_reader_through_opencv_videocapture(tmp_path):
    rng = np.random.default_rng(SEED + 4)
    a, b = ride_codes(2)
    shots = [None, a, a, None, b, None]  # the same phone held for two frames, then another
    for i, text in enumerate(shots):
        cv2.imwrite(str(tmp_path / ("f%03d.png" % i)), frames.frame(text, rng).image)
    src = registry.open_device("reader", "video:%s" % (tmp_path / "f%03d.png"))
    try:
        got = []
        while True:
            t = src.read(0)
            if t is None and src.stats["ended"]:
                break
            if t:
                got.append(t)
        assert got == [a, b]
        assert src.stats["frames"] == 6 and src.stats["repeats"] == 1
    finally:
        src.close()


def test_simulated_camera_is_a_reader_backend():
    simcam.register()
    src = registry.open_device("reader", "simcam:5")
    assert isinstance(src, camera.CameraSource)
    code = ride_codes(1)[0]
    assert [src.read(0) for _ in range(5)] == [None] * 5  # the empty reader
    assert src.stats["skipped_still"] >= 3  # an unchanged empty scene is not decoded again
    src.capture.present(code, 3)
    got = [src.read(0) for _ in range(6)]
    assert got.count(code) == 1 and set(got) == {code, None}
