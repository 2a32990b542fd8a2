"""Statements: per issuer and service day, what the issuer's accounts owe, with the proof of it.

An issuer (a wallet, a bank) receives one statement a service day and checks it offline, without
trusting the operator (`faregate settle verify`; the format is docs/settlement.md's):

    build(store, signer, issuer, day, tariff, tariff_bytes, as_of, now_ms, previous_head,
          device_certs) -> the statement (a dict); `encode` gives its bytes
    verify(blob, log_key, verifier, tariff_bytes, previous=None, issuer_key=None,
           root_key=None) -> Report
    reconcile(statement, view) -> findings: missing, extra, priced differently

A statement holds the day's charges of the issuer's accounts from clearing: each account's
journeys (mode, status, rule, fare, charged), what it had spent of the weekly cap before the
day, and the leaves (records of the transparency log) it rests on, every such record in full,
one multi-leaf inclusion proof of all of them against a tree head signed by the log key, that
head's consistency proof from the previous statement's head, the gates' signed batches that
hold the records (the other records of a batch as digests only) with the gates' device
certificates, the operators' corrections, the totals, the week's running totals, the hash of
the fare table it was priced with, and the log key's signature over all of it.

verify, in this order (the first failure of each charge is reported, all charges are checked):
  1. the bytes are a statement of this format (statement_malformed), signed by the log key,
     with a head signed by the log key (statement_bad_signature);
  2. the head extends the previous day's head (head_inconsistent);
  3. every record listed is a leaf of the head's tree at its index (leaf_not_included);
  4. every record is of this issuer, is used by one charge only, and each charge's account is
     its records' (wrong_issuer);
  5. the rider's signature in each record's ride code verifies, and the issuer's signature of
     its credential if the issuer's key is given (rider_signature_bad); every record is in a
     batch its gate signed (gate_signature_bad) with a key certified by the operator root
     (gate_certificate_bad): one verify a batch, a certificate, a distinct credential;
  6. re-pricing each charge's records with the published fare table, the weekly cap from
     the week's running total, gives its journeys and cleared amount (tariff_mismatch);
  7. amounts follow from cleared and corrections, and the totals add up (totals_mismatch);
  8. the week's running totals follow from the previous statement's (week_total_mismatch).
The reasons are protocol/reasons.py's 360-371.
"""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from host_sim.backoffice import clearing, translog
from host_sim.errors import SimError
from protocol import certs, merkle, records, ridecode, sync
from protocol.errors import FormatError

FORMAT = "faregate-statement/1"
SIGNING_PREFIX = b"FGST1\n"

# the reasons of verify and reconcile, in protocol/reasons.py
REASONS = (
    "statement_malformed",
    "statement_bad_signature",
    "head_inconsistent",
    "leaf_not_included",
    "wrong_issuer",
    "rider_signature_bad",
    "gate_signature_bad",
    "tariff_mismatch",
    "totals_mismatch",
    "reconcile_mismatch",
    "gate_certificate_bad",
    "week_total_mismatch",
)


class StatementError(SimError):
    """A statement that cannot be made or read (its reason says why)."""

    reason = "statement_malformed"
    remedy = "ask the operator for the statement again"


def canonical(obj: Any) -> bytes:
    """The one byte form of a statement: JSON, keys sorted, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signing_input(st: dict[str, Any]) -> bytes:
    """What the log key signs: the prefix, then the canonical statement without `signature`."""
    return SIGNING_PREFIX + canonical({k: v for k, v in st.items() if k != "signature"})


def encode(st: dict[str, Any]) -> bytes:
    return canonical(st) + b"\n"


# -- pricing: the one function the back office and the issuer both run -----------------------
def tap_of(raw: Any) -> clearing.Tap:
    """The clearing tap of a record (its bytes, or the Record decoded already)."""
    r = raw if isinstance(raw, records.Record) else records.decode(raw)
    return clearing.Tap(
        r.account_id, r.mode, r.device_id, r.seq, r.kind, r.reason, r.time, r.station,
        r.direction, r.cred_no, r.counter, r.value, r.flags,
    )  # fmt: skip


def price(
    account: int,
    raws: Iterable[Any],
    tariff: dict[str, Any],
    as_of: int,
    day: int,
    week_before: int | None = None,
) -> list[dict[str, Any]]:
    """The journeys of `day` that clearing makes of one account's records (bytes or Records),
    as a statement lists them: mode, status, rule, fare, charged and records ([device_id,
    seq] pairs). `week_before`: what the account's earlier days of the week spent of the
    weekly cap (week_spend); the day's journeys are capped again from it, as clearing caps
    them with the whole week's records (None: the records given are the whole week)."""
    taps = sorted((tap_of(r) for r in raws), key=lambda t: (t.time, t.device_id, t.seq))
    js = [j for j in clearing.journeys(account, taps, tariff, as_of) if j["day"] == day]
    if week_before is not None and tariff["metro"]["weekly_cap"]:
        clearing._apply_caps(js, tariff, {clearing.week_of(day, tariff): week_before})
    return [
        {
            "mode": j["mode"],
            "status": j["status"],
            "rule": j["rule"],
            "fare": j["fare"],
            "charged": j["charged"],
            "records": [list(x) for x in j["records"]],
        }
        for j in js
    ]


def week_spend(js: list[dict[str, Any]], tariff: dict[str, Any]) -> int:
    """What journeys spend of the weekly cap (clearing._apply_caps): metro journeys' charged,
    maximum fares only if they count toward the caps."""
    counts = tariff["metro"]["max_fare_counts_to_cap"]
    return sum(
        j["charged"]
        for j in js
        if j["mode"] == "metro" and (counts or j["rule"] not in clearing.MAX_FARE_RULES)
    )


def week_first_day(day: int, tariff: dict[str, Any]) -> int:
    """The first service day of the week `day` is in."""
    return day - (day + 3 - tariff["week_start"]) % 7


def record_signatures(
    raw: Any, verifier: Any, issuer_key: bytes | None, creds: dict[bytes, bool] | None = None
) -> str | None:
    """The signatures a record carries, checked: None if they verify, else the reason. The
    rider's (its ride code: the phone's key signed credential || time || counter) and, given
    the issuer's key, the issuer's of the credential (`creds` remembers each credential's
    result: a rider taps with one credential many times). A record without a ride code
    (version 1, an emergency passage) has nothing to check here. The gate's signature is the
    batch's, checked once a batch (_gate_signatures)."""
    rec = raw if isinstance(raw, records.Record) else records.decode(raw)
    ev = rec.rider_evidence()
    if ev is None:
        return None
    code = ev[0] + ev[1]
    rider_pub = code[27 : 27 + ridecode.PUB_LEN]
    if not verifier.verify(rider_pub, ev[0], ev[1]):
        return "rider_signature_bad"
    if issuer_key is None:
        return None
    cred = code[: ridecode.CRED_LEN]
    ok = creds.get(cred) if creds is not None else None
    if ok is None:
        ok = verifier.verify(
            issuer_key, cred[: ridecode.CRED_BODY_LEN], cred[ridecode.CRED_BODY_LEN :]
        )
        if creds is not None:
            creds[cred] = ok
    return None if ok else "rider_signature_bad"


def _gate_certificates(st, rep, verifier, root_key) -> dict[int, certs.Cert]:
    """{device_id: its certificate} of the statement's gates whose certificate the operator
    root signed: a device certificate of that device id (its validity is checked against
    each record's time)."""
    good: dict[int, certs.Cert] = {}
    for dev, cert_hex in st["gates"]:
        dev = int(dev)
        try:
            cert = certs.parse(bytes.fromhex(cert_hex))
        except (FormatError, ValueError) as e:
            rep.fail("gate_certificate_bad", "gate %d: its certificate does not parse: %s"
                     % (dev, e))  # fmt: skip
            continue
        if root_key is None:
            why = "no operator root key given to check it with"
        elif cert.kind != certs.KIND_DEVICE or cert.subject_id != dev:
            why = "it is not gate %d's device certificate" % dev
        elif not certs.verify(cert, root_key, verifier):
            why = "the operator root did not sign it"
        else:
            good[dev] = cert
            continue
        rep.fail("gate_certificate_bad", "gate %d: %s" % (dev, why))
    return good


def _gate_signatures(st, rep, by_leaf, decoded, verifier, root_key) -> None:
    """Every record the statement lists is in a batch its gate signed (sync FGBATCH2) with
    the key of a certificate the operator root signed, valid at the record's time: one
    verify per batch, from the digests of the records it holds."""
    gates = _gate_certificates(st, rep, verifier, root_key)
    digest = sync.record_digest
    covered: set[int] = set()
    batches = 0
    for dev, sig_hex, items in st["batches"]:
        dev = int(dev)
        if not (0 <= dev < 1 << 32 and isinstance(items, list) and 0 < len(items) <= 0xFFFF):
            raise StatementError("a batch is [device_id (u32), signature, 1..65535 items]")
        cert = gates.get(dev)
        if cert is None:
            continue  # its records are reported below, the certificate above
        leaves: list[int] = []
        parts: list[bytes] = []
        for it in items:
            if type(it) is int:
                raw = by_leaf.get(it)
                if raw is None or decoded[it].device_id != dev:
                    raise StatementError(
                        "batch of gate %d names leaf %s, not a record of the "
                        "gate listed" % (dev, it),
                        "gate_signature_bad",
                    )
                leaves.append(it)
                parts.append(digest(raw))
            else:
                h = bytes.fromhex(it)
                if len(h) != 32:
                    raise StatementError("a record digest is 32 bytes", "gate_signature_bad")
                parts.append(h)
        signed = sync.batch_signed(dev, len(items), sync.batch_digest(parts))
        if not verifier.verify(cert.public_key, signed, bytes.fromhex(sig_hex)):
            rep.fail("gate_signature_bad", "a batch of gate %d (leaves %s): its signature does "
                     "not verify with the gate's key" % (dev, leaves[:3]))  # fmt: skip
            continue
        batches += 1
        for leaf in leaves:
            t = decoded[leaf].time
            if cert.valid_from <= t < cert.valid_until:
                covered.add(leaf)
            else:
                rep.fail("gate_certificate_bad", "leaf %d: gate %d's certificate is not valid at "
                         "its time %d" % (leaf, dev, t))  # fmt: skip
                covered.add(leaf)
    for leaf in sorted(set(by_leaf) - covered):
        rec = decoded[leaf]
        dev = rec.device_id
        if dev in gates:
            rep.fail("gate_signature_bad", "leaf %d (record %d/%d): no batch signed by gate %d "
                     "holds it" % (leaf, dev, rec.seq, dev))  # fmt: skip
        else:
            why = "gate %d has no certificate the operator root signed" % dev
            rep.fail(
                "gate_certificate_bad", "leaf %d (record %d/%d): %s" % (leaf, dev, rec.seq, why)
            )
    rep.checked["gate_batches"] = batches


# -- building (the back office) ---------------------------------------------------------------
def build(
    store: Any,
    signer: Any,
    issuer: int,
    day: int,
    tariff: dict[str, Any],
    tariff_bytes: bytes,
    as_of: int,
    now_ms: int,
    previous_head: bytes | None = None,
    device_certs: dict[int, bytes] | None = None,
) -> dict[str, Any]:
    """The signed statement of `issuer`'s charges on service `day`, priced with `tariff`
    (parsed from `tariff_bytes`, the published fare table), journeys open or closed as of
    `as_of` (unix s), over a tree head signed now by `signer` (the log key), with the
    consistency proof from `previous_head` (the previous statement's), the gates' signed
    batches that hold its records and the gates' device certificates (`device_certs`:
    device_id -> certificate bytes, protocol/certs.py, as provisioning issued them)."""
    back = clearing._lookback(tariff)
    start = clearing.day_start(day, tariff)
    weekly = tariff["metro"]["weekly_cap"]
    first = week_first_day(day, tariff) if weekly else day  # the week's records count too
    by_account: dict[int, list[bytes]] = {}
    for raw in store.statement_records(clearing.day_start(first, tariff) - back,
                                       start + 86400 + back):  # fmt: skip
        rec = records.decode(raw)
        if rec.issuer == issuer:
            by_account.setdefault(rec.account_id, []).append(raw)
    keys = [(records.decode(r).device_id, records.seq_of(r)) for rs in by_account.values()
            for r in rs]  # fmt: skip
    leaf_of = store.log_leaves_of(keys)
    tlog = store.translog(signer)  # after the records were read: every one is in its tree
    head_blob = tlog.sign_head(now_ms)
    head = merkle.parse_head(head_blob)
    charges = []
    used: dict[int, bytes] = {}
    week: dict[int, int] = {}  # account -> what it spent of the weekly cap through the day
    for account in sorted(by_account):
        raws = by_account[account]
        js = price(account, raws, tariff, as_of, day)
        before = 0
        if weekly:
            taps = sorted((tap_of(r) for r in raws), key=lambda t: (t.time, t.device_id, t.seq))
            all_js = clearing.journeys(account, taps, tariff, as_of)
            before = week_spend([j for j in all_js if first <= j["day"] < day], tariff)
            spent = before + week_spend([j for j in all_js if j["day"] == day], tariff)
            if spent:
                week[account] = spent
        if not js:
            continue
        held = {(records.decode(r).device_id, records.seq_of(r)): r for r in raws}
        mine = {tuple(x) for j in js for x in j["records"]}
        mine |= {k for k, r in held.items() if clearing.service_day(records.decode(r).time,
                                                                  tariff) == day}  # fmt: skip
        # the leaves it rests on: its journeys' records and every record of its day (a
        # re-tap that made no journey of its own too), then, if they alone do not price the
        # same (a copy's original, a journey begun the day before), every record of the
        # account that clearing looked at around the day, then of the week. The weekly cap
        # is priced from `before` (the week's running totals: "week")
        w = before if weekly else None
        need = [held[k] for k in sorted(mine)]
        if price(account, need, tariff, as_of, day, w) != js:
            lo = start - back
            need = [r for r in raws if records.decode(r).time >= lo]
            if price(account, need, tariff, as_of, day, w) != js:
                need = raws
            need.sort(key=lambda r: (records.decode(r).device_id, records.seq_of(r)))
        leaves = []
        for raw in need:
            k = (records.decode(raw).device_id, records.seq_of(raw))
            leaf = leaf_of.get(k)
            if leaf is None or leaf >= head.tree_size:
                raise StatementError("record %d/%d is not in the log" % k, "leaf_not_included")
            leaves.append(leaf)
            used[leaf] = raw
        cleared = sum(j["charged"] for j in js)
        corrections = [
            {"kind": r["kind"], "delta": r["delta"], "reason": r["reason"]}
            for r in store.clearing_revisions(records.account_key(issuer, account), day)
            if r["kind"] in ("refund", "adjust")
        ]
        adjusted = sum(c["delta"] for c in corrections)
        amount, excess = clearing.owed(cleared, adjusted)
        for j in js:
            j["leaves"] = sorted(leaf_of[(d, q)] for d, q in j.pop("records"))
        charges.append(
            {
                "account": account,
                "journeys": js,
                "week_before": before,
                "leaves": sorted(leaves),
                "cleared": cleared,
                "corrections": corrections,
                "amount": amount,
                "excess": excess,
            }
        )
    idx = sorted(used)
    st: dict[str, Any] = {
        "format": FORMAT,
        "issuer": issuer,
        "day": day,
        "as_of": as_of,
        "tariff_sha256": hashlib.sha256(tariff_bytes).hexdigest(),
        "head": head_blob.hex(),
        "previous_head": previous_head.hex() if previous_head else None,
        "consistency": [],
        "records": [[i, used[i].hex()] for i in idx],
        "proof": [h.hex() for h in tlog.inclusion_proof_many(idx, head.tree_size)] if idx else [],
        "charges": charges,
        "totals": totals(charges),
        "key_id": "%08x" % certs.key_id(signer.public_key),
    }
    st["week"] = [[a, week[a]] for a in sorted(week)]
    st["batches"] = _batches(store, used)
    known = device_certs or {}
    st["gates"] = [[d, known[d].hex()] for d in sorted({b[0] for b in st["batches"]}) if d in known]
    if previous_head:
        old = merkle.parse_head(previous_head)
        st["consistency"] = [h.hex() for h in tlog.consistency_proof(old.tree_size, head.tree_size)]
    st["signature"] = signer.sign(signing_input(st)).hex()
    return st


def _batches(store: Any, used: dict[int, bytes]) -> list[list[Any]]:
    """The gate's evidence of the statement's records: for each, the first batch stored that
    holds its bytes (store.statement_batches), as [device_id, signature (hex), items], an
    item per record of the batch in upload order: the leaf index of a record the statement
    lists, else the SHA-256 (hex) of a record the issuer is not shown (another issuer's, or
    one no charge rests on). A record without a signed batch is in none."""
    by_dev: dict[int, dict[int, tuple[int, bytes]]] = {}
    for leaf, raw in used.items():
        by_dev.setdefault(records.decode(raw).device_id, {})[records.seq_of(raw)] = (leaf, raw)
    out: list[list[Any]] = []
    for dev in sorted(by_dev):
        want = by_dev[dev]
        todo = set(want)
        for first, sig, blob in store.statement_batches(dev, min(want), max(want)):
            if not todo:
                break
            parts = records.split(blob)
            hits = {q for q, part in enumerate(parts, first) if q in todo and want[q][1] == part}
            if not hits:
                continue
            todo -= hits
            items: list[Any] = []
            for q, part in enumerate(parts, first):
                mine = want.get(q)
                items.append(
                    mine[0] if mine and mine[1] == part else sync.record_digest(part).hex()
                )
            out.append([dev, sig.hex(), items])
    return out


def totals(charges: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "accounts": len(charges),
        "journeys": sum(len(c["journeys"]) for c in charges),
        "cleared": sum(c["cleared"] for c in charges),
        "adjusted": sum(sum(x["delta"] for x in c["corrections"]) for c in charges),
        "amount": sum(c["amount"] for c in charges),
    }


# -- verifying (the issuer) -------------------------------------------------------------------
class Report:
    """What verify found: `failures` [(reason, detail)], `checked` counts; ok if none failed."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.checked: dict[str, int] = {}
        self.statement: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        self.failures.append((reason, detail))

    def reasons(self) -> list[str]:
        return sorted({r for r, _ in self.failures})


def _parse(blob: bytes) -> dict[str, Any]:
    try:
        st = json.loads(blob)
    except ValueError as e:
        raise StatementError("not JSON: %s" % e) from None
    if not isinstance(st, dict) or st.get("format") != FORMAT:
        raise StatementError("not a %s statement" % FORMAT)
    if blob.rstrip(b"\n") != canonical(st):
        raise StatementError("not in canonical form (keys sorted, no spaces, ASCII)")
    want = {
        "format", "issuer", "day", "as_of", "tariff_sha256", "head", "previous_head",
        "consistency", "records", "proof", "charges", "totals", "key_id", "signature",
        "batches", "gates", "week",
    }  # fmt: skip
    if set(st) != want:
        raise StatementError("fields %s, not %s" % (sorted(st), sorted(want)))
    return st


def _signed_part(blob: bytes, st: dict[str, Any]) -> bytes:
    """signing_input(st) of a statement whose bytes `blob` _parse found canonical, cut from
    the bytes instead of encoding the statement again (a million charges encode in
    seconds): its canonical form less the `signature` member. If that member's text occurs
    more than once, encoded again."""
    member = b',"signature":"' + str(st["signature"]).encode() + b'"'
    body = blob.rstrip(b"\n")
    i = body.find(member)
    if i < 0 or body.find(member, i + 1) >= 0:
        return signing_input(st)
    return SIGNING_PREFIX + body[:i] + body[i + len(member) :]


def _hexes(v: Any) -> list[bytes]:
    if not isinstance(v, list) or not all(isinstance(h, str) for h in v):
        raise StatementError("a list of hex hashes expected")
    return [bytes.fromhex(h) for h in v]


def verify(
    blob: bytes,
    log_key: bytes,
    verifier: Any,
    tariff_bytes: bytes,
    previous: bytes | None = None,
    issuer_key: bytes | None = None,
    root_key: bytes | None = None,
) -> Report:
    """Check a statement (module docstring, steps 1-7) with the log's public key, the
    published fare table's bytes (b"" for the default tariff), the previous day's statement
    as the issuer kept it, the issuer's own public key (to check credentials) and the
    operator root's public key, which certifies the gates' device keys (without it no gate
    signature can be trusted: every record fails gate_certificate_bad)."""
    rep = Report()
    try:
        with clearing._no_gc():  # a day's statement is millions of objects, and makes no cycles
            st = _parse(blob)
            rep.statement = st
            _verify(st, _signed_part(blob, st), rep, log_key, verifier, tariff_bytes, previous,
                    issuer_key, root_key)  # fmt: skip
    except (StatementError, FormatError, ValueError, KeyError, TypeError) as e:
        reason = getattr(e, "reason", "statement_malformed")
        rep.fail(reason if reason in REASONS else "statement_malformed", str(e))
    return rep


def _verify(
    st, signed, rep, log_key, verifier, tariff_bytes, previous, issuer_key, root_key
) -> None:
    # 1. signatures of the statement and its head
    if st["key_id"] != "%08x" % certs.key_id(log_key) or not verifier.verify(
        log_key, signed, bytes.fromhex(st["signature"])
    ):
        raise StatementError(
            "the statement is not signed by the log key", "statement_bad_signature"
        )
    try:
        head = translog.check_head(bytes.fromhex(st["head"]), log_key, verifier)
    except merkle.TreeHeadError as e:
        raise StatementError("its tree head: %s" % e, "statement_bad_signature") from None
    rep.checked["signatures"] = 2
    # 2. consistency with the previous day's head
    prev_hex = st["previous_head"]
    prev_st = None
    if previous is not None:
        mine = prev_st = _parse(previous)
        if prev_hex != mine["head"]:
            rep.fail("head_inconsistent", "its previous head is not the head of your previous "
                     "statement")  # fmt: skip
    if prev_hex is not None:
        try:
            old = translog.check_head(bytes.fromhex(prev_hex), log_key, verifier)
            merkle.verify_consistency(
                old.tree_size, head.tree_size, _hexes(st["consistency"]), old.root_hash,
                head.root_hash,
            )  # fmt: skip
            rep.checked["consistency"] = 1
        except (merkle.ProofError, merkle.TreeHeadError) as e:
            rep.fail("head_inconsistent", "the log was rewritten since the previous head: %s" % e)
    # 3. inclusion of every record
    recs = st["records"]
    idx = [int(i) for i, _ in recs]
    raws = [bytes.fromhex(r) for _, r in recs]
    by_leaf = dict(zip(idx, raws))
    if len(by_leaf) != len(idx):
        rep.fail("leaf_not_included", "a leaf listed twice")
    if idx:
        try:
            merkle.verify_multi_inclusion(
                idx, translog.leaf_hashes(raws), head.tree_size, _hexes(st["proof"]),
                head.root_hash,
            )  # fmt: skip
        except merkle.ProofError as e:
            rep.fail(
                "leaf_not_included",
                "the records are not the log's leaves at those indices (%s): one was altered, "
                "invented or moved" % e,
            )
    rep.checked["records"] = len(idx)
    # 4-5. issuer, use, signatures of each record
    tariff = _tariff(tariff_bytes, st, rep)
    owner: dict[int, int] = {}
    for c in st["charges"]:
        for leaf in c["leaves"]:
            if leaf in owner:
                rep.fail("wrong_issuer", "leaf %d charged twice (accounts %d and %d)"
                         % (leaf, owner[leaf], c["account"]))  # fmt: skip
            owner[leaf] = c["account"]
    if set(owner) != set(by_leaf):
        rep.fail("wrong_issuer", "records listed that no charge rests on, or the reverse")
    bad_sig = 0
    decoded = {leaf: records.decode(raw) for leaf, raw in by_leaf.items()}
    creds: dict[bytes, bool] = {}  # each distinct credential's issuer signature checked once
    for leaf, rec in decoded.items():
        if rec.issuer != st["issuer"]:
            rep.fail("wrong_issuer", "leaf %d is issuer %d's" % (leaf, rec.issuer))
        if leaf in owner and rec.account_id != owner[leaf]:
            rep.fail("wrong_issuer", "leaf %d is account %d's, charged to %d"
                     % (leaf, rec.account_id, owner[leaf]))  # fmt: skip
        why = record_signatures(rec, verifier, issuer_key, creds)
        if why is not None:
            bad_sig += 1
            rep.fail(why, "leaf %d (record %d/%d)" % (leaf, rec.device_id, rec.seq))
    rep.checked["record_signatures"] = len(by_leaf) - bad_sig
    _gate_signatures(st, rep, by_leaf, decoded, verifier, root_key)
    # 6-7. pricing and totals
    key_of = {(decoded[x].device_id, decoded[x].seq): x for x in by_leaf}
    weekly = tariff is not None and tariff["metro"]["weekly_cap"]
    spent: dict[int, int] = {}  # account -> what it spent of the weekly cap through the day
    for c in st["charges"]:
        account = c["account"]
        if tariff is not None:
            got = price(account, [decoded[x] for x in c["leaves"] if x in decoded], tariff,
                        st["as_of"], st["day"], c["week_before"] if weekly else None)  # fmt: skip
            spent[account] = c["week_before"] + week_spend(got, tariff)
            for j in got:
                j["leaves"] = sorted(key_of[(d, q)] for d, q in j.pop("records"))
            if got != c["journeys"]:
                rep.fail("tariff_mismatch", "account %d: re-priced %d, stated %d" % (
                    account, sum(j["charged"] for j in got), c["cleared"]))  # fmt: skip
        if c["cleared"] != sum(j["charged"] for j in c["journeys"]):
            rep.fail("totals_mismatch", "account %d: cleared is not its journeys' sum" % account)
        amount, excess = clearing.owed(c["cleared"], sum(x["delta"] for x in c["corrections"]))
        if (amount, excess) != (c["amount"], c["excess"]):
            rep.fail("totals_mismatch", "account %d: amount is not cleared + corrections" % account)
    if totals(st["charges"]) != st["totals"]:
        rep.fail("totals_mismatch", "the totals are not the charges' sums")
    rep.checked["charges"] = len(st["charges"])
    if tariff is not None:
        _check_week(st, rep, tariff, prev_st, spent)


def _check_week(st, rep, tariff, prev_st, spent: dict[int, int]) -> None:
    """The weekly cap's running totals: each charge's `week_before` is what the account had
    spent of the week's cap by the end of the previous statement (0 in a new week, or with
    no statement before from this log), and `week` is that plus the day's journeys, for
    every account that spent any this week. Without the previous statement they cannot be
    checked (unless the day starts the week or no statement came before)."""
    day = st["day"]
    if not tariff["metro"]["weekly_cap"]:
        if st["week"] or any(c["week_before"] for c in st["charges"]):
            rep.fail("week_total_mismatch", "week totals in a statement without a weekly cap")
        return
    week = clearing.week_of(day, tariff)
    if prev_st is not None:
        same = prev_st["day"] < day and clearing.week_of(prev_st["day"], tariff) == week
        before = {int(a): int(v) for a, v in prev_st["week"]} if same else {}
    elif st["previous_head"] is None or week_first_day(day, tariff) == day:
        before = {}
    else:
        rep.fail("week_total_mismatch", "the weekly cap is priced from the week's running "
                 "totals: give the previous statement (--previous) to check them")  # fmt: skip
        return
    after = dict(before)
    for c in st["charges"]:
        a = c["account"]
        if c["week_before"] != before.get(a, 0):
            rep.fail("week_total_mismatch", "account %d: the week before this day spent %d of "
                     "the weekly cap, the statement says %d" % (a, before.get(a, 0),
                                                                c["week_before"]))  # fmt: skip
        if a in spent:
            after[a] = spent[a]
    stated = {int(a): int(v) for a, v in st["week"]}
    if stated != {a: v for a, v in after.items() if v}:
        bad = sorted(a for a in set(stated) | set(after) if stated.get(a, 0) != after.get(a, 0))
        rep.fail("week_total_mismatch", "the week's running totals of accounts %s do not "
                 "follow from the previous statement and this day's charges" % bad[:5])  # fmt: skip


def _tariff(tariff_bytes: bytes, st: dict[str, Any], rep: Report) -> dict[str, Any] | None:
    if hashlib.sha256(tariff_bytes).hexdigest() != st["tariff_sha256"]:
        rep.fail("tariff_mismatch", "priced with another fare table than the published one")
        return None
    return load_tariff_bytes(tariff_bytes)


def load_tariff_bytes(data: bytes) -> dict[str, Any]:
    """The tariff of a published fare table's bytes: a tariff TOML file as clearing.load_tariff
    reads it (b"": the default tariff), or a complete tariff as one JSON object (`canonical`
    of it: what the simulator publishes, its tariff being a table of the scenario)."""
    import os
    import tempfile

    if not data:
        return clearing.load_tariff(None)
    if data.lstrip().startswith(b"{"):
        tariff = json.loads(data)
        if not isinstance(tariff, dict) or set(tariff) != set(clearing.DEFAULT_TARIFF):
            raise StatementError("a JSON fare table holds every section of the tariff")
        return tariff
    fd, path = tempfile.mkstemp(suffix=".toml")
    try:
        os.write(fd, data)
        os.close(fd)
        return clearing.load_tariff(path)
    finally:
        os.unlink(path)


# -- reconciling (the issuer's own view against statements) ---------------------------------
def reconcile(sts: list[dict[str, Any]], view: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare (verified) statements, one or several days of one issuer, with its own view:
        {"accounts": [account ids it issued credentials to]          (optional),
         "presentations": [[account, cred_no, counter, time], ...]   what its phones reported,
         "from": unix s, "until": unix s                              the period it covers
                                                                      (optional),
         "amounts": {"account": amount it expects for the day}       (optional, one day)}
    A journey belongs to the service day of its first tap, so a presentation near midnight
    may be in the next day's statement: give the statements of every day the view covers.
    Findings, in this order: missing (reported in the period, in no statement: a record
    dropped), extra (a passage of the period in a statement that the phones never reported:
    one invented, or an account the issuer never issued) and priced_differently."""
    lo = int(view.get("from", -(1 << 62)))
    hi = int(view.get("until", 1 << 62))
    held: dict[tuple[int, int, int], tuple[int, int]] = {}  # presentation -> (leaf, time)
    for st in sts:
        for leaf, hexraw in st["records"]:
            r = records.decode(bytes.fromhex(hexraw))
            if r.kind == records.KIND_PASSAGE and (r.cred_no or r.counter):
                held[(r.account_id, r.cred_no, r.counter)] = (int(leaf), r.time)
    reported: dict[tuple[int, int, int], int] = {}
    for p in view.get("presentations", []):
        reported[(int(p[0]), int(p[1]), int(p[2]))] = int(p[3]) if len(p) > 3 else lo
    issued = {int(a) for a in view.get("accounts", [])}
    out: list[dict[str, Any]] = []
    for k in sorted(set(reported) - set(held)):
        if lo <= reported[k] < hi:
            out.append({"finding": "missing", "account": k[0], "cred_no": k[1], "counter": k[2]})
    for k in sorted(set(held) - set(reported)):
        leaf, t = held[k]
        if lo <= t < hi:
            out.append({"finding": "extra", "account": k[0], "cred_no": k[1], "counter": k[2],
                        "leaf": leaf})  # fmt: skip
    amounts = {int(k): int(v) for k, v in view.get("amounts", {}).items()}
    for st in sts:
        for c in st["charges"]:
            if issued and c["account"] not in issued:
                out.append({"finding": "extra", "account": c["account"], "detail": "not ours"})
            if c["account"] in amounts and amounts[c["account"]] != c["amount"]:
                out.append({"finding": "priced_differently", "account": c["account"],
                            "stated": c["amount"], "expected": amounts[c["account"]]})  # fmt: skip
    return out
