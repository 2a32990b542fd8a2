"""`faregate decode FILE... [--decoder NAME] [--json]`: read QR codes from image files."""

import argparse
import sys
from typing import Any

from provisioning.cli.events import Events, with_events
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError

DECODER_NAMES = ("faregate", "zxing", "zbar", "opencv", "opencv-aruco")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "decode",
        help="decode the QR codes in image files, with the gate's camera pipeline",
        description="Decode the QR codes in each image (PNG, JPEG, BMP, ... anything OpenCV "
        "reads; colour images are converted to grey) and print the texts found and the "
        "milliseconds the decoder took. The default decoder is the gate's own pipeline "
        "(zxing-cpp, then recovery passes for blur, glare, small or dim codes); the others "
        "are the raw libraries, for comparison. Exit status: 0 if every file gave at least "
        "one text, 1 if some gave none, 2 if a file could not be read.",
        epilog="Examples: faregate decode shot.png;  faregate decode --json frames/*.png;  "
        "faregate decode --decoder zbar --ride-codes-only shot.jpg",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="image files")
    p.add_argument(
        "--decoder",
        choices=DECODER_NAMES,
        default="faregate",
        help="faregate (default): the gate's pipeline; zxing, zbar, opencv, opencv-aruco: "
        "one call of that library (zbar needs Debian's libzbar0)",
    )
    p.add_argument(
        "--ride-codes-only",
        action="store_true",
        help="report only texts shaped like a ride code (prefix, length, base45), as the "
        "gate does; other QR codes in the picture are ignored",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line and file: {"file", "texts", "ms", "decoder", "pass"}, '
        "then the result event (files, missing)",
    )
    p.set_defaults(func=with_events(cmd_decode))


def cmd_decode(args: argparse.Namespace, events: Events) -> int:
    from drivers.linux import decode

    accept = decode.looks_like_ride_code if args.ride_codes_only else None
    try:
        dec = decode.make_decoder(args.decoder, accept)
    except ImportError as e:
        raise CliError(
            "decoder %s is not available: %s" % (args.decoder, e),
            "sudo apt-get install libzbar0, or pick --decoder faregate",
            EXIT_USAGE,
        ) from None
    missing = 0
    for path in args.files:
        try:
            gray = decode.to_gray(path)
        except OSError:
            raise CliError(
                "cannot read image %s" % path,
                "give an existing PNG/JPEG/BMP file",
                EXIT_USAGE,
            ) from None
        texts, ms = decode.timed_decode(dec, gray)
        missing += not texts
        if args.json:
            obj = {"file": path, "texts": texts, "ms": round(ms, 3), "decoder": dec.name}
            obj["pass"] = getattr(dec, "last_pass", None)
            events.emit(obj)
        else:
            head = "%s: %d code%s in %.1f ms" % (
                path,
                len(texts),
                "" if len(texts) == 1 else "s",
                ms,
            )
            print(head)
            for t in texts:
                print("  " + t)
    found = "%d of %d file(s)" % (len(args.files) - missing, len(args.files))
    if missing:
        print(
            "faregate decode: no code found in %d of %d file(s)" % (missing, len(args.files)),
            file=sys.stderr,
        )
    if events.as_json:
        events.result(
            not missing,
            "codes found in " + found,
            exit_code=EXIT_FAILED if missing else 0,
            files=len(args.files),
            missing=missing,
        )
    return EXIT_FAILED if missing else 0
