"""The simulator's settlement day: statements for every issuer, and a tampering operator.

After the run has recovered and been cleared, the back office (the operator) makes each
issuer's statement of each service day the records touch (host_sim/backoffice/statements.py,
one chained to the next by their tree heads), and each issuer checks it as
`faregate settle verify` does, then reconciles all its statements with its own view: the
presentations its riders' phones made that a gate accepted (the simulator's truth, from what
the gates journaled, not from the back office).

Then the tampering operator (faults.tampering > 0) changes the store after the fact, one
record at a time, seeded, the kinds in turn:
    alter    a stored passage's bytes are changed (its station: a dearer journey)
    drop     a stored passage is deleted (the journey loses a tap)
    invent   a passage no rider made is stored as if a gate had uploaded it (its
             presentation copies a real one's, with a counter the phone never used and no valid
             signature; no gate signed it), so it is a leaf of the log like any other
    forge    a passage that copies a real one whole, its ride code and the rider's signature
             too, at another time, stored in a batch the operator signed with a key of its own
             (not the gate's): only the gate's signature tells it from a real passage
and restates that issuer's day from the changed store, chained to the same previous head as
the honest statement. Each tampering is then undone, so that each is judged alone. The
invariant tampering_caught_by_issuer: every honest statement verifies and reconciles, and
every tampered one is caught by verify or, for what verify cannot see in a statement that is
consistent in itself (a dropped record), by reconcile.
"""

import random
from typing import Any

from host_sim.backoffice import clearing, statements
from protocol import records, sync

KINDS = ("alter", "drop", "invent", "forge")


class Settlement:
    def __init__(
        self,
        store: Any,
        log_signer: Any,
        verifier: Any,
        tariff: dict,
        as_of: int,
        now_ms: int,
        verify: Any = statements.verify,
        root_key: bytes | None = None,
        device_certs: dict[int, bytes] | None = None,
    ) -> None:
        self.store = store
        self.root_key = root_key  # the operator root: certifies the gates' keys
        self.device_certs = device_certs or {}
        self.verify = verify  # the issuers' check (a test swaps in a broken one)
        self.signer = log_signer
        self.verifier = verifier
        self.tariff_bytes = statements.canonical(tariff)  # the fare table it publishes
        self.tariff = statements.load_tariff_bytes(self.tariff_bytes)
        self.as_of = as_of
        self.now_ms = now_ms
        self.statements: dict[int, list[bytes]] = {}  # issuer -> its statements, day order
        self.days: dict[int, list[int]] = {}  # issuer -> the days of those statements
        self.results: list[dict[str, Any]] = []  # one per statement checked

    def _build(self, issuer: int, day: int, previous: bytes | None) -> bytes:
        self.now_ms += 1  # every head a millisecond after the last: timestamps never go back
        prev_head = bytes.fromhex(statements._parse(previous)["head"]) if previous else None
        st = statements.build(
            self.store, self.signer, issuer, day, self.tariff, self.tariff_bytes, self.as_of,
            self.now_ms,
            prev_head,
            self.device_certs,
        )  # fmt: skip
        return statements.encode(st)

    def _check(self, blob: bytes, previous: bytes | None, others: list[bytes], view: dict):
        rep = self.verify(blob, self.signer.public_key, self.verifier, self.tariff_bytes, previous,
                          None, self.root_key)  # fmt: skip
        found: list[dict[str, Any]] = []
        if rep.ok:
            sts = [statements._parse(b) for b in [*others, blob]]
            found = statements.reconcile(sts, view)
        return rep, found

    def honest(self, views: dict[int, dict]) -> None:
        """Every issuer's statement of every service day its passages touch, checked."""
        days: dict[int, set[int]] = {}
        for raw in self.store.statement_records(-(1 << 40), 1 << 40):
            r = records.decode(raw)
            days.setdefault(r.issuer, set()).add(clearing.service_day(r.time, self.tariff))
        for issuer in sorted(days):
            sts: list[bytes] = []
            for day in sorted(days[issuer]):
                blob = self._build(issuer, day, sts[-1] if sts else None)
                sts.append(blob)
            self.statements[issuer] = sts
            self.days[issuer] = sorted(days[issuer])
            for i, blob in enumerate(sts):
                prev = sts[i - 1] if i else None
                rep, found = self._check(blob, prev, sts[:i] + sts[i + 1 :], views.get(issuer, {}))
                self.results.append(_result("honest", issuer, self.days[issuer][i], rep, found))

    def tamper(self, n: int, rng: random.Random, views: dict[int, dict]) -> None:
        """n tamperings after the fact, kinds in turn, each restated, checked, then undone.
        Each touches a passage whose presentation passed once: of a copied ride code that
        passed twice (a replay), the phone reported one presentation, so the issuer cannot
        miss the second (charged nothing, as fraud) when it is dropped."""
        uses: dict[tuple[int, int, int, int], int] = {}
        found = []
        for d, q, raw in self.store.records():
            rec = records.decode(raw)
            if raw[1] == records.KIND_PASSAGE and rec.issuer in self.statements:
                key = (rec.issuer, rec.account_id, rec.cred_no, rec.counter)
                uses[key] = uses.get(key, 0) + 1
                found.append((d, q, raw, key))
        passages = [(d, q, raw) for d, q, raw, key in found if uses[key] == 1]
        if not passages:
            return
        for i in range(n):
            kind = KINDS[i % len(KINDS)]
            dev, seq, raw = passages[rng.randrange(len(passages))]
            issuer = records.decode(raw).issuer
            day = clearing.service_day(records.decode(raw).time, self.tariff)
            k = self.days[issuer].index(day)
            sts = self.statements[issuer]
            prev = sts[k - 1] if k else None
            undo = _TAMPER[kind](self.store, dev, seq, raw, self.signer)
            try:
                blob = self._build(issuer, day, prev)
            finally:
                undo()
            rep, found = self._check(blob, prev, sts[:k] + sts[k + 1 :], views.get(issuer, {}))
            r = _result(kind, issuer, day, rep, found)
            r.update(device_id=dev, seq=seq)
            self.results.append(r)


def _result(kind: str, issuer: int, day: int, rep: Any, found: list) -> dict[str, Any]:
    return {
        "kind": kind,
        "issuer": issuer,
        "day": day,
        "verified": rep.ok,
        "reasons": rep.reasons(),
        "findings": sorted({f["finding"] for f in found}),
        "caught": not rep.ok or bool(found),
        "by": "verify" if not rep.ok else ("reconcile" if found else ""),
    }


def _alter(store: Any, dev: int, seq: int, raw: bytes, _key: Any):
    rec = records.decode(raw)
    rec.station = 12 if rec.station != 12 else 1
    store.tamper_record(dev, seq, rec.to_bytes())
    return lambda: store.tamper_record(dev, seq, raw)


def _drop(store: Any, dev: int, seq: int, raw: bytes, _key: Any):
    store.tamper_record(dev, seq, None)
    return lambda: store.tamper_record(dev, seq, raw, insert=True)


def _invent(store: Any, dev: int, seq: int, raw: bytes, _key: Any):
    rec = records.decode(raw)
    high = store.device(dev).high_seq
    rec.seq = high + 1
    rec.counter += 1_000_000  # a presentation the phone never made
    if rec.code:  # its ride code with that counter: the rider's signature no longer fits
        code = bytearray(rec.code)
        code[128:132] = rec.counter.to_bytes(4, "big")
        rec.code = bytes(code)
    rec.time += 60
    held = store.device(dev).last_hash
    rec.prev_hash = held if held is not None else records.ZERO_HASH
    forged = rec.to_bytes()
    store.store_batch(dev, [forged], records.decode(raw).time)
    return lambda: store.tamper_record(dev, rec.seq, None)


def _forge(store: Any, dev: int, seq: int, raw: bytes, key: Any):
    rec = records.decode(raw)
    rec.seq = store.device(dev).high_seq + 1
    rec.time += 60
    held = store.device(dev).last_hash
    rec.prev_hash = held if held is not None else records.ZERO_HASH
    forged = [rec.to_bytes()]
    store.store_batch(dev, forged, rec.time, key.sign(sync.batch_signing_input(dev, forged)))
    return lambda: store.tamper_record(dev, rec.seq, None)


_TAMPER = {"alter": _alter, "drop": _drop, "invent": _invent, "forge": _forge}
