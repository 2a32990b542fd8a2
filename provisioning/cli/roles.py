"""`faregate keys root-...`: the operator root as TUF has it (docs/security.md, "Roles").

    root-init    create N root keys and root metadata version 1 (a threshold K of them)
    root-rotate  the next version's body: new keys for any role, the rest carried over
    root-sign    add the signatures of the keys given (each holder in turn, up to the threshold)
    root-show    what a root metadata, root-signed config or release holds, who signed it
    sign-config  a root-signed config: security settings for one gate, over sync
    release      a root-signed release: the gate's next factory reset forgets its binding
    bind         bind a gate to its operator at the factory: root metadata in its state dir

Gates take root metadata one version after the other (`faregate backoffice publish root FILE`,
or the console's root_meta blob); each must be signed by the threshold of the version before
and by its own. The first (version 1) is signed by root.key, the key gates were claimed with.
"""

import argparse
import json
import os
from typing import Any

from protocol import rootmeta
from provisioning.cli.events import with_events
from provisioning.cli.kit import add_json
from provisioning.cli.main import EXIT_USAGE, CliError

ROLE_OPTIONS = (
    (rootmeta.SYNC, "sync_key", "--sync-key", "sync.pub"),
    (rootmeta.RELEASE, "release_key", "--release-key", "release.pub"),
    (rootmeta.LISTS, "lists_key", "--lists-key", "root.pub"),
    (rootmeta.TECHNICIAN, "technician_key", "--technician-key", "root.pub"),
)


def register(g: Any) -> None:
    i = g.add(
        "root-init",
        "create root keys and root metadata version 1",
        with_events(cmd_root_init),
        "Create DIR/root-1.key .. root-N.key (kept if there) and root metadata version 1: the "
        "root role is those N keys with --threshold K; the other roles default to the "
        "operator directory's keys (sync: sync.pub, release: release.pub, lists and "
        "technician: root.pub). It is signed by root.key (what gates were claimed with: they "
        "take version 1 only with it) and by the first K root keys. Move each root-*.key to "
        "its own offline medium afterwards.",
    )
    i.add_argument("--dir", required=True, help="operator key directory (of `keys init`)")
    i.add_argument("--count", type=int, default=3, help="root keys to make (1..8, default 3)")
    i.add_argument("--threshold", type=int, default=2, help="signatures needed (default 2)")
    _role_args(i)
    i.add_argument("--out", help="file to write (default DIR/root-v1.meta)")
    add_json(i)
    r = g.add(
        "root-rotate",
        "write the next root metadata version (unsigned)",
        with_events(cmd_root_rotate),
        "Read root metadata version N (--from) and write version N+1's body: the keys of "
        "every role given here replace that role's, the others are carried over. Then "
        "`root-sign` it with a threshold of version N's root keys and of its own: gates take "
        "it only with both. To rotate the sync key without a gap, name the old and the new "
        "key (--sync-key twice), switch the back office once every gate reports the new "
        "version, then drop the old key in the version after.",
    )
    r.add_argument("--dir", required=True, help="operator key directory")
    r.add_argument("--from", dest="source", required=True, help="the current root metadata")
    r.add_argument("--root-key", action="append", default=[], help="a new root .pub (repeatable)")
    r.add_argument("--threshold", type=int, help="the new root threshold (default: kept)")
    _role_args(r, default=False)
    r.add_argument("--out", required=True, help="file to write (the unsigned body)")
    add_json(r)
    s = g.add(
        "root-sign",
        "add root signatures to root metadata, a root-signed config or a release",
        with_events(cmd_root_sign),
        "Add the signatures of the --key files to FILE (an unsigned body, or one other "
        "holders signed already) and write it back (or to --out). Run once per key holder, "
        "each on the machine that holds the key.",
    )
    s.add_argument("file", help="root metadata, .fgsc or .fgrl file")
    s.add_argument("--key", action="append", required=True, help="a root private key (repeatable)")
    s.add_argument("--out", help="where to write (default: FILE itself)")
    add_json(s)
    sh = g.add(
        "root-show",
        "show a root metadata, root-signed config or release",
        with_events(cmd_root_show),
    )
    sh.add_argument("file", help="the file")
    add_json(sh)
    c = g.add(
        "sign-config",
        "make a root-signed config (security settings) for one gate",
        with_events(cmd_sign_config),
        "Wrap a gate config (JSON) with a security version and the signatures of the --key "
        "root keys. Over sync, only such a config may change a security setting (windows, "
        "skews, stale policies, revoked technicians, the sync key, clock bounds, risk): a "
        "plain one that does is refused config_needs_root. The gate takes it once, if its "
        "security version is above the last one it took (root_rollback).",
    )
    c.add_argument("config", help="the gate config (JSON, as the site tools make it)")
    c.add_argument(
        "--security-version", type=int, required=True, help="above the gate's last one (1..)"
    )
    c.add_argument("--key", action="append", default=[], help="a root private key (repeatable)")
    c.add_argument("--out", required=True, help="file to write (.fgsc)")
    add_json(c)
    rl = g.add(
        "release",
        "release a bound gate: its next factory reset forgets the binding",
        with_events(cmd_release),
        "Sign a release for --device-id at --root-version (the version the gate holds: "
        "`faregate device status`). Installed as the release blob, it lets the gate's next "
        "factory reset forget its root metadata, so another operator may claim it (sold, "
        "returned). Without it a reset keeps the binding.",
    )
    rl.add_argument("--device-id", type=int, required=True, help="the gate's device id")
    rl.add_argument("--root-version", type=int, required=True, help="the root version it holds")
    rl.add_argument("--key", action="append", default=[], help="a root private key (repeatable)")
    rl.add_argument("--out", required=True, help="file to write (.fgrl)")
    add_json(rl)
    b = g.add(
        "bind",
        "bind a gate to the operator at the factory (pre-installed root)",
        with_events(cmd_bind),
        "Write signed root metadata into a gate's state directory (next to its factory.json) "
        "before it ships: the blank gate then takes a claim only by a technician credential "
        "of that root's technician keys (others: claim_foreign), and a factory reset keeps "
        "it. In the warehouse, a claimed gate is bound over its console instead (the "
        "root_meta blob).",
    )
    b.add_argument("--state", required=True, help="the gate's state directory")
    b.add_argument("--root-meta", required=True, help="signed root metadata")
    add_json(b)


def _role_args(p: argparse.ArgumentParser, default: bool = True) -> None:
    for _role, dest, flag, file in ROLE_OPTIONS:
        p.add_argument(
            flag,
            dest=dest,
            action="append",
            default=[],
            help="a .pub file or hex key for the role (repeatable)"
            + (" (default DIR/%s)" % file if default else " (default: kept)"),
        )


def _check_threshold(count: int, threshold: int) -> None:
    if not 1 <= count <= rootmeta.MAX_KEYS or not 1 <= threshold <= count:
        raise CliError(
            "--count %d --threshold %d" % (count, threshold),
            "1..8 keys and a threshold of 1..count",
            EXIT_USAGE,
        )


def _done(ev: Any, path: str, data: bytes, verb: str) -> None:
    from provisioning import rootkeys

    info = rootkeys.describe(data)
    ev.result(True, "%s %s: %s" % (verb, path, _summary(info)), file=path, **info)


def _summary(info: dict) -> str:
    sigs = len(info["signatures"])
    if info["kind"] == "root":
        roles = ", ".join(
            "%s %d of %d" % (n, r["threshold"], len(r["keys"])) for n, r in info["roles"].items()
        )
        return "root version %d (%s), %d signature(s)" % (info["version"], roles, sigs)
    if info["kind"] == "config":
        return "config for device %d, security version %d, %d signature(s)" % (
            info["device_id"],
            info["security_version"],
            sigs,
        )
    return "release of device %d at root version %d, %d signature(s)" % (
        info["device_id"],
        info["root_version"],
        sigs,
    )


def cmd_root_init(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import rootkeys
    from provisioning.cli import connect

    _check_threshold(args.count, args.threshold)
    made = rootkeys.make_root_keys(args.dir, args.count)
    for path, _pub, created in made:
        action = "created" if created else "kept"
        if ev.as_json:
            ev.emit({"event": "key", "path": path, "action": action})
        else:
            ev.say("  %-7s %s" % (action, path))
    roles = {rootmeta.ROOT: (args.threshold, [pub for _p, pub, _c in made])}
    for role, dest, _flag, _file in ROLE_OPTIONS:
        roles[role] = (1, rootkeys.role_keys(args.dir, role, getattr(args, dest)))
    body = rootkeys.build(1, connect.now(), 365, roles)
    anchor = os.path.join(args.dir, "root.key")
    signers = [p for p, _pub, _c in made[: args.threshold]]
    if os.path.exists(anchor):
        signers.insert(0, anchor)
    data = rootkeys.sign(body, signers)
    out = args.out or os.path.join(args.dir, "root-v1.meta")
    rootkeys.write(out, data)
    _done(ev, out, data, "wrote")
    return 0


def cmd_root_rotate(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import rootkeys
    from provisioning.cli import connect

    old = rootmeta.parse(rootkeys.read(args.source))
    roles = dict(old.roles)
    if args.root_key:
        threshold = args.threshold or old.threshold(rootmeta.ROOT)
        keys = rootkeys.role_keys(args.dir, rootmeta.ROOT, args.root_key)
        _check_threshold(len(keys), threshold)
        roles[rootmeta.ROOT] = (threshold, keys)
    elif args.threshold:
        _check_threshold(len(old.keys(rootmeta.ROOT)), args.threshold)
        roles[rootmeta.ROOT] = (args.threshold, old.keys(rootmeta.ROOT))
    for role, dest, _flag, _file in ROLE_OPTIONS:
        if getattr(args, dest):
            roles[role] = (1, rootkeys.role_keys(args.dir, role, getattr(args, dest)))
    body = rootkeys.build(old.version + 1, connect.now(), 365, roles)
    rootkeys.write(args.out, body)
    _done(ev, args.out, body, "wrote the unsigned body of")
    return 0


def cmd_root_sign(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import rootkeys

    data = rootkeys.sign(rootkeys.read(args.file), args.key)
    out = args.out or args.file
    rootkeys.write(out, data)
    _done(ev, out, data, "signed")
    return 0


def cmd_root_show(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import rootkeys

    data = rootkeys.read(args.file)
    if not ev.as_json:
        ev.say(json.dumps(rootkeys.describe(data), indent=2))
    _done(ev, args.file, data, "")
    return 0


def cmd_sign_config(args: argparse.Namespace, ev: Any) -> int:
    from firmware.compose import gate_config
    from protocol.errors import FormatError
    from provisioning import rootkeys

    raw = rootkeys.read(args.config)
    try:
        cfg = gate_config.parse(raw)
    except FormatError as e:
        raise CliError("%s: %s" % (args.config, e), "fix the config", EXIT_USAGE) from None
    if not 1 <= args.security_version <= 0xFFFFFFFF:
        raise CliError("--security-version out of range", "1..4294967295", EXIT_USAGE)
    body = rootmeta.security_config(cfg["device_id"], args.security_version, raw)
    data = rootkeys.sign(body, args.key) if args.key else body
    rootkeys.write(args.out, data)
    _done(ev, args.out, data, "wrote")
    return 0


def cmd_release(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import rootkeys

    body = rootmeta.release(args.device_id, args.root_version)
    data = rootkeys.sign(body, args.key) if args.key else body
    rootkeys.write(args.out, data)
    _done(ev, args.out, data, "wrote")
    return 0


def cmd_bind(args: argparse.Namespace, ev: Any) -> int:
    from firmware.storage.device_store import ROOT_META as FILE
    from protocol.errors import FormatError
    from provisioning import rootkeys

    data = rootkeys.read(args.root_meta)
    try:
        rootmeta.parse(data)
    except FormatError as e:
        raise CliError(
            "%s: %s" % (args.root_meta, e), "sign it first (root-sign)", EXIT_USAGE
        ) from None
    if not os.path.exists(os.path.join(args.state, "factory.json")):
        raise CliError(
            "%s has no factory.json: not a gate's state directory" % args.state,
            "give the directory the factory image wrote",
            EXIT_USAGE,
        )
    path = os.path.join(args.state, FILE)
    if os.path.exists(path) and rootkeys.read(path) != data:
        raise CliError(
            "%s is bound already" % args.state,
            "a bound gate changes its root by rotation (root-rotate), or a release and reset",
            EXIT_USAGE,
        )
    rootkeys.write(path, data)
    _done(ev, path, data, "bound")
    return 0
