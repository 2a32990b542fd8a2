"""The station simulator: one seeded run of a scenario = one outcome.

    sim = Simulation(scenario, seed, workdir)     # scenario from host_sim/station/scenario.py
    report = sim.run()                             # a dict; station/report.py writes it out

Everything runs in this one process on a virtual clock (host_sim/hardware/devices.ManualClock):

- gates: each is built as a real gate is: its hardware by drivers/portable/wiring.build from a
  spec of `sim:` URLs naming its simulated devices (host_sim/hardware/simhw.py) on this run's
  bus (host_sim/hardware/simbus.py), the firmware over it by firmware/compose/device.py
  (provisioned by host_sim/station/gatedir.py), its state directory under `workdir`; each is
  fed by a lane of riders, cars or shoppers (host_sim/station/lanes.py), which act on the
  simulated devices as people act on real ones;
- demand: arrivals through the day per lane group, the behaviour mix, the codes phones show
  (host_sim/station/demand.py);
- the back office: a real SQLite file (host_sim/backoffice/store.py) served by the real host
  session, reached over a simulated network (host_sim/station/simlink.py);
- faults from the seed, or at fixed times: power cuts (the device object is dropped without
  closing, the gate's disk, a host_sim/hardware/powerdisk.PowerDisk under every store, loses
  what was not durable, sometimes from inside a write or fsync in progress, then the same
  directory is opened again), back-office outages (then a restart on the same file),
  partitions, clock jumps, full disks, barrier jams; and link noise (loss, duplication,
  corruption);
- the invariants (host_sim/station/invariants.py), checked during the run and after recovery: at the
  end every fault is healed, the lanes drain, and every gate syncs until it holds nothing.

The main loop turns a busy gate's loop every `step_ms`; a gate with nothing to do is turned
every `idle_step_ms`, and when no gate is busy the clock jumps to the next event. Nothing reads
the wall clock except `wall`, which report.py keeps out of the reproducible files.

What the simulator reads from a gate goes through its public read interface: Device.snapshot()
(with the gate's Gate.snapshot() in it) and Device.status() (report.py); what it reads from the
back office, through the Store's query methods.
"""

import functools
import itertools
import os
import time
import traceback
from collections import deque
from typing import Any

from drivers.portable import wiring
from firmware.compose.device import Device
from firmware.settings import default as fw_default
from host_sim.backoffice import clearing, risk, statements
from host_sim.backoffice.risk_live import RiskLive
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostSession
from host_sim.hardware import simbus, simhw
from host_sim.hardware.devices import ManualClock
from host_sim.hardware.powerdisk import PowerLost
from host_sim.station import demand, faults, gatedir, lanes, report, settlement, trips
from host_sim.station.invariants import Monitor
from host_sim.station.scenario import ScenarioError
from host_sim.station.simcrypto import SimCrypto
from host_sim.station.simlink import Network, Scheduler, Session
from host_sim.station.stationlan import StationLan
from host_sim.wallet import Issuer, Operator
from protocol import denylist, reasons, records, trustlist
from protocol import messages as m

RESTING = ("idle", "jammed", "out_of_service")
# walk-ins who travel (an entry, later the exit back; a store visit), tracked in trips.Truth
TRAVELLERS = ("valid", "clock_off", "tailgating")
NOT_YET = 1 << 31  # the deny version of an account whose planned delta is not published yet
RESERVED_SHARE = 20  # 1/20 of the population: accounts of walk-ins who do not travel
OUT_OF_USE = ("jammed", "out_of_service", "emergency", "emergency_oos")
ARMED_WAIT_MS = 30_000  # a cut armed inside the next storage operations falls by then anyway
ARMED_OPS = 40  # ... inside one of the next this many operations
RECOVERY_LIMIT_S = 3600  # virtual time allowed for every gate to empty its journal at the end
FIRST_DEVICE_ID = 1001
_BUS_NAMES = itertools.count(1)  # each run's bus has its own name (runs may share a process)


class Tamper:
    """Test hooks: a deliberately buggy component swapped in to prove an invariant check works.
    Subclass and override; the default changes nothing."""

    def device(self, name: str, dev: Any) -> None:
        """Called after every opening of gate `name`'s device (start and each reboot)."""

    def backoffice(self, store: Any) -> None:
        """Called after every opening of the back office's store."""

    def clearing(self, journeys: list[dict], held: list[Any]) -> list[dict]:
        """Clearing's journeys as the money invariant sees them (`held`: the decoded records)."""
        return journeys

    def issuer_verify(self, verify: Any) -> Any:
        """The issuers' statements.verify (host_sim/station/settlement.py)."""
        return verify


class Slot:
    """One gate of the station: hardware, lane, state directory, and its device when powered."""

    def __init__(self, index: int, name: str, lane_cfg: dict, hw: simhw.SimHardware) -> None:
        self.index = index
        self.name = name
        self.lane_cfg = lane_cfg
        self.kind = lane_cfg["kind"]
        self.hw = hw  # the simulated devices (the lane and faults act on them)
        self.spec: dict[str, Any] = {}  # their sim: URLs: what wiring.build gives the firmware
        self.lane: Any = None
        self.dir = ""
        self.device_id = 0
        self.dev: Any = None
        self.session: Session | None = None
        self.last_step_ms = 0
        self.sync_gen = 0  # bumps when the sync schedule is replaced (stale events ignore)
        self.last_scan_ms = 0  # when the newest code was held up to this gate's reader
        self.recovered = False  # a session succeeded after the recovery began
        self.cut_off_s = 0  # an armed power cut: how long the gate then stays off
        self.armed = 0  # bumps with every armed cut (a stale fallback timer ignores)
        self.stats: dict[str, int] = {
            "arrivals": 0,
            "scans": 0,
            "passed": 0,
            "turned_back": 0,
            "sessions_ok": 0,
            "sessions_failed": 0,
            "records_acked": 0,
            "power_cuts": 0,
            "cuts_mid_operation": 0,  # the power failed inside a write, fsync, rename...
            "unsynced_sectors_lost": 0,  # what the disk had not made durable, at the cuts
            "unsynced_sectors_torn": 0,
            "dir_ops_lost": 0,
            "torn_bytes_cut": 0,
            "crashes": 0,
            "max_pending": 0,
        }
        self.counts: dict[str, int] = {}  # decisions by reason, across reboots
        self.gate_counts: dict[str, int] = {}  # the device's own counts after its last turn
        self.gate_snap: dict[str, Any] | None = None  # its Gate.snapshot() then
        self.deny_applied: dict[int, int] = {}  # deny version -> first virtual s it was seen


class Simulation:
    def __init__(
        self,
        scenario: dict[str, Any],
        seed: int,
        workdir: str,
        tamper: Tamper | None = None,
    ) -> None:
        self.sc = scenario
        self.seed = seed
        self.workdir = workdir
        self.tamper = tamper or Tamper()
        os.makedirs(workdir, exist_ok=True)
        self.start = int(scenario["start"])
        self.clock = ManualClock(self.start)
        self.t0_ms = self.clock.ticks_ms()
        self.arrive_until_ms = self.t0_ms + int(scenario["duration_s"]) * 1000
        self.end_ms = self.arrive_until_ms + int(scenario["drain_s"]) * 1000
        self.sched = Scheduler(self.clock)
        self.rng = {
            name: demand.stream(seed, name)
            for name in ("behaviour", "faults", "network", "lanes", "nonces", "hardware", "deny")
        }
        self.net = Network(scenario["backoffice"], self.rng["network"])
        # keys: one seed, the same keys every run
        root = demand.keys(seed, "operator-root")
        self.operator = Operator(root, trustlist.root_key_id(root.public_key))
        self.host_signer = demand.keys(seed, "operator-sync")
        n_issuers = int(scenario["riders"]["issuers"])
        if not 1 <= n_issuers <= 3:
            raise ScenarioError("riders.issuers must be 1..3")
        self.issuers = [
            Issuer(k, demand.keys(seed, "issuer-%d" % k)) for k in range(1, 1 + n_issuers)
        ]
        self.issuer = self.issuers[0]
        self.population = demand.Population(seed, scenario, self.issuer, self.start, self.issuers)
        self.log_signer = demand.keys(seed, "operator-log")  # signs the log's heads, statements
        self.deny = demand.DenyPlan(
            scenario, self.start, self.start + int(scenario["duration_s"]), self.rng["deny"]
        )
        self.crypto = SimCrypto()  # one verifier for the run: each signature checked once
        self.verifier = self.crypto.verifier()
        gcfg = scenario["gate"]
        self.monitor = Monitor(
            self.population.codes,
            self.deny.version_of,
            int(gcfg["window_s"]),
            int(gcfg["skew_s"]),
            self.elapsed_s,
        )
        self.db_path = os.path.join(workdir, "backoffice.sqlite")
        self.host_fsync = bool(scenario["host_fsync"])  # the back office's commits too
        self.store = self._open_store()
        self.bus = simbus.Bus("station%d" % next(_BUS_NAMES))
        self.recovering = False
        self.recovery_ms = 0
        self.recovered_at_s: int | None = None
        self.visitors = 0
        self.outcomes: dict[str, dict[str, int]] = {}  # behaviour -> outcome -> count
        # (ms, gate, text) of good codes a gate accepted: what a replayer screenshots
        self.recent: deque[tuple[int, int, str]] = deque()
        self._minted: deque[tuple[int, str]] = deque()  # (ms, text) to forget old codes
        self._showing: dict[str, lanes.Visitor] = {}  # a traveller's code -> the traveller
        self.latencies: list[tuple[int, int]] = []  # (ms since start, scan-to-open ms)
        self._awaiting_open: dict[int, int] = {}  # gate -> ms the accepted code was shown
        self.faults_log: list[dict[str, Any]] = []
        self.settlement: dict[str, Any] = {}
        self.sync_failures: dict[str, int] = {}  # why sessions failed
        self._outages = 0  # back-office outages in progress (they may overlap)
        self.timeline: dict[str, list] = {
            "t_min": [],
            "passages": [],
            "rejects": [],
            "queue_total": [],
            "queue_max": [],
            "pending_total": [],
            "oldest_unsynced_s": [],
            "latency_p50_ms": [],
            "latency_p95_ms": [],
            "gates_down": [],
        }
        self._interval: dict[str, Any] = {"passages": 0, "rejects": 0, "lat": []}
        self.deny_published: dict[int, int] = {1: 0}
        self.monitor.on_accept = self._accepted
        # the station LAN of the gates' mesh (docs/mesh.md), its own seeded stream
        mcfg = scenario["mesh"]
        self.lan = (
            StationLan(self.sched, mcfg, demand.stream(seed, "mesh")) if mcfg["enabled"] else None
        )
        self.copies = {"shown": 0, "replayed": 0}  # copiers' screenshots, and those refused
        self.slots = self._build_gates()
        self.truth = trips.Truth()  # what commuters really did (the money invariant's side)
        self.plans = trips.plan(scenario, demand.stream(seed, "trips"), self.start)
        self.groups: dict[tuple[int, str, int], list[Slot]] = {}  # (station, kind, dir) -> gates
        for s in self.slots:
            lc = s.lane_cfg
            dirs = (1, 2) if lc["kind"] == "store" else (1 if lc["direction"] == "entry" else 2,)
            for d in dirs:
                self.groups.setdefault((lc["station"], lc["kind"], d), []).append(s)
        self.away: dict[tuple[int, str], deque[trips.Plan]] = {}  # walk-ins away, by return
        pop = self.population
        self._reserved = max(1, pop.size // RESERVED_SHARE)
        self._not_travelling = set(self.deny.version_of) | {
            pop.account(i * 7919 % pop.size) for i in range(demand.FORGER_POOL)
        }  # accounts others use (deny list, forgers'): a traveller's charges are theirs alone
        self._travelled: set[int] = set()  # one trip per walk-in account and run
        self.walkins_none_away = 0  # exit-lane arrivals with nobody away to come back
        self.walkin_plans: list[trips.Plan] = []
        self.clearing: dict[str, Any] = {}
        mix = scenario["mix"]
        self._fraud_pools = (
            demand.CLONE_POOL + demand.DODGER_POOL if mix["cloned"] or mix["dodger"] else 0
        )
        self._fraud_scan: dict[int, tuple[str, str]] = {}  # gate -> (text, fraud kind) shown
        # (s, kind, account, cred_no, at an exit): each fraudulent passage a gate accepted
        self.fraud_uses: list[tuple[int, str, int, int, bool]] = []
        rcfg = scenario["risk"]
        self.risk_cfg = risk.load_config(
            data={
                "deny_valid_s": int(rcfg["deny_valid_s"]),
                "refresh_before_s": int(rcfg["refresh_before_s"]),
                "window_s": int(scenario["gate"]["window_s"]) + int(scenario["gate"]["skew_s"]),
                "network": {"min_s_per_station": int(scenario["trips"]["ride_s"]) // 2},
                "rules": {
                    "velocity": {"max": int(rcfg["velocity_max"])},
                    "missing_taps": {
                        "max": int(rcfg["missing_taps_max"]),
                        "action": rcfg["missing_taps_action"],
                    },
                },
            }
        )
        if rcfg["enabled"]:  # the planned deltas take the version after risk's newest
            for _t, _v, accounts in self.deny.deltas:
                for a in accounts:
                    self.deny.version_of[a] = NOT_YET
        self.risk_findings: list[dict[str, Any]] = []  # with "t_s": when found
        self.risk_published: dict[int, tuple[int, list[int]]] = {}  # version -> (s, adds)
        self.risk_errors: list[dict[str, Any]] = []  # the engine's risk_error events
        # the back office's own risk service (host_sim/backoffice/risk_live.py), as serve
        # runs it: told by the host session after each batch is committed
        self.risk_live = (
            RiskLive(
                self.store,
                self.risk_cfg,
                self.operator.lists_signers,
                self.clock,
                self._risk_event,
                self._risk_ran,
            )
            if rcfg["enabled"]
            else None
        )
        self.wall_s = 0.0
        self._touched = False  # something outside a gate's own turn changed a gate

    # -- time --------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.ticks_ms()

    def elapsed_s(self) -> int:
        return (self.clock.ticks_ms() - self.t0_ms) // 1000

    # -- building ----------------------------------------------------------------------------
    def _open_store(self) -> Store:
        store = Store(self.db_path, durable=self.host_fsync)
        self.tamper.backoffice(store)
        return store

    def _build_gates(self) -> list[Slot]:
        sc = self.sc
        now = self.start
        op = self.operator
        entries = [i.trust_entry() for i in self.issuers]
        trust = op.trust_list(1, entries, now - 86400, now + 365 * 86400)
        deny_keys = [self._deny_entry(a) for a in self.deny.initial]
        deny_v1 = op.deny_snapshot(1, deny_keys, now - 3600)
        self.store.publish(m.KIND_TRUST_LIST, 1, trust, now)
        self.store.publish(m.KIND_DENY_DELTA, 1, deny_v1, now)
        gcfg = sc["gate"]
        hw_rng = self.rng["hardware"]
        slots: list[Slot] = []
        device_id = FIRST_DEVICE_ID
        for lane_cfg in sc["lanes"]:
            for n in range(1, lane_cfg["gates"] + 1):
                name = "%s-%d" % (lane_cfg["name"], n)
                drift = hw_rng.uniform(*gcfg["rtc_drift_ppm"])
                hw = simhw.SimHardware(
                    name,
                    lane_cfg["kind"],
                    self.clock,
                    int(lane_cfg["barrier_open_ms"]),
                    int(lane_cfg["barrier_close_ms"]),
                    drift,
                    self.host_fsync,
                )
                self.bus.add(hw)
                slot = Slot(len(slots), name, lane_cfg, hw)
                slot.spec = self.bus.spec(name)
                slot.device_id = device_id
                slot.dir = os.path.join(self.workdir, "gates", name)
                key = demand.keys(self.seed, "device-%d" % device_id)
                gatedir.provision(
                    slot.dir,
                    device_id,
                    op.signer,
                    key.secret_bytes(),
                    self._gate_config(device_id, name, lane_cfg, n),
                    trust,
                    deny_v1,
                    now,
                )
                self.store.add_device(device_id, key.public_key, now, name)
                slot.lane = self._lane(slot)
                self.monitor.watch_barrier(slot.index, name, hw.barrier)
                slots.append(slot)
                device_id += 1
        for slot in slots:
            self._power_on(slot, first=True)
        return slots

    def _gate_config(self, device_id: int, name: str, lane: dict, n: int) -> dict[str, Any]:
        g = self.sc["gate"]
        return {
            "version": 1,
            "device_id": device_id,
            "name": name[-16:],
            "station": int(lane["station"]),
            "lane": n,
            "mode": lane["kind"],
            "direction": "both" if lane["kind"] == "store" else lane["direction"],
            "scope": 1,
            "validation": {"window_s": int(g["window_s"]), "skew_s": int(g["skew_s"])},
            "limits": {
                "max_unsynced_count": int(g["max_unsynced"]),
                "max_unsynced_age_s": int(g["max_unsynced_age_s"]),
                "at_limit": g["at_limit"],
            },
            "sync": {"host_key": self.host_signer.public_key.hex()},
            "gate": self._mode_settings(),
            **self._mesh_settings(),
        }

    def _mesh_settings(self) -> dict[str, Any]:
        if self.lan is None:
            return {}
        return {"mesh": {"enabled": True, "heartbeat_ms": int(self.sc["mesh"]["heartbeat_ms"])}}

    def _mode_settings(self) -> dict[str, Any]:
        g = self.sc["gate"]
        return {
            "pass_ms": int(g["pass_ms"]),
            "parking_pass_ms": int(g["parking_pass_ms"]),
            "unlock_ms": int(g["unlock_ms"]),
        }

    def _lane(self, slot: Slot) -> lanes.Lane:
        cls = lanes.LANES[slot.kind]
        args = (slot.hw, self._scan_for(slot), self._done, self.rng["lanes"], self.sc["riders"])
        if cls is lanes.StoreLane:
            return lanes.StoreLane(*args, inside=self._inside_for(slot))
        return cls(*args)

    # -- power -------------------------------------------------------------------------------
    def _open_device(self, slot: Slot) -> Any:
        hw = wiring.build(slot.spec)  # as a real gate's entry point wires its device.json
        lan = self.lan
        if lan is not None:  # the gate's socket on the station LAN
            station = int(slot.lane_cfg["station"])
            hw.mesh_link = lambda _settings: lan.link(slot.index, station)  # type: ignore[attr-defined]
        dev = Device.open(slot.dir, hw, self.clock, crypto=self.crypto)
        self.tamper.device(slot.name, dev)
        return dev

    def _power_on(self, slot: Slot, first: bool = False) -> None:
        if not first:
            slot.hw.power_restored()
        dev = self._open_device(slot)
        slot.dev = dev
        slot.gate_counts = _gate(dev)["counts"]
        self._touched = True
        slot.stats["torn_bytes_cut"] += dev.snapshot()["torn_bytes_cut"]
        self.monitor.attach(slot.index, dev)
        slot.lane.admitting = True
        slot.last_step_ms = self.now_ms()
        self._schedule_sync(slot, 5000 if not first else self._phase(slot))

    def _power_cut(self, slot: Slot, off_s: int, cut_disk: bool = True) -> None:
        """The gate loses power (`cut_disk`: the disk loses what was not durable; a watchdog
        reset after a crash keeps it)."""
        disk = slot.hw.disk
        if slot.dev is None and not disk.dead:
            return  # already off
        slot.stats["power_cuts"] += 1
        if slot.session is not None:
            slot.session.kill("power_cut")
        if slot.dev is not None:
            self.monitor.detach(slot.index)
        slot.dev = None  # dropped without close()
        slot.hw.power_lost()
        self._awaiting_open.pop(slot.index, None)
        disk.disarm()
        slot.armed += 1
        if disk.dead:
            slot.stats["cuts_mid_operation"] += 1
        if cut_disk or disk.dead:
            before = dict(disk.stats)
            disk.cut(self.rng["faults"])  # what was not durable is gone, or torn
            for mine, theirs in (
                ("unsynced_sectors_lost", "sectors_lost"),
                ("unsynced_sectors_torn", "sectors_torn"),
                ("dir_ops_lost", "dir_ops_lost"),
            ):
                slot.stats[mine] += disk.stats[theirs] - before[theirs]
        slot.lane.admitting = False
        self._move_queue(slot)
        self.sched.after(off_s * 1000, lambda: self._power_on(slot))

    def _arm_cut(self, slot: Slot, off_s: int) -> None:
        """The power fails inside one of the gate's next storage operations (a write, an
        fsync, a rename... of any store: the disk raises PowerLost there), or between two if
        the gate does nothing with its disk for ARMED_WAIT_MS."""
        slot.cut_off_s = off_s
        slot.armed += 1
        armed = slot.armed
        slot.hw.disk.arm(self.rng["faults"].randint(1, ARMED_OPS))

        def fallback() -> None:
            if slot.armed == armed and slot.dev is not None:
                self._power_cut(slot, off_s)

        self.sched.after(ARMED_WAIT_MS, fallback)

    def _lost_power(self, e: PowerLost) -> None:
        """An armed cut fell inside a storage operation: the firmware stopped there."""
        slot = next(s for s in self.slots if s.hw.disk is e.disk)
        self._power_cut(slot, slot.cut_off_s or 5)

    # -- demand ------------------------------------------------------------------------------
    def _start_arrivals(self) -> None:
        for i, lane_cfg in enumerate(self.sc["lanes"]):
            arrivals = demand.Arrivals(
                float(lane_cfg["peak_per_hour"]),
                self.sc["profiles"][lane_cfg["profile"]],
                demand.stream(self.seed, "arrivals-%d" % i),
            )
            group = [s for s in self.slots if s.lane_cfg is lane_cfg]
            self._next_arrival(arrivals, group, self.start)
        until = self.start + (self.arrive_until_ms - self.t0_ms) // 1000
        for p in self.plans:
            if self.start <= p.depart < until:
                at = self.t0_ms + int((p.depart - self.start) * 1000)
                self.sched.at(at, functools.partial(self._trip_step, p))

    # -- commuters (trips.py) ----------------------------------------------------------------
    def _trip_step(self, p: trips.Plan) -> None:
        """The commuter reaches the lane group of their next step and queues there."""
        step = p.steps[p.next]
        self.visitors += 1
        v = lanes.Visitor(self.visitors, p.behaviour, self.now_ms(), direction=step.direction)
        v.person = p.person or self.population.person("commuter", p.index)
        v.trip = p
        p.attempts += 1
        self._arrive(
            self.groups[(step.station, step.kind, 1 if step.kind == "store" else step.direction)], v
        )

    def _trip_done(self, v: lanes.Visitor, outcome: str) -> None:
        p = v.trip
        step = p.steps[p.next]
        now = self.clock.now()
        account = v.person.account
        if step.kind == "store":
            if v.direction == 1:
                if outcome == lanes.PASSED:
                    self._tap(p, account, "store", step.station, 1, now, True)
                    return  # the shopper leaves later (_inside_for): the step ends then
                self._tap(p, account, "store", step.station, 1, now, False, through=False)
                self._trip_next(p)  # turned away at the door: no shopping today
                return
            self._tap(p, account, "store", step.station, 2, now, outcome == lanes.PASSED)
            self._trip_next(p)
            return
        if outcome != lanes.PASSED and p.walkin and p.next == 0:
            # a walk-in refused on the way in goes elsewhere: no journey (unless a gate
            # recorded a passage they never took: Truth.resolve)
            self._tap(
                p, account, step.kind, step.station, step.direction, now, False, through=False
            )
            return
        if outcome != lanes.PASSED and p.attempts < 3:
            self.sched.after(30_000, functools.partial(self._trip_step, p))  # try again
            return
        # passed; or refused three times, and a member of staff let them through untapped. A
        # rider refused (gate_busy) who walked through the barrier still open for the one in
        # front passed untapped too: the gate saw a tailgater, not a passage.
        tapped = outcome == lanes.PASSED and v.accepted
        self._tap(p, account, step.kind, step.station, step.direction, now, tapped)
        self._trip_next(p)

    def _tap(
        self,
        p: trips.Plan,
        account: int,
        mode: str,
        station: int,
        direction: int,
        t: int,
        tapped: bool,
        through: bool = True,
    ) -> None:
        """The step's outcome into the truth, with the presentations shown for it."""
        self.truth.tap(
            account, mode, station, direction, t, tapped, shown=tuple(p.shown), through=through
        )
        p.shown = []

    def _trip_next(self, p: trips.Plan) -> None:
        p.next += 1
        p.attempts = 0
        if p.next >= len(p.steps):
            if p.walkin:
                self.truth.walkins += 1
            else:
                self.truth.finished += 1
            return
        if p.walkin:  # went in: away until an exit arrival brings them back, or away_s ends
            step = p.steps[p.next]
            p.away_since = self.clock.now()
            self.away.setdefault((step.station, step.kind), deque()).append(p)
            hi = float(self.sc["riders"]["away_s"][1])
            self.sched.after(int(hi * 1000), functools.partial(self._come_back, p, "valid"))
            return
        wait = p.steps[p.next].wait_s
        self.sched.after(int(wait * 1000), functools.partial(self._trip_step, p))

    def _next_arrival(self, arrivals: demand.Arrivals, group: list[Slot], t: float) -> None:
        end = self.start + (self.arrive_until_ms - self.t0_ms) / 1000.0
        nxt = arrivals.next(t, end)
        if nxt is None:
            return

        def arrive() -> None:
            self._arrive(group)
            self._next_arrival(arrivals, group, nxt)

        self.sched.at(self.t0_ms + int(round((nxt - self.start) * 1000)), arrive)

    # -- walk-ins who travel ------------------------------------------------------------------
    def _walkin(self, group: list[Slot], behaviour: str) -> None:
        """A walk-in with a good code: at an entry lane or a store, a rider of their own
        starting a trip (an entry, later the exit back here: trips.Plan, Truth); at an exit
        lane, the one away longest (at least away_s's low end) comes back."""
        lc = group[0].lane_cfg
        station, kind = int(lc["station"]), lc["kind"]
        if kind != "store" and lc["direction"] == "exit":
            pool = self.away.get((station, kind))
            while pool and pool[0].back:
                pool.popleft()  # came back on their own (away_s ended)
            lo = float(self.sc["riders"]["away_s"][0])
            if not pool or self.clock.now() - pool[0].away_since < lo:
                self.walkins_none_away += 1
                return
            self._come_back(pool.popleft(), behaviour)
            return
        person = self._traveller()
        if person is None:
            self.walkins_none_away += 1
            return
        if kind == "store":
            steps = [trips.Step(station, "store", records.DIR_ENTRY, 0)]
        else:
            steps = [trips.Step(station, kind, records.DIR_ENTRY, 0)]
            if (station, kind, records.DIR_EXIT) in self.groups:
                steps.append(trips.Step(station, kind, records.DIR_EXIT, 0))
        p = trips.Plan(-1, station, station, self.clock.now(), steps)
        p.person, p.behaviour, p.walkin = person, behaviour, True
        self.walkin_plans.append(p)
        self._trip_step(p)

    def _come_back(self, p: trips.Plan, behaviour: str) -> None:
        if p.back:
            return
        p.back = True
        p.behaviour = behaviour
        self._trip_step(p)

    def _traveller(self) -> Any:
        """A population rider for a walk-in's trip: never one whose account anyone else uses
        (the reserved share, deny-listed and forged accounts) and one trip per account."""
        rng = self.rng["behaviour"]
        pop = self.population
        for _ in range(100):
            i = rng.randrange(self._reserved, pop.size)
            account = pop.account(i)
            if account not in self._not_travelling and account not in self._travelled:
                self._travelled.add(account)
                return pop.person("rider", i)
        return None  # (a population nearly used up)

    def _arrive(self, group: list[Slot], visitor: lanes.Visitor | None = None) -> None:
        rng = self.rng["behaviour"]
        if visitor is None:
            mix = self.sc["mix"]
            kinds = [k for k in demand.MIX_KINDS if mix[k] > 0]
            behaviour = rng.choices(kinds, [mix[k] for k in kinds])[0]
            if group[0].kind == "store" and behaviour == "tailgating":
                behaviour = "valid"  # a door cannot tell two shoppers from one
            if behaviour == "dodger" and (
                group[0].kind != "metro" or group[0].lane_cfg["direction"] == "exit"
            ):
                return  # a dodger slips out behind someone: no tap
            if behaviour == "denied" and group[0].lane_cfg.get("direction") == "exit":
                return  # a blocked account is refused at every entry: nobody inside holds it
            if behaviour in TRAVELLERS:
                self._walkin(group, behaviour)
                return
            self.visitors += 1
            visitor = lanes.Visitor(self.visitors, behaviour, self.now_ms())
            visitor.person = self._person_for(behaviour)
        usable = [s for s in group if self._in_use(s)] or group
        best = min(len(s.lane.queue) + (0 if s.lane.empty else 1) for s in usable)
        choice = rng.choice(
            [s for s in usable if len(s.lane.queue) + (0 if s.lane.empty else 1) == best]
        )
        visitor.gate = choice.index
        choice.stats["arrivals"] += 1
        choice.lane.queue.append(visitor)
        self._touched = True  # (_run_until: a gate's busy state may have changed)

    def _person_for(self, behaviour: str) -> Any:
        rng = self.rng["behaviour"]
        pop = self.population
        if behaviour == "expired":
            return pop.person("expired", rng.randrange(demand.EXPIRED_POOL))
        if behaviour == "forged":
            return pop.person("forged", rng.randrange(demand.FORGER_POOL))
        if behaviour == "denied":
            denied = self.deny.denied_now()
            if denied:
                return pop.person("rider", rng.choice(denied) - demand.FIRST_ACCOUNT)
        if behaviour == "cloned":
            return pop.person("rider", self._reserved - 1 - rng.randrange(demand.CLONE_POOL))
        if behaviour == "dodger":
            last = self._reserved - 1 - demand.CLONE_POOL
            return pop.person("rider", last - rng.randrange(demand.DODGER_POOL))
        # a replayer (who shows their own code when there is no screenshot to show), or a
        # denied rider before anyone is denied: the reserved accounts, never a traveller's
        # (nor, in a scenario with cloned phones or dodgers, one of their pools)
        return pop.person("rider", rng.randrange(self._reserved - self._fraud_pools))

    def _in_use(self, slot: Slot) -> bool:
        return slot.dev is not None and _gate(slot.dev)["state"] not in OUT_OF_USE

    def _move_queue(self, slot: Slot) -> None:
        """Riders waiting at a gate that went out of use walk to another one."""
        if not slot.lane.queue:
            return
        group = [s for s in self.slots if s.lane_cfg is slot.lane_cfg and s is not slot]
        usable = [s for s in group if self._in_use(s)]
        if not usable:
            return
        while slot.lane.queue:
            self._arrive(usable, slot.lane.queue.popleft())

    def _scan_for(self, slot: Slot):
        def scan(v: lanes.Visitor, reader: Any) -> None:
            self._scan(slot, v, reader)

        return scan

    def _scan(self, slot: Slot, v: lanes.Visitor, reader: Any) -> None:
        rng = self.rng["behaviour"]
        now = self.clock.now()
        ms = self.now_ms()
        pop = self.population
        text = None
        b = v.behaviour
        if b == "screenshot":
            lo, hi = self.sc["riders"]["screenshot_age_s"]
            shots = [
                t
                for when, gate, t in self.recent
                if gate != slot.index and lo * 1000 <= ms - when <= hi * 1000
            ]
            if shots:
                text = rng.choice(shots)
            if text is not None:
                self._fraud_scan[slot.index] = (text, "copier")
                self.copies["shown"] += 1
        if text is None:
            off = 0
            if b == "clock_off":
                lo, hi = self.sc["riders"]["clock_off_s"]
                off = int(rng.uniform(lo, hi)) * rng.choice((-1, 1))
            phone = None
            if b == "cloned" and rng.random() < 0.5:
                phone = pop.clone(v.person)  # the second phone this time
            text = pop.code(v.person, b, now, off, phone)
            self._minted.append((ms, text))
            if b in ("cloned", "dodger"):
                self._fraud_scan[slot.index] = (text, b)
            if v.trip is not None:
                v.trip.shown.append((slot.device_id, *pop.codes[text].presentation()))
                self._showing[text] = v
        keep_ms = (int(self.sc["riders"]["screenshot_age_s"][1]) + 10) * 1000
        while self.recent and ms - self.recent[0][0] > keep_ms:
            self.recent.popleft()
        v.scans += 1
        v.scanned_ms = ms
        slot.stats["scans"] += 1
        lo_ms, hi_ms = simhw.READER_LATENCY_MS[slot.lane_cfg["reader"]]
        reader.show(text, rng.randint(lo_ms, hi_ms))
        slot.last_scan_ms = ms

    def _accepted(self, gate: int, text: str) -> None:
        """A gate accepted a code: a replayer nearby may have photographed it (a code a gate
        refused gets nobody anywhere, and no copier bothers with it)."""
        shower = self._showing.pop(text, None)
        if shower is not None:
            shower.accepted = True
        info = self.population.codes.get(text)
        if info is not None and info.kind in ("valid", "tailgating"):
            self.recent.append((self.now_ms(), gate, text))
        fraud = self._fraud_scan.pop(gate, None)
        if fraud is not None and fraud[0] == text and info is not None:
            out = self.slots[gate].lane_cfg.get("direction") == "exit"
            self.fraud_uses.append((self.elapsed_s(), fraud[1], info.account, info.cred_no, out))

    def _done(self, v: lanes.Visitor, outcome: str) -> None:
        slot = self.slots[v.gate]
        slot.stats[outcome] += 1
        per = self.outcomes.setdefault(v.behaviour, {})
        per[outcome] = per.get(outcome, 0) + 1
        if v.trip is not None:
            self._trip_done(v, outcome)

    def _inside_for(self, slot: Slot):
        def inside(v: lanes.Visitor) -> None:
            lo, hi = slot.lane_cfg["stay_s"]
            stay = self.rng["lanes"].uniform(lo, hi)
            leaver = lanes.Visitor(v.n, v.behaviour, 0, direction=2)
            leaver.person = v.person
            leaver.trip = v.trip

            def leave() -> None:
                leaver.arrived_ms = self.now_ms()
                leaver.gate = slot.index
                slot.lane.queue.append(leaver)

            self.sched.after(int(stay * 1000), leave)

        return inside

    # -- sync --------------------------------------------------------------------------------
    def _phase(self, slot: Slot) -> int:
        every = int(self.sc["backoffice"]["sync_interval_s"]) * 1000
        return self.rng["network"].randrange(1000, max(2000, every))

    def _schedule_sync(self, slot: Slot, after_ms: int) -> None:
        slot.sync_gen += 1
        gen = slot.sync_gen
        self.sched.after(after_ms, lambda: self._sync(slot, gen))

    def _sync(self, slot: Slot, gen: int) -> None:
        if gen != slot.sync_gen or slot.dev is None or slot.session is not None:
            return
        cfg = self.sc["backoffice"]
        nonces = self.rng["nonces"]
        client = slot.dev.sync_client(nonces.randbytes, batch_size=int(cfg["batch_size"]))
        host = HostSession(
            self.store,
            self.host_signer,
            self.verifier,
            clock=self.clock,
            peer=slot.name,
            random_bytes=nonces.randbytes,
            arrived=self.risk_live.arrived if self.risk_live is not None else None,
        )

        def ended(s: Session) -> None:
            self._sync_ended(slot, s, client)

        slot.session = Session(
            self.sched, self.net, slot.index, client, host, int(cfg["timeout_s"]) * 1000, ended
        )
        try:
            slot.session.start()
        except Exception as e:  # a bug in the firmware's sync: reported, then a reboot
            self._crash(slot, "sync", e)

    def _sync_ended(self, slot: Slot, s: Session, client: Any) -> None:
        if slot.session is s:
            slot.session = None
        if s.reason == "power_cut":
            return
        slot.stats["records_acked"] += client.acked
        if not s.ok:
            self.sync_failures[s.reason] = self.sync_failures.get(s.reason, 0) + 1
        if s.reason == "crash":
            self._crash(slot, "the sync session", s.crash or RuntimeError("?"))
            return
        if s.ok:
            slot.stats["sessions_ok"] += 1
            if self.recovering and s.started_ms >= self.recovery_ms:
                slot.recovered = True
        else:
            slot.stats["sessions_failed"] += 1
        if slot.dev is not None:
            v = slot.dev.snapshot()["deny_version"]
            slot.deny_applied.setdefault(v, self.elapsed_s())
        cfg = self.sc["backoffice"]
        wait = int(cfg["sync_interval_s"] if s.ok else cfg["retry_s"]) * 1000
        if s.ok:  # as the gate's Syncer (firmware/compose/app.py): interval_s from the start
            wait = max(0, wait - (s.ended_ms - s.started_ms))
        if self.recovering:
            wait = 2000
        self._schedule_sync(slot, wait)

    # -- faults ------------------------------------------------------------------------------
    def _plan_faults(self) -> None:
        names = [s.name for s in self.slots]
        for f in faults.plan(self.sc, self.rng["faults"], names):
            self.sched.at(self.t0_ms + f["t_s"] * 1000, functools.partial(self._fault, f))

    def _slot(self, name: str) -> Slot:
        return next(s for s in self.slots if s.name == name)

    def _fault(self, f: dict[str, Any]) -> None:
        """Apply one planned fault (host_sim/station/faults.py) and log it as it happened."""
        kind = f["kind"]
        entry = {"t_s": self.elapsed_s(), "kind": kind}
        entry.update({k: v for k, v in f.items() if k in ("gate", "gates", "duration_s")})
        dur_ms = int(f.get("duration_s", 0)) * 1000
        slot = self._slot(f["gate"]) if "gate" in f else None
        if kind == "power_cut" and slot is not None:
            entry["torn_write"] = bool(f["tear"])
            if f["tear"] and slot.dev is not None:
                self._arm_cut(slot, int(f["duration_s"]))
            else:
                self._power_cut(slot, int(f["duration_s"]))
        elif kind == "backoffice_outage":
            self._outages += 1
            self.net.outage = True
            for s in self.slots:
                if s.session is not None:
                    s.session.host_down()
            self.sched.after(dur_ms, self._outage_over)
        elif kind == "partition":
            cut = [self._slot(n).index for n in f["gates"]]
            self.net.partition(cut)
            self.sched.after(dur_ms, functools.partial(self.net.heal, cut))
        elif kind == "clock_jump" and slot is not None:
            entry["jump_s"] = int(f["jump_s"])
            slot.hw.rtc.set(slot.hw.rtc.now() + int(f["jump_s"]))
        elif kind == "disk_full" and slot is not None:
            disk = slot.hw.disk
            disk.fill()
            self.sched.after(dur_ms, disk.free)
        elif kind == "barrier_jam" and slot is not None:
            slot.hw.barrier.jam_next()
            self.sched.after(10_000, functools.partial(self._technician, slot, dur_ms, 0))
        self.faults_log.append(entry)

    def _technician(self, slot: Slot, clear_after_ms: int, seen_ms: int) -> None:
        """Comes by every 10 s; clears a jam clear_after_ms after first seeing it."""
        b = slot.hw.barrier
        if b.state == "jammed":
            if not seen_ms:
                seen_ms = self.now_ms()
            if self.now_ms() - seen_ms >= clear_after_ms:
                b.clear_jam()
                return
        elif seen_ms:
            return
        self.sched.after(10_000, lambda: self._technician(slot, clear_after_ms, seen_ms))

    def _outage_over(self) -> None:
        if self._outages:  # (recovery may have ended every outage already)
            self._outages -= 1
            if not self._outages:
                self._backoffice_back()

    def _backoffice_back(self) -> None:
        """The back office restarts on the same SQLite file."""
        if not self.net.outage:
            return
        for s in self.slots:
            if s.session is not None:
                s.session.host_down()
        self.store.close()
        self.store = self._open_store()
        if self.risk_live is not None:
            self.risk_live.store = self.store
        self.net.outage = False

    def _publish_deny(self, version: int, accounts: list[int]) -> None:
        if self.net.outage:  # the publisher is down too: it publishes once back
            self.sched.after(60_000, lambda: self._publish_deny(version, accounts))
            return
        if self.sc["risk"]["enabled"]:  # one publisher: the planned denials after risk's
            version = self._deny_version() + 1
            for a in accounts:
                self.deny.version_of[a] = version  # (was NOT_YET: see __init__)
        keys = [self._deny_entry(a) for a in accounts]
        blob = self.operator.deny_delta(version - 1, version, self.clock.now(), adds=keys)
        self.store.publish(m.KIND_DENY_DELTA, version, blob, self.clock.now())
        self.deny.published = version
        self.deny_published[version] = self.elapsed_s()

    def _deny_entry(self, account: int) -> int:
        """The deny entry of an account: in its credential's issuer's scope."""
        return denylist.account_key(self.population.issuer_of(account).key_id, account)

    def _deny_version(self) -> int:
        return dict((k, v) for k, v, _n in self.store.offers())[m.KIND_DENY_DELTA]

    def _risk_tick(self) -> None:
        """The back office's risk service runs on each batch's arrival (the host session
        tells it) and, as serve's every_s, every scan_every_s: expiries and the refresh
        delta; not while the back office is down (the gates' sessions then fail too)."""
        if not self.recovering:
            self.sched.after(int(self.sc["risk"]["scan_every_s"]) * 1000, self._risk_tick)
        if not self.net.outage and self.risk_live is not None:
            self.risk_live.run()

    def _risk_ran(self, summary: dict[str, Any]) -> None:
        for f in summary["findings"]:
            issuer, account = records.split_account_key(f["account_id"])  # the rider's own id
            self.risk_findings.append(
                dict(f, account_id=account, issuer=issuer, t_s=self.elapsed_s())
            )
        pub = summary["published"]
        if pub is not None:
            self.risk_published[pub["version"]] = (self.elapsed_s(), pub["adds"])
            self.deny.published = pub["version"]
            self.deny_published[pub["version"]] = self.elapsed_s()

    def _risk_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "risk_error":
            self.risk_errors.append(dict(event, t_s=self.elapsed_s()))

    # -- the main loop -----------------------------------------------------------------------
    def _crash(self, slot: Slot, where: str, e: BaseException) -> None:
        slot.stats["crashes"] += 1
        frames = traceback.extract_tb(e.__traceback__)
        at = ""
        if frames:
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            at = " at %s:%d" % (os.path.relpath(frames[-1].filename, root), frames[-1].lineno or 0)
        self.monitor.violate(
            "firmware_never_crashes",
            slot.index,
            "%s raised %s: %s%s" % (where, type(e).__name__, e, at),
        )
        self._power_cut(slot, 5, cut_disk=False)  # the watchdog resets it

    def _busy(self, slot: Slot, g: dict[str, Any] | None = None) -> bool:
        """`g`: the gate's snapshot if the caller has a current one."""
        if slot.lane.busy or slot.hw.busy:
            return True
        if self.lan is not None and self.lan.waiting(slot.index):
            return True  # mesh datagrams to take
        dev = slot.dev
        if dev is None:
            return False
        if g is None:
            g = _gate(dev)
        return g["timer"] is not None or bool(g["pending"]) or g["state"] not in RESTING

    def _step(self, slot: Slot) -> None:
        dev = slot.dev
        if dev is None:
            return
        slot.last_step_ms = self.now_ms()
        before = slot.gate_counts  # as the previous turn left them (decisions come in turns)
        try:
            dev.step(0)
        except PowerLost as e:
            self._lost_power(e)
            return
        except Exception as e:
            self._crash(slot, "the main loop", e)
            return
        g = slot.gate_snap = _gate(dev)
        counts = slot.gate_counts = g["counts"]
        if counts != before:
            for reason, n in counts.items():
                k = n - before.get(reason, 0)
                if k:
                    slot.counts[reason] = slot.counts.get(reason, 0) + k
                    if reason == reasons.ACCEPTED:
                        self._interval["passages"] += k
                        self._awaiting_open[slot.index] = slot.last_scan_ms
                    else:
                        self._interval["rejects"] += k
                        fraud = self._fraud_scan.get(slot.index)
                        if reason == "replayed" and fraud is not None and fraud[1] == "copier":
                            del self._fraud_scan[slot.index]
                            self.copies["replayed"] += 1
        shown = self._awaiting_open.get(slot.index)
        if shown is not None and slot.hw.barrier.is_open():
            del self._awaiting_open[slot.index]
            lat = self.now_ms() - shown
            self.latencies.append((self.now_ms() - self.t0_ms, lat))
            self._interval["lat"].append(lat)
        if slot.lane.queue and not self._in_use(slot):
            self._move_queue(slot)

    def _sample(self) -> None:
        tl = self.timeline
        tl["t_min"].append(round(self.elapsed_s() / 60.0, 2))
        iv = self._interval
        tl["passages"].append(iv["passages"])
        tl["rejects"].append(iv["rejects"])
        queues = [len(s.lane.queue) for s in self.slots]
        tl["queue_total"].append(sum(queues))
        tl["queue_max"].append(max(queues))
        pending = 0
        oldest = 0
        down = 0
        for s in self.slots:
            if s.dev is None:
                down += 1
                continue
            snap = s.dev.snapshot()
            n = snap["pending"]
            pending += n
            s.stats["max_pending"] = max(s.stats["max_pending"], n)
            if n:  # in true time: a gate's clock may be off
                since = self.monitor.committed_at.get(s.device_id, {}).get(snap["acked_seq"] + 1)
                if since is not None:
                    oldest = max(oldest, self.elapsed_s() - since)
        tl["pending_total"].append(pending)
        tl["oldest_unsynced_s"].append(oldest)
        lat = iv["lat"]  # None below: nobody was admitted in this interval
        tl["latency_p50_ms"].append(report.percentile(lat, 50) if lat else None)
        tl["latency_p95_ms"].append(report.percentile(lat, 95) if lat else None)
        tl["gates_down"].append(down)
        self._interval = {"passages": 0, "rejects": 0, "lat": []}
        # forget codes nobody can show any more (a screenshot is the oldest thing shown)
        cutoff = self.now_ms() - (int(self.sc["riders"]["screenshot_age_s"][1]) + 600) * 1000
        codes = self.population.codes
        while self._minted and self._minted[0][0] < cutoff:
            text = self._minted.popleft()[1]
            codes.pop(text, None)
            self._showing.pop(text, None)

    def _run_until(self, end_ms: int, stop: Any = None) -> None:
        """Turn the loop of every busy gate each `step_ms`, of an idle one each `idle_step_ms`,
        and jump the clock when no gate is busy.

        Whether a gate is busy is asked once per gate and kept (`known`) until something may
        have changed it: the gate itself was turned or its lane moved, a scheduled event ran
        (arrivals, sync messages, faults) or a rider queued at it (`_arrive` sets `_touched`).
        A gate nothing touched stays as it was, so the answers are those of asking every gate
        every turn, at a fraction of the cost (a line's 30 gates x ~400,000 turns)."""
        step = int(self.sc["step_ms"])
        idle = int(self.sc["idle_step_ms"])
        sched = self.sched
        slots = self.slots
        known: list[bool | None] = [None] * len(slots)  # busy? (None: ask again)
        while self.now_ms() < end_ms:
            if stop is not None and stop():
                return
            now = self.now_ms()
            busy = known[:]
            anything = False
            for s in slots:
                i = s.index
                if s.dev is None:
                    busy[i] = False
                    anything = anything or s.lane.busy
                    continue
                b = busy[i]
                if b is None:
                    b = busy[i] = known[i] = self._busy(s)
                anything = anything or b
            if anything:
                target = (now // step + 1) * step
            else:
                due = min(
                    (s.last_step_ms + idle for s in slots if s.dev is not None), default=end_ms
                )
                ev = sched.peek()
                target = min(due, end_ms if ev is None else ev, end_ms)
                target = max(((target + step - 1) // step) * step, now + step)
            while True:
                try:
                    self._touched = sched.run_due(target) > 0
                    break
                except PowerLost as e:  # inside a sync exchange or a boot
                    self._lost_power(e)
                    self._touched = True
            if self.now_ms() < target:
                self.clock.advance_ms(target - self.now_ms())
            for s in slots:
                i = s.index
                if s.dev is None:
                    if s.lane.busy:
                        s.lane.advance(step)
                        known[i] = None
                    continue
                if busy[i] or (self._touched and self._busy(s)):
                    s.lane.advance(step)
                    known[i] = self._stepped(s)
                elif target - s.last_step_ms >= idle:
                    known[i] = self._stepped(s)
            if self._touched:
                known = [None] * len(slots)

    def _stepped(self, s: Slot) -> bool | None:
        """Turn the gate's loop; whether it is busy after (None: ask again)."""
        s.gate_snap = None
        self._step(s)
        if s.dev is None or s.gate_snap is None:
            return None
        return self._busy(s, s.gate_snap)

    def _sampler(self) -> None:
        self._sample()
        if not self.recovering:
            self.sched.after(int(self.sc["sample_s"]) * 1000, self._sampler)

    def run(self) -> dict[str, Any]:
        wall0 = time.perf_counter()
        self._start_arrivals()
        self._plan_faults()
        if self.lan is not None:
            self.lan.plan(self.t0_ms, self.arrive_until_ms - self.t0_ms)
        for _t, version, accounts in self.deny.deltas:
            self.sched.at(
                self.t0_ms + (_t - self.start) * 1000,
                functools.partial(self._publish_deny, version, accounts),
            )
        self.sched.after(int(self.sc["sample_s"]) * 1000, self._sampler)
        if self.sc["risk"]["enabled"]:
            self.sched.after(int(self.sc["risk"]["scan_every_s"]) * 1000, self._risk_tick)
        self._run_until(self.end_ms)
        self._recover()
        self.wall_s = time.perf_counter() - wall0
        return self.finish()

    # -- recovery and the end ----------------------------------------------------------------
    def _recover(self) -> None:
        """Heal every fault, then let every gate sync until it holds nothing more."""
        self.recovering = True
        self._sample()
        self._outages = 0
        self._backoffice_back()
        self.net.heal_all()
        self.net.noise = False
        if self.lan is not None:
            self.lan.heal()
        for s in self.slots:
            s.armed += 1
            s.hw.disk.disarm()
            s.hw.disk.free_all()
            if s.hw.barrier.state == "jammed":
                s.hw.barrier.clear_jam()
            if s.dev is None:
                self._power_on(s)
        for s in self.slots:
            if s.session is None:
                self._schedule_sync(s, 1000 + 100 * s.index)
        target = self.deny.published
        self.recovery_ms = self.now_ms()

        def done() -> bool:
            for s in self.slots:
                if s.dev is None or s.session is not None or not s.recovered:
                    return False
                snap = s.dev.snapshot()
                if snap["pending"] or snap["deny_version"] < target:
                    return False
            return True

        self._run_until(self.now_ms() + RECOVERY_LIMIT_S * 1000, stop=done)
        self.recovered_at_s = self.elapsed_s()

    def finish(self) -> dict[str, Any]:
        pending = {}
        for s in self.slots:
            pending[s.index] = s.dev.snapshot()["pending"] if s.dev is not None else -1
        db = Store(self.db_path)  # a fresh reader of the file (no tampering, no cache)
        try:
            bo = self.monitor.check_backoffice(db, pending)
            held = db.count()
            anomalies = db.anomaly_counts()
            self.clearing = self._clear(db)
            self.settlement = self._settle(db)
        finally:
            db.close()
        out = report.build(self, bo, held, anomalies)
        for s in self.slots:
            if s.dev is not None:
                s.dev.close()
        self.store.close()
        return out

    def _clear(self, db: Store) -> dict[str, Any]:
        """Clearing through the back office's public entry point (the one call into it), then
        the money invariant against the commuters' true journeys."""
        tariff = self.sc["tariff"]
        as_of = self.clock.now()
        journeys = clearing.clear(db, tariff, as_of)
        held = [records.decode(raw) for _d, _s, raw in db.records()]
        for p in self.plans + self.walkin_plans:  # a step under way at the end: its codes
            if p.shown and p.next < len(p.steps) and p.steps[p.next].kind != "store":
                st = p.steps[p.next]
                account = (p.person or self.population.person("commuter", p.index)).account
                self._tap(p, account, st.kind, st.station, st.direction, as_of, False)
        self.truth.resolve(held)
        journeys = self.tamper.clearing(journeys, held)
        check = self.monitor.check_money(
            journeys, held, self.truth, tariff, as_of, int(fw_default("gate.value"))
        )
        return {"journeys": journeys, "check": check}

    def _settle(self, db: Store) -> dict[str, Any]:
        """Each issuer's statements, verified and reconciled, and the tampering operator
        (host_sim/station/settlement.py); the invariant judges what the issuers caught."""
        views: dict[int, dict[str, Any]] = {}
        for dev in sorted(self.monitor.committed_raw):
            for raw in self.monitor.committed_raw[dev].values():
                r = records.decode(raw)
                if r.kind == records.KIND_PASSAGE and (r.cred_no or r.counter):
                    v = views.setdefault(r.issuer, {"presentations": []})
                    v["presentations"].append([r.account_id, r.cred_no, r.counter, r.time])
        s = settlement.Settlement(
            db, self.log_signer, self.verifier, self.sc["tariff"], self.clock.now(),
            self.clock.now() * 1000, self.tamper.issuer_verify(statements.verify),
            self.operator.signer.public_key, self._device_certs(),
        )  # fmt: skip
        s.honest(views)
        s.tamper(int(self.sc["faults"]["tampering"]), demand.stream(self.seed, "tampering"), views)
        self.monitor.check_settlement(s.results)
        return {"statements": s.results}

    def _device_certs(self) -> dict[int, bytes]:
        """{device_id: the device certificate provisioning gave the gate} (gatedir.provision)."""
        out = {}
        for slot in self.slots:
            with open(os.path.join(slot.dir, "cert.bin"), "rb") as f:
                out[slot.device_id] = f.read()
        return out


def _gate(dev: Any) -> dict[str, Any]:
    """The gate's Gate.snapshot() (a station gate is always in service once opened): read every
    loop turn, so without the journal and list figures of Device.snapshot()."""
    return dev.gate.snapshot()
