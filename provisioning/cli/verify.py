"""`faregate verify --state DIR [--at TIME] [FILE ...]`: check ride codes as one gate would.

Reads ride-code text, one code per line, from stdin (or from text files, or QR images: .png,
.jpg), and prints one JSON object per code, in order:

    {"accept": false, "reason": "replayed", "reason_number": 43, "display": "Code already used",
     "detail": "...", "account_id": 42, "cred_no": 1, "counter": 3, ...}

Codes are checked in order against one gate's state (a directory made by `faregate wallet init`
or copied from a gate: roots.json, validator.json, trust.bin, deny/, replay.log), so a second
showing of the same code is a replay. Nothing in DIR is changed. Exit status: 0 if every code
was accepted, 1 if any was refused, 2 for a usage problem (missing state, unreadable file).
For technicians investigating a complaint ("my code was refused at 08:02"), and for CI.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

from provisioning.cli.kit import need_dir, read_file
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check ride codes (stdin, text files or QR images) as one gate would; JSON lines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--state", required=True, help="the gate's verification state directory")
    p.add_argument(
        "--at",
        default=None,
        help="the gate's time for every code: unix seconds or ISO 8601 "
        "(2026-01-01T08:02:00Z); default: now",
    )
    p.add_argument(
        "--backend",
        choices=("openssl", "p256"),
        default="openssl",
        help="signature backend: OpenSSL (Linux gates) or the pure-Python P-256 (MCU gates)",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="text files or QR images; - = stdin")
    p.set_defaults(func=cmd_verify)


def _codes(files: list[str]) -> Iterator[tuple[str, int, str]]:
    """(source, line or index, code text) for every code in the inputs."""
    if not files:
        files = ["-"]
    for name in files:
        if name == "-":
            for i, line in enumerate(sys.stdin, 1):
                line = line.rstrip("\r\n")
                if line:
                    yield "-", i, line
        elif name.lower().endswith(IMAGE_EXTS):
            from drivers.linux.decode import decode_image

            try:
                texts = decode_image(name)
            except OSError as e:
                raise CliError(
                    "cannot read %s: %s" % (name, e), "check the path", EXIT_USAGE
                ) from None
            if not texts:
                yield name, 0, ""  # no QR code found: reported as unreadable
            for i, text in enumerate(texts, 1):
                yield name, i, text
        else:
            lines = read_file(name).decode("ascii", errors="surrogateescape").splitlines()
            for i, line in enumerate(lines, 1):
                if line:
                    yield name, i, line


def _verifier(backend: str) -> Any:
    if backend == "p256":
        from protocol import p256

        return p256.Verifier()
    from drivers.linux.crypto_openssl import OpenSSLVerifier

    return OpenSSLVerifier()


def result(decision: Any, now: int) -> dict[str, Any]:
    """The JSON object for one decision."""
    from protocol import reasons

    out: dict[str, Any] = {
        "accept": decision.accept,
        "reason": decision.reason,
        "reason_number": reasons.number(decision.reason),
        "display": reasons.display_text(decision.reason),
        "detail": reasons.REASONS[decision.reason][2],
        "at": now,
    }
    code = decision.code
    if code is not None:
        c = code.credential
        out.update(
            account_id=c.account_id,
            cred_no=c.cred_no,
            issuer_key_id=c.issuer_key_id,
            counter=code.counter,
            time=code.time,
            valid_from=c.valid_from,
            valid_until=c.valid_until,
            scope=c.scope,
        )
    if decision.accept:
        out["offline_limit"] = decision.offline_limit
        out["flags"] = list(decision.flags)
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    from firmware.verify import gatestate
    from protocol.errors import UsageError
    from provisioning.cli.timearg import parse_time

    need_dir(
        args.state,
        "state directory",
        "give a gate's state directory, or make one with `faregate wallet init`",
    )
    now = parse_time(args.at)
    try:
        validator = gatestate.open_validator(args.state, _verifier(args.backend), readonly=True)
    except UsageError as e:
        raise CliError(
            str(e), "run `faregate wallet init --state DIR` or copy a gate's state", EXIT_USAGE
        ) from None
    refused = 0
    for source, line, text in _codes(args.files):
        d = validator.check(text, now)
        if d.accept:
            validator.committed(d.code, now)
        else:
            refused += 1
        obj = result(d, now)
        if source != "-" or len(args.files) > 1:
            obj["source"] = source
        obj["line"] = line
        print(json.dumps(obj, sort_keys=True), flush=True)
    return EXIT_FAILED if refused else 0
