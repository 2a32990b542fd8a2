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
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError


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


def _head_fields(blob: bytes) -> dict[str, Any]:
    from protocol import merkle

    h = merkle.parse_head(blob)
    return {
        "tree_size": h.tree_size,
        "timestamp_ms": h.timestamp,
        "root_hash": h.root_hash.hex(),
        "key_id": "%08x" % h.key_id,
        "head": bytes(blob).hex(),
    }


def _signed_head(store: Any, size: int | None) -> bytes:
    """The newest signed head, or the newest of tree size `size`."""
    from protocol import merkle

    for blob in reversed(store.log_heads()):
        if size is None or merkle.parse_head(blob).tree_size == size:
            return blob
    raise CliError(
        "no signed head%s" % ("" if size is None else " of size %d" % size),
        "wait for serve to sign one, or sign one now: faregate backoffice log sign --key KEY",
        EXIT_FAILED,
    )


def cmd_log(args: argparse.Namespace, events: Events) -> int:
    from provisioning.cli.backoffice import _print, _store

    store = _store(args.db)
    want = {"prove": 2, "consistency": (1, 2)}.get(args.action, 0)
    if len(args.args) not in (want if isinstance(want, tuple) else (want,)):
        raise CliError(
            "log %s takes %s" % (args.action, "no arguments" if not want else "DEVICE SEQ"
                                 if args.action == "prove" else "OLD [NEW]"),
            "see faregate backoffice log --help",
            EXIT_USAGE,
        )  # fmt: skip
    if args.action in ("head", "heads"):
        heads = store.log_heads(None if args.since is None else args.since * 1000)
        if args.action == "head":
            heads = heads[-1:]
        rows = [_head_fields(h) for h in heads]
        if not args.json:
            for r in rows:
                print("tree_size %(tree_size)d  signed %(timestamp_ms)d ms  root %(root_hash)s" % r)
                print("  %s" % r["head"])
        if args.action == "head" and not rows:
            _signed_head(store, None)  # says how to get one
        if args.json:
            _print(events, rows, [], "", "heads")
        return 0
    if args.action == "sign":
        if not args.key:
            raise CliError("log sign needs --key", "give the log key", EXIT_USAGE)
        tlog = store.translog(load_signer(args.key, "log key"))
        blob = tlog.sign_head(int(time.time() * 1000))
        fields = _head_fields(blob)
        events.result(True, "signed the head at %d leaves" % fields["tree_size"], **fields)
        return 0
    tlog = store.translog()  # read only: proofs need no key
    if args.action == "prove":
        device, seq = args.args
        leaf = store.log_leaf_of(device, seq)
        if leaf is None:
            raise CliError(
                "no record %d/%d in the log" % (device, seq), "check the device and seq",
                EXIT_FAILED,
            )  # fmt: skip
        head = _signed_head(store, args.size)
        size = _head_fields(head)["tree_size"]
        if leaf >= size:
            raise CliError(
                "record %d/%d (leaf %d) is not yet under a signed head (size %d)"
                % (device, seq, leaf, size),
                "wait for the next head, or sign one: faregate backoffice log sign --key KEY",
                EXIT_FAILED,
            )
        got = store.log_leaf(leaf)
        assert got is not None
        out = {
            "device_id": device,
            "seq": seq,
            "leaf": leaf,
            "record": got[2].hex(),
            "tree_size": size,
            "proof": [p.hex() for p in tlog.inclusion_proof(leaf, size)],
            "head": head.hex(),
        }
    else:
        old = args.args[0]
        new = _head_fields(_signed_head(store, args.args[1] if len(args.args) > 1 else None))
        if not 0 < old <= new["tree_size"]:
            raise CliError(
                "old size %d is not 1..%d" % (old, new["tree_size"]), "give a smaller OLD",
                EXIT_USAGE,
            )  # fmt: skip
        out = {
            "old_size": old,
            "tree_size": new["tree_size"],
            "proof": [p.hex() for p in tlog.consistency_proof(old, new["tree_size"])],
            "head": new["head"],
        }
    if not args.json:
        for k, v in out.items():
            print("%-10s %s" % (k, " ".join(v) if isinstance(v, list) else v))
    events.result(True, "%s proof of %d hashes" % (args.action, len(out["proof"])), **out)
    return 0
