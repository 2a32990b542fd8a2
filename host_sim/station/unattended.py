"""Unattended sites simulated: a car park whose lanes read plates, and a store whose door is
charged by its shelf system's baskets.

    faregate sim run host_sim/scenarios/carpark.toml --seed 1     (a scenario with [carpark])
    faregate sim run host_sim/scenarios/store.toml --seed 1       (a scenario with [shop])

Car park: an entry and an exit lane, each the real gate (firmware/gate/gate.Gate in parking
mode with gate.plates, its journal on disk, its PlateStore) with an ANPR camera
(host_sim/hardware/anpr_camera.SimAnprCamera) pushing every read over a real loopback socket to
the lane's drivers/linux/anpr_http.AnprListener. Cars arrive through the day; most are bound
to their driver's account (the back office binds them, hashed when [carpark] hashed = true, and
publishes the plate list: a snapshot, later a delta for cars bound during the day, which the
lanes install at their next sync), some are not. The camera reads each car right, or misreads
one character, or is unsure (low confidence), or sees no plate, at the scenario's rates; every
car without a usable read scans its ride code at the barrier (the QR fallback).

Store: the door (a real store-mode Gate with gate.group_max) and its basket source, the
simulated shelf system (host_sim/hardware/basket_source.SimBasketSource) over a real socket to
drivers/linux/basket_tcp.BasketLink, read by firmware/gate/baskets.Baskets. Shoppers enter on
a code (groups on one code), take and put back items, and leave by an exit scan or by the exit
button (the shelf system then sends their FINAL basket).

The gates' journals reach the back office (a real SQLite file) only through sync sessions, as
the station's and the bus route's do: each gate has its device key (registered with the back
office) and runs the real gate-side SyncClient (firmware/sync/client.py) against the back
office's real HostSession over the simulated uplink of host_sim/station/simlink.py (delay, loss,
duplication, corruption; the site's uplink down in the `[backoffice] link_down` windows), so
every record arrives in a BATCH the device key signed, is stored with that signature and is
trimmed from the gate's journal only by the back office's ACK. A gate syncs every
`sync_interval_s` (from the start of its last session), `retry_s` after a failed one; the car
park's lanes fetch the plate-list deltas in the same sessions. After the day the noise stops
and every gate syncs every 30 s until its journal is empty (or RECOVERY_LIMIT_S of site time
passed: a link still down then leaves records on the gate, and the report says so). The back
office clears the day, and the station simulator's invariants are checked
(host_sim/station/invariants.py): every committed record reaches the back office once, and the
money invariant prices every driver's and shopper's true visits (parking tariff; baskets and
group charges) against what clearing charged. Two checks of their own: no car passes by plate
under an account not its own, and every unmatched read is in the review queue (fell back, or
open for an operator).
"""

import os
import random
import time
import tomllib
from types import SimpleNamespace
from typing import Any

from drivers.linux import anpr_http
from drivers.linux.basket_tcp import BasketLink
from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.gate.baskets import Baskets
from firmware.gate.gate import Gate
from firmware.gate.plates import PlateLane
from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient
from firmware.verify.platestore import PlateStore
from firmware.verify.validator import Validator
from host_sim.backoffice import clearing, plates
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostSession
from host_sim.errors import SimError
from host_sim.hardware.anpr_camera import SimAnprCamera
from host_sim.hardware.basket_source import SimBasketSource
from host_sim.hardware.devices import ManualClock
from host_sim.station import busroute, demand, report, scenario
from host_sim.station.invariants import Monitor, _JournalProbe
from host_sim.station.scenario import ScenarioError, load_tariff, parse_time
from host_sim.station.simlink import Network, Scheduler, Session
from host_sim.wallet import Issuer, Operator, Rider
from protocol import messages as m
from protocol import reasons, records, trustlist

# the keys of the bus route's [backoffice] table that describe the link (not its sync interval)
LINK_KEYS = [k for k in busroute.SECTIONS["backoffice"] if k != "sync_interval_s"]
TOP = {"name": "", "description": "", "start": "2026-01-12T07:00:00Z", "duration_s": 36000}
TOP["tariff"] = ""
SECTIONS: dict[str, dict[str, Any]] = {
    "carpark": {
        "cars": 120,
        "bound_share": 0.8,
        "bound_later_share": 0.1,
        "misread_rate": 0.06,
        "low_confidence_rate": 0.05,
        "no_read_rate": 0.02,
        "min_confidence": 90,
        "stay_s": [300, 21600],
        "hashed": True,
        "sync_interval_s": 600,
    },
    "shop": {
        "shoppers": 80,
        "group_share": 0.15,
        "group_max": 3,
        "button_share": 0.3,
        "items": [0, 6],
        "price": [99, 1500],
        "put_back_share": 0.1,
        "visit_s": [120, 1800],
        "sync_interval_s": 600,
    },
    # the site's uplink to the back office: the bus route's link keys, and link_down
    "backoffice": {**{k: busroute.SECTIONS["backoffice"][k] for k in LINK_KEYS}, "link_down": []},
}
SITES = ("carpark", "shop")
RECOVERY_LIMIT_S = 3600  # site time after the day for every gate to empty its journal
RECOVERY_SYNC_S = 30  # a gate's sync interval then
MEANING = {
    "name": "name used in the report and the default output directory (default: the file's)",
    "description": "one line for the report",
    "start": "simulated time the day starts (RFC 3339 or unix seconds)",
    "duration_s": "the day: arrivals in its first half (car park) or until an hour before its end",
    "tariff": 'the tariff file (relative to the scenario; "": the default tariff)',
    "carpark.cars": "cars that come during the day (one entry each, an exit if they leave in time)",
    "carpark.bound_share": "cars whose plate is bound to their driver's account before the day",
    "carpark.bound_later_share": "cars bound half an hour before they come (a plate-list delta)",
    "carpark.misread_rate": "reads with one character wrong at a high confidence",
    "carpark.low_confidence_rate": "right reads below min_confidence",
    "carpark.no_read_rate": "reads with no plate at all",
    "carpark.min_confidence": "the lanes' gate.plate_min_confidence",
    "carpark.stay_s": "[low, high] seconds a car stays",
    "carpark.hashed": "plates bound and published hashed (the hmac scheme) or plain",
    "carpark.sync_interval_s": "time between syncs: journals up, the plate list down",
    "shop.shoppers": "shoppers who come during the day, each on a code of their own",
    "shop.group_share": "shoppers who bring others on their code (2..group_max people)",
    "shop.group_max": "the door's gate.group_max",
    "shop.button_share": "shoppers who leave by the exit button (the shelf system sends FINAL)",
    "shop.items": "[low, high] items a shopper takes",
    "shop.price": "[low, high] price of an item, minor units",
    "shop.put_back_share": "items put back after being taken",
    "shop.visit_s": "[low, high] seconds a visit lasts",
    "shop.sync_interval_s": "time between the door's syncs",
    **{"backoffice." + k: busroute.MEANING["backoffice." + k] for k in LINK_KEYS},
    "backoffice.link_down": "[[from_s, to_s]] seconds from the start when the site's uplink is "
    "down (every gate cut off; one that never ends leaves records on the gates)",
}
ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def doc_table() -> str:
    """The markdown table of this runner's keys, as docs/scenarios.md shows it."""
    return scenario.runner_doc_table(TOP, SECTIONS, MEANING)


FIRST_DEVICE_ID = 4001


def site_kind(path: str) -> str | None:
    """ "carpark" or "shop" for a scenario file of this runner, else None."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    for kind in SITES:
        if isinstance(data.get(kind), dict):
            return kind
    return None


def load(path: str) -> dict[str, Any]:
    """The scenario with every default filled in; ScenarioError names a bad key."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    kind = site_kind(path)
    if kind is None:
        raise ScenarioError("%s: needs a [carpark] or a [shop] table" % path)
    sections = {key: SECTIONS[key] for key in (kind, "backoffice")}
    sc = {"kind": kind, **scenario.runner_tables(path, data, TOP, sections)}
    for span in sc["backoffice"]["link_down"]:
        if not (isinstance(span, list) and len(span) == 2 and 0 <= span[0] <= span[1]):
            raise ScenarioError(
                "%s: [backoffice] link_down takes [[from_s, to_s], ...], not %r" % (path, span)
            )
    try:
        sc["start"] = parse_time(sc["start"])
    except ValueError as e:
        raise ScenarioError("%s: %s" % (path, e)) from None
    here = os.path.dirname(os.path.abspath(path))
    sc["tariff"] = load_tariff(sc["tariff"] or None, here)
    sc["name"] = sc["name"] or os.path.basename(path)[:-5]
    return sc


class _Barrier:
    def __init__(self) -> None:
        self.opens = 0

    def open(self) -> None:
        self.opens += 1

    def close(self) -> None:
        pass


class _Display:
    last = ""

    def show(self, text: str) -> None:
        self.last = text


class _Site:
    ISSUER_KEY_ID = 1  # the key id the site's riders' codes are issued under

    def __init__(self, sc: dict[str, Any], seed: int, workdir: str) -> None:
        self.sc = sc
        self.seed = seed
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.start = int(sc["start"])
        self.clock = ManualClock(self.start)
        self.rng = random.Random("%s-%d" % (sc["kind"], seed))
        root = demand.keys(seed, "operator-root")
        self.operator = Operator(root, trustlist.root_key_id(root.public_key))
        self.issuer = Issuer(self.ISSUER_KEY_ID, demand.keys(seed, "issuer-1"))
        self.verifier = OpenSSLVerifier()
        self.store = Store(os.path.join(workdir, "backoffice.sqlite"))
        self.monitor = Monitor({}, {}, 60, 10, self.elapsed_s)
        self.truth = busroute.BusTruth()  # visits as the money invariant prices them
        self.gates: list[tuple[Gate, Journal]] = []
        self.decisions: dict[str, int] = {}
        self.riders = 0
        # the uplink: the back office's sync key, the simulated network, each gate's sessions
        self.host_signer = demand.keys(seed, "operator-sync")
        self.link_cfg = sc["backoffice"]
        self.sync_every_s = int(sc[sc["kind"]]["sync_interval_s"])
        self.t0_ms = self.clock.ticks_ms()
        self.sched = Scheduler(self.clock)
        self.net = Network(self.link_cfg, demand.stream(seed, sc["kind"] + "-network"))
        self.nonces = demand.stream(seed, sc["kind"] + "-nonces")
        self.uplinks: list[_Uplink] = []
        self.recovering = False
        for a, b in self.link_cfg["link_down"]:
            self.sched.at(self.t0_ms + int(a) * 1000, self._link_down)
            self.sched.at(self.t0_ms + int(b) * 1000, self._link_up)

    def elapsed_s(self) -> int:
        return self.clock.now() - self.start

    def rider(self, account: int) -> Rider:
        r = Rider(demand.keys(self.seed, "%s-rider-%d" % (self.sc["kind"], account)))
        self.issuer.issue(r, account, self.start - 86400, self.start + 30 * 86400)
        self.riders += 1
        return r

    def gate(self, n: int, mode: int, direction: int, config: dict[str, Any]) -> Gate:
        device_id = FIRST_DEVICE_ID + n
        d = os.path.join(self.workdir, "gate-%d" % device_id)
        os.makedirs(d, exist_ok=True)
        journal = Journal(d, device_id=device_id)
        probe = _JournalProbe(self.monitor, n)
        journal.listeners.append(probe)
        name = "%s-%d" % (self.sc["kind"], n)
        self.monitor.device_ids[n] = device_id
        self.monitor.names[n] = name
        key = demand.keys(self.seed, "%s-device-%d" % (self.sc["kind"], device_id))
        self.store.add_device(device_id, key.public_key, self.start, name)
        self.uplinks.append(_Uplink(n, name, journal, key))
        validator = Validator(self.verifier, {self.issuer.key_id: self.issuer.trust_entry()})
        g = Gate(
            validator,
            journal,
            _Barrier(),
            _Display(),
            self.clock,
            station=1,
            mode=mode,
            direction=direction,
            config=config,
            ticks=self.clock.ticks_ms,
        )
        self.gates.append((g, journal))
        return g

    def scan(self, g: Gate, rider: Rider, direction: int | None = None) -> Any:
        d = g.on_scan(rider.present(self.clock.now()), direction)
        self.decisions[d.reason] = self.decisions.get(d.reason, 0) + 1
        return d

    # -- time and the uplink -----------------------------------------------------------------
    def until(self, t_ms: int) -> None:
        """Site time moves to t_ms: the sync sessions' messages and timers due by then run."""
        self.sched.run_due(t_ms)
        self.clock.t_ms = max(self.clock.t_ms, t_ms)

    def start_syncs(self, every_s: int) -> None:
        """Each gate's first session one interval after the start (a second apart)."""
        for up in self.uplinks:
            self._schedule(up, every_s * 1000 + 1000 * up.index)

    def _link_down(self) -> None:
        self.net.partition([up.index for up in self.uplinks])

    def _link_up(self) -> None:
        self.net.heal([up.index for up in self.uplinks])

    def _schedule(self, up: "_Uplink", after_ms: int) -> None:
        up.gen += 1  # an earlier timer of this gate, still queued, is then ignored
        gen = up.gen
        self.sched.after(after_ms, lambda: self._sync(up, gen))

    def _sync(self, up: "_Uplink", gen: int) -> None:
        """One session: the gate's real SyncClient against the back office's HostSession."""
        if gen != up.gen or up.session is not None:
            return
        cfg = self.link_cfg
        client = SyncClient(
            up.journal,
            up.key,
            self.verifier,
            self.host_signer.public_key,
            self.clock,
            sinks=up.sinks,
            batch_size=int(cfg["batch_size"]),
            random_bytes=self.nonces.randbytes,
        )
        host = HostSession(
            self.store,
            self.host_signer,
            self.verifier,
            clock=self.clock,
            peer=up.name,
            random_bytes=self.nonces.randbytes,
        )

        def ended(s: Session) -> None:
            up.session = None
            up.sessions["ok" if s.ok else "failed"] += 1
            up.acked += client.acked
            if s.ok:  # as the gate's Syncer: the interval from the session's start
                wait = self.sync_every_s * 1000 - (s.ended_ms - s.started_ms)
            else:
                wait = int(cfg["retry_s"]) * 1000
            self._schedule(up, RECOVERY_SYNC_S * 1000 if self.recovering else max(0, wait))

        up.session = Session(
            self.sched, self.net, up.index, client, host, int(cfg["timeout_s"]) * 1000, ended
        )
        up.session.start()

    def recover(self) -> None:
        """After the day: no more noise on the uplink (its down windows stay), and every gate
        syncs every RECOVERY_SYNC_S until its journal is empty, for RECOVERY_LIMIT_S at most."""
        if self.recovering:
            return
        self.recovering = True
        self.net.noise = False
        for up in self.uplinks:
            if up.session is None:
                self._schedule(up, 1000 + 100 * up.index)
        limit = self.clock.ticks_ms() + RECOVERY_LIMIT_S * 1000
        while self.clock.ticks_ms() < limit:
            self.until(self.clock.ticks_ms() + 10000)
            if all(up.session is None and not up.journal.pending_count() for up in self.uplinks):
                break

    def finish(self, extra: dict[str, Any], own: list[tuple[str, str, int, list[str]]]):
        self.recover()
        pending = {up.index: up.journal.pending_count() for up in self.uplinks}
        bo = self.monitor.check_backoffice(self.store, pending)
        tariff = self.sc["tariff"]
        as_of = self.clock.now()
        journeys = clearing.clear(self.store, tariff, as_of)
        held = [records.decode(raw) for _d, _s, raw in self.store.records()]
        money = self.monitor.check_money(journeys, held, self.truth, tariff, as_of, 0)
        revenue: dict[str, int] = {}
        rules: dict[str, int] = {}
        for j in journeys:
            revenue[j["mode"]] = revenue.get(j["mode"], 0) + int(j["charged"])
            rules[j["rule"]] = rules.get(j["rule"], 0) + 1
        events: dict[str, int] = {}
        for r in held:
            if r.kind == records.KIND_EVENT:
                name = reasons.by_number(r.reason)
                events[name] = events.get(name, 0) + 1
        for _g, journal in self.gates:
            journal.close()
        self.store.close()
        invariants = [i for i in self.monitor.results() if i["name"] in CHECKED]
        for name, text, violations, first in own:
            invariants.append(
                {
                    "name": name,
                    "description": text,
                    "ok": violations == 0,
                    "violations": violations,
                    "first": first[:3],
                }
            )
        rep = {
            "scenario": self.sc["name"],
            "kind": self.sc["kind"],
            "seed": self.seed,
            "ended_s": self.elapsed_s(),
            "riders": self.riders,
            "decisions": dict(sorted(self.decisions.items())),
            "events": dict(sorted(events.items())),
            "backoffice": bo,
            "records_held": len(held),
            "records_on_gates": dict((self.monitor.names[n], k) for n, k in pending.items()),
            "sync": {up.name: dict(up.sessions, acked=up.acked) for up in self.uplinks},
            "network": self.net.stats,
            "clearing": {
                "journeys": len(journeys),
                "revenue": dict(sorted(revenue.items())),
                "rules": dict(sorted(rules.items())),
            },
            "money": money,
            "invariants": invariants,
            "ok": all(i["ok"] for i in invariants),
        }
        rep.update(extra)
        return rep


class _Uplink:
    """One gate's side of the uplink: its journal, device key, sync sinks and sessions."""

    def __init__(self, index: int, name: str, journal: Journal, key: Any) -> None:
        self.index = index
        self.name = name
        self.journal = journal
        self.key = key  # the device key: signs AUTH and every BATCH
        self.sinks: dict[int, Any] = {}  # blob kind -> what the gate keeps of it
        self.session: Session | None = None
        self.gen = 0  # bumps when its sync timer is replaced
        self.sessions = {"ok": 0, "failed": 0}
        self.acked = 0  # records the back office acknowledged (trimmed from the journal)


# the station invariants this runner exercises (the others need a station's devices)
CHECKED = (
    "records_reach_backoffice_once",
    "honest_riders_pay_true_fares",
    "no_voided_passage_charged",
    "every_reject_has_a_reason",
)


class CarPark(_Site):
    # A plate is bound to an issuer's account (the plate list carries the issuer:
    # docs/parking.md); the drivers' codes are that issuer's too, a non-zero one so that a
    # plate passage charged to any other issuer (0, say) would show: a car in by plate and out
    # by its code (or the other way) is one account and one journey only when both are.
    ISSUER_KEY_ID = 7

    def __init__(self, sc: dict[str, Any], seed: int, workdir: str) -> None:
        super().__init__(sc, seed, workdir)
        c = sc["carpark"]
        self.c = c
        key = demand.keys(seed, "plate-hash").public_key[1:33] if c["hashed"] else b""
        self.pcfg = plates.PlateConfig("hmac", key, 1) if c["hashed"] else plates.PlateConfig()
        self.hash_key = key or None
        cfg = {"plates": True, "plate_min_confidence": int(c["min_confidence"])}
        self.lanes = []
        for n, direction in enumerate((records.DIR_ENTRY, records.DIR_EXIT)):
            g = self.gate(n, records.MODE_PARKING, direction, cfg)
            ps = PlateStore(
                os.path.join(self.workdir, "gate-%d" % (FIRST_DEVICE_ID + n), "plates.bin"),
                self.operator.roots(),
                self.verifier,
                self.hash_key,
            )
            self.uplinks[n].sinks[m.KIND_PLATE_DELTA] = SimpleNamespace(
                version=ps.synced, apply=ps.apply
            )  # the plate list's deltas come down in the lane's sessions
            listener = anpr_http.AnprListener("127.0.0.1", 0)
            lane = PlateLane(g, ps, listener)
            cam = SimAnprCamera("127.0.0.1", listener.port, pump=lambda _w, lane=lane: lane.poll())
            self.lanes.append((g, ps, listener, lane, cam))
        self.counts = dict.fromkeys(
            ("cars", "bound", "by_plate", "qr_fallback", "misread", "low", "no_read"), 0
        )
        self.counts["bound_later"] = 0
        self.wrong_account: list[str] = []
        self.cars: list[dict[str, Any]] = []

    def _plate(self) -> str:
        return "".join(self.rng.choice(ALPHABET) for _ in range(7))

    def _publish(self) -> None:
        plates.publish(self.store, self.pcfg, self.operator.lists_signers, self.clock.now())

    def _install(self) -> None:
        """The plate list as the lanes are provisioned with it before the day; later versions
        reach them only in their sync sessions."""
        latest = dict((k, v) for k, v, _n in self.store.offers()).get(m.KIND_PLATE_DELTA, 0)
        for _g, ps, _l, _lane, _c in self.lanes:
            for v in range(ps.version + 1, latest + 1):
                ps.install(self.store.publication(m.KIND_PLATE_DELTA, v))

    def _read(self, car: dict[str, Any]) -> tuple[str, int]:
        """What the camera reads of this car: (plate, confidence)."""
        c, r = self.c, self.rng.random()
        if r < c["no_read_rate"]:
            self.counts["no_read"] += 1
            return "", 0
        r -= c["no_read_rate"]
        if r < c["misread_rate"]:
            self.counts["misread"] += 1
            i = self.rng.randrange(len(car["plate"]))
            wrong = self.rng.choice([a for a in ALPHABET if a != car["plate"][i]])
            return car["plate"][:i] + wrong + car["plate"][i + 1 :], self.rng.randint(91, 99)
        r -= c["misread_rate"]
        if r < c["low_confidence_rate"]:
            self.counts["low"] += 1
            return car["plate"], self.rng.randint(30, int(c["min_confidence"]) - 1)
        return car["plate"], self.rng.randint(int(c["min_confidence"]), 100)

    def _pass(self, lane_i: int, car: dict[str, Any]) -> None:
        g, _ps, _l, _lane, cam = self.lanes[lane_i]
        g.on_event("vehicle_arrived")
        plate, conf = self._read(car)
        cam.push(plate, conf)
        for _ in range(3):
            self.lanes[lane_i][3].poll()
        if g.state == "authorized":
            self.counts["by_plate"] += 1
        else:
            self.counts["qr_fallback"] += 1
            d = self.scan(g, car["rider"])
            if not d.accept:
                g.on_event("vehicle_left")
                return
        self.decisions.setdefault("plate_or_code_passed", 0)
        self.decisions["plate_or_code_passed"] += 1
        g.on_event("vehicle_on_safety")
        g.on_event("vehicle_cleared")
        g.on_event("barrier_closed")
        return

    def run(self) -> dict[str, Any]:
        c = self.c
        dur = int(self.sc["duration_s"])
        t0 = self.start - 3600  # when the cars bound before the day were bound
        for i in range(int(c["cars"])):
            account = 200000 + i
            car: dict[str, Any] = {"account": account, "plate": self._plate()}
            car["rider"] = self.rider(account)
            car["arrive"] = self.start + self.rng.randint(0, dur // 2)
            lo, hi = c["stay_s"]
            car["leave"] = car["arrive"] + self.rng.randint(int(lo), int(hi))
            r = self.rng.random()
            if r < c["bound_share"]:
                plates.bind(self.store, self.pcfg, car["plate"], self.issuer.key_id, account, 1, t0)
                self.counts["bound"] += 1
            elif r < c["bound_share"] + c["bound_later_share"]:
                car["bind_at"] = car["arrive"] - 1800
                self.counts["bound_later"] += 1
            self.cars.append(car)
        self.counts["cars"] = len(self.cars)
        self._publish()
        self._install()
        events: list[tuple[int, int, str, dict[str, Any]]] = []
        for n, car in enumerate(self.cars):
            events.append((car["arrive"], n, "in", car))
            if car["leave"] < self.start + dur:
                events.append((car["leave"], n, "out", car))
            if "bind_at" in car:
                events.append((max(self.start, car["bind_at"]), n, "bind", car))
        sync_every = self.sync_every_s
        for t in range(self.start + sync_every, self.start + dur, sync_every):
            events.append((t, -1, "publish", {}))  # the back office's: what changed
        self.start_syncs(sync_every)
        for t, _n, what, car in sorted(events, key=lambda e: (e[0], e[1])):
            self.until(t * 1000)
            if what == "publish":
                self._publish()
            elif what == "bind":
                plates.bind(
                    self.store, self.pcfg, car["plate"], self.issuer.key_id, car["account"], 1, t
                )
            elif what == "in":
                self._pass(0, car)
                visit: dict[str, Any] = {"mode": "parking", "entry_tapped": True}
                visit["exit_tapped"] = False
                visit.update(entry_t=t, exit_t=None, **{"from": 1, "to": 1})
                self.truth.taps.setdefault(car["account"], []).append(visit)
                car["visit"] = visit
            else:
                self._pass(1, car)
                car["visit"].update(exit_tapped=True, exit_t=t)
        self.until((self.start + dur) * 1000)
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        self.recover()
        plate_reason = reasons.number("plate_accepted")
        owner = {car["account"] for car in self.cars}
        wrong = []
        for _d, _s, raw in self.store.records():
            r = records.decode(raw)
            if r.kind == records.KIND_PASSAGE and r.reason == plate_reason:
                if r.account_id not in owner or r.issuer != self.issuer.key_id:
                    wrong.append(
                        "plate passage seq %d under issuer %d's account %d"
                        % (r.seq, r.issuer, r.account_id)
                    )
        misses = sum(self.lanes[i][3].counts[k] for i in (0, 1) for k in ("unknown", "low"))
        plates.collect(self.store)
        review = plates.queue(self.store, None)
        unreviewed = (
            [] if len(review) == misses else ["%d misses, %d queued" % (misses, len(review))]
        )
        open_items = sum(1 for i in review if i["status"] == "open")
        counts = dict(self.counts)
        counts["review_fell_back"] = len(review) - open_items
        counts["review_open"] = open_items
        for _g, _ps, listener, _lane, _c in self.lanes:
            listener.close()
        own = [
            (
                "plates_pass_only_their_own_account",
                "a car let through by plate is charged to its own account only",
                len(wrong),
                wrong,
            ),
            (
                "every_unmatched_read_is_reviewed",
                "every plate read a lane could not match is in the review queue",
                len(unreviewed),
                unreviewed,
            ),
        ]
        return self.finish({"counts": counts}, own)


class Shop(_Site):
    def __init__(self, sc: dict[str, Any], seed: int, workdir: str) -> None:
        super().__init__(sc, seed, workdir)
        s = sc["shop"]
        self.s = s
        self.door = self.gate(
            0, records.MODE_STORE, records.DIR_ENTRY, {"group_max": int(s["group_max"])}
        )
        self.source = SimBasketSource()
        self.link = BasketLink("127.0.0.1", self.source.port)
        self.baskets = Baskets(self.door, self.link)
        self.counts = dict.fromkeys(("shoppers", "groups", "by_button", "by_scan", "items"), 0)

    def _settle(self) -> None:
        """Poll both ends until the door has read every line the shelf system sent (over the
        real socket, whatever the machine's load: a fixed number of polls let a basket line
        arrive after the shopper's exit on a busy machine, and one seed gave two reports); the
        deadline only turns a broken link into an error instead of a hang."""
        deadline = time.monotonic() + 30
        read = ("baskets", "finals", "late", "basket_malformed")
        while True:
            self.source.poll(0.002)
            self.baskets.poll()
            got = sum(self.baskets.counts[k] for k in read)
            if got == len(self.source.sent) and not self.source._out:
                return
            if time.monotonic() > deadline:
                raise SimError(
                    "the door read %d of the shelf system's %d lines" % (got, len(self.source.sent))
                )

    def _door_cycle(self) -> None:
        self.door.on_event("door_opened")
        self.door.on_event("door_closed")

    def run(self) -> dict[str, Any]:
        s, dur = self.s, int(self.sc["duration_s"])
        events: list[tuple[int, int, str, dict[str, Any]]] = []
        for i in range(int(s["shoppers"])):
            account = 300000 + i
            who: dict[str, Any] = {"account": account, "rider": self.rider(account), "basket": 0}
            who["group"] = (
                self.rng.randint(2, int(s["group_max"]))
                if int(s["group_max"]) > 1 and self.rng.random() < s["group_share"]
                else 1
            )
            t = self.start + self.rng.randint(0, dur - 3600)
            events.append((t, i, "in", who))
            n_items = self.rng.randint(*[int(x) for x in s["items"]])
            visit = self.rng.randint(*[int(x) for x in s["visit_s"]])
            for k in range(n_items):
                events.append((t + 10 + (visit - 20) * (k + 1) // (n_items + 1), i, "take", who))
            who["button"] = self.rng.random() < s["button_share"]
            events.append((t + visit, i, "out", who))
        self.start_syncs(self.sync_every_s)
        for t, _i, what, who in sorted(events, key=lambda e: (e[0], e[1], e[2] != "in")):
            self.until(t * 1000)
            self._settle()
            if what == "in":
                self._enter(who, t)
            elif what == "take":
                self._take(who)
            else:
                self._leave(who, t)
            self._settle()
        self.until((self.start + dur) * 1000)
        self._settle()
        counts = dict(self.counts)
        counts.update(self.baskets.counts)
        self.link.close()
        self.source.close()
        return self.finish({"counts": counts}, [])

    def _enter(self, who: dict[str, Any], t: int) -> None:
        self.counts["shoppers"] += 1
        for _ in range(who["group"]):  # the holder, then each member, on one code
            self.scan(self.door, who["rider"], records.DIR_ENTRY)
            self._door_cycle()
        if who["group"] > 1:
            self.counts["groups"] += 1
        visit: dict[str, Any] = {"mode": "store", "entry_tapped": True, "entry_t": t}
        visit["exit_tapped"] = False
        visit.update(exit_t=None, basket=0, members=who["group"] - 1, **{"from": 1, "to": 1})
        self.truth.taps.setdefault(who["account"], []).append(visit)
        who["visit"] = visit

    def _key(self, who: dict[str, Any]) -> int:
        """The shopper as the shelf system knows them: the door's account key (its OPEN line)."""
        return records.account_key(self.issuer.key_id, who["account"])

    def _take(self, who: dict[str, Any]) -> None:
        lo, hi = (int(x) for x in self.s["price"])
        price = self.rng.randint(lo, hi)
        key = self._key(who)
        self.source.take(key, price)
        self.counts["items"] += 1
        who["basket"] += price
        if self.rng.random() < self.s["put_back_share"]:
            self.source.put_back(key, price)
            who["basket"] -= price
        who["visit"]["basket"] = who["basket"]

    def _leave(self, who: dict[str, Any], t: int) -> None:
        if who["button"]:
            self.counts["by_button"] += 1
            self.door.on_event("exit_request")
            self._settle()
            self.source.leave_by_button(self._key(who))
            self._door_cycle()
        else:
            self.counts["by_scan"] += 1
            self.scan(self.door, who["rider"], records.DIR_EXIT)
            self._door_cycle()
        self._settle()
        who["visit"].update(exit_tapped=True, exit_t=t)


def run(sc: dict[str, Any], seed: int, workdir: str) -> dict[str, Any]:
    site = CarPark(sc, seed, workdir) if sc["kind"] == "carpark" else Shop(sc, seed, workdir)
    return site.run()


def summary(rep: dict[str, Any]) -> str:
    c = rep["counts"]
    lines = [
        "%s %s, seed %d: %.1f simulated hours, %d riders"
        % (rep["kind"], rep["scenario"], rep["seed"], rep["ended_s"] / 3600.0, rep["riders"]),
        "  %s" % ", ".join("%s %d" % kv for kv in c.items()),
        "  gate events: %s"
        % (", ".join("%d %s" % (n, k) for k, n in rep["events"].items()) or "-"),
        "  sync: %s; uplink: %s"
        % (
            ", ".join(
                "%s %d ok %d failed" % (k, v["ok"], v["failed"]) for k, v in rep["sync"].items()
            ),
            ", ".join("%d %s" % (n, k) for k, n in rep["network"].items() if k != "bytes"),
        ),
        "  records left on the gates (never synced): %s"
        % (", ".join("%s %d" % kv for kv in rep["records_on_gates"].items())),
    ]
    return "\n".join(lines + report.runner_tail(rep))


def run_file(sc: dict[str, Any], seed: int, out: str | None, as_json: bool) -> int:
    import json
    import shutil

    out = out or os.path.join("run", "%s-%d" % (sc["name"], seed))
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, "report.json")):
            raise ScenarioError(
                "%s holds files that are not an earlier run: give another --out" % out
            )
        shutil.rmtree(out)
    rep = run(sc, seed, out)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(rep, f, indent=1, sort_keys=True)
    print(json.dumps(rep, sort_keys=True) if as_json else summary(rep))
    return 0 if rep["ok"] else 1
