"""The risk engine: rules over the passages as they arrive, findings, and the deny entries
they lead to (docs/fraud.md has each rule, its knobs and how to tune them).

    summary = scan(store, config, tariff, now)      # new records -> findings -> deny wanted
    version = publish(store, config, signer, now)   # wanted entries -> a signed deny delta
    accept(store, id, operator, note, now) / undo(...) / dismiss(...)   # operator review

A scan reads the passages stored since the last scan (a per-device cursor, as clearing's),
and for each credential they touch, that credential's passages of the last `lookback_s`. Each
rule (RULES, in this order) looks at one credential's (or account's) passages and returns
findings: a rule name, a score (0..100), the evidence that makes it unique (a finding is
stored once) and a sentence explaining it. The policy of the rule (config["rules"][rule])
says what a finding leads to:

    action  "auto"    the deny entry is wanted at once (published at the next `publish`)
            "review"  the finding waits for an operator (`risk accept ID`: then wanted)
            "off"     the rule does not run
    min_score         findings scoring less are stored as "noted" (seen, no action)
    expire_s          how long the deny entry stays on the list (then removed by a delta)

The deny key is the credential's (account_id << 24 | cred_no) for the rules about a code or
a key (copied_code, cloned_key, impossible_journey, velocity), the whole account's (cred_no 0)
for the rules about the rider (missing_taps, debt), in the scope of the finding's issuer
(the issuer of its account key): the deny entry is `denylist.entry(issuer, deny key)`, and
issuer A's finding never stops issuer B's account of the same number. `publish` turns what
is wanted and not yet listed, and what is listed and no longer wanted (undone, expired), into
one delta (format 3, a section per issuer) after the deny version published now, signed by
the lists role's key(s), with a valid_until of `deny_valid_s` from now when set; when nothing
changed it publishes an
empty delta once the published list is within `refresh_before_s` of its valid_until, so
gates' lists stay fresh while the back office runs.
"""

import copy
import datetime
import tomllib
from typing import Any

from host_sim.errors import SimError
from protocol import denylist
from protocol import messages as m
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_METRO, split_account_key

DAY = 86400

DEFAULTS: dict[str, Any] = {
    "lookback_s": 7 * DAY,  # how far back a credential's passages are read at each scan
    "window_s": 70,  # a gate's presentation window + skew: counters within it may cross
    "deny_valid_s": 0,  # valid_until of published deny deltas, from now (0: none)
    "refresh_before_s": 0,  # publish an empty delta when valid_until is this close
    "network": {"min_s_per_station": 60, "travel_s": {}},  # fastest ride, station to station
    "rules": {
        "copied_code": {"action": "auto", "min_score": 50, "expire_s": 7 * DAY},
        "cloned_key": {"action": "auto", "min_score": 50, "expire_s": 30 * DAY},
        "impossible_journey": {"action": "review", "min_score": 50, "expire_s": 7 * DAY},
        "velocity": {"action": "review", "min_score": 50, "expire_s": DAY, "max": 8, "per_s": 600},
        "missing_taps": {
            "action": "review",
            "min_score": 50,
            "expire_s": 7 * DAY,
            "max": 3,
        },
        "debt": {"action": "review", "min_score": 50, "expire_s": 30 * DAY, "max": 2000},
    },
}
ACTIONS = ("auto", "review", "off")
ACCOUNT_RULES = ("missing_taps", "debt")  # their deny entry is the whole account's


class RiskError(SimError, ValueError):
    """A risk setting or an operator decision that cannot apply (the message says which)."""

    reason = "bad_risk"
    remedy = "check the finding with `faregate backoffice risk findings`, or the risk file"


def load_config(path: str | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """DEFAULTS with a TOML file's (or a dict's) values laid over them, checked."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    for key, value in (data or {}).items():
        if key not in cfg:
            raise RiskError("risk settings: unknown key %r" % key)
        if key == "rules":
            for rule, knobs in value.items():
                if rule not in cfg["rules"]:
                    raise RiskError("risk settings: unknown rule %r" % rule)
                unknown = set(knobs) - set(cfg["rules"][rule])
                if unknown:
                    raise RiskError(
                        "risk settings: unknown knob(s) of %s: %s" % (rule, ", ".join(unknown))
                    )
                cfg["rules"][rule].update(knobs)
        elif isinstance(cfg[key], dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    for rule, knobs in cfg["rules"].items():
        if knobs["action"] not in ACTIONS:
            raise RiskError("risk settings: %s action must be one of %s" % (rule, ACTIONS))
    return cfg


# -- the network -----------------------------------------------------------------------------
def travel_s(network: dict[str, Any], a: int, b: int) -> int:
    """The fastest ride from station a to b: network.travel_s["a-b"] (either order) if given,
    else min_s_per_station per station between them (stations numbered along the line)."""
    if a == b:
        return 0
    given = network.get("travel_s") or {}
    for k in ("%d-%d" % (a, b), "%d-%d" % (b, a)):
        if k in given:
            return int(given[k])
    return int(network["min_s_per_station"]) * abs(a - b)


# -- rules: one credential's passages (time order) -> [(score, evidence, detail, first_use)] --
def _where(p: dict[str, Any]) -> str:
    at = datetime.datetime.fromtimestamp(p["time"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "gate %d (station %d) at %s" % (p["device_id"], p["station"], at)


def copied_code(ps, cfg, rule):
    """One presentation (credential, counter) accepted as two passages: a copied code."""
    by_counter: dict[int, list[dict[str, Any]]] = {}
    for p in ps:
        by_counter.setdefault(p["counter"], []).append(p)
    out = []
    for counter, uses in sorted(by_counter.items()):
        if len(uses) > 1:
            detail = "presentation %d passed %d times: %s" % (
                counter,
                len(uses),
                "; ".join(_where(p) for p in uses),
            )
            score = min(100, 50 * (len(uses) - 1) + 50)
            out.append((score, "counter %d" % counter, detail, uses[1]["time"]))
    return out


def cloned_key(ps, cfg, rule):
    """The credential's counters go back in time at another gate, further apart than a
    presentation window: two phones hold the key, each counting on its own."""
    out = []
    high = None  # the passage with the highest counter so far
    for p in ps:
        if high is not None and p["counter"] < high["counter"]:
            if p["device_id"] != high["device_id"] and p["time"] - high["time"] > cfg["window_s"]:
                detail = "counter %d at %s after counter %d at %s" % (
                    p["counter"],
                    _where(p),
                    high["counter"],
                    _where(high),
                )
                out.append(
                    (90, "counters %d<%d" % (p["counter"], high["counter"]), detail, p["time"])
                )
        if high is None or p["counter"] > high["counter"]:
            high = p
    return out


def impossible_journey(ps, cfg, rule):
    """Two metro passages at stations further apart than the time between them allows."""
    out = []
    metro = [p for p in ps if p["mode"] == MODE_METRO]
    for a, b in zip(metro, metro[1:]):
        need = travel_s(cfg["network"], a["station"], b["station"])
        took = b["time"] - a["time"]
        if need and took < need:
            score = 50 + 50 * (need - took) // need
            detail = "%s then %s: %d s apart, the fastest ride takes %d s" % (
                _where(a),
                _where(b),
                took,
                need,
            )
            evidence = "%d/%d-%d/%d" % (a["device_id"], a["seq"], b["device_id"], b["seq"])
            out.append((score, evidence, detail, b["time"]))
    return out


def velocity(ps, cfg, rule):
    """More than `max` passages of one credential within `per_s` seconds."""
    limit, per = int(rule["max"]), int(rule["per_s"])
    lo = 0
    best = None  # (passages, first, last) of the busiest window
    for hi, p in enumerate(ps):
        while p["time"] - ps[lo]["time"] > per:
            lo += 1
        n = hi - lo + 1
        if n > limit and (best is None or n > best[0]):
            best = (n, lo, hi)
    if best is None:
        return []
    n, lo, hi = best
    first, last = ps[lo], ps[hi]
    score = min(100, 50 * n // (limit + 1))
    detail = "%d passages within %d s (from %s to %s; at most %d expected)" % (
        n,
        per,
        _where(first),
        _where(last),
        limit,
    )
    first_use = ps[lo + limit]["time"]  # the first passage over the limit
    return [(score, "from %d/%d" % (first["device_id"], first["seq"]), detail, first_use)]


def missing_taps(ps, cfg, rule):
    """Metro journeys with a tap missing (an entry never followed by an exit, or an exit
    without an entry), more than `max` of them within the lookback: a rider who skips the
    reader to pay less."""
    metro = [p for p in ps if p["mode"] == MODE_METRO]
    missing = []
    inside = None
    for p in metro:
        if p["direction"] == DIR_ENTRY:
            if inside is not None:
                missing.append(inside)  # entered again: the exit was never tapped
            inside = p
        elif p["direction"] == DIR_EXIT:
            if inside is None:
                missing.append(p)  # exit without an entry
            inside = None
    if len(missing) <= int(rule["max"]):
        return []
    score = min(100, 50 * len(missing) // (int(rule["max"]) + 1))
    detail = "%d journeys with a tap missing (more than %d): %s" % (
        len(missing),
        int(rule["max"]),
        "; ".join(_where(p) for p in missing[:5]),
    )
    last = missing[-1]
    return [(score, "up to %d/%d" % (last["device_id"], last["seq"]), detail, missing[0]["time"])]


RULES = {
    "copied_code": copied_code,
    "cloned_key": cloned_key,
    "impossible_journey": impossible_journey,
    "velocity": velocity,
    "missing_taps": missing_taps,
}


def _debt(account: int, unpaid: tuple[int, int], rule: dict[str, Any]):
    amount, days = unpaid
    if amount < int(rule["max"]):
        return []
    score = min(100, 50 * amount // int(rule["max"]))
    detail = "unpaid charges of %d.%02d over %d day(s) (threshold %d.%02d)" % (
        *divmod(amount, 100),
        days,
        *divmod(int(rule["max"]), 100),
    )
    return [(score, "unpaid %d" % amount, detail, 0)]


# -- the scan ----------------------------------------------------------------------------------
def scan(store: Any, cfg: dict[str, Any], now: int) -> dict[str, Any]:
    """Run the rules over what arrived since the last scan; store findings and the deny
    entries auto rules want. Returns {"records": credentials scanned, "findings": [new ones]}."""
    found: list[dict[str, Any]] = []
    with store.risk_transaction():
        moves, creds = store.risk_new_credentials()
        accounts = sorted({a for a, _c in creds})
        passages = store.risk_passages(accounts, now - int(cfg["lookback_s"]))
        by_cred: dict[tuple[int, int], list[dict[str, Any]]] = {}
        by_account: dict[int, list[dict[str, Any]]] = {}
        for p in passages:
            by_cred.setdefault((p["account_id"], p["cred_no"]), []).append(p)
            by_account.setdefault(p["account_id"], []).append(p)
        for acc_ps in by_account.values():
            acc_ps.sort(key=lambda p: (p["time"], p["device_id"], p["seq"]))
        rules = cfg["rules"]
        for (account, cred_no), ps in sorted(by_cred.items()):
            for name, fn in RULES.items():
                rule = rules[name]
                if rule["action"] == "off":
                    continue
                if name in ACCOUNT_RULES:
                    continue
                for hit in fn(ps, cfg, rule):
                    found += _store_finding(store, name, rule, account, cred_no, hit, now)
        account_rule = rules["missing_taps"]
        if account_rule["action"] != "off":
            for account, ps in sorted(by_account.items()):
                for hit in missing_taps(ps, cfg, account_rule):
                    found += _store_finding(
                        store, "missing_taps", account_rule, account, 0, hit, now
                    )
        debt_rule = rules["debt"]
        if debt_rule["action"] != "off":
            unpaid = store.risk_unpaid_of(sorted(set(accounts) | set(store.risk_unpaid_accounts())))
            for account, owed in sorted(unpaid.items()):
                for hit in _debt(account, owed, debt_rule):
                    found += _store_finding(store, "debt", debt_rule, account, 0, hit, now)
        store.risk_move_cursor(moves)
    return {"credentials": len(by_cred), "findings": found}


def _store_finding(store, name, rule, account, cred_no, hit, now) -> list[dict[str, Any]]:
    score, evidence, detail, first_use = hit
    # `account` is the store's account key (issuer << 40 | account, records.account_key): the
    # findings, and their deny entries, are per issuer. The finding keeps the bare deny key
    # (`deny_key`); its entry on the list is in its issuer's section (`_entry`).
    issuer, bare = split_account_key(account)
    key = (
        denylist.credential_key(issuer, bare, cred_no)
        if cred_no
        else denylist.account_key(issuer, bare)
    )
    if score < int(rule["min_score"]):
        state = "noted"
    else:
        state = "denied" if rule["action"] == "auto" else "review"
    f = {
        "time": now,
        "rule": name,
        "account_id": account,
        "cred_no": cred_no,
        "score": int(score),
        "evidence": evidence,
        "detail": detail,
        "state": state,
        "deny_key": key & denylist.KEY_MASK,
        "expires": now + int(rule["expire_s"]),
        "operator": "auto" if state == "denied" else "",
        "note": "",
        "first_use": int(first_use),
        "decided": now if state == "denied" else None,
    }
    fid = store.risk_add_finding(f)
    if fid is None:
        return []  # found before
    f["id"] = fid
    if state == "denied":
        store.risk_want(key, fid, name, f["expires"], True, now)
    return [f]


# -- operator review ---------------------------------------------------------------------------
def _entry(f: dict[str, Any]) -> int:
    """The deny entry of a finding: its deny key in its account's issuer's scope."""
    return denylist.entry(split_account_key(f["account_id"])[0], f["deny_key"])


def _finding(store: Any, fid: int) -> dict[str, Any]:
    f = store.risk_finding(fid)
    if f is None:
        raise RiskError("no finding %d" % fid)
    return f


def accept(store: Any, fid: int, operator: str, note: str, now: int) -> dict[str, Any]:
    """An operator confirms a finding: its deny entry is wanted (until its expiry from now)."""
    with store.risk_transaction():
        f = _finding(store, fid)
        if f["state"] == "denied":
            raise RiskError("finding %d is denied already" % fid)
        rule = f["rule"]
        expires = now + int(f["expires"] - f["time"])
        store.risk_decide(fid, "denied", operator, note, now)
        store.risk_want(_entry(f), fid, rule, expires, True, now)
    return _finding(store, fid)


def undo(store: Any, fid: int, operator: str, note: str, now: int) -> dict[str, Any]:
    """An operator takes a finding back: its deny entry is removed at the next publish."""
    with store.risk_transaction():
        f = _finding(store, fid)
        if f["state"] != "denied":
            raise RiskError("finding %d is %s, not denied: nothing to undo" % (fid, f["state"]))
        store.risk_decide(fid, "undone", operator, note, now)
        store.risk_want(_entry(f), fid, "undone", now, False, now)
    return _finding(store, fid)


def dismiss(store: Any, fid: int, operator: str, note: str, now: int) -> dict[str, Any]:
    """An operator closes a finding under review without a deny entry."""
    with store.risk_transaction():
        f = _finding(store, fid)
        if f["state"] not in ("review", "noted"):
            raise RiskError(
                "finding %d is %s: only one under review is dismissed" % (fid, f["state"])
            )
        store.risk_decide(fid, "dismissed", operator, note, now)
    return _finding(store, fid)


# -- publishing --------------------------------------------------------------------------------
def publish(store: Any, cfg: dict[str, Any], signer: Any, now: int):
    """One deny delta of what changed (and of expiries), after the version published now,
    stored as a publication: every gate fetches it at its next sync. `signer`: the lists
    role's key, or a list of them (its threshold: docs/security.md, "Roles"). Returns
    {"version", "adds", "removes"} or None when there was nothing to publish."""
    with store.risk_transaction():
        store.risk_expire(now)
        adds, removes = store.risk_changes()
        current = dict((k, v) for k, v, _n in store.offers()).get(m.KIND_DENY_DELTA)
        if current is None:
            raise RiskError(
                "no deny list is published yet: publish the gates' first one "
                "(`faregate backoffice publish deny_delta`) before the risk engine adds to it"
            )
        valid_s = int(cfg["deny_valid_s"])
        old = denylist.parse(store.publication(m.KIND_DENY_DELTA, current))
        if old.legacy:
            raise RiskError(
                "deny list %d, published now, has no issuer (format %d): gates take no delta "
                "after it; publish a format-3 snapshot (`faregate wallet deny`) first"
                % (current, store.publication(m.KIND_DENY_DELTA, current)[4])
            )
        if not adds and not removes:
            if not valid_s:
                return None
            if old.valid_until and old.valid_until - now > int(cfg["refresh_before_s"]):
                return None
        # a key both removed and wanted again cannot be in one delta: removes win this time
        adds = [k for k in adds if k not in set(removes)]
        version = current + 1
        blob = denylist.build_delta(
            current,
            version,
            now,
            adds,
            removes,
            signer,
            now + valid_s if valid_s else 0,
        )
        store.publish(m.KIND_DENY_DELTA, version, blob, now)
        store.risk_listed(adds, True, version)
        store.risk_listed(removes, False, version)
    return {"version": version, "adds": adds, "removes": removes, "bytes": len(blob)}
