"""`faregate backoffice log ...`: the transparency log's signed heads and proofs, for issuers.

    faregate backoffice log head                    # the newest signed tree head (hex, fields)
    faregate backoffice log heads --since T         # every signed head since T
    faregate backoffice log sign --key operator/sync.key   # sign a head now (serve does it hourly)
    faregate backoffice log prove DEVICE SEQ        # that record's leaf and inclusion proof
    faregate backoffice log consistency OLD [NEW]   # proof that the tree of NEW extends OLD

Proofs are made for the size of a signed head (the newest, or --size N of another signed
head), so an issuer checks them against a head whose signature it verified, never against a
size the back office merely names. docs/settlement.md says how to verify each by hand.
"""

import argparse
import time
from typing import Any

from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import add_json, load_signer
from provisioning.cli.main import EXIT_USAGE, CliError


def register(g: Any) -> None:
    """Add `log` to the backoffice group `g` (provisioning/cli/backoffice.py)."""
    lg = g.add(
        "log",
        "the transparency log: signed tree heads, inclusion and consistency proofs",
        with_events(cmd_log),
        __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lg.add_argument("action", choices=("head", "heads", "sign", "prove", "consistency"))
    lg.add_argument("args", nargs="*", type=int, help="prove: DEVICE SEQ; consistency: OLD [NEW]")
    lg.add_argument(
        "--size",
        type=int,
        help="prove: the tree size to prove in (a signed head's; default the newest)",
    )
    lg.add_argument("--since", type=int, help="heads: signed at or after this unix time (s)")
    lg.add_argument("--key", help="sign: the log key (the sync key unless serve has --log-key)")
    add_json(lg)


def cmd_log(args: argparse.Namespace, events: Events) -> int:
    from host_sim.backoffice import logview
    from provisioning.cli.backoffice import _print, _store

    store = _store(args.db)
    want = {"prove": (2,), "consistency": (1, 2)}.get(args.action, (0,))
    if len(args.args) not in want:
        usage = {"prove": "DEVICE SEQ", "consistency": "OLD [NEW]"}.get(args.action, "nothing")
        raise CliError("log %s takes %s" % (args.action, usage),
                       "see faregate backoffice log --help", EXIT_USAGE)  # fmt: skip
    if args.action in ("head", "heads"):
        rows = logview.heads(store, None if args.since is None else args.since * 1000)
        if args.action == "head":
            if not rows:
                logview.signed_head(store)  # says how to get one
            rows = rows[-1:]
        if args.json:
            _print(events, rows, [], "", "heads")
            return 0
        for r in rows:
            print("tree_size %(tree_size)d  signed %(timestamp_ms)d ms  root %(root_hash)s" % r)
            print("  %s" % r["head"])
        return 0
    if args.action == "sign":
        if not args.key:
            raise CliError("log sign needs --key", "give the log key", EXIT_USAGE)
        tlog = store.translog(load_signer(args.key, "log key"))
        fields = logview.head_fields(tlog.sign_head(int(time.time() * 1000)))
        events.result(True, "signed the head at %d leaves" % fields["tree_size"], **fields)
        return 0
    if args.action == "prove":
        out = logview.prove(store, args.args[0], args.args[1], args.size)
    else:
        out = logview.consistency(store, args.args[0], args.args[1] if len(args.args) > 1 else None)
    if not args.json:
        for k, v in out.items():
            print("%-10s %s" % (k, " ".join(v) if isinstance(v, list) else v))
    events.result(True, "%s proof of %d hashes" % (args.action, len(out["proof"])), **out)
    return 0
