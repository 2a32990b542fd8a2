"""`faregate backoffice ...`: run the back office and see what the gates sent.

Gates upload their journals to the back office and fetch lists, fares and config from it
(docs/sync-protocol.md). Everything lives in one SQLite file (--db, default backoffice.sqlite).

First time:
    faregate keys init --dir operator       # the operator's keys, the sync key among them
    faregate keys tls --dir operator --name bo.example.net --ip 10.0.0.5 --server --out bo
    faregate backoffice devices add 101 --pubkey 02ab...    # each gate's device key (or let
                                   # `faregate provision` do it: [sync] registry in the site file)
    faregate backoffice serve --tls-cert bo.pem --tls-key bo.key --tls-ca operator/ca.pem
                                   # signs with operator/sync.key (--sync-key FILE: another)
    faregate backoffice serve --config backoffice.toml     # the same settings from a file,
                                   # with --http HOST:PORT (/healthz, /metrics) and --log FILE
Then, any time:
    faregate backoffice devices | queues | anomalies | journeys | charges   (--json for scripts)
Risk control (docs/fraud.md): findings of the rules, operator review, deny entries:
    faregate backoffice risk run --key operator/root.key   # scan, then publish a deny delta
    faregate backoffice risk findings --state review | accept ID | undo ID --operator ana
No-sense parking (docs/parking.md): plates bound to accounts, the plate list, misreads:
    faregate backoffice plates bind 'B AB 1234' 4711 --hash-key plates.key
    faregate backoffice plates publish --key operator/root.key --hash-key plates.key
    faregate backoffice plates review | decide DEVICE SEQ charged --account 4711 --operator ana
Correcting a charge (each audited: who, when, why, before/after; `backoffice audit`):
    faregate backoffice refund ACCOUNT DAY --amount 2.50 --operator ana --reason '...'
    faregate backoffice adjust ACCOUNT DAY --delta -1.00 --operator ana --reason '...'
    faregate backoffice dispute open|resolve ACCOUNT DAY --operator ana --reason '...'
    faregate backoffice import EXPORT_FILE     # a gate's `device reset --export` file
"""

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from typing import Any

from protocol.errors import FormatError
from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import Group, add_json, load_signer, read_file
from provisioning.cli.main import EXIT_USAGE, CliError

DB_HELP = (
    "the back office's store: a SQLite file (default %(default)s), or a PostgreSQL URL "
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (or ...@/DB?host=/run/postgresql)"
)


def register(sub: Any) -> None:
    from provisioning.cli.timearg import time_arg

    def db(c: argparse.ArgumentParser) -> None:
        c.add_argument("--db", default="backoffice.sqlite", help=DB_HELP)

    g = Group(
        sub,
        "backoffice",
        "run the back office and inspect devices, queues, journeys and charges",
        __doc__,
        common=db,
    )
    sv = g.add(
        "serve",
        "accept gates' sync sessions over TCP (TLS) or a serial port",
        cmd_serve,
        "Serve gates' sync sessions. Each gate proves itself with its device key (it must be "
        "registered: `backoffice devices add`); the back office proves itself with the "
        "operator's sync key (sync.key of `faregate keys init`; gates hold its public key). "
        "Batches are stored (SQLite: WAL, synchronous=FULL; or PostgreSQL: --db postgresql://...) "
        "and committed before they are acknowledged, "
        "so a gate never deletes a record the back office could still lose. Stops with Ctrl-C.",
    )
    sv.add_argument(
        "--config",
        metavar="FILE",
        help="the back office's settings in TOML (docs/operator-guide.md section 2); the "
        "flags below override it",
    )
    sv.add_argument(
        "--sync-key",
        help="the operator's sync key (default operator/sync.key, made by `faregate keys "
        "init`; set FAREGATE_PASSPHRASE if the keys are encrypted)",
    )
    sv.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, help="TCP port (default 7700)")
    sv.add_argument("--tls-cert", help="the back office's TLS certificate (PEM)")
    sv.add_argument("--tls-key", help="its private key (PEM)")
    sv.add_argument("--tls-ca", help="operator CA that signed the gates' client certificates")
    sv.add_argument(
        "--serial", metavar="URL", help="also serve a gate on this serial port (pyserial URL)"
    )
    sv.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /healthz, Prometheus /metrics and the dashboard here (plain HTTP)",
    )
    sv.add_argument(
        "--log", metavar="FILE", help="append the JSON-lines log here (default: standard output)"
    )
    sv.add_argument(
        "--idle-timeout-s", type=int, help="close a session silent this long (default 60)"
    )
    sv.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="sync front ends in N processes on the same port (default 1; one per CPU core "
        "is the most it helps): each its own event loop and store connection, the "
        "listening socket and the TLS session-ticket key made before they are forked, so "
        "a gate resumes its TLS session on any of them. With --http, /metrics counts the "
        "sessions of worker 0 only; --serial runs in worker 0",
    )
    sv.add_argument(
        "--reuse-port",
        dest="reuse_port",
        action="store_true",
        default=None,
        help="with --workers: a listening socket per worker on the same port (SO_REUSEPORT, "
        "Linux), the kernel spreading connections evenly over them, instead of one socket "
        "all workers accept on (every worker woken for each connection). A connection "
        "waiting in a worker's queue when that worker dies is reset: the gate tries again",
    )
    sv.add_argument(
        "--no-group-commit",
        dest="group_commit",
        action="store_false",
        default=None,
        help="commit each session's writes on their own instead of in one transaction with "
        "the other sessions' (the group commit; every batch is still acknowledged only "
        "after its commit either way): for comparing, as bench P11 does",
    )
    sv.add_argument(
        "--log-key",
        metavar="FILE",
        help="the key that signs the transparency log's tree heads (default: the sync key); "
        "issuers check statements against its public key (docs/settlement.md)",
    )
    sv.add_argument(
        "--head-interval-s",
        type=int,
        metavar="S",
        help="sign a tree head of the log at least every S seconds, new leaves or not "
        "(default 3600; 1..3600)",
    )
    sv.add_argument(
        "--risk-key",
        metavar="FILE",
        help="run the risk engine on arrival (docs/fraud.md): after each batch is committed, "
        "scan it and publish the deny delta it leads to, signed with this key (the one that "
        "signs deny lists, operator/root.key of `faregate keys init`), so every gate installs "
        "it at its next sync. Off without it (then `backoffice risk run` from cron)",
    )
    sv.add_argument(
        "--risk-rules",
        metavar="FILE",
        help="the risk engine's settings in TOML (as `backoffice risk --rules`; default: the "
        "built-in ones)",
    )
    sv.set_defaults(db=None)  # from --config, else backoffice.sqlite

    dv = g.add(
        "devices",
        "list registered gates, register one (devices add), or revoke one (devices revoke)",
        with_events(cmd_devices),
        "Without arguments, list the registered gates with their last upload. "
        "`devices add DEVICE_ID --pubkey HEX` registers (or re-keys) a gate: sessions from "
        "unregistered gates or with a wrong key are refused and logged (see --auth-log). "
        "`devices revoke DEVICE_ID` refuses a stolen or retired gate's sessions from now on "
        "(what it uploaded before stays); `devices add` with its new key after a technician "
        "re-provisioned it lifts that.",
    )
    dv.add_argument("action", nargs="?", choices=["list", "add", "revoke"], default="list")
    dv.add_argument(
        "device_id", nargs="?", type=int, help="with add or revoke: the gate's device id"
    )
    dv.add_argument("--pubkey", help="with add: the device's P-256 public key, SEC1 hex")
    dv.add_argument("--label", default="", help="with add: a name such as 'Central lane 3'")
    dv.add_argument("--auth-log", action="store_true", help="show the authentication log")
    add_json(dv)

    q = g.add(
        "queues",
        "per gate: what has arrived, what is still waiting on the gate, and anomalies",
        with_events(cmd_queues),
        "One line per gate: the highest seq stored, when it last synced, and from its last "
        "status report how many records were still waiting on the gate, how old the "
        "oldest was, the firmware it runs (version and A/B slot), its trust list (version, "
        "fresh or STALE, valid until) and deny-list version; with counts of sequence gaps, "
        "chain breaks and replays, and the published blobs it refused (kind, version, reason). "
        "--json: one JSON object per line and gate, of values (numbers, ISO 8601 times, "
        "booleans, null; firmware_*, trust_list_*, deny_list_version as separate fields).",
    )
    add_json(q)

    an = g.add(
        "anomalies",
        "sequence gaps, hash-chain breaks and replays found in uploads",
        with_events(cmd_anomalies),
        "sequence_gap: records a gate never delivered. chain_break: a record that does not "
        "continue its gate's hash chain (tampering or a damaged journal). replay: the same "
        "ride-code presentation accepted at two gates (a copied code). sequence_reset: a gate "
        "whose journal went back in time (refused until a technician looks). seq_conflict: a "
        "gate sent a different record under a seq already stored (the first is kept).",
    )
    an.add_argument(
        "--kind",
        choices=["sequence_gap", "chain_break", "replay", "sequence_reset", "seq_conflict"],
    )
    add_json(an)

    def tariff_opts(c: argparse.ArgumentParser) -> None:
        c.add_argument("--tariff", help="tariff TOML file (default: the built-in demo tariff)")
        c.add_argument("--account", type=int, help="only this account id (of any issuer)")
        c.add_argument(
            "--issuer",
            type=int,
            help="only this issuer's accounts (its key id in the trust list; 0: records from "
            "before several issuers)",
        )
        c.add_argument(
            "--as-of",
            type=time_arg,
            help="time to clear at, ISO 8601 or unix seconds (journeys still open by then are "
            "not charged yet); default now",
        )
        add_json(c)

    c = g.add(
        "journeys",
        "journeys built from the passages (entry/exit pairs), nothing published",
        with_events(cmd_journeys),
        "Clear the stored passages into journeys, each with its status, the tariff rule that "
        "priced it, its flags (fraud_review, review_clock, review_emergency, over_limit, "
        "capped, emergency_exit) and its fare before and after caps. Shows, publishes nothing "
        "(docs/operator-guide.md, 'Clearing policies').",
    )
    tariff_opts(c)
    c = g.add(
        "charges",
        "clear what changed and list the published charges (per account and service day)",
        with_events(cmd_charges),
        "Run clearing (incremental: only the account-days that new taps or still-open journeys "
        "can change), publish, then list one charge per account and service day: its revision, "
        "what clearing charged (cleared), operators' corrections (adjusted), the amount "
        "(charged: cleared + adjusted, never below 0; a refund beyond a re-cleared fare is "
        "shown as excess), journeys, open journeys, journeys for review, and any dispute. "
        "A late tap makes a new revision (an adjustment), never a second charge; running it "
        "twice changes nothing. "
        "--revisions also lists each charge's revisions with their explanation (journeys, "
        "tariff rules, amounts before and after caps).",
    )
    tariff_opts(c)
    c.add_argument("--revisions", action="store_true", help="also list each charge's revisions")
    c.add_argument(
        "--full",
        action="store_true",
        help="re-clear every account (after a tariff change or an import into a gap)",
    )

    def correction(
        name: str, what: str, func: Any, text: str, action: bool = False
    ) -> argparse.ArgumentParser:
        c = g.add(name, what, with_events(func), text)
        if action:
            c.add_argument("action", choices=["open", "resolve"], help="open or resolve it")
        c.add_argument("account", type=int, help="the account id")
        c.add_argument("day", type=_day_arg, help="the charge's service day, YYYY-MM-DD")
        c.add_argument(
            "--issuer",
            type=int,
            default=None,
            help="the account's issuer key id: two issuers' account 42 are two riders "
            "(needed only when several issuers have a charge for this account that day)",
        )
        c.add_argument("--operator", required=True, help="who makes the correction (audited)")
        c.add_argument("--reason", required=True, help="why (audited; say what the rider said)")
        add_json(c)
        return c

    c = correction(
        "refund",
        "refund part or all of a published charge (audited)",
        cmd_refund,
        "Refund AMOUNT of the charge of ACCOUNT on service day DAY: a new revision of kind "
        "refund, kept when clearing re-runs; written to the audit trail with who, when, why "
        "and the charge before and after. `backoffice audit` lists the trail.",
    )
    c.add_argument("--amount", type=_amount_arg, required=True, help="amount, e.g. 2.50")
    c = correction(
        "adjust",
        "change a published charge up or down (audited)",
        cmd_adjust,
        "Change the charge of ACCOUNT on DAY by DELTA (e.g. -1.50 or 4.00): settles a "
        "held_clock or review_emergency journey, or undoes a refund. A revision of kind adjust, "
        "kept when clearing re-runs; audited like a refund.",
    )
    c.add_argument(
        "--delta", type=_amount_arg, required=True, help="amount to add, e.g. 4.00 or -1.50"
    )
    c = correction(
        "dispute",
        "open or resolve a rider's dispute of a charge (audited)",
        cmd_dispute,
        "`dispute open ACCOUNT DAY` marks the charge disputed (charges shows it); `dispute "
        "resolve ACCOUNT DAY` closes it. The money side is refund or adjust. Audited.",
        action=True,
    )
    au = g.add(
        "audit",
        "the operators' audit trail: every refund, adjustment and dispute",
        with_events(cmd_audit),
        "One line per correction, oldest first: when, who, what, the charge, why, and the "
        "amount (or dispute status) before and after. --json gives the full before/after.",
    )
    au.add_argument("--account", type=int, help="only this account id")
    add_json(au)
    im = g.add(
        "import",
        "store a gate's reset export (device reset --export FILE) as if it had synced",
        with_events(cmd_import),
        "Read the file `faregate device reset --export FILE --force` wrote (the gate's unsynced "
        "records, 64 bytes each, concatenated) and store them like a sync upload: idempotent by "
        "(device_id, seq), so importing the file twice, or after the records synced, stores "
        "nothing twice. The gate must be registered. Then `backoffice charges` clears them.",
    )
    im.add_argument("file", help="the export file")
    add_json(im)

    rk = g.add(
        "risk",
        "the risk engine: scan records for fraud, review findings, publish deny entries",
        with_events(cmd_risk),
        "Rules over the records as they arrive (docs/fraud.md: copied_code, cloned_key, "
        "impossible_journey, velocity, missing_taps, debt). Actions:\n"
        "  scan            run the rules over the records stored since the last scan; auto "
        "rules' findings want a deny entry at once, review rules' wait for an operator\n"
        "  findings        list findings (--state review|denied|undone|dismissed|noted, "
        "--account ID)\n"
        "  accept ID       confirm a finding under review: its deny entry is wanted\n"
        "  undo ID         take a denied finding back: its entry is removed at the next publish\n"
        "  dismiss ID      close a finding under review without a deny entry\n"
        "  entries         the deny entries the engine wants and what is on the published list\n"
        "  publish         sign one deny delta of what changed (and expired) with --key and "
        "offer it to every gate (a heartbeat delta when deny_valid_s is set and the list is "
        "due for refreshing)\n"
        "  run             scan, then publish\n"
        "  unpaid ACCOUNT DAY --amount X   the payment side reports an unpaid charge (0: paid)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rk.add_argument(
        "action",
        choices=[
            "scan",
            "findings",
            "accept",
            "undo",
            "dismiss",
            "entries",
            "publish",
            "run",
            "unpaid",
        ],
    )
    rk.add_argument(
        "id", nargs="?", type=int, help="accept/undo/dismiss: the finding's id; unpaid: the account"
    )
    rk.add_argument("day", nargs="?", type=_day_arg, help="unpaid: the service day (YYYY-MM-DD)")
    rk.add_argument(
        "--rules",
        metavar="FILE",
        help="the risk settings in TOML (rules' action, min_score, expire_s and their own "
        "knobs; network travel times; deny_valid_s): docs/fraud.md. Default: the built-in ones",
    )
    rk.add_argument(
        "--key",
        action="append",
        help="publish/run: a key of the lists role that signs deny lists (without root "
        "metadata the root key of `faregate keys init`, operator/root.key; FAREGATE_PASSPHRASE "
        "if encrypted). Give --key once per key, up to the lists role's threshold: gates "
        "holding root metadata refuse a list below it (docs/security.md, Roles)",
    )
    rk.add_argument(
        "--root-key-id", type=int, default=1, help="ignored (lists carry their key ids)"
    )
    rk.add_argument("--operator", help="accept/undo/dismiss: who decides (audited)")
    rk.add_argument("--reason", default="", help="accept/undo/dismiss: why")
    rk.add_argument("--state", help="findings: only this state")
    rk.add_argument("--account", type=int, help="findings: only this account")
    rk.add_argument("--amount", type=_amount_arg, help="unpaid: the unpaid amount (12.50)")
    rk.add_argument(
        "--now", type=int, help="the time to act at, unix seconds (default: the clock's)"
    )
    add_json(rk)

    pl = g.add(
        "plates",
        "no-sense parking: bind plates to accounts, publish the plate list, review misreads",
        with_events(cmd_plates),
        "Plate-bound accounts (docs/parking.md). Actions:\n"
        "  bind PLATE ACCOUNT [--issuer I] [--cred N]   bind a plate to issuer I's account's "
        "credential (a plate bound again moves to the new account)\n"
        "  unbind PLATE                    take it off at the next publish\n"
        "  list                            the bindings and what the published list holds\n"
        "  publish --key K                 sign the plate list's next version (a snapshot the "
        "first time, then a delta) and offer it to every plate lane\n"
        "  review                          queue the lanes' unmatched reads, list the open ones "
        "(--all: every one); an item followed by a passage at its lane fell back to a QR scan\n"
        "  decide DEVICE SEQ charged|dismissed --operator NAME [--account A]\n"
        "With --hash-key FILE plates are keyed by HMAC-SHA256 under that key (hex in the file, "
        "id --hash-key-id): only keys are stored and published, never the plate text. Give the "
        "same key to every bind and publish, and to the lanes (plates.hash_key).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pl.add_argument("action", choices=["bind", "unbind", "list", "publish", "review", "decide"])
    pl.add_argument("args", nargs="*", help="the action's arguments (above)")
    pl.add_argument("--cred", type=int, default=1, help="bind: the credential number (1)")
    pl.add_argument(
        "--issuer",
        type=int,
        default=0,
        help="bind: the issuer key id whose account it is (default 0, the operator's own): "
        "the lane's passage is charged to that issuer's account",
    )
    pl.add_argument("--hash-key", metavar="FILE", help="the plate hash key (hex), for hmac")
    pl.add_argument("--hash-key-id", type=int, default=1, help="that key's id (default 1)")
    pl.add_argument(
        "--key",
        action="append",
        help="publish: a key of the lists role (operator/root.key without root metadata); "
        "once per key, up to the lists role's threshold",
    )
    pl.add_argument(
        "--root-key-id", type=int, default=1, help="ignored (lists carry their key ids)"
    )
    pl.add_argument("--operator", help="decide: who decides")
    pl.add_argument("--note", default="", help="decide: why")
    pl.add_argument("--account", type=int, default=0, help="decide charged: the account")
    pl.add_argument("--all", action="store_true", help="review: every item, not only open ones")
    pl.add_argument("--now", type=int, help="the time to act at, unix seconds")
    add_json(pl)

    pb = g.add(
        "publish",
        "offer a blob (deny-list delta, trust list, fare table, config, firmware) to gates",
        with_events(cmd_publish),
        "Check a file and store it as version N of a kind; gates fetch it at their next sync if "
        "they hold an older version (deny-list deltas one version after the other). Refused: a "
        "file of another kind, a version not above the one published now (or, for trust and "
        "deny lists, not the list's own), and without --force an expired trust list, one "
        "expiring within 7 days, or a deny delta that does not follow the published version. "
        "Then one line per registered gate: what it will do with it at its next sync (from its "
        "last status). Gates that refuse it say so at that sync: `backoffice queues` shows it. "
        "Root metadata (`faregate keys root-sign`) is published one version after the other "
        "(its version is read from it); a config that changes a security setting must be the "
        "root-signed one of `faregate keys sign-config` (docs/security.md, Roles).",
    )
    pb.add_argument(
        "kind", choices=["deny_delta", "trust_list", "fare_table", "config", "firmware", "root"]
    )
    pb.add_argument("file", help="the file to publish, as its owner's tool made it")
    pb.add_argument(
        "--version",
        type=int,
        help="its version number (> 0); trust and deny lists and root metadata: default and "
        "must be the blob's own",
    )
    pb.add_argument(
        "--force",
        action="store_true",
        help="publish an expired or soon-expiring trust list, or a deny delta after a gap, with "
        "a warning",
    )
    add_json(pb)

    from provisioning.cli import backoffice_log

    backoffice_log.register(g)


# -- helpers ---------------------------------------------------------------------------------
def _store(path: str, must_exist: bool = True) -> Any:
    """The store at --db: a SQLite file path, or a postgresql:// URL."""
    from host_sim.backoffice import backends
    from host_sim.backoffice.store import Store

    if backends.is_postgres(path):
        return Store(path)  # backends.StoreUnavailable (one line, its remedy) if it cannot
    if must_exist and not os.path.exists(path):
        raise CliError(
            "no back office database at %s" % path,
            "pass --db PATH, or start one with `faregate backoffice serve --db %s`" % path,
            EXIT_USAGE,
        )
    return Store(path)


def _print(
    events: Events, rows: list[dict[str, Any]], cols: list[str], empty: str, noun: str
) -> None:
    """The rows as a table, or with --json one object per line (as they are, without an
    "event" field) and then the result event, with `count` the number of rows."""
    if events.as_json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        events.result(True, "%d %s" % (len(rows), noun), count=len(rows))
        return
    if not rows:
        print(empty)
        return
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):
        return "%s@%s" % (v.get("station"), _when(v.get("time")))
    return str(v)


def _when(t: int | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(v: int) -> str:
    return "%d.%02d" % divmod(v, 100)


# -- commands --------------------------------------------------------------------------------
def _serve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """serve's settings: the defaults, then --config FILE, then the flags given."""
    from host_sim.backoffice import backends, config

    values = config.defaults()
    if args.config:
        values.update(config.load(args.config))
    flags = {
        "store.path": args.db,
        "sync.sync_key": args.sync_key,
        "tls.cert": args.tls_cert,
        "tls.key": args.tls_key,
        "tls.ca": args.tls_ca,
        "sync.serial": args.serial,
        "http.listen": args.http,
        "log.file": args.log,
        "sync.idle_timeout_s": args.idle_timeout_s,
        "sync.workers": args.workers,
        "sync.reuse_port": args.reuse_port,
        "sync.group_commit": args.group_commit,
        "translog.key": args.log_key,
        "translog.head_interval_s": args.head_interval_s,
        "risk.deny_key": args.risk_key,
        "risk.rules": args.risk_rules,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.db is not None:  # --db is the store, whichever backend: it overrides the file's
        values["store.url"] = args.db if backends.is_postgres(args.db) else None
    if args.host is not None or args.port is not None:
        host, port = config.parse_addr(values["sync.listen"][0])
        values["sync.listen"] = [
            "%s:%d" % (args.host or host, port if args.port is None else args.port)
        ]
    try:
        values["sync.listen"] = [config.parse_addr(a) for a in values["sync.listen"]]
        if values["http.listen"]:
            values["http.listen"] = config.parse_addr(values["http.listen"])
    except ValueError as e:
        raise CliError(str(e), "give HOST:PORT", EXIT_USAGE) from None
    if not 1 <= values["translog.head_interval_s"] <= 3600:
        raise CliError("--head-interval-s must be 1..3600", "an hour at most", EXIT_USAGE)
    if not 1 <= values["sync.workers"] <= 64:
        raise CliError("--workers must be 1..64", "one per CPU core at most helps", EXIT_USAGE)
    return values


def cmd_serve(args: argparse.Namespace) -> int:
    import sys

    from drivers.linux.crypto_openssl import OpenSSLVerifier
    from host_sim.backoffice import sync_server

    cfg = _serve_settings(args)
    keys = sync_server.HostKeys(
        load_signer(cfg["sync.sync_key"], "operator sync key"), OpenSSLVerifier()
    )
    tls = None
    tls_files = (cfg["tls.cert"], cfg["tls.key"], cfg["tls.ca"])
    if any(tls_files):
        if not all(tls_files):
            raise CliError(
                "TLS needs --tls-cert, --tls-key and --tls-ca together",
                "give all three (certificates from the operator CA)",
                EXIT_USAGE,
            )
        from provisioning.operator_keys import PASSPHRASE_ENV, passphrase

        try:
            tls = sync_server.server_context(*tls_files, password=passphrase())
        except OSError as e:  # ssl.SSLError too: a wrong passphrase, a key for another cert
            raise CliError(
                "cannot load the back office's TLS files: %s" % e,
                "check --tls-cert, --tls-key and --tls-ca (an encrypted key needs %s)"
                % PASSPHRASE_ENV,
                EXIT_USAGE,
            ) from None
    for host, _port in cfg["sync.listen"]:
        if tls is None and host not in ("127.0.0.1", "localhost", "::1"):
            raise CliError(
                "refusing plain TCP on %s: account ids would cross the network in clear" % host,
                "add --tls-cert, --tls-key and --tls-ca, or listen on 127.0.0.1",
                EXIT_USAGE,
            )
    try:
        out = open(cfg["log.file"], "a") if cfg["log.file"] else sys.stdout
    except OSError as e:
        raise CliError(
            "cannot open the log %s: %s" % (cfg["log.file"], e.strerror), "check --log", EXIT_USAGE
        ) from None
    log = sync_server.json_lines(out)
    db = cfg["store.url"] or cfg["store.path"]
    if cfg["risk.deny_key"]:  # read once, before any fork: a bad file stops serve here
        from host_sim.backoffice import risk

        cfg["risk.config"] = risk.load_config(cfg["risk.rules"])
        cfg["risk.signer"] = load_signer(cfg["risk.deny_key"], "deny-list signing key")
    workers = cfg["sync.workers"]
    if workers == 1:
        return _serve_process(cfg, keys, tls, log, out, db, None, None)
    _store(db, must_exist=False).close()  # a missing server is said once, before forking
    reuse = bool(cfg["sync.reuse_port"])
    # per address, each worker's listening socket (one shared, or one each: --reuse-port)
    socks = [
        sync_server.worker_sockets(host, port, workers, reuse) for host, port in cfg["sync.listen"]
    ]
    return sync_server.run_workers(
        workers,
        lambda i: _serve_process(cfg, keys, tls, log, out, db, [s[i] for s in socks], i),
    )


def _lists_signers(paths: list[str]) -> list[Any]:
    """The signers of --key (each a key of the lists role), in order."""
    return [load_signer(p, "lists key") for p in paths]


def _serve_process(
    cfg: dict[str, Any],
    keys: Any,
    tls: Any,
    log: Any,
    out: Any,
    db: str,
    socks: list | None,
    worker: int | None,
) -> int:
    """One sync front end: the only one (worker None), or worker `worker` of --workers on
    the listening sockets `socks`, made before the fork."""
    import signal
    import sys
    import threading

    from host_sim.backoffice import backends, http, sync_server
    from host_sim.backoffice.group_commit import GroupCommit
    from host_sim.backoffice.metrics import Metrics
    from host_sim.backoffice.store import Store

    store = _store(db, must_exist=False)
    commit = GroupCommit(lambda: Store(db)) if cfg["sync.group_commit"] else None
    shown = backends.redact(db)  # no password in the log
    metrics = Metrics(store)
    stop = threading.Event()
    first = worker in (None, 0)
    log_signer = load_signer(cfg["translog.key"] or cfg["sync.sync_key"], "log key")
    live = None  # the risk engine on arrival: in one front end (the others' records: every_s)
    if cfg["risk.deny_key"] and first:
        from host_sim.backoffice.risk_live import RiskWorker

        live = RiskWorker(
            lambda: Store(db),
            cfg["risk.config"],
            cfg["risk.signer"],
            log=log,
            every_s=cfg["risk.every_s"],
        )
    arrived = live.arrived if live is not None else None
    if cfg["sync.serial"] and first:
        from drivers.linux.link_serial import SerialLink

        link = SerialLink(cfg["sync.serial"])
        serial = sync_server.Sessions(store, keys, log=log, metrics=metrics, arrived=arrived)
        threading.Thread(
            target=sync_server.serve_link, args=(store, keys, link, stop, None, serial), daemon=True
        ).start()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        why: list[str] = []

        def on_signal(name: str) -> None:
            why.append(name)
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        servers = []
        listening = []
        for i, (host, port) in enumerate(cfg["sync.listen"]):
            server = await sync_server.serve_tcp(
                store,
                keys,
                host,
                port,
                tls,
                None,
                log,
                metrics,
                cfg["sync.idle_timeout_s"],
                commit,
                socks[i] if socks else None,
                arrived,
            )
            servers.append(server)
            listening.append("%s:%d" % (host, server.sockets[0].getsockname()[1]))
        runner = None
        event: dict[str, Any] = {"event": "start"}
        if worker is not None:
            event["worker"] = worker
        if cfg["http.listen"] and first:
            runner = await http.start_http(http.make_app(store, metrics, live), *cfg["http.listen"])
            event["http"] = "%s:%d" % (cfg["http.listen"][0], http.bound_port(runner))
        event["msg"] = (
            "listening on %s (%s), storing into %s"
            % (
                ", ".join(listening),
                "TLS" if tls else "plain TCP, loopback only",
                shown,
            )
            + (", http on %s" % event["http"] if runner else "")
            + (", risk engine on arrival" if live is not None else "")
        )
        if live is not None:
            event["risk"] = "on arrival"
        event.update(listen=listening, tls=tls is not None, store=shown)
        log(event)
        if first:  # one process signs the log's heads, on its own connection
            heads = _HeadSigner(db, log_signer, cfg["translog.head_interval_s"], log)
            heads.tick()
            threading.Thread(target=heads.run, args=(stop,), daemon=True).start()
        if out is not sys.stdout and first:  # the terminal or the journal says it, once
            print("backoffice: %s; log in %s" % (event["msg"], cfg["log.file"]), flush=True)
        await stopping.wait()
        for server in servers:
            server.close()
        if runner is not None:
            await runner.cleanup()
        for server in servers:
            await server.wait_closed()
        return why[0] if why else "stop"

    try:
        how = asyncio.run(main())
        if commit is not None:
            commit.close()  # what is queued is committed before the stop is logged
        if live is not None:
            live.close()
        event: dict[str, Any] = {"event": "stop", "msg": "stopped by %s" % how}
        if worker is not None:
            event["worker"] = worker
        log(event)
    finally:
        stop.set()
    return 0


class _HeadSigner:
    """serve's head signer: a signed tree head of the log at start (`tick` once, before the
    first session) and then every interval (translog.publish_due), with or without new
    leaves, on its own store connection (`run` in a thread, until `stop`). A store that fails
    is logged and tried again at the next tick: serving gates goes on."""

    def __init__(self, db: str, signer: Any, interval_s: int, log: Any) -> None:
        from host_sim.backoffice.store import Store

        self.store = Store(db)
        self.tlog = self.store.translog(signer, interval_s * 1000)
        self.interval_s = interval_s
        self.log = log

    def tick(self) -> None:
        try:
            self.tlog.refresh()
            if self.tlog.publish_due(int(time.time() * 1000)) is not None:
                head = self.tlog.last_head
                assert head is not None
                self.log(
                    {
                        "event": "tree_head",
                        "tree_size": head.tree_size,
                        "root_hash": head.root_hash.hex(),
                        "msg": "signed the log's head at %d leaves" % head.tree_size,
                    }
                )
        except self.store.errors as e:
            self.log({"event": "tree_head_failed", "msg": "cannot sign the log's head: %s" % e})

    def run(self, stop: Any) -> None:
        try:
            while not stop.wait(min(self.interval_s, 10)):
                self.tick()
        finally:
            self.store.close()


def cmd_devices(args: argparse.Namespace, events: Events) -> int:
    if args.action == "add":
        if args.device_id is None or not args.pubkey:
            raise CliError(
                "devices add needs a device id and --pubkey",
                "faregate backoffice devices add 101 --pubkey 02ab...",
                EXIT_USAGE,
            )
        try:
            pub = bytes.fromhex(args.pubkey)
        except ValueError:
            raise CliError("--pubkey is not hex", "paste the SEC1 key as hex", EXIT_USAGE) from None
        from protocol.errors import FormatError

        store = _store(args.db, must_exist=False)
        try:
            new = store.add_device(args.device_id, pub, int(time.time()), args.label)
        except FormatError as e:
            raise CliError(str(e), "give a 33- or 65-byte SEC1 P-256 key", EXIT_USAGE) from None
        events.result(
            True,
            "%s device %d" % ("registered" if new else "re-keyed", args.device_id),
            device_id=args.device_id,
            registered=new,
        )
        return 0
    if args.action == "revoke":
        if args.device_id is None:
            raise CliError(
                "devices revoke needs a device id",
                "faregate backoffice devices revoke 101",
                EXIT_USAGE,
            )
        if not _store(args.db).revoke_device(args.device_id, int(time.time())):
            raise CliError(
                "device %d is not registered" % args.device_id,
                "check the id: `faregate backoffice devices` lists them",
                EXIT_USAGE,
            )
        events.result(
            True,
            "revoked device %d: its sessions are refused from now on" % args.device_id,
            device_id=args.device_id,
        )
        return 0
    store = _store(args.db)
    if args.auth_log:
        rows = store.auth_log()
        if not args.json:
            for r in rows:
                r["time"] = _when(r["time"])
        _print(
            events,
            rows,
            ["time", "device_id", "peer", "outcome", "detail"],
            "no sessions",
            "sessions",
        )
        return 0
    rows = []
    for d in store.devices():
        seen, revoked = d["last_seen"], d["revoked"]
        rows.append(
            {
                "device_id": d["device_id"],
                "label": d["label"],
                "pubkey": d["pubkey"].hex(),
                "high_seq": d["high_seq"],
                "last_seen": seen if args.json else _when(seen),
                "revoked": revoked if args.json or revoked is None else _when(revoked),
            }
        )
    if not args.json:
        for r in rows:
            r["pubkey"] = r["pubkey"][:16] + "..."
    cols = ["device_id", "label", "high_seq", "last_seen", "revoked", "pubkey"]
    _print(events, rows, cols, "no devices registered (faregate backoffice devices add)", "gates")
    return 0


def cmd_queues(args: argparse.Namespace, events: Events) -> int:
    import time

    from host_sim.backoffice import fleet

    gates = fleet.gates(_store(args.db), int(time.time()))
    rows = [_queue_row(g, args.json) for g in gates]
    _print(events, rows, list(rows[0]) if rows else [], "no devices registered", "gates")
    return 0


def _queue_row(g: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """One gate of `queues` from its fleet row (host_sim/backoffice/fleet.py): values for --json
    (numbers, ISO 8601 times, booleans, null), and for the table the same gathered into a few
    readable columns."""
    from provisioning.cli.timearg import iso

    until = g["trust_valid_until"]
    state = g["trust_state"]
    anomalies = g["anomalies"]
    row: dict[str, Any] = {
        "device_id": g["device_id"],
        "label": g["label"],
        "stored_up_to": g["stored_up_to"],
        "last_sync": None if g["last_sync"] is None else iso(g["last_sync"]),
        "waiting_on_gate": g["queue_depth"],
        "oldest_waiting_s": g["oldest_unsynced_age_s"],
        "firmware_version": g["firmware"],
        "firmware_slot": g["slot"],
        "firmware_trial": g["trial"],
        "trust_list_version": g["trust_version"],
        "trust_list_state": state,
        "trust_list_fresh": None if state is None else state == "fresh",
        "trust_list_valid_until": None if until is None else iso(until),
        "deny_list_version": g["deny_version"],
        "gaps": anomalies.get("sequence_gap", 0),
        "chain_breaks": anomalies.get("chain_break", 0),
        "replays": anomalies.get("replay", 0),
        "refused": [
            {k: r[k] for k in ("kind", "version", "reason", "detail")} | {"time": iso(r["last"])}
            for r in g["refused"]
        ],
    }
    if as_json:
        return row
    row["last_sync"] = _when(g["last_sync"])
    firmware = None
    if g["firmware"]:
        firmware = "%s (slot %s)%s" % (g["firmware"], g["slot"], " ON TRIAL" if g["trial"] else "")
    trust = None
    if state is not None:  # the gate reported its trust list
        trust = "v%s %s until %s" % (
            "?" if g["trust_version"] is None else g["trust_version"],
            state if state == "fresh" else state.upper(),
            _when(until)[:10],
        )
    table = {k: row[k] for k in ("device_id", "label", "stored_up_to", "last_sync")}
    table.update(
        waiting_on_gate=row["waiting_on_gate"],
        oldest_waiting_s=row["oldest_waiting_s"],
        firmware=firmware,
        trust_list=trust,
        deny_list=None if row["deny_list_version"] is None else "v%d" % row["deny_list_version"],
        gaps=row["gaps"],
        chain_breaks=row["chain_breaks"],
        replays=row["replays"],
        refused=", ".join(
            "%s v%d (%s)" % (r["kind"], r["version"], r["reason"]) for r in g["refused"]
        )
        or None,
    )
    return table


def cmd_anomalies(args: argparse.Namespace, events: Events) -> int:
    rows = _store(args.db).anomalies(args.kind)
    if not args.json:
        for r in rows:
            r["time"] = _when(r["time"])
    _print(
        events, rows, ["time", "kind", "device_id", "seq", "detail"], "no anomalies", "anomalies"
    )
    return 0


def _clear(args: argparse.Namespace) -> list[dict[str, Any]]:
    from host_sim.backoffice import clearing

    tariff = _tariff(args)
    store = _store(args.db)
    as_of = args.as_of if args.as_of is not None else int(time.time())
    js = [_by_issuer(j) for j in clearing.clear(store, tariff, as_of)]
    return [j for j in js if _wanted(args, j)]


def _by_issuer(row: dict[str, Any]) -> dict[str, Any]:
    """A clearing row with its account key (records.account_key) shown as issuer and account."""
    from protocol.records import split_account_key

    row["issuer"], row["account_id"] = split_account_key(row["account_id"])
    return row


def _wanted(args: argparse.Namespace, row: dict[str, Any]) -> bool:
    return (args.account is None or row["account_id"] == args.account) and (
        args.issuer is None or row["issuer"] == args.issuer
    )


def cmd_journeys(args: argparse.Namespace, events: Events) -> int:
    js = _clear(args)
    if not args.json:
        for j in js:
            j["fare"] = _money(j["fare"])
            j["charged"] = _money(j["charged"])
    cols = ["issuer", "account_id", "mode", "entry", "exit", "status", "fare", "charged"]
    _print(events, js, cols, "no journeys", "journeys")
    return 0


def _day_arg(text: str) -> int:
    try:
        d = datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a day YYYY-MM-DD" % text) from None
    return (d - datetime.date(1970, 1, 1)).days


def _amount_arg(text: str) -> int:
    """An amount in major units with up to two decimals ("2.50", "-1", "-0.05") in minor."""
    sign, t = (-1, text[1:]) if text.startswith("-") else (1, text)
    whole, _, frac = t.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise argparse.ArgumentTypeError("%r is not an amount such as 2.50" % text)
    return sign * (int(whole) * 100 + int(frac.ljust(2, "0") or 0))


def _day(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def _tariff(args: argparse.Namespace) -> dict[str, Any]:
    from host_sim.backoffice import clearing

    try:
        return clearing.load_tariff(args.tariff)
    except FileNotFoundError:
        raise CliError(
            "tariff file %s not found" % args.tariff, "check the path", EXIT_USAGE
        ) from None
    except ValueError as e:  # TOML that does not parse, or a TariffError
        raise CliError(str(e), "correct the tariff file", EXIT_USAGE) from None


def cmd_charges(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import clearing

    tariff = _tariff(args)
    store = _store(args.db)
    as_of = args.as_of if args.as_of is not None else int(time.time())
    summary = clearing.run(store, tariff, as_of, int(time.time()), full=args.full)
    cs = [c for c in store.clearing_charges() if _wanted(args, _by_issuer(dict(c)))]
    cols = ["issuer", "account_id", "day", "revision", "journeys", "open_journeys", "review"]
    cols += ["fares", "cleared", "adjusted", "charged", "dispute"]
    rows = []
    for c in cs:
        r = _by_issuer({k: c.get(k) for k in cols if k not in ("charged", "issuer")})
        r["charged"] = c["amount"]
        r["excess"] = c["excess"]  # corrections beyond the fare (clearing.owed)
        r["day"] = _day(c["day"])
        if args.revisions:
            r["revisions"] = store.clearing_revisions(c["account_id"], c["day"])  # by key
            for rev in r["revisions"]:
                rev["explanation"] = json.loads(rev["explanation"] or "[]")
        rows.append(r)
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        events.result(True, "%d charges" % len(rows), count=len(rows), clearing=summary)
        return 0
    if any(r["excess"] for r in rows):  # shown only when a refund went beyond a fare
        cols.append("excess")
    for r in rows:
        for k in ("fares", "cleared", "adjusted", "charged", "excess"):
            r[k] = _money(r[k])
    _print(events, [dict(r, revisions=None) for r in rows], cols, "no charges", "charges")
    for r in rows if args.revisions else ():
        print("\nissuer %s account %s, %s:" % (r["issuer"], r["account_id"], r["day"]))
        for rev in r["revisions"]:
            print(
                "  rev %d %-10s %8s -> %8s  %s  %s"
                % (
                    rev["revision"],
                    rev["kind"],
                    _money(rev["delta"]),
                    _money(rev["amount"]),
                    _when(rev["time"]),
                    rev["reason"],
                )
            )
            for jn in rev["explanation"]:
                print(
                    "      %-7s %-15s %-16s fare %s charged %s %s"
                    % (
                        jn["mode"],
                        jn["status"],
                        jn["rule"],
                        _money(jn["fare"]),
                        _money(jn["charged"]),
                        ",".join(jn["flags"]),
                    )
                )
    return 0


def _correction(args: argparse.Namespace, events: Events, fn: Any, *extra: Any) -> int:
    from host_sim.backoffice import clearing
    from protocol.records import account_key

    store = _store(args.db)
    if args.issuer is not None:
        key = account_key(args.issuer, args.account)  # the store keeps charges per issuer
    else:
        keys = store.clearing_accounts_of(args.account, args.day)
        if len(keys) > 1:
            raise CliError(
                "account %d has a charge of several issuers that day (%s)"
                % (args.account, ", ".join(str(k >> 40) for k in keys)),
                "pick one with --issuer",
                EXIT_USAGE,
            )
        key = keys[0] if keys else args.account
    try:
        after = fn(store, key, args.day, *extra, args.operator, args.reason, int(time.time()))
    except clearing.ChargeError as e:
        raise CliError(str(e), e.remedy, EXIT_USAGE) from None
    what = args.action if fn is clearing.dispute else fn.__name__
    message = "%s: account %d, %s" % (what, args.account, _day(args.day))
    if "amount" in after:
        message += ": charge now %s (revision %d)" % (_money(after["amount"]), after["revision"])
    else:
        message += ": dispute %s" % after.get("status")
    if args.json:
        events.result(True, message, charge=after)
    else:
        events.say(message)
    return 0


def cmd_refund(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import clearing

    return _correction(args, events, clearing.refund, args.amount)


def cmd_adjust(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import clearing

    return _correction(args, events, clearing.adjust, args.delta)


def cmd_dispute(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import clearing

    return _correction(args, events, clearing.dispute, args.action)


def cmd_audit(args: argparse.Namespace, events: Events) -> int:
    rows = _store(args.db).clearing_audit_log(args.account)
    if not args.json:
        for r in rows:
            r["time"], r["day"] = _when(r["time"]), _day(r["day"])
            for k in ("before", "after"):
                v = r[k] or {}
                r[k] = _money(v["amount"]) if "amount" in v else v.get("status", "-")
    cols = ["time", "operator", "action", "account_id", "day", "reason", "before", "after"]
    _print(events, rows, cols, "no corrections", "audit entries")
    return 0


def cmd_import(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice.importing import import_export

    store = _store(args.db)
    try:
        got = import_export(store, read_file(args.file), int(time.time()))
    except FormatError as e:
        raise CliError(
            "%s: %s" % (args.file, e), "is it a `device reset --export` file?", EXIT_USAGE
        ) from None
    message = "imported %d records of %s (%d new)" % (
        got["records"],
        ", ".join("gate %d" % d for d in got["devices"]) or "no gate",
        got["new"],
    )
    if args.json:
        events.result(True, message, **got)
    else:
        events.say(message)
    return 0


def cmd_risk(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import risk

    store = _store(args.db)
    cfg = risk.load_config(args.rules)
    now = args.now if args.now is not None else int(time.time())
    act = args.action
    if act in ("accept", "undo", "dismiss", "unpaid") and args.id is None:
        raise CliError(
            "risk %s needs an id" % act, "see `faregate backoffice risk --help`", EXIT_USAGE
        )
    if act in ("accept", "undo", "dismiss"):
        if not args.operator:
            raise CliError(
                "risk %s needs --operator" % act, "say who decides: --operator NAME", EXIT_USAGE
            )
        fn = {"accept": risk.accept, "undo": risk.undo, "dismiss": risk.dismiss}[act]
        f = fn(store, args.id, args.operator, args.reason, now)
        events.result(True, "finding %d is %s" % (f["id"], f["state"]), **_finding_out(f))
        return 0
    if act == "unpaid":
        if args.day is None or args.amount is None:
            raise CliError(
                "risk unpaid needs ACCOUNT DAY --amount",
                "e.g. risk unpaid 4711 2026-01-15 --amount 12.50",
                EXIT_USAGE,
            )
        store.risk_note_unpaid(args.id, args.day, args.amount, now)
        events.result(
            True, "account %d owes %s for %s" % (args.id, _money(args.amount), _day(args.day))
        )
        return 0
    if act == "findings":
        rows = [_finding_out(f) for f in store.risk_findings(args.state, args.account)]
        if not args.json:
            for r in rows:
                r["time"] = _when(r["time"])
        cols = ["id", "time", "rule", "account_id", "cred_no", "score", "state", "detail"]
        _print(events, rows, cols, "no findings", "findings")
        return 0
    if act == "entries":
        rows = store.risk_deny_entries()
        for r in rows:
            r["account_id"], r["cred_no"] = r["deny_key"] >> 24, r["deny_key"] & 0xFFFFFF
            if not args.json:
                r["expires"] = _when(r["expires"])
        cols = [
            "account_id",
            "cred_no",
            "reason",
            "finding_id",
            "want",
            "listed",
            "version",
            "expires",
        ]
        _print(events, rows, cols, "no deny entries", "entries")
        return 0
    summary: dict[str, Any] = {}
    if act in ("scan", "run"):
        out = risk.scan(store, cfg, now)
        for f in out["findings"]:
            if args.json:
                events.emit(dict(_finding_out(f), event="finding"))
            else:
                events.say(
                    "finding %d %s account %d/%d score %d: %s -> %s"
                    % (
                        f["id"],
                        f["rule"],
                        f["account_id"],
                        f["cred_no"],
                        f["score"],
                        f["detail"],
                        f["state"],
                    )
                )
        summary["findings"] = len(out["findings"])
    if act in ("publish", "run"):
        if not args.key:
            raise CliError(
                "risk %s needs --key" % act,
                "give the operator key that signs deny lists: --key operator/root.key",
                EXIT_USAGE,
            )
        pub = risk.publish(store, cfg, _lists_signers(args.key), now)
        summary["published"] = pub
    message = "; ".join(
        ["%d new finding(s)" % summary["findings"]] if "findings" in summary else []
    )
    if "published" in summary:
        pub = summary["published"]
        text = (
            "nothing to publish"
            if pub is None
            else "published deny_delta version %d (+%d -%d)"
            % (pub["version"], len(pub["adds"]), len(pub["removes"]))
        )
        message = "; ".join(x for x in (message, text) if x)
    events.result(True, message, **summary)
    return 0


def _finding_out(f: dict[str, Any]) -> dict[str, Any]:
    return {
        k: f[k]
        for k in (
            "id",
            "time",
            "rule",
            "account_id",
            "cred_no",
            "score",
            "state",
            "detail",
            "evidence",
            "expires",
            "operator",
            "note",
            "decided",
        )
    }


def cmd_plates(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import plates

    store = _store(args.db)
    now = args.now if args.now is not None else int(time.time())
    key = bytes.fromhex(read_file(args.hash_key).decode().strip()) if args.hash_key else b""
    cfg = plates.PlateConfig("hmac", key, args.hash_key_id) if key else plates.PlateConfig()
    act, rest = args.action, args.args
    need = {"bind": 2, "unbind": 1, "decide": 3}.get(act, 0)
    if len(rest) != need:
        raise CliError(
            "plates %s takes %d argument(s), not %d" % (act, need, len(rest)),
            "see `faregate backoffice plates --help`",
            EXIT_USAGE,
        )
    if act == "bind":
        k = plates.bind(store, cfg, rest[0], args.issuer, int(rest[1]), args.cred, now)
        events.result(
            True,
            "plate key %d bound to issuer %d's account %s" % (k, args.issuer, rest[1]),
            plate_key=k,
        )
    elif act == "unbind":
        ok = plates.unbind(store, cfg, rest[0], now)
        events.result(ok, "unbound" if ok else "that plate is not bound")
        return 0 if ok else 1
    elif act == "list":
        rows = store.plate_bindings()
        for r in rows:
            r["account_id"], r["cred_no"] = r["cred_id"] >> 24, r["cred_id"] & 0xFFFFFF
        cols = ["plate_key", "plate", "issuer", "account_id", "cred_no", "want", "version"]
        _print(events, rows, cols, "no plates bound", "plates")
    elif act == "publish":
        if not args.key:
            raise CliError("plates publish needs --key", "--key operator/root.key", EXIT_USAGE)
        pub = plates.publish(store, cfg, _lists_signers(args.key), now)
        text = (
            "nothing to publish"
            if pub is None
            else (
                "published plate_delta version %d (+%d -%d)"
                % (pub["version"], pub["adds"], pub["removes"])
            )
        )
        events.result(True, text, published=pub)
    elif act == "review":
        plates.collect(store)
        rows = plates.queue(store, None if args.all else "open")
        if not args.json:
            for r in rows:
                r["time"] = _when(r["time"])
        cols = ["device_id", "seq", "time", "reason", "plate_key", "image_tag", "confidence"]
        _print(events, rows, cols + ["status"], "nothing to review", "review")
    else:
        if not args.operator:
            raise CliError("plates decide needs --operator", "--operator NAME", EXIT_USAGE)
        try:
            plates.decide(
                store, int(rest[0]), int(rest[1]), rest[2], args.operator, args.note, now,
                args.account,
            )  # fmt: skip
        except plates.PlateError as e:
            raise CliError(str(e), e.remedy, EXIT_USAGE) from None
        events.result(True, "review item %s/%s is %s" % (rest[0], rest[1], rest[2]))
    return 0


def cmd_publish(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import publishing
    from protocol import messages

    kind = {v: k for k, v in messages.KINDS.items()}[args.kind]
    data = read_file(args.file)
    store = _store(args.db, must_exist=False)
    current = dict((k, v) for k, v, _n in store.offers()).get(kind)
    offer = publishing.check(
        args.kind, data, args.version, current, int(time.time()), force=args.force
    )
    for w in offer.warnings:
        if events.as_json:
            events.emit({"event": "warning", "message": w})
        else:
            print("faregate: warning: %s (published anyway: --force)" % w, file=sys.stderr)
    store.publish(kind, offer.version, data, int(time.time()))
    gates = [
        {
            "device_id": d["device_id"],
            "label": d["label"],
            "will": publishing.predict(offer, d["device_id"], d["status"] or None),
        }
        for d in store.devices(revoked=False)
    ]
    previous = ", replaces version %d" % current if current is not None else ""
    message = "published %s version %d (%d bytes%s)" % (
        args.kind,
        offer.version,
        len(data),
        previous,
    )
    if args.json:  # a gate event each, then the result
        for g in gates:
            events.emit(dict(g, event="gate"))
        events.result(
            True,
            message,
            kind=args.kind,
            version=offer.version,
            bytes=len(data),
            previous=current,
            warnings=offer.warnings,
        )
        return 0
    events.say(message)
    for g in gates:
        name = " (%s)" % g["label"] if g["label"] else ""
        events.say("  gate %d%s %s" % (g["device_id"], name, g["will"]))
    if not gates:
        events.say("  no gates registered yet (faregate backoffice devices add)")
    return 0
