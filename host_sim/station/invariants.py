"""The simulator's invariants, checked while the station runs and once it has recovered.

The monitor watches each gate from outside, the way a logic analyser would: every scan the
gate decides (its `on_scan`), every command its barrier gets, every record its journal
commits (a journal listener), and at the end what the back office's SQLite file holds. It
judges scans against the truth the simulator kept about every code it minted
(host_sim/station/demand.py CodeInfo), never against the gate's own verdict:

    never_open_without_valid_code   an accepted code was genuine (issuer-signed), its credential
                                    valid and its presentation fresh at the gate's time, not
                                    already accepted at this gate (within its replay window:
                                    a cloned key's second phone counts on its own); and the
                                    barrier opened only for an accepted code (or, parking,
                                    to never lower an arm onto a car; or a fire alarm; or a
                                    store's exit button)
    every_opening_has_a_record      when the barrier opens for a code, that code's passage
                                    record is already committed in the journal
    records_reach_backoffice_once   after recovery the back office holds every record any gate
                                    committed, byte for byte, each once, nothing else, and no
                                    gate holds a presentation twice; no reboot lost a record
                                    or gave its seq to another (a record whose commit a power
                                    cut interrupted counts as committed if the reboot finds it)
    denied_codes_refused            a deny-listed account is refused once the gate has
                                    installed the list version that denies it (on the way
                                    in: an exit lets a journey in progress out)
    every_reject_has_a_reason       every refusal names a known reason (protocol/reasons.py),
                                    in the decision and in the journaled record
    replays_caught_centrally        a presentation accepted at two gates is flagged as a replay
                                    by the back office (gates cannot see each other's caches)
    firmware_never_crashes          no exception escapes a gate's main loop or sync session
    honest_riders_pay_true_fares    after clearing, every commuter (trips.py) and every walk-in
                                    who travels (simulation.py) is charged, per
                                    mode, what the tariff makes of the journeys they really
                                    made, priced here from the simulator's truth, not by
                                    clearing's code; documented policies aside: a tap a gate
                                    never recorded costs the maximum fare (lost ticket), an
                                    entry still open at the end costs nothing yet, the daily cap;
                                    a rider with a passage journaled while its gate did not
                                    trust its clock is held for the operator's review (clearing's
                                    held_clock) and counted, not compared
    no_rider_pays_for_a_copier      no charged journey holds a copy (a passage record of a
                                    presentation an earlier record already used) without the
                                    original: the owner pays once, for their own journey
    no_voided_passage_charged       no charged journey rests only on passages the gate voided
                                    (passage_not_taken journaled for that presentation)
    tampering_caught_by_issuer      every issuer's honest statement of each day verifies and
                                    reconciles with what its riders' phones presented, and
                                    every record the operator altered, dropped, invented or
                                    forged after the fact (faults.tampering) is caught by the
                                    issuer's verify, or, for a statement consistent in itself
                                    (a drop), by its reconcile (host_sim/station/settlement.py)

Each violation keeps the virtual time, the gate and what happened; the report lists them.
"""

from typing import Any

from protocol import reasons, records, ridecode

INVARIANTS = [
    ("never_open_without_valid_code", "the barrier never opens without a valid code"),
    ("every_opening_has_a_record", "every opening has a journaled passage record"),
    (
        "records_reach_backoffice_once",
        "every committed record reaches the back office exactly once after recovery",
    ),
    ("denied_codes_refused", "deny-listed codes are refused once the list is applied"),
    ("every_reject_has_a_reason", "every reject has a named reason"),
    ("replays_caught_centrally", "a code accepted at two gates is flagged as a replay"),
    ("firmware_never_crashes", "no exception escapes a gate's main loop or sync"),
    (
        "honest_riders_pay_true_fares",
        "every honest rider is charged the tariff of the journeys they really made",
    ),
    ("no_rider_pays_for_a_copier", "no rider is charged for a journey made with a copy"),
    ("no_voided_passage_charged", "no voided passage is charged"),
    (
        "tampering_caught_by_issuer",
        "honest statements verify; every tampering with stored records is caught by the issuer",
    ),
]
KEEP = 20  # violations kept per invariant (all are counted)

# (state, event) rows whose "open" action is not for a code: allowed without one
SAFETY_OPENS = {
    ("closing", "vehicle_on_safety"),  # parking: never lower an arm onto a vehicle
}
SAFETY_EVENTS = ("fire_alarm", "exit_request")  # emergency opening, store free egress


class _Scan:
    __slots__ = ("info", "now", "deny_version", "recorded", "opened", "let_out")

    def __init__(self, info, now, deny_version, let_out=False):
        self.info = info
        self.now = now
        self.deny_version = deny_version
        self.let_out = let_out  # an exit, where the gate lets a denied credential out
        self.recorded = False  # its passage record was committed during this scan
        self.opened = False


class _JournalProbe:
    """A journal listener (firmware/storage/journal.py calls committed/acked)."""

    def __init__(self, monitor: "Monitor", gate: int) -> None:
        self.monitor = monitor
        self.gate = gate
        self.active = True

    def committed(self, rec: Any) -> None:
        if self.active:
            self.monitor.committed(self.gate, rec)

    def acked(self, up_to_seq: int) -> None:
        pass


class Monitor:
    def __init__(self, codes: dict, deny_version_of: dict, window_s: int, skew_s: int, now_s):
        self.codes = codes  # text -> CodeInfo (host_sim/station/demand.py)
        self.deny_version_of = deny_version_of  # account -> list version that denies it
        self.window_s = window_s
        self.skew_s = skew_s
        self.now_s = now_s  # () -> virtual seconds since the start, for violation times
        self.violations: dict[str, list[dict]] = {name: [] for name, _ in INVARIANTS}
        self.counts: dict[str, int] = {name: 0 for name, _ in INVARIANTS}
        self.committed_raw: dict[int, dict[int, bytes]] = {}  # device_id -> seq -> raw
        self.committed_at: dict[int, dict[int, int]] = {}  # device_id -> seq -> virtual s
        self.survived_cut = 0  # records a power cut interrupted that were there after it
        self.names: dict[int, str] = {}  # gate -> name
        self.device_ids: dict[int, int] = {}
        self._scan: dict[int, _Scan | None] = {}
        # gate -> cred_id -> (newest counter accepted, its presentation time, gate time then)
        self._accepted: dict[int, dict[int, tuple[int, int, int]]] = {}
        self._probes: dict[int, _JournalProbe] = {}
        self._devices: dict[int, Any] = {}
        self.checked = {"scans": 0, "openings": 0, "records": 0}
        self.events: dict[str, int] = {}  # journaled alarms and events by reason
        self.on_accept: Any = None  # optional callable(gate, text) after each accepted scan

    # -- reporting ---------------------------------------------------------------------------
    def violate(self, name: str, gate: int | None, detail: str) -> None:
        self._note(name, self.names.get(gate, "") if gate is not None else "", detail)

    def _note(self, name: str, where: str, detail: str) -> None:
        self.counts[name] += 1
        if len(self.violations[name]) < KEEP:
            self.violations[name].append({"t_s": self.now_s(), "gate": where, "detail": detail})

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    # -- wiring ------------------------------------------------------------------------------
    def watch_barrier(self, gate: int, name: str, barrier: Any) -> None:
        self.names[gate] = name
        barrier.observers.append(lambda command: self._barrier(gate, command))

    def attach(self, gate: int, dev: Any) -> None:
        """A gate's device was opened (at start, or after a power cut)."""
        self._devices[gate] = dev
        self.device_ids[gate] = dev.device_id
        held = self.committed_raw.setdefault(dev.device_id, {})
        last_seq = dev.snapshot()["last_seq"]
        if held and max(held) > last_seq:
            self.violate(
                "records_reach_backoffice_once",
                gate,
                "after a restart the journal ends at seq %d; seq %d was committed before"
                % (last_seq, max(held)),
            )
        # What the reopened journal holds is committed now, also a record whose commit the
        # power cut interrupted and that survived it (the barrier never opened for it); a
        # record that differs from the one committed under its seq is a reissued seq.
        for raw in dev.journal.unsynced():
            seq = records.seq_of(raw)
            mine = held.get(seq)
            if mine is None:
                self.survived_cut += 1
                self.committed(gate, records.decode(raw))
            elif mine != bytes(raw):
                self.violate(
                    "records_reach_backoffice_once",
                    gate,
                    "after a restart seq %d holds another record than the one committed" % seq,
                )
        probe = _JournalProbe(self, gate)
        self._probes[gate] = probe
        dev.journal.listeners.append(probe)
        self._scan[gate] = None
        g = dev.gate
        decide = g.on_scan
        clock = dev.clock

        def on_scan(text: str, direction: int | None = None) -> Any:
            leaving = (direction if direction is not None else g.direction) == records.DIR_EXIT
            scan = _Scan(self.codes.get(text), clock.now(), dev.snapshot()["deny_version"], leaving)
            self._scan[gate] = scan
            try:
                d = decide(text, direction)
            finally:
                self._scan[gate] = None
            self._decided(gate, scan, d)
            if d.accept and self.on_accept is not None:
                self.on_accept(gate, text)
            return d

        g.on_scan = on_scan

    def detach(self, gate: int) -> None:
        """A power cut: the device is gone; its journal's probe goes quiet."""
        probe = self._probes.pop(gate, None)
        if probe is not None:
            probe.active = False
        self._devices.pop(gate, None)
        self._scan[gate] = None

    # -- during the run ----------------------------------------------------------------------
    def invalid(self, gate: int, info: Any, now: int) -> str | None:
        """Why the code is not valid at this gate at gate time `now` (None: it is valid).
        The deny list is judged separately (denied_codes_refused)."""
        if info is None:
            return "a text the simulator never minted"
        if info.forged:
            return "a forged credential (not signed by the issuer)"
        if not info.valid_from <= now < info.valid_until:
            return "credential valid %d..%d, gate time %d" % (
                info.valid_from,
                info.valid_until,
                now,
            )
        if info.ptime > now + self.skew_s or info.ptime + self.window_s < now:
            return "presentation made at %d, gate time %d" % (info.ptime, now)
        seen = self._accepted.get(gate, {}).get(ridecode.cred_id(info.account, info.cred_no))
        # the gate's replay cache holds an entry for window_s + skew_s after its presentation
        # and acceptance (firmware/verify/replay.py prune); an honest phone's counter only
        # grows, so a lower one later is a copy, presentation_stale by then; but a key cloned
        # onto a second phone counts on its own: the back office's cloned_key rule sees that
        if seen is not None and info.counter <= seen[0]:
            if max(seen[1], seen[2]) + self.window_s + self.skew_s >= now:
                return "presentation counter %d already accepted here (newest %d)" % (
                    info.counter,
                    seen[0],
                )
        return None

    def _decided(self, gate: int, scan: _Scan, d: Any) -> None:
        self.checked["scans"] += 1
        info = scan.info
        if d.accept:
            why = self.invalid(gate, info, scan.now)
            if why:
                self.violate(
                    "never_open_without_valid_code", gate, "accepted %s: %s" % (_who(info), why)
                )
            if info is not None:
                v = self.deny_version_of.get(info.account)
                if v is not None and v <= scan.deny_version and not scan.let_out:
                    self.violate(
                        "denied_codes_refused",
                        gate,
                        "accepted account %d, denied since list version %d; the gate has %d"
                        % (info.account, v, scan.deny_version),
                    )
                acc = self._accepted.setdefault(gate, {})
                cid = ridecode.cred_id(info.account, info.cred_no)
                if info.counter > acc.get(cid, (-1,))[0]:
                    acc[cid] = (info.counter, info.ptime, scan.now)
        elif d.reason == reasons.ACCEPTED or d.reason not in reasons.REASONS:
            self.violate(
                "every_reject_has_a_reason",
                gate,
                "refused %s with reason %r" % (_who(info), d.reason),
            )

    def committed(self, gate: int, rec: Any) -> None:
        self.checked["records"] += 1
        raw = rec.to_bytes()
        self.committed_raw.setdefault(rec.device_id, {})[rec.seq] = raw
        self.committed_at.setdefault(rec.device_id, {})[rec.seq] = self.now_s()
        if rec.kind == records.KIND_REJECT:
            name = reasons.by_number(rec.reason)
            if name in ("unknown", reasons.ACCEPTED):
                self.violate(
                    "every_reject_has_a_reason",
                    gate,
                    "reject record seq %d has reason number %d" % (rec.seq, rec.reason),
                )
        elif rec.kind == records.KIND_EVENT:
            name = reasons.by_number(rec.reason)
            self.events[name] = self.events.get(name, 0) + 1
        elif rec.kind == records.KIND_PASSAGE:
            scan = self._scan.get(gate)
            if scan is not None and scan.info is not None:
                if (rec.account_id, rec.cred_no, rec.counter) == scan.info.presentation():
                    scan.recorded = True

    def _barrier(self, gate: int, command: str) -> None:
        if command != "open":
            return
        self.checked["openings"] += 1
        dev = self._devices.get(gate)
        if dev is None:
            self.violate("never_open_without_valid_code", gate, "opened while powered off")
            return
        last = dev.snapshot()["gate"]["last_step"]
        state, event = (last[0], last[1]) if last else ("", "")
        if (state, event) in SAFETY_OPENS or event in SAFETY_EVENTS:
            return
        scan = self._scan.get(gate)
        if event != "paid" or scan is None:
            self.violate(
                "never_open_without_valid_code",
                gate,
                "opened on %r in state %r with no code being accepted" % (event, state),
            )
            return
        if not scan.recorded:
            self.violate(
                "every_opening_has_a_record",
                gate,
                "opened for %s with no passage record committed" % _who(scan.info),
            )

    # -- at the end --------------------------------------------------------------------------
    def check_backoffice(self, store: Any, pending: dict[int, int]) -> dict[str, int]:
        """Compare what the back office holds with what the gates committed. `store` is a
        host_sim/backoffice/store.Store on its file; `pending` gate -> records still on the gate."""
        held: dict[int, dict[int, bytes]] = {}
        for dev, seq, raw in store.records():
            held.setdefault(dev, {})[seq] = raw
        name_of = {d: self.names.get(g, str(d)) for g, d in self.device_ids.items()}
        missing = extra = differ = 0
        for dev in sorted(set(self.committed_raw) | set(held)):
            mine = self.committed_raw.get(dev, {})
            theirs = held.get(dev, {})
            for seq in sorted(set(mine) - set(theirs)):
                missing += 1
                self._end_violation(name_of, dev, "seq %d never reached the back office" % seq)
            for seq in sorted(set(theirs) - set(mine)):
                extra += 1
                self._end_violation(
                    name_of, dev, "the back office holds seq %d, never committed" % seq
                )
            for seq in sorted(set(mine) & set(theirs)):
                if mine[seq] != theirs[seq]:
                    differ += 1
                    self._end_violation(
                        name_of, dev, "seq %d differs from what was committed" % seq
                    )
        for gate, n in sorted(pending.items()):
            if n:
                self.violate("records_reach_backoffice_once", gate, "%d records still pending" % n)
        # exactly once: no gate holds one presentation in two passage records
        seen: dict[tuple, list[tuple[int, int]]] = {}
        for dev, seqs in sorted(held.items()):
            for seq, raw in sorted(seqs.items()):
                r = records.decode(raw)
                if r.kind == records.KIND_PASSAGE and (r.cred_no or r.counter):
                    seen.setdefault((r.account_id, r.cred_no, r.counter), []).append((dev, seq))
        twice = 0
        for pres, where in sorted(seen.items()):
            devs = [d for d, _s in where]
            if len(devs) != len(set(devs)):
                twice += 1
                self._end_violation(
                    name_of, devs[0], "presentation %r recorded twice by one gate" % (pres,)
                )
        # replays: a presentation passed at several gates must be flagged (all but the first)
        flagged = {(int(a["device_id"]), int(a["seq"])) for a in store.anomalies("replay")}
        replays = unflagged = 0
        for pres, where in sorted(seen.items()):
            if len(where) < 2:
                continue
            replays += 1
            hits = sum(1 for w in where if w in flagged)
            if hits < len(where) - 1:
                unflagged += 1
                self.violate(
                    "replays_caught_centrally",
                    None,
                    "presentation %r passed at %s; %d of them flagged"
                    % (
                        pres,
                        ", ".join("%s seq %d" % (name_of.get(d, d), s) for d, s in where),
                        hits,
                    ),
                )
        return {
            "missing": missing,
            "unexpected": extra,
            "altered": differ,
            "presentations_twice_at_one_gate": twice,
            "replayed_presentations": replays,
            "replays_not_flagged": unflagged,
        }

    def check_money(
        self,
        journeys: list[dict[str, Any]],
        held: list[Any],
        truth: Any,
        tariff: dict[str, Any],
        as_of: int,
        gate_value: int,
    ) -> dict[str, int]:
        """The money invariants, on clearing's `journeys` (host_sim/backoffice/clearing.py),
        the decoded records the back office `held`, and the commuters' `truth`
        (host_sim/station/trips.Truth)."""
        not_taken = reasons.number("passage_not_taken")
        first: dict[tuple, tuple] = {}  # presentation -> (time, device, seq) of its first use
        uses: list[tuple[tuple, tuple]] = []
        voids: set[tuple] = set()  # (device, presentation) the gate voided
        for r in held:
            pres = (r.account_id, r.cred_no, r.counter)
            if r.kind == records.KIND_EVENT and r.reason == not_taken:
                voids.add((r.device_id, pres))
            elif r.kind == records.KIND_PASSAGE and (r.cred_no or r.counter):
                key = (r.time, r.device_id, r.seq)
                uses.append((pres, key))
                if pres not in first or key < first[pres]:
                    first[pres] = key
        # a copy -> the record of its presentation's first use
        copy_of = {(k[1], k[2]): first[pres][1:] for pres, k in uses if first[pres] != k}
        copies = set(copy_of)
        copied_on: dict[int, int] = {}  # account -> copies of its presentations
        for pres, k in uses:
            if first[pres] != k:
                copied_on[pres[0]] = copied_on.get(pres[0], 0) + 1
        voided = {
            (r.device_id, r.seq)
            for r in held
            if r.kind == records.KIND_PASSAGE
            and (r.device_id, (r.account_id, r.cred_no, r.counter)) in voids
        }
        charged: dict[int, dict[str, int]] = {}
        for j in journeys:
            keys = {(int(d), int(q)) for d, q in j["records"]}
            if not j["charged"]:
                continue
            # clearing's account is the store's key (issuer << 40 | account); the simulator's
            # accounts are one namespace over its issuers (account a is issuer a % n's)
            acct = records.split_account_key(int(j["account_id"]))[1]
            per = charged.setdefault(acct, {})
            per[j["mode"]] = per.get(j["mode"], 0) + int(j["charged"])
            # a copy charged in a journey of its own (one that holds the original too is the
            # owner's journey, charged once)
            if any(copy_of[k] not in keys for k in keys & copies):
                self._note(
                    "no_rider_pays_for_a_copier",
                    "account %d" % acct,
                    "%s journey (%s) charged %d holds a copied presentation's record(s) %s"
                    % (j["mode"], j["status"], j["charged"], sorted(keys & copies)),
                )
            if keys and keys <= voided:
                self._note(
                    "no_voided_passage_charged",
                    "account %d" % acct,
                    "%s journey (%s) charged %d rests on voided passage(s) %s"
                    % (j["mode"], j["status"], j["charged"], sorted(keys)),
                )
        untrusted = {
            r.account_id
            for r in held
            if r.kind == records.KIND_PASSAGE and r.flags & records.FLAG_CLOCK_UNTRUSTED
        }
        wrong = wrong_clean = on_hold = 0
        for acct in sorted(truth.taps):
            if acct in untrusted:
                on_hold += 1  # held_clock: the operator settles it (`backoffice adjust`)
                continue
            want = expected_charges(truth.journeys(acct), tariff, as_of, gate_value)
            got = charged.get(acct, {})
            if any(got.get(k, 0) != want.get(k, 0) for k in set(want) | set(got)):
                wrong += 1
                wrong_clean += acct not in copied_on
                self._note(
                    "honest_riders_pay_true_fares",
                    "account %d" % acct,
                    "charged %s, the tariff of the journeys really made says %s (journeys: %s)%s"
                    % (
                        _amounts(got),
                        _amounts(want),
                        "; ".join(_journey_text(j) for j in truth.journeys(acct)),
                        "; %d copied passage(s) of this account's codes" % copied_on[acct]
                        if acct in copied_on
                        else "",
                    ),
                )
        return {
            "riders_checked": len(truth.taps),
            "riders_charged_wrong": wrong,
            "riders_charged_wrong_not_copied": wrong_clean,
            "riders_held_clock": on_hold,
            "copied_passages": len(copies),
            "voided_passages": len(voided),
        }

    def _end_violation(self, name_of: dict, dev: int, detail: str) -> None:
        self._note("records_reach_backoffice_once", name_of.get(dev, str(dev)), detail)

    def check_settlement(self, results: list[dict[str, Any]]) -> None:
        """settlement.Settlement's results: an honest statement refused, or a tampering not
        caught, is a violation."""
        for r in results:
            where = "issuer %d day %d" % (r["issuer"], r["day"])
            if r["kind"] == "honest" and r["caught"]:
                self._note(
                    "tampering_caught_by_issuer",
                    where,
                    "an honest statement refused: %s" % ", ".join(r["reasons"] + r["findings"]),
                )
            elif r["kind"] != "honest" and not r["caught"]:
                self._note(
                    "tampering_caught_by_issuer",
                    where,
                    "%s of record %d/%d not caught" % (r["kind"], r["device_id"], r["seq"]),
                )

    def results(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "description": text,
                "ok": self.counts[name] == 0,
                "violations": self.counts[name],
                "first": self.violations[name],
            }
            for name, text in INVARIANTS
        ]


def _who(info: Any) -> str:
    if info is None:
        return "an unknown text"
    return "%s code of account %d (counter %d)" % (info.kind, info.account, info.counter)


# -- the tariff, applied to what riders really did (independent of clearing's code) ---------
def _zone_fare(metro: dict[str, Any], a: int, b: int) -> int:
    zones = metro["stations"]
    if str(a) not in zones or str(b) not in zones:
        return int(metro["max_fare"])
    fares = metro["fares"]
    return int(fares[min(abs(int(zones[str(a)]) - int(zones[str(b)])), len(fares) - 1)])


def _parking_fee(seconds: int, p: dict[str, Any]) -> int:
    """Free within grace; per started hour; at most daily_max per started day."""
    if seconds <= p["grace_s"]:
        return 0
    fee = 0
    while seconds > 0:
        chunk = min(seconds, 86400)
        fee += min(int(p["daily_max"]), ((chunk + 3599) // 3600) * int(p["per_hour"]))
        seconds -= chunk
    return fee


def _price(
    j: dict[str, Any], tariff: dict[str, Any], as_of: int, value: int, last: bool = True
) -> tuple[int, bool]:
    """(amount, penalty?) of one true journey. A tap the gate never recorded: the documented
    missing-tap charge; the `last` journey of its mode with a recorded tap, an entry with no
    recorded exit (under way, or the exit went untapped), within the time allowed: nothing yet
    (the back office cannot tell it from a journey under way; a later tap would close it)."""
    mode, a, b = j["mode"], j["entry_tapped"], j["exit_tapped"]
    if not a and not b:
        return 0, False  # the back office never heard of it
    waiting = a and not b and last
    if mode == "metro":
        m = tariff["metro"]
        if a and b:
            return _zone_fare(m, j["from"], j["to"]), False
        if waiting and as_of - j["entry_t"] <= m["max_journey_s"]:
            return 0, False
        return int(m["max_fare"]), True
    if mode == "parking":
        p = tariff["parking"]
        if a and b:
            return _parking_fee(j["exit_t"] - j["entry_t"], p), False
        if waiting and as_of - j["entry_t"] <= p["max_stay_s"]:
            return 0, False
        return int(p["lost_ticket"]), True
    if mode == "bus":
        return _bus_fare(j, tariff["bus"], as_of, waiting)
    s = tariff["store"]  # the basket: what the store gates journal per passage
    if a and b and j.get("basket") is not None:  # a basket source's total, the group's members
        return int(j["basket"]) + int(j.get("members", 0)) * int(s["group_member_charge"]), False
    if a and b:
        return 2 * value, False
    if waiting and as_of - j["entry_t"] <= s["max_session_s"]:
        return 0, False
    return value + int(s["open_session_charge"]), True


def _bus_fare(j: dict[str, Any], b: dict[str, Any], as_of: int, waiting: bool) -> tuple[int, bool]:
    """A true bus journey priced by the [bus] tariff: flat per boarding, or by the stops
    between boarding and alighting on a route holding both (the flat fare when a stop was in
    a tunnel: the validator had no fix and recorded the last stop reached)."""
    on, off = j["entry_tapped"], j["exit_tapped"]
    if b["fare"] == "flat":
        return (int(b["flat_fare"]) if on else 0), False
    if on and off:
        if j.get("stale"):
            return int(b["flat_fare"]), False
        apart = [
            abs(stops.index(j["from"]) - stops.index(j["to"]))
            for stops in b["routes"].values()
            if j["from"] in stops and j["to"] in stops
        ]
        if not apart:
            return int(b["flat_fare"]), False
        bands = list(b["stop_bands"])
        band = next((i for i, limit in enumerate(bands) if min(apart) <= limit), len(bands))
        return int(b["band_fares"][band]), False
    if waiting and as_of - j["entry_t"] <= b["max_journey_s"]:
        return 0, False
    return int(b["max_fare"]), True


def _transfers(priced: list[list[Any]], b: dict[str, Any]) -> None:
    """The [bus] transfer discounts over [journey, amount, penalty, waiting] in time order:
    within transfer_window_s of the bus boarding that began a chain, up to max_transfers
    later bus or metro journeys pay transfer_bus / transfer_metro less (never below 0); a
    penalty neither gets a discount nor begins a chain."""
    off = {"bus": int(b["transfer_bus"]), "metro": int(b["transfer_metro"])}
    chain, used = None, 0
    for item in priced:
        j, amount, penalty, waiting = item
        if j["mode"] not in off or penalty or not (j["entry_tapped"] or j["exit_tapped"]):
            continue
        t = j["entry_t"] if j["entry_tapped"] else j["exit_t"]
        if chain is not None and t - chain <= int(b["transfer_window_s"]):
            if used < int(b["max_transfers"]):
                d = min(off[j["mode"]], amount)
                if d > 0 or waiting:
                    used += 1
                    item[1] = amount - d
                    continue
        if j["mode"] == "bus" and j["entry_tapped"]:
            chain, used = t, 0


def expected_charges(
    journeys: list[dict[str, Any]], tariff: dict[str, Any], as_of: int, value: int = 0
) -> dict[str, int]:
    """Per mode, what the tariff charges for these true journeys (trips.Truth.journeys), the
    metro's daily and weekly caps applied per service day and week in time order. Maximum fares
    (a missing tap) count toward the caps only when the tariff's
    `metro.max_fare_counts_to_cap` says so (default: they are charged in full, outside)."""
    out: dict[str, int] = {}
    m = tariff["metro"]
    in_cap = bool(m.get("max_fare_counts_to_cap", False))
    daily, weekly = int(m["daily_cap"]), int(m.get("weekly_cap", 0))
    spent_day: dict[int, int] = {}
    spent_week: dict[int, int] = {}
    ordered = sorted(journeys, key=lambda j: j["entry_t"])
    last_tapped: dict[str, int] = {}  # mode -> index of its last journey with a recorded tap
    for i, j in enumerate(ordered):
        if j["entry_tapped"] or j["exit_tapped"]:
            last_tapped[j["mode"]] = i
    priced: list[list[Any]] = []
    for i, j in enumerate(ordered):
        last = last_tapped.get(j["mode"]) == i
        amount, penalty = _price(j, tariff, as_of, value, last)
        waiting = last and j["entry_tapped"] and not j["exit_tapped"] and not penalty
        priced.append([j, amount, penalty, waiting])
    if "bus" in tariff:
        _transfers(priced, tariff["bus"])
    for j, amount, penalty, _waiting in priced:
        if j["mode"] == "metro" and (in_cap or not penalty):
            t = j["entry_t"] if j["entry_tapped"] or j["exit_t"] is None else j["exit_t"]
            day = (t + tariff["tz_offset_s"] - tariff["day_start_s"]) // 86400
            # 1970-01-01 was a Thursday (3, counting Monday as 0)
            week = (day + 3 - int(tariff.get("week_start", 0))) // 7
            room = daily - spent_day.get(day, 0)
            if weekly:
                room = min(room, weekly - spent_week.get(week, 0))
            amount = max(0, min(amount, room))
            spent_day[day] = spent_day.get(day, 0) + amount
            spent_week[week] = spent_week.get(week, 0) + amount
        if amount:
            out[j["mode"]] = out.get(j["mode"], 0) + amount
    return out


def _amounts(per_mode: dict[str, int]) -> str:
    return ", ".join("%s %d" % kv for kv in sorted(per_mode.items())) or "nothing"


def _journey_text(j: dict[str, Any]) -> str:
    def side(station: Any, tapped: bool) -> str:
        return "%s%s" % (station, "" if tapped else " (no tap)")

    return "%s %s -> %s" % (
        j["mode"],
        side(j["from"], j["entry_tapped"]),
        side(j["to"], j["exit_tapped"]) if j["to"] is not None else "(under way)",
    )
