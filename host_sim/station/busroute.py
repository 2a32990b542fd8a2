"""A bus route simulated: vehicles with validators driving it, riders boarding and alighting,
GNSS sentences, coverage windows and the depot, the back office clearing the day.

    python -m host_sim.station.busroute host_sim/scenarios/bus.toml --seed 1
    faregate sim run host_sim/scenarios/bus.toml --seed 1      (a scenario with a [route])

Each vehicle carries one bus validator: the real firmware (firmware/compose/device.Device in
MODE_BUS, provisioned by gatedir like a station gate) with two readers, the front door's
(tap-on) and the rear doors' (tap-off), and a GNSS receiver fed the NMEA RMC sentences a
receiver sends once a second, parsed by the portable reader (drivers/portable/gnss.py). The
vehicles shuttle between the route's termini; at each terminus they lay over at the depot.
Along the route, stretches without mobile coverage cut the vehicle off the back office (a
partition of the simulated network: a session in flight then dies), and tunnels stop the
GNSS fix (the receiver reports status V; the validator flags its records). A vehicle syncs
every `sync_interval_s` whenever it has coverage, and at the depot. Riders wait at stops,
board the next vehicle that comes (tap-on), ride some stops and alight (tap-off, unless they
forget); some change at their stop to the next vehicle back within the transfer window.

At the end every vehicle returns to the depot and syncs until its journal is empty; the back
office clears the day with the scenario's tariff, and the station simulator's invariants are
checked (host_sim/station/invariants.py): every record committed reaches the back office
once, every accepted code was valid, every reject has a reason, and the money invariant
prices every rider's true journeys (from the simulator's side, not clearing's code) and
compares with what clearing charged them, transfers included.
"""

import argparse
import functools
import json
import os
import sys
import tomllib
from typing import Any

from drivers.linux import crypto_openssl
from drivers.linux.crypto_openssl import OpenSSLVerifier
from drivers.portable.gnss import GnssReceiver
from firmware.compose.device import Device
from firmware.gate import bus as busmode
from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostSession
from host_sim.hardware.devices import ManualClock, SimReader
from host_sim.station import demand, gatedir, report, scenario
from host_sim.station.invariants import Monitor
from host_sim.station.scenario import ScenarioError, load_tariff, parse_time
from host_sim.station.simlink import Network, Scheduler, Session
from host_sim.wallet import Issuer, Operator, Rider
from protocol import denylist, nmea, reasons, records, trustlist
from protocol import messages as m

FIRST_DEVICE_ID = 3001
TOP = {"name": "bus", "description": "", "start": "2026-01-12T06:30:00Z", "duration_s": 7200}
TOP["tariff"] = "tariffs/bus.toml"
SECTIONS: dict[str, dict[str, Any]] = {
    "route": {
        "number": 31,
        "stops": "",  # "id:lat:lon;..." in route order, as the validators' bus.stops setting
        "radius_m": 40,
        "validator_dwell_s": 5,
    },
    "vehicles": {"count": 3, "headway_s": 600, "speed_mps": 8.0, "dwell_s": 30, "layover_s": 300},
    "coverage": {"gaps": [], "tunnels": []},  # [[from, to]] as fractions of the route length
    "riders": {
        "per_stop_per_hour": 20.0,
        "ride_stops": [1, 6],
        "tap_off_share": 0.95,
        "transfer_share": 0.1,
    },
    "backoffice": {
        "sync_interval_s": 300,
        "retry_s": 60,
        "timeout_s": 20,
        "batch_size": 64,
        "latency_ms": [20, 300],
        "drop_rate": 0.01,
        "duplicate_rate": 0.005,
        "corrupt_rate": 0.005,
    },
}
RECOVERY_LIMIT_S = 3600
# what each key means, for docs/scenarios.md (tests/test_sim_bus.py keeps the page equal to it)
MEANING = {
    "name": "name used in the report and the default output directory",
    "description": "one line for the report",
    "start": "simulated time the service starts (RFC 3339 or unix seconds)",
    "duration_s": "service time: riders arrive, vehicles run; then the last runs to the depot",
    "tariff": "the tariff file (relative to the scenario) the back office clears with",
    "route.number": "the route number in the validators' config (bus.route)",
    "route.stops": '"id:lat:lon;..." in route order (the validators\' bus.stops)',
    "route.radius_m": "the stops' geofence radius (bus.radius_m)",
    "route.validator_dwell_s": "how long inside a geofence before a stop counts (bus.dwell_s)",
    "vehicles.count": "vehicles on the route, each with one validator (device ids from 3001)",
    "vehicles.headway_s": "time between the vehicles' departures from the first stop",
    "vehicles.speed_mps": "driving speed between stops, m/s",
    "vehicles.dwell_s": "time a vehicle stands at a stop (riders tap 10 s after it arrives)",
    "vehicles.layover_s": "extra time at each terminus (the depot: coverage)",
    "coverage.gaps": "[[from, to]] fractions of the route length without mobile coverage",
    "coverage.tunnels": "[[from, to]] fractions of the route length without a GNSS fix",
    "riders.per_stop_per_hour": "riders arriving at each stop per hour",
    "riders.ride_stops": "[low, high] stops a rider rides",
    "riders.tap_off_share": "riders who tap off when they alight (the rest forget)",
    "riders.transfer_share": "riders who go back on the next vehicle the other way",
    "backoffice.sync_interval_s": "time between a validator's sync sessions",
    "backoffice.retry_s": "wait after a failed session (no coverage, a session cut)",
    "backoffice.timeout_s": "a session hearing nothing this long is abandoned",
    "backoffice.batch_size": "records per batch frame",
    "backoffice.latency_ms": "[low, high] one-way delay on the mobile link",
    "backoffice.drop_rate": "share of transmissions lost",
    "backoffice.duplicate_rate": "share of transmissions duplicated",
    "backoffice.corrupt_rate": "share of transmissions with a bit flipped",
}


def doc_table() -> str:
    """The markdown table of a bus route scenario's keys, as docs/scenarios.md shows it."""
    return scenario.runner_doc_table(TOP, SECTIONS, MEANING)


def is_route_file(path: str) -> bool:
    """Whether a scenario file is a bus route (it has a [route] table), not a station."""
    try:
        with open(path, "rb") as f:
            return isinstance(tomllib.load(f).get("route"), dict)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def load(path: str) -> dict[str, Any]:
    """The scenario file with every default filled in; ScenarioError names a bad key."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    sc = scenario.runner_tables(path, data, TOP, SECTIONS)
    try:
        sc["start"] = parse_time(sc["start"])
        sc["stops"] = busmode.parse_stops(sc["route"]["stops"])
    except (ValueError, busmode.RouteError) as e:
        raise ScenarioError("%s: %s" % (path, e)) from None
    if len(sc["stops"]) < 2:
        raise ScenarioError("%s: [route] stops needs at least two stops" % path)
    sc["tariff"] = load_tariff(sc["tariff"], os.path.dirname(os.path.abspath(path)))
    sc["name"] = sc["name"] or os.path.basename(path)[:-5]
    return sc


def _within(x: float, spans: list) -> bool:
    return any(a <= x <= b for a, b in spans)


class Vehicle:
    """One vehicle: its validator's directory, device, readers, receiver and where it is."""

    def __init__(self, index: int, device_id: int, workdir: str) -> None:
        self.index = index
        self.device_id = device_id
        self.name = "bus-%d" % (index + 1)
        self.dir = os.path.join(workdir, "vehicles", self.name)
        self.front, self.rear = SimReader(), SimReader()
        self.uart = _Port()
        self.gnss = GnssReceiver(self.uart)
        self.dev: Any = None
        self.session: Any = None
        self.on_board: list[dict[str, Any]] = []  # riders' journeys under way
        self.covered = True
        self.parked = False
        self.parked_s = 0
        self.sessions = {"ok": 0, "failed": 0}

    # the shape firmware/compose/device.py composes a gate from (wiring.Hardware's)
    barrier = None
    display = None
    indicator = None
    rtc = None
    beams = None
    loops = None

    def readers(self) -> list:
        return [(self.front, records.DIR_ENTRY), (self.rear, records.DIR_EXIT)]

    def inputs(self) -> list:
        return []


class _Port:
    """The receiver's UART: the simulator writes sentences, the validator reads them."""

    def __init__(self) -> None:
        self.data = b""

    def recv(self, n: int, timeout_s: float) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


class BusTruth:
    """What riders really did (the money invariant's side): trips.Truth's interface."""

    def __init__(self) -> None:
        self.taps: dict[int, list[dict[str, Any]]] = {}

    def journeys(self, account: int) -> list[dict[str, Any]]:
        return self.taps.get(account, [])


class BusRoute:
    def __init__(self, sc: dict[str, Any], seed: int, workdir: str) -> None:
        self.sc = sc
        self.seed = seed
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.start = int(sc["start"])
        self.clock = ManualClock(self.start)
        self.t0_ms = self.clock.ticks_ms()
        self.sched = Scheduler(self.clock)
        self.rng = {n: demand.stream(seed, "bus-" + n) for n in ("riders", "network", "nonces")}
        self.net = Network(sc["backoffice"], self.rng["network"])
        root = demand.keys(seed, "operator-root")
        self.operator = Operator(root, trustlist.root_key_id(root.public_key))
        self.host_signer = demand.keys(seed, "operator-sync")
        self.issuer = Issuer(1, demand.keys(seed, "issuer-1"))
        self.verifier = OpenSSLVerifier()
        self.codes: dict[str, demand.CodeInfo] = {}
        self.monitor = Monitor(self.codes, {}, 60, 10, self.elapsed_s)
        self.db_path = os.path.join(workdir, "backoffice.sqlite")
        self.store = Store(self.db_path)
        self.truth = BusTruth()
        self.stops = sc["stops"]
        self.legs = self._legs()
        self.length = self.legs[-1][1]
        self.waiting: dict[int, list[dict[str, Any]]] = {s[0]: [] for s in self.stops}
        self.riders: list[Any] = []
        self.counts = {"boarded": 0, "alighted": 0, "forgot_tap_off": 0, "transfers": 0}
        self.decisions: dict[str, int] = {}
        self.vehicles = self._build()
        self.recovering = False

    def elapsed_s(self) -> int:
        return (self.clock.ticks_ms() - self.t0_ms) // 1000

    # -- the route ---------------------------------------------------------------------------
    def _legs(self) -> list[tuple[float, float]]:
        """(distance of each stop from the first, the same) along the route, metres."""
        out, d = [(0.0, 0.0)], 0.0
        for a, b in zip(self.stops, self.stops[1:], strict=False):
            d += busmode.distance_m(a[1], a[2], b[1], b[2])
            out.append((d, d))
        return out

    def _point(self, x: float) -> tuple[int, int]:
        """The position at x metres from the first stop (linear between stops)."""
        for i in range(len(self.stops) - 1):
            a, b = self.legs[i][0], self.legs[i + 1][0]
            if x <= b or i == len(self.stops) - 2:
                f = 0.0 if b == a else min(1.0, max(0.0, (x - a) / (b - a)))
                s, t = self.stops[i], self.stops[i + 1]
                return int(s[1] + (t[1] - s[1]) * f), int(s[2] + (t[2] - s[2]) * f)
        return self.stops[0][1], self.stops[0][2]

    # -- building ----------------------------------------------------------------------------
    def _build(self) -> list[Vehicle]:
        now, op = self.start, self.operator
        trust = op.trust_list(1, [self.issuer.trust_entry()], now - 86400, now + 365 * 86400)
        deny = op.deny_snapshot(1, [denylist.account_key(self.issuer.key_id, 1)], now - 3600)
        self.store.publish(m.KIND_TRUST_LIST, 1, trust, now)
        self.store.publish(m.KIND_DENY_DELTA, 1, deny, now)
        r = self.sc["route"]
        out = []
        for i in range(int(self.sc["vehicles"]["count"])):
            v = Vehicle(i, FIRST_DEVICE_ID + i, self.workdir)
            key = demand.keys(self.seed, "device-%d" % v.device_id)
            config = {
                "version": 1,
                "device_id": v.device_id,
                "name": v.name,
                "station": 0,
                "lane": i + 1,
                "mode": "bus",
                "direction": "both",
                "scope": 1,
                "sync": {"host_key": self.host_signer.public_key.hex()},
                "gate": {"passback_s": 60},
                "bus": {
                    "vehicle": i + 1,
                    "route": int(r["number"]),
                    "stops": r["stops"],
                    "radius_m": int(r["radius_m"]),
                    "dwell_s": int(r["validator_dwell_s"]),
                },
            }
            gatedir.provision(
                v.dir, v.device_id, op.signer, key.secret_bytes(), config, trust, deny, now
            )
            self.store.add_device(v.device_id, key.public_key, now, v.name)
            v.dev = Device.open(v.dir, v, self.clock, crypto=crypto_openssl)
            self.monitor.names[i] = v.name
            self.monitor.attach(i, v.dev)
            out.append(v)
        return out

    # -- riders ------------------------------------------------------------------------------
    def _rider(self) -> tuple[int, Rider]:
        n = len(self.riders)
        account = 100000 + n
        rider = Rider(demand.keys(self.seed, "bus-rider-%d" % n))
        self.issuer.issue(rider, account, self.start - 86400, self.start + 30 * 86400)
        self.riders.append(rider)
        return account, rider

    def _arrivals(self) -> None:
        """Riders arrive at every stop through the service (one draw a minute per stop)."""
        rate = float(self.sc["riders"]["per_stop_per_hour"]) / 60.0
        rng = self.rng["riders"]
        lo, hi = self.sc["riders"]["ride_stops"]
        for i, (stop, _la, _lo) in enumerate(self.stops):
            n = sum(1 for _ in range(4) if rng.random() < rate / 4)
            for _ in range(n):
                ride = rng.randint(int(lo), int(hi))
                if rng.random() < 0.5 and i - ride >= 0:
                    to = self.stops[i - ride][0]
                elif i + ride < len(self.stops):
                    to = self.stops[i + ride][0]
                elif i - ride >= 0:
                    to = self.stops[i - ride][0]
                else:
                    continue
                account, rider = self._rider()
                self.waiting[stop].append(
                    {"account": account, "rider": rider, "to": to, "transfer": False}
                )
        if self.elapsed_s() < int(self.sc["duration_s"]):
            self.sched.after(60000, self._arrivals)

    def _present(self, v: Vehicle, reader: SimReader, rider: Rider, account: int) -> Any:
        now = self.clock.now()
        text = rider.present(now)
        self.codes[text] = demand.CodeInfo(
            "valid",
            account,
            1,
            rider.counter,
            now,
            self.start - 86400,
            self.start + 30 * 86400,
            False,
        )
        reader.present(text)
        got: list = []
        loop = v.dev.loop
        before = loop.on_decision
        loop.on_decision = got.append
        try:
            v.dev.step(0)
        finally:
            loop.on_decision = before
        d = got[0] if got else None
        reason = d.reason if d is not None else "no_decision"
        self.decisions[reason] = self.decisions.get(reason, 0) + 1
        return d

    def _in_tunnel(self, stop: int) -> bool:
        i = [s[0] for s in self.stops].index(stop)
        return _within(self.legs[i][0] / self.length, self.sc["coverage"]["tunnels"])

    def _at_stop(self, v: Vehicle, stop: int, heading: int) -> None:
        """The doors open: riders for this stop tap off and alight, then the waiting board."""
        now = self.clock.now()
        stale = self._in_tunnel(stop)  # no fix here: the validator records the last stop
        rng = self.rng["riders"]
        cfg = self.sc["riders"]
        staying = []
        for j in v.on_board:
            if j["to"] != stop:
                staying.append(j)
                continue
            j["exit_t"] = now
            if rng.random() < float(cfg["tap_off_share"]):
                d = self._present(v, v.rear, j["rider"], j["account"])
                j["exit_tapped"] = bool(d is not None and d.accept)
                j["stale"] = j["stale"] or stale
            else:
                self.counts["forgot_tap_off"] += 1
            self.counts["alighted"] += 1
            if not j["transfer"] and rng.random() < float(cfg["transfer_share"]):
                back = j["from"]  # an errand: back on the next vehicle, within the window
                self.waiting[stop].append(
                    {"account": j["account"], "rider": j["rider"], "to": back, "transfer": True}
                )
        v.on_board = staying
        ahead = [s[0] for s in (self.stops if heading > 0 else self.stops[::-1])]
        rest = ahead[ahead.index(stop) + 1 :]
        still = []
        for w in self.waiting[stop]:
            if w["to"] not in rest:
                still.append(w)  # the other way: waits for a vehicle heading there
                continue
            d = self._present(v, v.front, w["rider"], w["account"])
            if d is None or not d.accept:
                continue
            if w["transfer"]:
                self.counts["transfers"] += 1
            self.counts["boarded"] += 1
            j = {
                "mode": "bus",
                "from": stop,
                "to": w["to"],
                "entry_t": now,
                "exit_t": None,
                "entry_tapped": True,
                "exit_tapped": False,
                "account": w["account"],
                "rider": w["rider"],
                "transfer": w["transfer"],
                "stale": stale,
            }
            self.truth.taps.setdefault(w["account"], []).append(j)
            v.on_board.append(j)
        self.waiting[stop] = still

    # -- driving -----------------------------------------------------------------------------
    def _drive(self, v: Vehicle, x: float, heading: int, stop_i: int, dwell_left: int) -> None:
        """One second of a vehicle's life: position, GNSS sentence, coverage, validator."""
        vc, cov = self.sc["vehicles"], self.sc["coverage"]
        frac = x / self.length if self.length else 0.0
        lat, lon = self._point(x)
        t = self.clock.now()
        hhmmss = "%02d%02d%02d" % ((t // 3600) % 24, (t // 60) % 60, t % 60)
        if _within(frac, cov["tunnels"]):
            v.uart.data += (nmea.format_rmc(hhmmss, "120126") + "\r\n").encode()
        else:
            v.uart.data += (nmea.format_rmc(hhmmss, "120126", lat, lon) + "\r\n").encode()
        covered = not _within(frac, cov["gaps"])
        if covered != v.covered:
            (self.net.heal if covered else self.net.partition)([v.index])
            v.covered = covered
        v.dev.step(0)
        if dwell_left > 0:
            if dwell_left == int(vc["dwell_s"]) - 10:  # the validator has seen the stop
                self._at_stop(v, self.stops[stop_i][0], heading)
            terminus = stop_i in (0, len(self.stops) - 1)
            if dwell_left == 1 and terminus and self.recovering and not v.on_board:
                self._park(v)  # service over, the last run done: into the depot
                return
            nxt = (x, heading, stop_i, dwell_left - 1)
        else:
            target = (
                self.legs[stop_i + heading][0] if 0 <= stop_i + heading < len(self.stops) else x
            )
            step = float(vc["speed_mps"])
            if abs(target - x) <= step:
                stop_i += heading
                x = target
                end = stop_i in (0, len(self.stops) - 1)
                dwell = int(vc["dwell_s"]) + (int(vc["layover_s"]) if end else 0)
                if end:
                    heading = -heading
                nxt = (x, heading, stop_i, dwell)
            else:
                nxt = (x + step * (1 if target > x else -1), heading, stop_i, 0)
        self.sched.after(1000, lambda: self._drive(v, *nxt))

    def _park(self, v: Vehicle) -> None:
        """Back at the depot for the night: coverage, the validator keeps syncing."""
        v.parked = True
        v.parked_s = self.elapsed_s()
        if not v.covered:
            self.net.heal([v.index])
            v.covered = True

        def idle() -> None:
            v.dev.step(0)
            self.sched.after(1000, idle)

        idle()

    # -- sync --------------------------------------------------------------------------------
    def _sync(self, v: Vehicle) -> None:
        if v.session is not None:
            return
        cfg = self.sc["backoffice"]
        nonces = self.rng["nonces"]
        client = v.dev.sync_client(nonces.randbytes, batch_size=int(cfg["batch_size"]))
        host = HostSession(
            self.store,
            self.host_signer,
            self.verifier,
            clock=self.clock,
            peer=v.name,
            random_bytes=nonces.randbytes,
        )

        def ended(s: Session) -> None:
            v.session = None
            v.sessions["ok" if s.ok else "failed"] += 1
            wait = int(cfg["sync_interval_s"] if s.ok else cfg["retry_s"])
            wait = min(wait, 30) if self.recovering else wait  # the depot: until all is up
            self.sched.after(wait * 1000, lambda: self._sync(v))

        v.session = Session(
            self.sched, self.net, v.index, client, host, int(cfg["timeout_s"]) * 1000, ended
        )
        v.session.start()

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        vc = self.sc["vehicles"]
        for v in self.vehicles:  # the vehicles leave the first terminus one headway apart
            delay = v.index * int(vc["headway_s"]) * 1000
            dwell = int(vc["dwell_s"])
            self.sched.after(delay + 1, functools.partial(self._drive, v, 0.0, 1, 0, dwell))
            self.sched.after(delay + 5000, functools.partial(self._sync, v))
        self._arrivals()
        end = self.t0_ms + int(self.sc["duration_s"]) * 1000
        self.sched.run_due(end)
        self.recovering = True  # service over: every vehicle finishes its run to the depot
        limit = self.clock.ticks_ms() + RECOVERY_LIMIT_S * 1000
        while self.clock.ticks_ms() < limit:
            self.sched.run_due(self.clock.ticks_ms() + 10000)
            parked = all(v.parked for v in self.vehicles)
            if parked and all(
                v.session is None and v.dev.snapshot()["pending"] == 0 for v in self.vehicles
            ):
                break
        return self.finish()

    def finish(self) -> dict[str, Any]:
        pending = {v.index: v.dev.snapshot()["pending"] for v in self.vehicles}
        db = Store(self.db_path)
        try:
            bo = self.monitor.check_backoffice(db, pending)
            tariff = self.sc["tariff"]
            as_of = self.clock.now()
            journeys = clearing.clear(db, tariff, as_of)
            held = [records.decode(raw) for _d, _s, raw in db.records()]
            for j in (j for js in self.truth.taps.values() for j in js):
                j.pop("rider", None)
            money = self.monitor.check_money(journeys, held, self.truth, tariff, as_of, 0)
        finally:
            db.close()
        events: dict[str, int] = {}
        for r in held:
            if r.kind == records.KIND_EVENT:
                name = reasons.by_number(r.reason)
                events[name] = events.get(name, 0) + 1
        stale = sum(1 for r in held if r.kind == records.KIND_PASSAGE and r.flags & 8)
        revenue: dict[str, int] = {}
        rules: dict[str, int] = {}
        for j in journeys:
            revenue[j["mode"]] = revenue.get(j["mode"], 0) + int(j["charged"])
            rules[j["rule"]] = rules.get(j["rule"], 0) + 1
        for v in self.vehicles:
            v.dev.close()
        self.store.close()
        invariants = self.monitor.results()
        return {
            "scenario": self.sc["name"],
            "seed": self.seed,
            "ended_s": self.elapsed_s(),
            "vehicles": len(self.vehicles),
            "riders": len(self.riders),
            "counts": self.counts,
            "decisions": dict(sorted(self.decisions.items())),
            "events": dict(sorted(events.items())),
            "stale_stop_passages": stale,
            "sync": {v.name: v.sessions for v in self.vehicles},
            "parked_s": {v.name: v.parked_s for v in self.vehicles},
            "network": self.net.stats,
            "backoffice": bo,
            "records_held": len(held),
            "clearing": {
                "journeys": len(journeys),
                "revenue": dict(sorted(revenue.items())),
                "rules": dict(sorted(rules.items())),
            },
            "money": money,
            "invariants": invariants,
            "ok": all(i["ok"] for i in invariants),
        }


def summary(rep: dict[str, Any]) -> str:
    c = rep["counts"]
    lines = [
        "bus route %s, seed %d: %d vehicles, %.1f simulated hours"
        % (rep["scenario"], rep["seed"], rep["vehicles"], rep["ended_s"] / 3600.0),
        "  riders: %d, %d boardings (%d transfers), %d alightings, %d forgot to tap off"
        % (rep["riders"], c["boarded"], c["transfers"], c["alighted"], c["forgot_tap_off"]),
        "  validator events: %s" % ", ".join("%d %s" % (n, k) for k, n in rep["events"].items()),
        "  passages with a stale stop (no GNSS fix): %d" % rep["stale_stop_passages"],
        "  sync: %s"
        % ", ".join(
            "%s %d ok %d failed" % (k, s["ok"], s["failed"]) for k, s in rep["sync"].items()
        ),
    ]
    return "\n".join(lines + report.runner_tail(rep))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m host_sim.station.busroute",
        description="Simulate a bus route (docs/scenarios.md, bus routes): vehicles with bus "
        "validators, riders, coverage gaps and tunnels, the back office's clearing, the "
        "invariants. Exit 0 when every invariant holds, 1 when one broke, 2 for a bad file.",
    )
    ap.add_argument("scenario", help="bus route scenario (e.g. host_sim/scenarios/bus.toml)")
    ap.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    ap.add_argument("--out", default=None, help="work directory (default run/<name>-<seed>)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    try:
        return run_file(load(args.scenario), args.seed, args.out, args.json)
    except ScenarioError as e:
        print("busroute: error: %s" % e, file=sys.stderr)
        return 2


def run_file(sc: dict[str, Any], seed: int, out: str | None, as_json: bool) -> int:
    import shutil

    out = out or os.path.join("run", "%s-%d" % (sc["name"], seed))
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, "report.json")):
            raise ScenarioError(
                "%s is not empty and holds no earlier simulation (no report.json): give --out "
                "a new or empty directory" % out
            )
        shutil.rmtree(out)
    rep = BusRoute(sc, seed, os.path.join(out, "work")).run()
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(rep, f, sort_keys=True, indent=1)
    print(json.dumps(rep, sort_keys=True) if as_json else summary(rep))
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
