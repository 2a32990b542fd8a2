"""One gate, composed from its state directory: what every entry point runs.

    dev = Device.open(state_dir, hw, clock, crypto=None, log=None)
    reply = dev.console.feed(data)            # the service console, on the service port
    dev.step(wait_s)                          # one turn of the gate loop (once in service)
    client = dev.sync_client(random_bytes)    # a SyncClient wired to the stores and the status
    dev.status()                              # what the gate is doing, for tests and reports
    dev.snapshot()                            # the cheap subset, as plain values, every turn
    dev.close()

firmware/compose/app.py runs it on a gate (and on `faregate sim device`); the station simulator runs
many. It composes the parts and re-implements none:

    part                     module (in firmware/)        in state_dir
    identity, what the       storage/device_store.py      factory.json, anchor.pub, device.key,
      technician installed                                cert.bin, config.json, *.bin, state.json
    the gate's clock         verify/timeanchor.py         anchor.bin (over hw.rtc, else `clock`)
    passage journal          storage/journal.py           seg-*.jn3, journal.meta{,.b}
    service log              storage/eventlog.py          service.log
    ride-code checks         verify/gatestate.py          trust.bin, deny/, replay.log
    update agent             maintenance/update_agent.py  device.json, boot.json, slot_a/, slot_b/
    service console          maintenance/console.py
    gate, loop, limits       gate/gate.py, gate/loop.py,  (built from config.json)
                             verify/limits.py
    station mesh (optional)  mesh/node.py, loaded only    (RAM; its socket: hw.mesh_link)
                             under mesh.enabled

`hw` is drivers/portable/wiring.Hardware or a simulator's object of the same shape (None: no
hardware, the console only). `clock` is the board's tick counter `.ticks_ms()` (default the
platform's) and, when `hw` has no `.rtc`, its real-time clock `.now()` (and `.set(t)`). The time
anchor over that RTC is the gate's clock for everything: codes, journal, console, sync, logs.

Storage: `hw.disk`, if it has one, is the storage object handed to every store (default the
real one, firmware/storage/fs.py), so a fault injected there reaches all of them.

Lifecycle: everything that moves it is in LIFECYCLE below (protocol.fsm, refusing any event
it has no row for), and its actions are the only place the gate is built or torn down. A
blank gate serves only the console; once claimed, it holds the validator (so the console can
load lists into it); once in service (certificate, config, trust list, clock, self-test:
ServiceConsole.missing() is empty, the guard "complete") and with a barrier, the gate loop
runs. The events are the opening of the directory and what the console (on_change) or sync
changed; docs/state-machines.md shows the table.

What flows by sync (protocol/messages.py kinds) and where it goes: trust lists and deny-list
deltas to the validator's stores, fare tables and config to the device store (a config
rebuilds the gate), the back office's time to the anchor (`set_trusted`), a firmware offer to
the update agent (staged, tried at the next boot: `reboot` becomes True). Status up: the
validator's, the update agent's, the limits and the journal's figures (`report()`).

Reading a gate (a technician's status, the station simulator): `status()` is the full report;
`snapshot()` is what can be read every loop turn without side effects (no clock read, no list
scan): in service or not, the gate's own `Gate.snapshot()` (state, pending-passage timer,
riders accepted but not through, decision counts, last machine step), the journal's figures
(pending, last_seq, acked_seq, torn_bytes_cut) and the list versions held (trust, deny).
`dev.gate.snapshot()` alone (`dev.gate` is None until in service) is the cheapest read.

A power cut is the Device dropped without close(); `Device.open` on the same directory then
finds everything committed: the journal cuts a torn tail, the stores replay their logs.
Rejects are journaled (KIND_REJECT) and uploaded like passages; the last quarter of the
journal is kept for passages (REJECT_RESERVE), so a flood of bad codes cannot shut the gate.
"""

import json
import os

from firmware import platform
from firmware import settings as schema
from firmware.compose import gate_config
from firmware.gate import modes
from firmware.gate.gate import Gate
from firmware.gate.loop import GateLoop
from firmware.maintenance.console import ServiceConsole
from firmware.maintenance.flash_service import FlashService
from firmware.maintenance.update_agent import ImageRefused, UpdateAgent
from firmware.storage.device_store import DeviceStore, Keys
from firmware.storage.eventlog import EventLog
from firmware.storage.fs import DISK
from firmware.storage.journal import Journal
from firmware.verify import gatestate
from firmware.verify.limits import LimitsConfig, OfflineLimits
from firmware.verify.timeanchor import TimeAnchor
from protocol import messages, service, trustlist
from protocol.errors import FormatError, UsageError
from protocol.fsm import OTHERWISE, SAME, Guarded, Machine
from protocol.records import DIR_ENTRY, DIR_EXIT

MODES = {"metro": modes.MODE_METRO, "parking": modes.MODE_PARKING, "store": modes.MODE_STORE}
MODES["bus"] = modes.MODE_BUS
DIRECTIONS = {"entry": DIR_ENTRY, "exit": DIR_EXIT, "both": DIR_ENTRY}  # "both": per reader
JOURNAL_CAPACITY = 100000
REJECT_RESERVE = JOURNAL_CAPACITY // 4
NOTICE_EVERY_MS = 1000
PEM_CERT = b"-----BEGIN CERTIFICATE-----"

# lifecycle states (protocol.service.STATE_NAMES), events and the table
CLOSED = "closed"  # before Device.open has looked at the directory
BLANK = service.STATE_NAMES[service.STATE_BLANK]
CLAIMED = service.STATE_NAMES[service.STATE_CLAIMED]
IN_SERVICE = service.STATE_NAMES[service.STATE_IN_SERVICE]
OPEN = "open"  # the directory was opened
CLAIM = "claim"  # the console installed an operator root
CONFIG = "config"  # a new config.json (console or sync): the validator and gate change
CHANGE = "change"  # anything else the console installed or set
RESET = "reset"  # factory reset by the console

_SERVE = ("build", "run")  # validator and limits, then the gate loop
_ENTER = _SERVE + ("sync_now",)  # entering service on site: the first sync right away
LIFECYCLE = {
    (CLOSED, OPEN): Guarded(
        ("blank", BLANK, ()), ("complete", IN_SERVICE, _SERVE), (OTHERWISE, CLAIMED, ("build",))
    ),
    (BLANK, CLAIM): Guarded(("complete", IN_SERVICE, _ENTER), (OTHERWISE, CLAIMED, ("build",))),
    (CLAIMED, CHANGE): Guarded(("complete", IN_SERVICE, _ENTER), (OTHERWISE, SAME, ())),
    (CLAIMED, CONFIG): Guarded(("complete", IN_SERVICE, _ENTER), (OTHERWISE, SAME, ("build",))),
    (CLAIMED, RESET): (BLANK, ("forget_lists", "close")),
    (IN_SERVICE, CHANGE): Guarded(("complete", SAME, ()), (OTHERWISE, CLAIMED, ("build",))),
    (IN_SERVICE, CONFIG): Guarded(("complete", SAME, _SERVE), (OTHERWISE, CLAIMED, ("build",))),
    (IN_SERVICE, RESET): (BLANK, ("forget_lists", "close")),
}
# what the console's on_change(what) is to the lifecycle
CONSOLE_EVENTS = {"claimed": CLAIM, "reset": RESET, "installed:config": CONFIG}
CONSOLE_EVENTS["installed:root_meta"] = CONFIG  # new role keys: rebuild the validator


def _quiet(_text: str) -> None:
    pass


class _Sink:
    """A sync sink (firmware/sync/client.py): `version()` held, `apply(version, data)`."""

    def __init__(self, version, apply):
        self.version = version
        self.apply = apply


def _check_tls(data: bytes) -> dict:
    if not bytes(data).startswith(PEM_CERT) or bytes(data).count(PEM_CERT) < 2:
        raise FormatError("not a PEM client certificate followed by the CA's", "svc_bad_blob")
    return {"bytes": len(data), "certificates": bytes(data).count(PEM_CERT)}


def gate_loop(
    hw,
    validator,
    journal,
    clock,
    mode: int = 0,
    direction: int = 0,
    station: int = 0,
    settings=None,
    limits=None,
    policy=None,
    ticks=None,
    bus=None,
    plates=None,
) -> GateLoop:
    """The gate and its loop over the devices of `hw` (drivers/portable/wiring.Hardware's shape):
    what a Device runs once in service, and what tests run on their own validator and journal.
    A bus validator (`bus`: the config's bus section) polls `hw.gnss` through bus.Position; a
    parking lane by plate (gate.plates) polls `hw.anpr` into `plates` (its PlateStore)."""
    barrier = getattr(hw, "barrier", None)
    if barrier is None and mode == modes.MODE_BUS:
        from firmware.gate.bus import NoBarrier

        barrier = NoBarrier()
    gate = Gate(
        validator,
        journal,
        barrier,
        getattr(hw, "display", None),
        clock,
        station=station,
        mode=mode,
        direction=direction,
        config=settings,
        policy=policy,
        limits=limits,
        indicator=getattr(hw, "indicator", None),
        ticks=ticks,
    )
    readers = getattr(hw, "readers", None)
    inputs = getattr(hw, "inputs", None)
    loop = GateLoop(
        gate,
        readers() if readers else (),
        beams=getattr(hw, "beams", None),
        loops=getattr(hw, "loops", None),
        inputs=inputs() if inputs else (),
    )
    if mode == modes.MODE_BUS:
        from firmware.gate import bus as _bus

        loop.pollers.append(_bus.position_for(gate, getattr(hw, "gnss", None), bus or {}))
    if plates is not None and gate.config["plates"]:
        from firmware.gate.plates import PlateLane

        loop.pollers.append(PlateLane(gate, plates, getattr(hw, "anpr", None)))
    if mode == modes.MODE_STORE and getattr(hw, "basket", None) is not None:
        from firmware.gate.baskets import Baskets

        loop.pollers.append(Baskets(gate, hw.basket))
    return loop


def store_alarms(v) -> list:
    """The damage the validator's stores found (docs/sync-protocol.md, "Replay, deny and anchor
    stores"), as alarm names for the STATUS a technician and the back office read."""
    out = []
    replay = v.replay.status()
    if replay.get("damaged_records"):
        out.append("replay_damaged")
    if replay.get("write_errors"):
        out.append("replay_write_failed")
    if getattr(v.deny, "damaged", False):
        out.append("deny_damaged")
    if getattr(v.clock, "damaged", False):
        out.append("anchor_damaged")
    if getattr(v.clock, "write_errors", 0):
        out.append("anchor_write_failed")
    return out


class Device:
    @classmethod
    def open(
        cls,
        state_dir: str,
        hw,
        clock,
        crypto=None,
        log=None,
        rng=None,
        slot=None,
        device=None,
        key=None,
    ):
        """`crypto`: the signature backend (default firmware.platform.crypto()); `rng(n)`:
        random bytes (default os.urandom); `slot`: the running A/B slot and `device` the
        gate's device.json (firmware/maintenance/boot.py; default: read it, if there is one);
        `key`: the device key's holder (firmware/storage/device_store.py; default: the
        owner-only file device.key)."""
        return cls(state_dir, hw, clock, crypto, log, rng, slot, device, key)

    def __init__(
        self,
        state_dir,
        hw,
        clock,
        crypto=None,
        log=None,
        rng=None,
        slot=None,
        device=None,
        key=None,
    ):
        self.dir = state_dir
        self.mesh = None  # the station mesh's node (firmware/mesh/node.py) when mesh.enabled
        self.hw = hw
        self.log = log or _quiet
        self.backend = crypto or platform.crypto()
        self.verifier = self.backend.verifier()
        self.rng = rng or os.urandom
        self.fs = getattr(hw, "disk", None) or DISK  # the one storage object of every store
        self.ticks = getattr(clock, "ticks_ms", None) or platform.ticks_ms
        self.store = DeviceStore(state_dir, Keys(self.backend, self.rng), fs=self.fs, key=key)
        self.device_id = self.store.device_id
        rtc = getattr(hw, "rtc", None) or clock
        self.events = None
        self._clock_alarms: list = []  # raised while the anchor opened, before the service log
        self._alarms_logged: list = []  # store alarms already in the service log (this boot)
        self.clock = TimeAnchor(
            rtc,
            state_dir + "/" + gatestate.ANCHOR,
            ticks_ms=self.ticks,
            fs=self.fs,
            on_flag=self._clock_flagged,
        )
        self.events = EventLog(state_dir, self.clock, fs=self.fs)
        for reason in self._clock_alarms:
            self._clock_flagged(reason)
        cfg = gate_config.stored(self.store)  # the buffers it sizes are needed before the console
        self.journal = Journal(
            state_dir,
            self.device_id,
            JOURNAL_CAPACITY,
            reject_reserve=REJECT_RESERVE,
            fs=self.fs,
            read_records=gate_config.get(cfg, "buffers.journal_read"),
        )
        health = self.journal.report()
        if health["state"] != "ok":  # the gate still boots: the console is how it is mended
            self.log("device: journal %s: %s" % (health["state"], self._journal_health()))
            self.events.add("journal_damaged", self._journal_health())
        if device is None:
            info = self.fs.read_file(state_dir + "/device.json")
            device = json.loads(info) if info is not None else None
        self.agent = None
        if device is not None:
            self.agent = UpdateAgent(state_dir, self.verifier, device, slot, fs=self.fs)
        flasher = None
        if self.agent is not None:
            flasher = FlashService(
                self.agent,
                max_chunk=gate_config.get(cfg, "buffers.flash_chunk"),
                window=gate_config.get(cfg, "buffers.flash_window"),
            )
        self.console = ServiceConsole(
            self.store,
            self.journal,
            self.clock,
            hw,
            self.verifier,
            self.rng,
            self.events,
            loaders={
                service.BLOB_TRUST: self._load_trust,
                service.BLOB_DENY: self._load_deny,
                service.BLOB_TLS: _check_tls,
                service.BLOB_ROOT: self._roles("install_root"),
                service.BLOB_RELEASE: self._roles("load_release"),
            },
            ticks_ms=self.ticks,
            flash_service=flasher,
            on_change=self._changed,
            gate_status=self.report,
            sync_status=lambda: self.sync() if self.sync is not None else None,
        )
        if self.store.root() is not None:
            self._roles("release_keys")()
        self.reboot = False  # a firmware offer is staged: restart into its trial
        # the lifecycle's sync_now (entering service): the app's Syncer starts a session at
        # once and clears it; `sync` is the Syncer's account of its sessions (app.Syncer.state)
        # for the console's status, None while nothing syncs
        self.sync_wanted = False
        self.sync = None
        self.validator = None
        self.limits = None
        self.plates = None  # a parking lane by plate's PlateStore (gate.plates)
        self.gate = None
        self.loop = None
        self._notice = None
        self._notice_at = 0
        self.lifecycle = Machine(
            LIFECYCLE,
            CLOSED,
            log_size=16,
            refuse=True,
            guards={
                "blank": lambda: self.store.anchor() is None,
                "complete": lambda: not self.console.missing(),
            },
        )
        self._actions = {
            "build": self._build,
            "run": self._run,
            "close": self._close_service,
            "forget_lists": lambda: gatestate.forget_lists(self.dir, self.fs),
            "sync_now": self._sync_now,
        }
        self._fire(OPEN)

    def _fire(self, event: str) -> None:
        """Step the lifecycle and run its actions: the only place the gate is (re)built."""
        for name in self.lifecycle.step(event):
            self._actions[name]()
        self._size_buffers()

    def _size_buffers(self) -> None:
        """The console's frames, the journal's reads and flashing as the config in force sets
        them (buffers.*)."""
        cfg = self.console.config
        self.console.resize()
        self.journal.read_records = gate_config.get(cfg, "buffers.journal_read")
        fl = self.console.flash_service
        if fl is not None:
            fl.max_chunk = gate_config.get(cfg, "buffers.flash_chunk")
            fl.window = gate_config.get(cfg, "buffers.flash_window")

    # -- composition ---------------------------------------------------------------------
    def _hw(self, name: str, default=None):
        return getattr(self.hw, name, default) if self.hw is not None else default

    def _build(self) -> None:
        """(Re)build the validator and limits from what the directory holds now (claimed)."""
        self._close_service()
        anchor = self.store.anchor()
        cfg = self.console.config
        self.clock.ahead_tolerance_s = gate_config.get(cfg, "clock.ahead_tolerance_s")
        self.validator = gatestate.open_validator(
            self.dir,
            self.verifier,
            roots=self._list_keys(anchor),
            lists=self.store.lists_signers(),
            config=gatestate.config_from_gate_config(cfg or {}),
            clock=self.clock,
            fs=self.fs,
        )
        for alarm in store_alarms(self.validator):
            if alarm not in self._alarms_logged:  # once per boot, in the service log too
                self._alarms_logged.append(alarm)
                self.log("device: store alarm %s" % alarm)
                self.events.add("store_alarm", {"alarm": alarm})
        self.limits = OfflineLimits(schema.build(LimitsConfig, cfg))
        self.limits.load(self.journal)
        self.journal.listeners.append(self.limits)
        self.plates = None
        if cfg and cfg.get("mode") == "parking" and gate_config.get(cfg, "gate.plates"):
            from firmware.verify import platestore

            lists = self.store.lists_signers()
            self.plates = platestore.open_store(self.dir, lists, self.verifier, cfg, self.fs)

    def _run(self) -> None:
        """The gate loop over the validator `_build` made (in service)."""
        cfg = self.console.config
        if self._hw("barrier") is None and cfg["mode"] != "bus":
            self.log("device: in service but no barrier is wired: the gate loop does not run")
            return
        self.loop = gate_loop(
            self.hw,
            self.validator,
            self.journal,
            self.clock,
            mode=MODES[cfg["mode"]],
            direction=DIRECTIONS[cfg["direction"]],
            station=cfg["station"],
            settings=schema.section("gate", cfg),
            limits=self.limits,
            ticks=self.ticks,
            bus=schema.section("bus", cfg),
            plates=self.plates,
        )
        self.loop.on_decision = self._logged
        self.gate = self.loop.gate
        self.gate.notice = self.validator.notice
        restored = self.gate.restore()
        if "mesh.enabled" in schema.ROWS and gate_config.get(cfg, "mesh.enabled"):
            # loaded only then (an MCU gate has no mesh settings: firmware/mesh/schema.py)
            from firmware.mesh import node

            self.mesh = node.attach(self, cfg)
        self._notice = self.validator.notice(self.clock.now())
        self.gate.show_idle()
        self.log(
            "device: gate %d in service: %s %s, station %d; %d unsynced records, %d restored"
            % (
                self.device_id,
                cfg["mode"],
                cfg["direction"],
                cfg["station"],
                self.journal.pending_count(),
                restored,
            )
        )

    def _sync_time(self, t: int) -> None:
        """The back office's time: trusted; technicians may nudge it by clock.set_bound_s again."""
        self.clock.set_trusted(t)
        if self.store.flags.get("clock_nudged"):
            self.store.set_flag("clock_nudged", 0)

    def _clock_flagged(self, reason: str) -> None:
        """The time anchor stopped trusting the RTC: tell technicians (console log, service
        log); status and sync report it from then on."""
        if self.events is None:
            self._clock_alarms.append(reason)
            return
        self.log("device: clock not trusted: %s" % reason)
        self.events.add("clock_untrusted", {"reason": reason, "rtc_ahead": self.clock.rtc_ahead})

    def _logged(self, d) -> None:
        who = " account %d" % d.code.credential.account_id if d.code is not None else ""
        self.log("gate: %s%s" % (d.reason, who))

    def _close_service(self) -> None:
        if self.mesh is not None:
            self.mesh = self.mesh.detach(self.journal)
        if self.gate is not None and self.gate.state != modes.IDLE:
            self.gate.barrier.close()  # taken out of service mid-passage: fail secure
        if self.limits is not None and self.limits in self.journal.listeners:
            self.journal.listeners.remove(self.limits)
        if self.validator is not None:
            self.validator.replay.close()
            self.validator.deny.close()
        self.validator = self.limits = self.gate = self.loop = None

    def _changed(self, what: str) -> None:
        """The console changed something (firmware/maintenance/console.py on_change). A reset
        also forgets the lists' state: the next operator's lists start afresh."""
        self._fire(CONSOLE_EVENTS.get(what, CHANGE))

    # -- roles (protocol/rootmeta.py: who signs what) ------------------------------------
    def _list_keys(self, anchor) -> dict:
        """The keys trust lists must be signed by, by their root key id (deny and plate lists:
        DeviceStore.lists_signers, the lists role with its threshold)."""
        return {trustlist.root_key_id(k): k for k in self.store.role_keys("lists")}

    def _roles(self, name: str):
        """firmware/compose/roles.py's `name`(self, data), loaded only when a blob of the
        roles arrives (an MCU gate that never gets one does not carry it)."""

        def call(*args):
            from firmware.compose import roles

            return getattr(roles, name)(self, *args)

        return call

    # -- the console's loaders -----------------------------------------------------------
    def _validator(self):
        if self.validator is None:
            raise FormatError("the gate has no operator root yet", "svc_not_provisioned")
        return self.validator

    def _load_trust(self, data: bytes) -> dict:
        trust = self._validator().trust
        trust.install(data)
        self._notice_at = -NOTICE_EVERY_MS  # the idle display may change
        tl = trust.list
        return {"version": tl.version, "valid_until": tl.valid_until, "keys": sorted(trust.keys)}

    def _load_deny(self, data: bytes) -> dict:
        deny = self._validator().deny
        deny.install(data)
        return {"version": deny.version, "entries": len(deny)}

    # -- running -------------------------------------------------------------------------
    def step(self, wait_s: float = 0.0) -> bool:
        """One turn of the gate loop (waits up to wait_s for a scan). False when the gate is
        not in service (nothing ran)."""
        if self.loop is None:
            return False
        self.loop.step(wait_s)
        if self.mesh is not None:  # after the scan: an acceptance goes out this turn
            self.mesh.poll()
        now_ms = self.ticks()
        if platform.ticks_diff(now_ms, self._notice_at) >= NOTICE_EVERY_MS:
            self._notice_at = now_ms
            line = self.validator.notice(self.clock.now())
            if line != self._notice:
                self._notice = line
                self.gate.show_idle()
        return True

    @property
    def in_service(self) -> bool:
        return self.loop is not None

    # -- sync ----------------------------------------------------------------------------
    def host_key(self):
        """The operator's sync public key: the sync role's keys of the root metadata held (a
        list), else the config's sync.host_key, or None."""
        if self.store.root() is not None:
            return self.store.role_keys("sync")
        key = gate_config.get(self.console.config, "sync.host_key")
        return bytes.fromhex(key) if key else None

    def sync_client(self, random_bytes=None, batch_size=None, window=None):
        """batch_size, window: default to the config's sync.batch_records and sync.window."""
        cfg = self.console.config
        if batch_size is None:
            batch_size = gate_config.get(cfg, "sync.batch_records")
        if window is None:
            window = gate_config.get(cfg, "sync.window")
        host = self.host_key()
        signer = self.store.signer()
        if signer is None and self.store.key_error is not None:
            raise self.store.key_error  # the token is missing or refuses its PIN: say so
        if self.validator is None or host is None or signer is None:
            raise UsageError(
                "gate %d cannot sync yet: it needs an operator root, its device key and "
                "sync.host_key in its config (faregate provision)" % self.device_id,
                "not_provisioned",
            )
        sinks = {
            messages.KIND_TRUST_LIST: _Sink(self._trust_version, self._synced_trust),
            messages.KIND_DENY_DELTA: _Sink(self._deny_version, self._synced_deny),
            messages.KIND_CONFIG: _Sink(self._flag("config_version"), self._synced_config),
            messages.KIND_FARE_TABLE: _Sink(self._flag("fares_version"), self._synced_fares),
            messages.KIND_ROOT: _Sink(self.store.root_version, self._roles("synced_root")),
        }
        if self.plates is not None:
            sinks[messages.KIND_PLATE_DELTA] = _Sink(self.plates.synced, self.plates.apply)
        if self.agent is not None:
            sinks[messages.KIND_FIRMWARE] = _Sink(
                self._flag("firmware_offer"), self._synced_firmware
            )
        # the sync protocol's code (firmware/sync/client.py, protocol/sync.py: ~28 KB of an MCU
        # gate's heap) loads with the first session, not at boot (docs/mcu.md)
        from firmware.sync.client import SyncClient

        return SyncClient(
            self.journal,
            signer,
            self.verifier,
            host,
            self.clock,
            limits=self.limits,
            sinks=sinks,
            on_time=self._sync_time,
            batch_size=batch_size,
            window=window,
            blob_chunk=gate_config.get(cfg, "sync.blob_chunk"),
            random_bytes=random_bytes or self.rng,
            counters=self.report(),
        )

    def _sync_now(self) -> None:
        self.sync_wanted = True

    def _flag(self, name: str):
        return lambda: self.store.flags.get(name, 0)

    def _trust_version(self) -> int:
        tl = self.validator.trust.list if self.validator is not None else None
        return tl.version if tl is not None else 0

    def _deny_version(self) -> int:
        return self.validator.deny.version if self.validator is not None else 0

    def _synced_trust(self, _version: int, data: bytes) -> None:
        self._load_trust(data)

    def _synced_deny(self, _version: int, data: bytes) -> None:
        self._load_deny(data)

    def _synced_config(self, version: int, data: bytes) -> None:
        # FormatError: refused, kept the old one (a security change needs the root's signature)
        self.console.config = self._roles("synced_config")(version, data)
        self.log("device: config version %d from the back office" % version)
        self._fire(CONFIG)

    def _synced_fares(self, version: int, data: bytes) -> None:
        self.store.write_blob(service.BLOB_FARES, data)
        self.store.set_flag("fares_version", version)

    def _synced_firmware(self, version: int, data: bytes) -> None:
        self.store.set_flag("firmware_offer", version)  # one try per offer, whatever happens
        try:
            summary = self.agent.stage(data)
            self.agent.request_test()
        except ImageRefused as e:
            self.log("device: firmware offer %d refused: %s (%s)" % (version, e, e.reason))
            raise
        self.reboot = True
        self.log(
            "device: firmware %s staged from the back office for a trial boot" % summary["version"]
        )

    # -- reporting -----------------------------------------------------------------------
    def report(self) -> dict:
        """A compact status: what sync sends up (STATUS) and the console's STATUS shows."""
        now = self.clock.now()
        out: dict = {
            "state": service.STATE_NAMES[self.console.lifecycle()],
            "mode_state": self.gate.state if self.gate is not None else None,
            "counts": dict(self.gate.counts) if self.gate is not None else {},
            "journal": {
                "pending": self.journal.pending_count(),
                "last_seq": self.journal.last_seq,
                "capacity": self.journal.capacity,
                "rejects_not_journaled": self.journal.rejects_not_journaled,
                "torn_bytes_cut": self.journal.torn_bytes_cut,
            },
        }
        out["journal"].update(self._journal_health())
        v = self.validator
        if v is not None:
            st = v.status(now)
            trust = st["trust"]
            out["trust"] = {k: trust[k] for k in ("version", "valid_until", "state", "policy")}
            deny = st["deny"]
            out["deny"] = {k: deny[k] for k in ("version", "entries", "valid_until", "state")}
            clock = st["clock"]
            out["clock"] = {
                k: clock[k] for k in ("untrusted", "reason", "last_good", "rtc_ahead", "rtc_lead_s")
            }
            out["notice"] = st["notice"]
            alarms = store_alarms(v)
            if alarms:
                out["alarms"] = alarms
        if self.limits is not None:
            out["limits"] = self.limits.status(now)
        if self.mesh is not None:
            out["mesh"] = self.mesh.status()
        if self.agent is not None:
            a = self.agent.status()
            out["image"] = {k: a[k] for k in ("slot", "version", "counter", "trial", "last")}
        return out

    def _journal_health(self) -> dict:
        """What the journal found when it opened (firmware/storage/journal.py report)."""
        rep = self.journal.report()
        keys = ("state", "mended", "lost_acked", "lost_unacked", "holes", "meta")
        return {k: rep[k] for k in keys}

    def status(self) -> dict:
        now = self.clock.now()
        v = self.validator
        out = self.report()
        out.update(
            {
                "device_id": self.device_id,
                "time": now,
                "pending": self.journal.pending_count(),
                "last_seq": self.journal.last_seq,
                "acked_seq": self.journal.acked_seq,
                "oldest_unsynced_age_s": out.get("limits", {}).get("oldest_age_s", 0),
                "trust_version": self._trust_version(),
                "deny_version": self._deny_version(),
                "clock_untrusted": self.clock.untrusted,
                "validator": v.status(now) if v is not None else None,
                "read_errors": self.loop.read_errors if self.loop is not None else 0,
            }
        )
        return out

    def snapshot(self) -> dict:
        """Plain values, read without side effects (the module docstring lists them)."""
        j = self.journal
        return {
            "in_service": self.loop is not None,
            "gate": self.gate.snapshot() if self.gate is not None else None,
            "pending": j.pending_count(),
            "last_seq": j.last_seq,
            "acked_seq": j.acked_seq,
            "torn_bytes_cut": j.torn_bytes_cut,
            "trust_version": self._trust_version(),
            "deny_version": self._deny_version(),
        }

    def close(self) -> None:
        self._close_service()
        self.journal.close()
