"""`faregate settle ...`: daily statements between the operator and each issuer.

The operator, once a service day is over and cleared:
    faregate settle statement --db backoffice.sqlite --issuer 1 --day 2026-01-01 \\
        --key operator/sync.key --tariff fares.toml --previous 2025-12-31.json \\
        --certs operator/devices --out 2026-01-01.json
The issuer, offline, trusting nothing the operator says (only the log's public key, the
operator root's public key that certifies every gate's key, and the published fare table):
    faregate settle verify 2026-01-01.json --log-key 02ab... --root-key 03ef... \\
        --tariff fares.toml --previous 2025-12-31.json --issuer-key 03cd...
    faregate settle reconcile 2026-01-01.json --view ours.json --log-key 02ab... \\
        --root-key 03ef... --tariff fares.toml

verify checks, in order: the statement's form and the log key's signatures of it and of its
tree head; that the head extends the head of your previous statement (keep every statement you
accepted); that every record is the log's leaf at its index; that every record is yours and of
the account charged; the rider's signature in every record's ride code (and, with --issuer-key,
your signature of its credential); that every record is in a batch its gate signed, with a
device key the operator root certified (--root-key; the statement shows you the digests of
the other issuers' records of a batch, never their content); that re-pricing each charge's
records with the published fare table gives its journeys, the weekly cap counted from the
week's running totals (which must follow from --previous); and that amounts and totals add
up. Each failure is printed with its reason (protocol/reasons.py 360-371, explained in
docs/settlement.md, "What a failure means"); all charges are checked, not only up to the first
failure.

reconcile verifies statements (one or several days, oldest first) and compares them with
your own view, a JSON file
    {"presentations": [[10, 1, 7, 1767254460], ...], "from": 1767240000, "until": 1767326400,
     "accounts": [10, 11], "amounts": {"10": 300}}
(the (account, cred_no, counter, time) of every presentation your phones reported; the
period they cover; optionally the accounts you issued credentials to and, for one day, the
amount you expect per account) and lists what is missing (reported, in no statement: a
dropped record), extra (in a statement, never reported: an invented one, or not your account)
and priced differently. A journey belongs to the service day of its first tap: give the
statements of every day your period touches.

Exit status: 0 verified (reconcile: nothing differs); 1 a check failed (verify) or something
differs (reconcile), the reasons on the lines before; 2 a usage problem (a file that cannot be
read, a bad key); --json prints one object per failure or finding, then the result.
"""

import argparse
import datetime
import hashlib
import json
import os
from typing import Any

from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import Group, add_json, load_signer, read_file, write_file
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError


def register(sub: Any) -> None:
    g = Group(
        sub,
        "settle",
        "daily statements per issuer: make them (operator), verify and reconcile them (issuer)",
        __doc__,
    )
    st = g.add(
        "statement",
        "make the signed statement of one issuer's service day (operator)",
        with_events(cmd_statement),
        "Re-clears the day's records of the issuer's accounts from the store, signs a tree "
        "head of the transparency log with --key (the log key: serve's --log-key, else its "
        "sync key) and writes the statement, signed by the same key. Give the issuer's "
        "previous statement with --previous so that the new head is proven to extend it.",
    )
    st.add_argument("--db", default="backoffice.sqlite", help="the back office's store")
    st.add_argument("--issuer", type=int, required=True, help="the issuer key id (trust list)")
    st.add_argument("--day", required=True, help="the service day, YYYY-MM-DD")
    st.add_argument("--key", required=True, help="the log key (private, PEM of faregate keys)")
    st.add_argument("--tariff", help="the published fare table (TOML; default: built-in)")
    st.add_argument("--previous", help="the issuer's previous statement (its head is extended)")
    st.add_argument("--as-of", type=int, help="unix time journeys are closed at (default: now)")
    st.add_argument(
        "--certs",
        help="directory of the gates' device certificates, ID.cert as provisioning keeps them "
        "(default: devices/ beside --key); the issuer checks each gate's batch signature with "
        "the key its certificate holds",
    )
    st.add_argument("--out", required=True, help="where to write the statement (JSON)")
    add_json(st)

    def issuer_side(p: argparse.ArgumentParser, several: bool = False) -> None:
        if several:
            p.add_argument(
                "statements",
                nargs="+",
                metavar="STATEMENT",
                help="the statements of the days your view covers, oldest first (each must "
                "extend the one before)",
            )
        else:
            p.add_argument("statement", help="the statement file (JSON, faregate-statement/1)")
        p.add_argument(
            "--log-key",
            required=True,
            help="the log's public key, SEC1 hex (the operator publishes it), or a file of it",
        )
        p.add_argument(
            "--root-key",
            required=True,
            help="the operator root's public key, SEC1 hex (`faregate keys show`: the gates' "
            "trust anchor), or a file of it: it signs the device certificates of the gates "
            "whose batch signatures prove each record",
        )
        p.add_argument(
            "--tariff",
            help="the published fare table it must be priced with (TOML; default: built-in)",
        )
        p.add_argument("--previous", help="your previous statement from this log (consistency)")
        p.add_argument(
            "--issuer-key",
            help="your issuer public key, SEC1 hex: also check your signature of each credential",
        )
        add_json(p)

    v = g.add(
        "verify",
        "check a statement offline: proofs, signatures, prices, totals, consistency",
        with_events(cmd_verify),
        __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    issuer_side(v)
    r = g.add(
        "reconcile",
        "compare a statement with your own view: missing, extra, priced differently",
        with_events(cmd_reconcile),
        __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    issuer_side(r, several=True)
    r.add_argument("--view", required=True, help="your view of the day (JSON, see above)")


def _day_arg(text: str) -> int:
    try:
        d = datetime.date.fromisoformat(text)
    except ValueError:
        raise CliError(
            "%r is not a day YYYY-MM-DD" % text, "give --day 2026-01-01", EXIT_USAGE
        ) from None
    return (d - datetime.date(1970, 1, 1)).days


def _tariff_bytes(path: str | None) -> bytes:
    return read_file(path, "fare table") if path else b""


def _public_key(text: str, what: str) -> bytes:
    if os.path.exists(text):
        text = read_file(text, what).decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) not in (33, 65) or key[0] not in (2, 3, 4):
        raise CliError("%s is not a SEC1 P-256 public key in hex" % what,
                       "give the 66 hex digits the operator published", EXIT_USAGE)  # fmt: skip
    return key


def cmd_statement(args: argparse.Namespace, events: Events) -> int:
    import time

    from host_sim.backoffice import statements
    from provisioning.cli.backoffice import _store

    day = _day_arg(args.day)
    tariff_bytes = _tariff_bytes(args.tariff)
    try:
        tariff = statements.load_tariff_bytes(tariff_bytes)
    except ValueError as e:
        raise CliError(str(e), "correct the fare table", EXIT_USAGE) from None
    previous = None
    if args.previous:
        previous = bytes.fromhex(json.loads(read_file(args.previous, "previous statement"))["head"])
    signer = load_signer(args.key, "log key")
    certs = _device_certs(args.certs or os.path.join(os.path.dirname(args.key) or ".", "devices"))
    store = _store(args.db)
    now = time.time()
    as_of = int(now) if args.as_of is None else args.as_of
    st = statements.build(
        store, signer, args.issuer, day, tariff, tariff_bytes, as_of, int(now * 1000), previous,
        certs,
    )  # fmt: skip
    blob = statements.encode(st)
    write_file(args.out, blob)
    t = st["totals"]
    events.result(
        True,
        "statement of issuer %d for %s: %d accounts, %d journeys, amount %d; %s (sha256 %s)"
        % (
            args.issuer,
            args.day,
            t["accounts"],
            t["journeys"],
            t["amount"],
            args.out,
            hashlib.sha256(blob).hexdigest()[:16],
        ),  # fmt: skip
        path=args.out,
        **t,
    )
    return 0


def _device_certs(d: str) -> dict[int, bytes]:
    """{device_id: certificate} of the directory's ID.cert files (none if it is missing)."""
    out: dict[int, bytes] = {}
    if not os.path.isdir(d):
        return out
    for name in sorted(os.listdir(d)):
        stem, ext = os.path.splitext(name)
        if ext == ".cert" and stem.isdigit():
            out[int(stem)] = read_file(os.path.join(d, name), "device certificate")
    return out


def _verify(args: argparse.Namespace, path: str, previous_path: str | None) -> Any:
    from drivers.linux.crypto_openssl import OpenSSLVerifier
    from host_sim.backoffice import statements

    blob = read_file(path, "statement")
    log_key = _public_key(args.log_key, "--log-key")
    issuer_key = _public_key(args.issuer_key, "--issuer-key") if args.issuer_key else None
    root_key = _public_key(args.root_key, "--root-key")
    previous = read_file(previous_path, "previous statement") if previous_path else None
    return statements.verify(
        blob, log_key, OpenSSLVerifier(), _tariff_bytes(args.tariff), previous, issuer_key,
        root_key,
    )  # fmt: skip


def _failures(events: Events, rep: Any) -> None:
    from protocol import reasons

    for reason, detail in rep.failures:
        row = {"reason": reason, "reason_number": reasons.number(reason), "detail": detail}
        if events.as_json:
            events.emit(dict(row, event="failure"))
        else:
            print("FAILED %s (%d): %s" % (reason, row["reason_number"], detail))


def cmd_verify(args: argparse.Namespace, events: Events) -> int:
    rep = _verify(args, args.statement, args.previous)
    _failures(events, rep)
    st = rep.statement
    fields = {"checked": rep.checked, "reasons": rep.reasons()}
    if st:
        fields.update(issuer=st.get("issuer"), day=st.get("day"), totals=st.get("totals"))
    if rep.ok:
        events.result(
            True,
            "verified: %d charges, %d records, every proof and signature checked"
            % (rep.checked.get("charges", 0), rep.checked.get("records", 0)),
            **fields,
        )
        return 0
    events.result(
        False, "NOT verified: %s" % ", ".join(rep.reasons()), exit_code=EXIT_FAILED, **fields
    )
    return EXIT_FAILED


def cmd_reconcile(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import statements

    try:
        view = json.loads(read_file(args.view, "view"))
        if not isinstance(view, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise CliError("--view %s: %s" % (args.view, e), "see settle reconcile --help",
                       EXIT_USAGE) from None  # fmt: skip
    reps = []
    previous = args.previous
    for path in args.statements:
        reps.append(_verify(args, path, previous))
        previous = path
    bad = sorted({r for rep in reps for r in rep.reasons()})
    for rep in reps:
        _failures(events, rep)
    if bad:
        events.result(False, "NOT verified: %s" % ", ".join(bad), exit_code=EXIT_FAILED,
                      reasons=bad, findings=0)  # fmt: skip
        return EXIT_FAILED
    found = statements.reconcile([rep.statement for rep in reps], view)
    for f in found:
        if events.as_json:
            events.emit(dict(f, event="finding"))
        else:
            print("  ".join("%s=%s" % kv for kv in f.items()))
    kinds = sorted({f["finding"] for f in found})
    if found:
        events.result(False, "%d findings: %s" % (len(found), ", ".join(kinds)),
                      exit_code=EXIT_FAILED, findings=len(found), kinds=kinds)  # fmt: skip
        return EXIT_FAILED
    events.result(True, "the statements agree with your view", findings=0, kinds=[])
    return 0
