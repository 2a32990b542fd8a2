"""`faregate wallet ...`: a demo operator, issuer and riders in a state directory.

    faregate wallet init  --state demo               operator root, issuer key 1, lists, gate
    faregate wallet init  --state demo --operator op    ... with the keys of `faregate keys init`
    faregate wallet issue --state demo --account 42  a rider's phone with a 24-hour credential
    faregate wallet mint  --state demo --account 42  a fresh ride code (text, or --png DIR)
    faregate wallet mint  --state demo --account 42 --bad expired   a deliberately bad one
    faregate wallet deny | rotate | trust            deny-list, rotate the issuer key, re-sign
    faregate wallet add-issuer --state demo --issuer-id 7   a second issuer (a bank) on the
                                                     same gates: its own key id, its own riders
    faregate wallet issue --state demo --issuer 7 --account 42   issuer 7's account 42: another
                                                     rider than issuer 1's account 42
    faregate verify --state demo < codes.txt         check codes as that gate would

The directory holds the gate's side (roots.json, validator.json, trust.bin, deny/: see
firmware/verify/gatestate.py) next to the wallet's secrets in wallet/ (keys.json, mode 0600: demo
keys, never for production) and the signed lists it made, as a provisioning site file or the back
office takes them: wallet/trust-vN.bin (trust lists), wallet/deny-vN.bin (deny-list snapshots,
for new gates), wallet/deny-N-M.bin (deny-list deltas, for `faregate backoffice publish`).
Wallet commands take --now, verify takes --at (unix seconds or ISO 8601), so runs are
reproducible.
"""

import argparse
import json
import os
from typing import Any

from firmware import settings
from provisioning.cli.events import Events, with_events
from provisioning.cli.kit import Group, add_json, load_signer, write_file
from provisioning.cli.main import EXIT_FAILED, EXIT_USAGE, CliError

BAD_HELP = (
    "mint a deliberately bad code; KIND is one of: expired, not_yet_valid, forged_issuer, "
    "tampered, unknown_issuer, forged_rider, swapped, stale, future, out_of_scope, replayed, "
    "truncated (see host_sim/wallet.py BAD_KINDS for the reason each must get)"
)


def _common(c: argparse.ArgumentParser) -> None:
    c.add_argument("--state", required=True, help="state directory (see `wallet --help`)")
    c.add_argument(
        "--now",
        default=None,
        help="the time to act at, ISO 8601 or unix seconds (default: the clock)",
    )
    add_json(c, "print JSON lines (one per code with mint), ending with the result event")


def register(sub: Any) -> None:
    cmd = Group(
        sub,
        "wallet",
        "demo operator/issuer/riders: issue credentials, mint ride codes",
        __doc__,
        common=_common,
    ).add

    c = cmd(
        "init",
        "create an operator root, an issuer key, signed lists and a gate setup",
        with_events(_init),
    )
    c.add_argument("--issuer-id", type=int, default=1, help="issuer key id (default 1)")
    c.add_argument("--trust-days", type=int, default=30, help="trust list validity (days)")
    c.add_argument(
        "--gate-scope",
        type=lambda v: int(v, 0),
        default=settings.default("scope"),
        help="gate scope bits",
    )
    c.add_argument(
        "--stale-policy",
        choices=settings.row("validation.stale_trust")[2],
        default=settings.default("validation.stale_trust"),
        help="what the gate does with a stale trust list (default: %(default)s)",
    )
    c.add_argument("--force", action="store_true", help="replace an existing state directory")
    c.add_argument(
        "--operator",
        metavar="DIR",
        default=None,
        help="use the operator keys of `faregate keys init --dir DIR` (root.key signs the "
        "lists, issuer.key the credentials) instead of new demo keys, so provisioned gates "
        "accept the lists and the codes",
    )

    c = cmd(
        "issue", "issue a credential to a rider's phone (a new device key)", with_events(_issue)
    )
    c.add_argument("--account", type=int, required=True, help="account id (< 2^40)")
    c.add_argument("--cred-no", type=int, default=None, help="credential number (default: next)")
    c.add_argument("--hours", type=float, default=24, help="validity from --now (default 24)")
    c.add_argument("--scope", type=lambda v: int(v, 0), default=None, help="scope bit mask")
    c.add_argument("--risk-class", type=int, default=0)
    c.add_argument("--offline-limit", type=int, default=5000, help="minor units (default 5000)")
    c.add_argument("--issuer", type=int, default=None, help="issuer key id (default: newest)")

    c = cmd(
        "mint",
        "mint ride codes for a rider: text lines, or PNG files with --png",
        with_events(_mint),
    )
    c.add_argument("--account", type=int, required=True)
    c.add_argument(
        "--issuer",
        type=int,
        default=None,
        help="issuer key id whose rider it is (needed only when several issuers have one "
        "with this account id)",
    )
    c.add_argument("--count", type=int, default=1, help="how many codes (default 1)")
    c.add_argument("--step", type=int, default=0, help="seconds between codes (default 0)")
    c.add_argument("--bad", metavar="KIND", default=None, help=BAD_HELP)
    c.add_argument("--png", metavar="DIR", default=None, help="write QR PNGs, print their paths")

    c = cmd(
        "deny", "deny-list an account (or one credential) with a signed delta", with_events(_deny)
    )
    c.add_argument("--account", type=int, required=True)
    c.add_argument("--cred-no", type=int, default=0, help="one credential (default: account)")
    c.add_argument(
        "--issuer",
        type=int,
        default=None,
        help="the issuer key id whose account it is: the entry stops that issuer's account "
        "only (deny lists are per issuer, docs/ridecode.md section 9). Default: the issuer of "
        "the wallet's rider with this account id, else the newest issuer key",
    )
    c.add_argument(
        "--count", type=int, default=1, help="this many accounts from --account on (default 1)"
    )
    c.add_argument("--remove", action="store_true", help="lift the entry instead")

    c = cmd(
        "rotate",
        "add a new issuer key; the old one stays valid for an overlap",
        with_events(_rotate),
    )
    c.add_argument("--overlap-days", type=float, default=7)

    c = cmd(
        "add-issuer",
        "add another issuer (a wallet or bank) with its own key id; the trust list is re-signed "
        "with every issuer's key, so gates accept each in its own scope",
        with_events(_add_issuer),
    )
    c.add_argument("--issuer-id", type=int, required=True, help="its key id (1..65535, unused)")
    c.add_argument(
        "--scope",
        type=lambda v: int(v, 0),
        default=0xFFFF,
        help="the products/operators it may sell (bit mask, default 0xFFFF: all)",
    )

    c = cmd(
        "trust", "re-sign the trust list (new version) with a new valid_until", with_events(_trust)
    )
    c.add_argument("--valid-days", type=float, default=30, help="from --now; negative: stale")


# --- the state directory -------------------------------------------------------------------


class WalletState:
    """wallet/keys.json: every secret and the lists' contents; the gate side beside it."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.path = os.path.join(directory, "wallet", "keys.json")
        try:
            with open(self.path) as f:
                self.data: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            raise CliError(
                "%s is not a wallet state directory" % directory,
                "create one with `faregate wallet init --state %s`" % directory,
                EXIT_USAGE,
            ) from None

    def save(self) -> None:
        write_secret_json(self.path, self.data)

    def operator(self) -> Any:
        from drivers.linux import crypto_openssl as es256
        from host_sim.wallet import Operator

        root = self.data["root"]
        return Operator(es256.signer(bytes.fromhex(root["secret"])), int(root["id"]))

    def issuer(self, key_id: int | None = None) -> Any:
        from drivers.linux import crypto_openssl as es256
        from host_sim.wallet import Issuer

        issuers = self.data["issuers"]
        kid = str(key_id if key_id is not None else max(int(k) for k in issuers))
        if kid not in issuers:
            raise CliError(
                "no issuer key %s" % kid, "known: %s" % ", ".join(sorted(issuers)), EXIT_USAGE
            )
        return Issuer(int(kid), es256.signer(bytes.fromhex(issuers[kid]["secret"])))

    def rider_key(self, account: int, issuer: int | None) -> str:
        """The riders entry of (issuer, account): "ISSUER:ACCOUNT" (a bare "ACCOUNT" is a
        rider of a wallet from before several issuers). Without `issuer`, the one rider with
        this account id, whichever its issuer; CliError if none or several."""
        riders = self.data["riders"]
        if issuer is not None:
            key = "%d:%d" % (issuer, account)
            if key in riders:
                return key
            old = riders.get(str(account))
            if old is not None and _issuer_of(old) == issuer:
                return str(account)
            found = []
        else:
            found = [k for k in riders if k == str(account) or k.endswith(":%d" % account)]
            if len(found) == 1:
                return found[0]
        if len(found) > 1:
            raise CliError(
                "account %d has a credential from several issuers (%s)"
                % (account, ", ".join(str(_issuer_of(riders[k])) for k in sorted(found))),
                "pick one with --issuer",
                EXIT_USAGE,
            )
        raise CliError(
            "account %d has no credential in this wallet%s"
            % (account, "" if issuer is None else " from issuer %d" % issuer),
            "issue one with `faregate wallet issue --state %s --account %d`" % (self.dir, account),
            EXIT_USAGE,
        )

    def rider(self, key: str) -> Any:
        from drivers.linux import crypto_openssl as es256
        from host_sim.wallet import Rider

        r = self.data["riders"][key]
        rider = Rider(es256.signer(bytes.fromhex(r["secret"])), bytes.fromhex(r["credential"]))
        rider.counter = r["counter"]
        rider.last_code = r.get("last_code", "")
        return rider

    def keep_rider(self, key: str, rider: Any) -> None:
        r = self.data["riders"][key]
        r["counter"] = rider.counter
        r["last_code"] = rider.last_code

    def trust_keys(self) -> list[Any]:
        from protocol.trustlist import IssuerKey

        out = []
        for kid, v in sorted(self.data["issuers"].items()):
            out.append(
                IssuerKey(
                    int(kid),
                    bytes.fromhex(v["public"]),
                    v["scope"],
                    v["valid_from"],
                    v["valid_until"],
                )
            )
        return out

    def publish_trust(self, now: int, valid_until: int) -> int:
        """Sign a new trust list version and install it into the gate side."""
        t = self.data["trust"]
        t["version"] += 1
        t["valid_until"] = valid_until
        blob = self.operator().trust_list(t["version"], self.trust_keys(), now, valid_until)
        write_file(os.path.join(self.dir, "wallet", "trust-v%d.bin" % t["version"]), blob)
        self.gate_install("trust", blob)
        return int(t["version"])

    def gate_install(self, which: str, blob: bytes) -> None:
        from drivers.linux.crypto_openssl import OpenSSLVerifier
        from firmware.verify import gatestate
        from firmware.verify.denystore import DenyStore
        from firmware.verify.truststore import ListError, TrustStore

        roots = gatestate.read_roots(self.dir)
        try:
            if which == "trust":
                TrustStore(roots, OpenSSLVerifier(), os.path.join(self.dir, "trust.bin")).install(
                    blob
                )
            else:
                os.makedirs(os.path.join(self.dir, "deny"), exist_ok=True)
                DenyStore(os.path.join(self.dir, "deny"), roots, OpenSSLVerifier()).install(blob)
        except ListError as e:
            raise CliError("the gate refused the %s list: %s (%s)" % (which, e, e.reason)) from None


def _issuer_of(rider: dict[str, Any]) -> int:
    """The issuer key id of a rider's credential (its bytes 2..3)."""
    return int.from_bytes(bytes.fromhex(rider["credential"])[2:4], "big")


def write_secret_json(path: str, data: dict[str, Any]) -> None:
    from firmware.storage.fs import DISK

    DISK.write_secret(path, json.dumps(data, indent=1, sort_keys=True).encode())


def _now(args: argparse.Namespace) -> int:
    from provisioning.cli.timearg import parse_time

    return parse_time(args.now)


def _emit(events: Events, obj: dict[str, Any], text: str) -> None:
    """The command's result: `text` for people, with --json the result event with `obj`."""
    events.result(True, text, **obj)


# --- commands --------------------------------------------------------------------------------


def _init(args: argparse.Namespace, events: Events) -> int:
    from firmware.verify import gatestate
    from firmware.verify.validator import ValidatorConfig
    from host_sim.wallet import new_signer
    from protocol.trustlist import root_key_id

    now = _now(args)
    if os.path.exists(os.path.join(args.state, "wallet", "keys.json")) and not args.force:
        raise CliError(
            "%s already holds a wallet" % args.state,
            "use another --state, or --force to replace it",
            EXIT_USAGE,
        )
    os.makedirs(os.path.join(args.state, "wallet"), exist_ok=True)
    for stale in ("trust.bin", "replay.log", "anchor.bin", "deny/deny.base", "deny/deny.log"):
        path = os.path.join(args.state, stale)
        if os.path.exists(path):
            os.remove(path)
    if args.operator:
        root, issuer = _operator_keys(args.operator)
    else:
        root, issuer = new_signer(), new_signer()
    rid = root_key_id(root.public_key)
    data: dict[str, Any] = {
        "root": {"id": rid, "secret": root.secret_bytes().hex(), "public": root.public_key.hex()},
        "issuers": {
            str(args.issuer_id): {
                "secret": issuer.secret_bytes().hex(),
                "public": issuer.public_key.hex(),
                "scope": 0xFFFF,
                "valid_from": now - 30 * 86400,
                "valid_until": now + 365 * 86400,
            }
        },
        "trust": {"version": 0, "valid_until": 0},
        "deny": {"version": 0, "entries": []},
        "riders": {},
    }
    write_secret_json(os.path.join(args.state, "wallet", "keys.json"), data)
    gatestate.write_setup(
        args.state,
        {rid: root.public_key},
        ValidatorConfig(gate_scope=args.gate_scope, stale_policy=args.stale_policy),
    )
    st = WalletState(args.state)
    version = st.publish_trust(now, now + args.trust_days * 86400)
    snap = st.operator().deny_snapshot(1, [], now)
    deny_path = os.path.join(args.state, "wallet", "deny-v1.bin")
    trust_path = os.path.join(args.state, "wallet", "trust-v%d.bin" % version)
    write_file(deny_path, snap)
    st.data["deny"]["version"] = 1
    st.gate_install("deny", snap)
    st.save()
    _emit(
        events,
        {
            "state": args.state,
            "issuer_key_id": args.issuer_id,
            "trust_version": version,
            "trust_list": trust_path,
            "deny_list": deny_path,
        },
        "wallet: operator root, issuer key %d, trust list v%d and an empty deny list in %s "
        "(for gates: %s, %s)" % (args.issuer_id, version, args.state, trust_path, deny_path),
    )
    return 0


def _operator_keys(directory: str) -> tuple[Any, Any]:
    root = load_signer(os.path.join(directory, "root.key"), "operator root key")
    issuer = load_signer(os.path.join(directory, "issuer.key"), "issuer key")
    return root, issuer


def _issue(args: argparse.Namespace, events: Events) -> int:
    from host_sim.wallet import Rider, new_signer
    from protocol import ridecode

    now = _now(args)
    st = WalletState(args.state)
    issuer = st.issuer(args.issuer)
    if not 0 <= args.account <= ridecode.MAX_ACCOUNT_ID:
        raise CliError("account id must be below 2^40", "pick a smaller --account", EXIT_USAGE)
    riders = st.data["riders"]
    key = "%d:%d" % (issuer.key_id, args.account)
    if key not in riders and str(args.account) in riders:
        if _issuer_of(riders[str(args.account)]) == issuer.key_id:
            key = str(args.account)  # a rider of before several issuers: the same one
    old = riders.get(key)
    cred_no = args.cred_no or ((old["cred_no"] + 1) if old else 1)
    if args.scope is None:
        from firmware.verify import gatestate

        args.scope = gatestate.read_config(args.state).gate_scope
    signer = new_signer()
    rider = Rider(signer)
    cred = issuer.issue(
        rider,
        args.account,
        now,
        now + int(args.hours * 3600),
        cred_no,
        args.scope,
        args.risk_class,
        args.offline_limit,
    )
    riders[key] = {
        "secret": signer.secret_bytes().hex(),
        "credential": cred.hex(),
        "cred_no": cred_no,
        "counter": 0,
        "last_code": "",
    }
    st.save()
    _emit(
        events,
        {
            "account": args.account,
            "issuer": issuer.key_id,
            "cred_no": cred_no,
            "credential": cred.hex(),
        },
        "wallet: account %d credential %d from issuer key %d, valid %.0f h"
        % (args.account, cred_no, issuer.key_id, args.hours),
    )
    return 0


def _mint(args: argparse.Namespace, events: Events) -> int:
    from host_sim.wallet import BAD_KINDS, mint_bad, render_png

    now = _now(args)
    st = WalletState(args.state)
    key = st.rider_key(args.account, args.issuer)
    rider = st.rider(key)
    issuer_id = _issuer_of(st.data["riders"][key])
    if args.bad is not None and args.bad not in BAD_KINDS:
        raise CliError(
            "unknown bad-code kind %r" % args.bad, "one of: " + ", ".join(BAD_KINDS), EXIT_USAGE
        )
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    for i in range(args.count):
        t = now + i * args.step
        if args.bad:
            text = mint_bad(args.bad, st.issuer(issuer_id), rider, t)
        else:
            text = rider.present(t)
        path = None
        if args.png:
            path = os.path.join(args.png, "code-%d-%d.png" % (args.account, rider.counter))
            render_png(text, path)
        if args.json:
            events.emit({"text": text, "counter": rider.counter, "at": t, "png": path})
        else:
            print(path or text)
    st.keep_rider(key, rider)
    st.save()
    if args.json:
        events.result(
            True, "%d code(s) for account %d" % (args.count, args.account), count=args.count
        )
    return 0


def _deny(args: argparse.Namespace, events: Events) -> int:
    from protocol import denylist

    now = _now(args)
    st = WalletState(args.state)
    if not 1 <= args.count <= 1_000_000:
        raise CliError("--count must be 1 to 1,000,000", "deny fewer accounts at once", EXIT_USAGE)
    issuer = _deny_issuer(st, args)
    wanted = {
        denylist.credential_key(issuer, args.account + i, args.cred_no) for i in range(args.count)
    }
    d = st.data["deny"]
    keys = set(_deny_entries(st))
    change = (wanted & keys) if args.remove else (wanted - keys)
    if not change:
        raise CliError(
            "account %d%s%s %s the deny list"
            % (
                args.account,
                " and the next %d" % (args.count - 1) if args.count > 1 else "",
                " credential %d" % args.cred_no if args.cred_no else "",
                "is not on" if args.remove else "is already on",
            ),
            "nothing to do",
            EXIT_FAILED,
        )
    adds, removes = ([], sorted(change)) if args.remove else (sorted(change), [])
    old, new = d["version"], d["version"] + 1
    op = st.operator()
    delta = op.deny_delta(old, new, now, adds, removes)
    path = os.path.join(args.state, "wallet", "deny-%d-%d.bin" % (old, new))
    write_file(path, delta)
    st.gate_install("deny", delta)
    d["version"] = new
    held = sorted(keys - change if args.remove else keys | change)
    d.pop("keys", None)
    d["entries"] = [list(denylist.split_entry(e)) for e in held]
    snap_path = os.path.join(args.state, "wallet", "deny-v%d.bin" % new)
    write_file(snap_path, op.deny_snapshot(new, held, now))
    st.save()
    _emit(
        events,
        {
            "deny_version": new,
            "entries": len(held),
            "issuer": issuer,
            "delta": path,
            "snapshot": snap_path,
        },
        "wallet: deny list v%d (%d entr%s) installed; for gates: %s (snapshot), %s (delta)"
        % (new, len(held), "y" if len(held) == 1 else "ies", snap_path, path),
    )
    return 0


def _deny_issuer(st: "WalletState", args: argparse.Namespace) -> int:
    """--issuer, else the issuer of the wallet's one rider with --account, else the newest
    issuer key."""
    if args.issuer is not None:
        return int(args.issuer)
    riders = st.data["riders"]
    found = [k for k in riders if k == str(args.account) or k.endswith(":%d" % args.account)]
    if len(found) == 1:
        return _issuer_of(riders[found[0]])
    return max(int(k) for k in st.data["issuers"])


def _deny_entries(st: "WalletState") -> list[int]:
    """The wallet's deny entries (protocol.denylist.entry). A wallet from before deny lists
    per issuer kept bare keys ("keys"): they are its oldest issuer key's."""
    from protocol import denylist

    d = st.data["deny"]
    if "entries" in d:
        return [denylist.entry(i, k) for i, k in d["entries"]]
    first = min(int(k) for k in st.data["issuers"])
    return [denylist.entry(first, k) for k in d.get("keys", [])]


def _rotate(args: argparse.Namespace, events: Events) -> int:
    from host_sim.wallet import new_signer

    now = _now(args)
    st = WalletState(args.state)
    issuers = st.data["issuers"]
    old_id = max(int(k) for k in issuers)
    new_id = old_id + 1
    issuers[str(old_id)]["valid_until"] = now + int(args.overlap_days * 86400)
    signer = new_signer()
    issuers[str(new_id)] = {
        "secret": signer.secret_bytes().hex(),
        "public": signer.public_key.hex(),
        "scope": 0xFFFF,
        "valid_from": now,
        "valid_until": now + 365 * 86400,
    }
    version = st.publish_trust(now, max(st.data["trust"]["valid_until"], now + 86400))
    st.save()
    _emit(
        events,
        {"new_key_id": new_id, "old_key_id": old_id, "trust_version": version},
        "wallet: issuer key %d added; key %d valid %.1f more days; trust list v%d"
        % (new_id, old_id, args.overlap_days, version),
    )
    return 0


def _add_issuer(args: argparse.Namespace, events: Events) -> int:
    from host_sim.wallet import new_signer

    now = _now(args)
    st = WalletState(args.state)
    issuers = st.data["issuers"]
    if not 1 <= args.issuer_id <= 0xFFFF or str(args.issuer_id) in issuers:
        raise CliError(
            "issuer key id %d is taken or out of range" % args.issuer_id,
            "taken: %s; pick another in 1..65535" % ", ".join(sorted(issuers)),
            EXIT_USAGE,
        )
    signer = new_signer()
    issuers[str(args.issuer_id)] = {
        "secret": signer.secret_bytes().hex(),
        "public": signer.public_key.hex(),
        "scope": args.scope,
        "valid_from": now,
        "valid_until": now + 365 * 86400,
    }
    version = st.publish_trust(now, max(st.data["trust"]["valid_until"], now + 86400))
    st.save()
    _emit(
        events,
        {"issuer_key_id": args.issuer_id, "scope": args.scope, "trust_version": version},
        "wallet: issuer key %d added (scope 0x%04x); trust list v%d with %d issuer keys"
        % (args.issuer_id, args.scope, version, len(issuers)),
    )
    return 0


def _trust(args: argparse.Namespace, events: Events) -> int:
    now = _now(args)
    st = WalletState(args.state)
    version = st.publish_trust(now, now + int(args.valid_days * 86400))
    st.save()
    path = os.path.join(args.state, "wallet", "trust-v%d.bin" % version)
    _emit(
        events,
        {
            "trust_version": version,
            "valid_until": st.data["trust"]["valid_until"],
            "trust_list": path,
        },
        "wallet: trust list v%d installed; for gates: %s (publish it as version %d)"
        % (version, path, version),
    )
    return 0
