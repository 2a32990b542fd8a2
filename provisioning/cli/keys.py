"""`faregate keys ...`: the operator's keys and CA, and technicians' credentials.

    init        create the operator directory: root (trust anchor of every gate; signs device
                certificates and technician credentials), issuer (ride codes), release
                (firmware images), sync (the back office proves itself to gates with it: its
                public key is every gate's sync.host_key), and ca.pem (the root's X.509 CA
                certificate, for TLS). Re-running it keeps what exists and adds what is missing.
    show        list the operator's keys, their ids and whether each file is encrypted
    technician  issue a technician credential (a key, and the root's signature over it with a
                role and an expiry) into a directory the technician takes to the field
    tls         issue an X.509 certificate from ca.pem for the back office (server) or a gate
    root-init, root-rotate, root-sign, root-show, sign-config, release, bind
                the root's roles, rotation and claiming (provisioning/cli/roles.py)

Private keys are written mode 0600; set FAREGATE_PASSPHRASE to encrypt them (and to read them).
`init` and `show` say which key files are encrypted and warn about each one in clear (on
stderr; a "warning" event with --json): anyone who copies an operator key file in clear can
sign as the operator.
Keep the operator directory off technicians' laptops except root.key where gates are
certified; the back office's machine needs only sync.key (`faregate backoffice serve
--sync-key`). A lost laptop is handled by revoking its technician number in the site file.
"""

import argparse
import datetime
import os
from typing import Any

from provisioning.cli import roles
from provisioning.cli.events import with_events
from provisioning.cli.kit import Group, add_json, need_dir
from provisioning.cli.main import EXIT_TAIL, EXIT_USAGE, CliError

ROLE_HELP = (
    "full: everything; provision: all but factory reset; maintain: status, logs, "
    "self-test, clock; read: status and logs"
)


def register(sub: Any) -> None:
    g = Group(
        sub,
        "keys",
        "the operator's keys and CA, and technician credentials",
        __doc__,
        epilog="Exit codes: 0 ok, 2 a missing or unreadable key file or directory (or a wrong "
        "passphrase), 5 a bug (report it), %s." % EXIT_TAIL,
    )
    i = g.add(
        "init", "create the operator's keys and CA (keeps existing ones)", with_events(cmd_init)
    )
    i.add_argument("--dir", required=True, help="operator key directory")
    i.add_argument("--operator", default="faregate", help="operator name for the CA certificate")
    add_json(i)
    sh = g.add("show", "list the operator's keys", with_events(cmd_show))
    sh.add_argument("--dir", required=True, help="operator key directory")
    add_json(sh)
    t = g.add(
        "technician",
        "issue a technician credential",
        with_events(cmd_technician),
        "Make a technician key in --out and a credential for it signed by the "
        "operator root. Re-issuing into the same --out keeps the key and renews the credential.",
    )
    t.add_argument("--dir", required=True, help="operator key directory (root.key signs)")
    t.add_argument("--name", required=True, help="the technician's name (up to 16 bytes)")
    t.add_argument("--id", type=int, required=True, help="the technician's number (1..2^32-1)")
    t.add_argument(
        "--role", default="full", choices=["full", "provision", "maintain", "read"], help=ROLE_HELP
    )
    t.add_argument("--days", type=int, default=30, help="days the credential is valid (30)")
    t.add_argument("--out", required=True, help="credential directory to write")
    add_json(t)
    roles.register(g)  # root-init, root-rotate, root-sign, root-show, sign-config, release, bind
    tl = g.add("tls", "issue a TLS certificate from the operator CA", with_events(cmd_tls))
    tl.add_argument("--dir", required=True, help="operator key directory (root.key, ca.pem)")
    tl.add_argument(
        "--name",
        action="append",
        required=True,
        help="the host name gates connect to (repeatable; the first is the common name), "
        "or a gate's name with --client",
    )
    tl.add_argument(
        "--ip",
        action="append",
        default=[],
        metavar="ADDR",
        help="with --server: an address gates connect to (repeatable)",
    )
    kind = tl.add_mutually_exclusive_group(required=True)
    kind.add_argument("--server", action="store_true", help="a server certificate (back office)")
    kind.add_argument("--client", action="store_true", help="a client certificate (gate)")
    tl.add_argument("--out", required=True, help="file prefix: writes PREFIX.key and PREFIX.pem")
    add_json(tl)


_SEALED = {True: "encrypted", False: "NOT encrypted", None: "-"}


def _print_rows(ev: Any, rows: list[dict]) -> None:
    import sys

    from provisioning import operator_keys

    for r in rows:
        if ev.as_json:
            ev.emit(dict(r, event="key"))
        else:
            ev.say(
                "  %-8s %-8s key id %-8s  %-13s  %s"
                % (r["name"], r["action"], r["key_id"] or "-", _SEALED[r["encrypted"]], r["path"])
            )
    clear = operator_keys.unencrypted(rows)
    if clear:
        text = (
            "%d operator key file(s) not encrypted (%s): anyone who copies one can sign as "
            "the operator; keep them offline, or set %s before `keys init` to encrypt new keys"
            % (
                len(clear),
                ", ".join(os.path.basename(p) for p in clear),
                operator_keys.PASSPHRASE_ENV,
            )
        )
        if ev.as_json:
            ev.emit({"event": "warning", "message": text, "files": clear})
        else:
            print("warning: " + text, file=sys.stderr, flush=True)


def _public(rows: list[dict], name: str) -> str:
    return next(r["public_key"] for r in rows if r["name"] == name)


def _result(ev: Any, rows: list[dict], directory: str) -> None:
    from provisioning import operator_keys

    clear = operator_keys.unencrypted(rows)
    keys = len([r for r in rows if r["name"] != "ca" and r["action"] != "missing"])
    ev.result(
        True,
        # the text lines above say it all; the JSON result says it once more
        "%d operator keys in %s, %d not encrypted" % (keys, directory, len(clear))
        if ev.as_json
        else "",
        dir=directory,
        keys=keys,
        unencrypted=len(clear),
    )


def cmd_init(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import operator_keys
    from provisioning.cli import connect

    rows = operator_keys.init_operator(args.dir, args.operator, connect.now())
    ev.say("operator keys in %s:" % args.dir)
    _print_rows(ev, rows)
    ev.say("the root's public key (every gate's trust anchor): %s" % _public(rows, "root"))
    ev.say("the sync key's public key (every gate's sync.host_key): %s" % _public(rows, "sync"))
    _result(ev, rows, args.dir)
    return 0


def cmd_show(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import operator_keys

    need_dir(args.dir, "operator key directory", "create it with `faregate keys init --dir DIR`")
    rows = operator_keys.show_operator(args.dir)
    _print_rows(ev, rows)
    _result(ev, rows, args.dir)
    return 0


def cmd_technician(args: argparse.Namespace, ev: Any) -> int:
    from protocol import certs
    from provisioning import operator_keys
    from provisioning.cli import connect

    if len(args.name.encode()) > certs.LABEL_LEN:
        raise CliError("--name is over 16 bytes", "use a shorter name", EXIT_USAGE)
    if not 1 <= args.id <= 0xFFFFFFFF or not 1 <= args.days <= 3650:
        raise CliError(
            "--id or --days out of range", "--id 1..4294967295, --days 1..3650", EXIT_USAGE
        )
    now = connect.now()
    cert = operator_keys.issue_technician(
        args.dir, args.out, args.id, args.name, args.role, args.days, now
    )
    ev.result(
        True,
        "technician %d (%s), role %s, valid until %s: credential in %s"
        % (args.id, args.name, args.role, connect.fmt_time(cert.valid_until), args.out),
        technician=args.id,
        name=args.name,
        role=args.role,
        valid_until=cert.valid_until,
        out=args.out,
    )
    return 0


def cmd_tls(args: argparse.Namespace, ev: Any) -> int:
    from provisioning import operator_keys, pki
    from provisioning.cli import connect
    from provisioning.cli.timearg import iso

    if args.client and (args.ip or len(args.name) > 1):
        raise CliError(
            "a client certificate has one --name and no --ip",
            "give the gate's name once; names and addresses are for --server",
            EXIT_USAGE,
        )
    try:
        dns, ips = pki.split_names(args.name, args.ip)
    except ValueError as e:
        raise CliError(str(e), "--ip takes an IPv4 or IPv6 address", EXIT_USAGE) from None
    root = operator_keys.load_signer(os.path.join(args.dir, "root.key"))
    ca_path = os.path.join(args.dir, "ca.pem")
    if not os.path.exists(ca_path):
        raise CliError(
            "%s not found" % ca_path, "run `faregate keys init --dir %s`" % args.dir, EXIT_USAGE
        )
    ca = pki.load_cert(ca_path)
    key = pki.new_key()
    when = datetime.datetime.fromtimestamp(connect.now(), datetime.UTC)
    cert = pki.issue_cert(
        root.key, ca, key.public_key(), args.name[0], when, args.server, tuple(dns), tuple(ips)
    )
    pki.save_key(key, args.out + ".key", operator_keys.passphrase())
    pki.save_cert(cert, args.out + ".pem")
    if args.server:
        names = ", ".join(["DNS " + n for n in dns] + ["IP " + a for a in ips])
        message = "server certificate for %s (gates may connect to: %s): %s.pem (key %s.key)" % (
            args.name[0],
            names,
            args.out,
            args.out,
        )
    else:
        message = "client certificate for %s: %s.pem (key %s.key)" % (
            args.name[0],
            args.out,
            args.out,
        )
    ev.result(
        True,
        message,
        kind="server" if args.server else "client",
        name=args.name[0],
        dns=dns,
        ip=ips,
        cert=args.out + ".pem",
        key=args.out + ".key",
        not_before=iso(int(cert.not_valid_before_utc.timestamp())),
        not_after=iso(int(cert.not_valid_after_utc.timestamp())),
    )
    return 0
