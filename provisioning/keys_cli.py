"""`faregate keys ...`: the operator's keys and CA, and technicians' credentials.

    init        create the operator directory: root (trust anchor of every gate; signs device
                certificates and technician credentials), issuer (ride codes), release
                (firmware images), and ca.pem (the root's X.509 CA certificate, for TLS).
                Re-running it keeps what exists and adds what is missing.
    show        list the operator's keys and their ids
    technician  issue a technician credential (a key, and the root's signature over it with a
                role and an expiry) into a directory the technician takes to the field
    tls         issue an X.509 certificate from ca.pem for the back office (server) or a gate

Private keys are written mode 0600; set FAREGATE_PASSPHRASE to encrypt them (and to read them).
Keep the operator directory off technicians' laptops except root.key where gates are
certified; a lost laptop is handled by revoking its technician number in the site file.
"""

import argparse
import datetime
import os
from typing import Any

from provisioning.cli import EXIT_USAGE, CliError

ROLE_HELP = (
    "full: everything; provision: all but factory reset; maintain: status, logs, "
    "self-test, clock; read: status and logs"
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="the operator's keys and CA, and technician credentials",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    s.required = True
    i = s.add_parser("init", help="create the operator's keys and CA (keeps existing ones)")
    i.add_argument("--dir", required=True, help="operator key directory")
    i.add_argument("--operator", default="faregate", help="operator name for the CA certificate")
    i.add_argument("--json", action="store_true", help="print JSON lines")
    i.set_defaults(func=cmd_init)
    sh = s.add_parser("show", help="list the operator's keys")
    sh.add_argument("--dir", required=True, help="operator key directory")
    sh.add_argument("--json", action="store_true", help="print JSON lines")
    sh.set_defaults(func=cmd_show)
    t = s.add_parser(
        "technician",
        help="issue a technician credential",
        description="Make a technician key in --out and a credential for it signed by the "
        "operator root. Re-issuing into the same --out keeps the key and renews the credential.",
    )
    t.add_argument("--dir", required=True, help="operator key directory (root.key signs)")
    t.add_argument("--name", required=True, help="the technician's name (up to 16 bytes)")
    t.add_argument("--id", type=int, required=True, help="the technician's number (1..2^32-1)")
    t.add_argument("--role", default="full", choices=["full", "provision", "maintain", "read"])
    t.add_argument("--days", type=int, default=30, help="days the credential is valid (30)")
    t.add_argument("--out", required=True, help="credential directory to write")
    t.add_argument("--json", action="store_true", help="print JSON lines")
    t.set_defaults(func=cmd_technician)
    tl = s.add_parser("tls", help="issue a TLS certificate from the operator CA")
    tl.add_argument("--dir", required=True, help="operator key directory (root.key, ca.pem)")
    tl.add_argument("--name", required=True, help="common name (host name or gate name)")
    kind = tl.add_mutually_exclusive_group(required=True)
    kind.add_argument("--server", action="store_true", help="a server certificate (back office)")
    kind.add_argument("--client", action="store_true", help="a client certificate (gate)")
    tl.add_argument("--out", required=True, help="file prefix: writes PREFIX.key and PREFIX.pem")
    tl.set_defaults(func=cmd_tls)


def _guard(fn: Any) -> Any:
    from provisioning.operator_keys import KeyFileError

    try:
        return fn()
    except KeyFileError as e:
        raise CliError(e.message, e.remedy, EXIT_USAGE) from None


def _print_rows(rows: list[dict], as_json: bool) -> None:
    from provisioning.events import Events

    ev = Events(as_json)
    for r in rows:
        if as_json:
            ev.emit(dict(r, event="key"))
        else:
            ev.say(
                "  %-8s %-8s key id %s  %s"
                % (r["name"], r["action"], r["key_id"] or "-", r["path"])
            )


def cmd_init(args: argparse.Namespace) -> int:
    from provisioning import connect, operator_keys

    rows = _guard(lambda: operator_keys.init_operator(args.dir, args.operator, connect.now()))
    if not args.json:
        print("operator keys in %s:" % args.dir)
    _print_rows(rows, args.json)
    if not args.json:
        print("the root's public key (every gate's trust anchor): %s" % rows[0]["public_key"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from provisioning import operator_keys

    if not os.path.isdir(args.dir):
        raise CliError(
            "%s is not a directory" % args.dir, "create it with `faregate keys init`", EXIT_USAGE
        )
    rows = _guard(lambda: operator_keys.show_operator(args.dir))
    _print_rows(rows, args.json)
    return 0


def cmd_technician(args: argparse.Namespace) -> int:
    from protocol import certs
    from provisioning import connect, operator_keys
    from provisioning.events import Events

    if len(args.name.encode()) > certs.LABEL_LEN:
        raise CliError("--name is over 16 bytes", "use a shorter name", EXIT_USAGE)
    if not 1 <= args.id <= 0xFFFFFFFF or not 1 <= args.days <= 3650:
        raise CliError("--id or --days out of range", "--id 1..4294967295, --days 1..3650", 2)
    now = connect.now()
    cert = _guard(
        lambda: operator_keys.issue_technician(
            args.dir, args.out, args.id, args.name, args.role, args.days, now
        )
    )
    Events(args.json).result(
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


def cmd_tls(args: argparse.Namespace) -> int:
    from provisioning import connect, operator_keys, pki

    def go() -> str:
        root = operator_keys.load_signer(os.path.join(args.dir, "root.key"))
        ca_path = os.path.join(args.dir, "ca.pem")
        if not os.path.exists(ca_path):
            raise operator_keys.KeyFileError(
                "%s not found" % ca_path, "run `faregate keys init --dir %s`" % args.dir
            )
        ca = pki.load_cert(ca_path)
        key = pki.new_key()
        when = datetime.datetime.fromtimestamp(connect.now(), datetime.UTC)
        cert = pki.issue_cert(root.key, ca, key.public_key(), args.name, when, args.server)
        pki.save_key(key, args.out + ".key", operator_keys.passphrase())
        pki.save_cert(cert, args.out + ".pem")
        return args.out

    out = _guard(go)
    print(
        "%s certificate for %s: %s.pem (key %s.key)"
        % ("server" if args.server else "client", args.name, out, out)
    )
    return 0
