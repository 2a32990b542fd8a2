"""One simulated gate composed from its state directory: the stand-in for firmware/device.py.

firmware/device.py (being written in parallel) will be the one composition of a gate that
every entry point uses. Until it lands, the station simulator opens each gate with this
module, which has the same shape, so the switch is one import:

    provision(state_dir, ...)                    # what a technician leaves on a gate
    dev = InterimDevice.open(state_dir, hw, clock)
    dev.step(0)                                  # one turn of the gate's main loop
    client = dev.sync_client(random_bytes=...)   # a SyncClient wired to the lists and the clock
    dev.status()                                 # pending records, list versions, clock
    dev.close()

A power cut is `del dev` without close(), then `InterimDevice.open` on the same directory.
Everything durable is in the directory; everything in memory (pending authorizations, the
anti-passback table, timers) is rebuilt or lost, as on a real gate.
"""

import json
import os
from typing import Any

from drivers import crypto_openssl
from firmware import gate_config, modes, platform
from firmware.denystore import DenyStore
from firmware.gate import Gate
from firmware.gatestate import config_from_gate_config, write_setup
from firmware.journal import Journal
from firmware.limits import LimitsConfig, OfflineLimits
from firmware.loop import GateLoop
from firmware.rejectlog import RejectLog
from firmware.replay import ReplayCache
from firmware.sync_client import SyncClient
from firmware.timeanchor import TimeAnchor
from firmware.truststore import TrustStore
from firmware.validator import Validator
from protocol import messages as m

MODES = {"metro": modes.MODE_METRO, "parking": modes.MODE_PARKING, "store": modes.MODE_STORE}
DIRECTIONS = {"entry": 1, "exit": 2, "both": 1}


def provision(
    state_dir: str,
    device_id: int,
    device_secret: bytes,
    root_pub: bytes,
    host_pub: bytes,
    config: dict[str, Any],
    settings: dict[str, Any],
    trust_list: bytes,
    deny_list: bytes,
) -> None:
    """Write what provisioning leaves on a gate (firmware/device_store.py's files) and install
    the first trust and deny lists. `config` is a gate config (firmware/gate_config.py);
    `settings` the mode timings (firmware/modes.py DEFAULTS)."""
    os.makedirs(state_dir, exist_ok=True)
    gate_config.validate(config, device_id)
    put = platform.write_atomic
    put(state_dir + "/factory.json", json.dumps({"device_id": device_id}).encode())
    put(state_dir + "/device.key", bytes(device_secret))
    put(state_dir + "/anchor.pub", bytes(root_pub))
    put(state_dir + "/sync_host.pub", bytes(host_pub))
    put(state_dir + "/config.json", json.dumps(config, sort_keys=True).encode())
    put(state_dir + "/modes.json", json.dumps(settings, sort_keys=True).encode())
    verifier = crypto_openssl.verifier()
    roots = {1: bytes(root_pub)}
    write_setup(state_dir, roots, config_from_gate_config(config))
    TrustStore(roots, verifier, state_dir + "/trust.bin").install(trust_list)
    os.makedirs(state_dir + "/deny", exist_ok=True)
    DenyStore(state_dir + "/deny", roots, verifier).install(deny_list)


def _json(path: str) -> Any:
    return json.loads(platform.read_file(path))


class _ListSink:
    """A sync sink (version(), apply(version, data)) over a trust or deny store."""

    def __init__(self, store: Any, version: Any) -> None:
        self.store = store
        self._version = version

    def version(self) -> int:
        return int(self._version())

    def apply(self, version: int, data: bytes) -> None:
        self.store.install(data)


class InterimDevice:
    @classmethod
    def open(
        cls, state_dir: str, hw: Any, clock: Any, crypto: Any = None, log: Any = None
    ) -> "InterimDevice":
        return cls(state_dir, hw, clock, crypto, log)

    def __init__(self, state_dir: str, hw: Any, clock: Any, crypto: Any, log: Any) -> None:
        crypto = crypto or crypto_openssl
        self.dir = state_dir
        self.hw = hw
        self.clock = clock
        self.log = log
        self.device_id = int(_json(state_dir + "/factory.json")["device_id"])
        self.config = _json(state_dir + "/config.json")
        settings = _json(state_dir + "/modes.json")
        self.verifier = crypto.verifier()
        self.signer = crypto.signer(platform.read_file(state_dir + "/device.key"))
        self.host_pub = platform.read_file(state_dir + "/sync_host.pub")
        roots = {1: platform.read_file(state_dir + "/anchor.pub")}
        vconfig = config_from_gate_config(self.config)
        disk = hw.disk
        self.anchor = TimeAnchor(
            hw.rtc, state_dir + "/anchor.bin", ticks_ms=clock.ticks_ms, sync=disk.sync_file
        )
        trust = TrustStore(roots, self.verifier, state_dir + "/trust.bin")
        deny = DenyStore(state_dir + "/deny", roots, self.verifier, sync=disk.sync_file)
        replay = ReplayCache(
            state_dir + "/replay.log", vconfig.window_s + vconfig.skew_s, sync=disk.sync_file
        )
        self.validator = Validator(
            self.verifier,
            trust,
            deny,
            vconfig,
            replay,
            self.anchor,
            RejectLog(state_dir, sync=disk.sync_file),
        )
        jdir = state_dir + "/journal"
        if not platform.path_exists(jdir):
            os.mkdir(jdir)
        self.journal = Journal(jdir, self.device_id, fs=disk, reject_reserve=100)
        self.limits = OfflineLimits(
            LimitsConfig(
                max_unsynced=int(
                    gate_config.get(self.config, "limits.max_unsynced_count") or 20000
                ),
                max_age_s=int(gate_config.get(self.config, "limits.max_unsynced_age_s") or 259200),
                policy=gate_config.get(self.config, "limits.at_limit") or "refuse",
            )
        )
        self.limits.load(self.journal)
        mode = MODES[self.config["mode"]]
        self.gate = Gate(
            self.validator,
            self.journal,
            hw.barrier,
            hw.display,
            self.anchor,
            station=int(self.config["station"]),
            mode=mode,
            direction=DIRECTIONS[self.config["direction"]],
            config=settings,
            limits=self.limits,
            indicator=hw.indicator,
            ticks=clock.ticks_ms,
        )
        self.gate.restore()
        self.loop = GateLoop(
            self.gate,
            hw.readers(),
            beams=hw.beams,
            loops=hw.loops,
            inputs=hw.inputs(),
        )

    def step(self, wait_s: float = 0.0) -> None:
        self.loop.step(wait_s)

    def sync_client(self, random_bytes: Any, batch_size: int = 1000) -> SyncClient:
        v = self.validator
        sinks = {
            m.KIND_TRUST_LIST: _ListSink(
                v.trust, lambda: v.trust.list.version if v.trust.list else 0
            ),
            m.KIND_DENY_DELTA: _ListSink(v.deny, lambda: v.deny.version),
        }
        return SyncClient(
            self.journal,
            self.signer,
            self.verifier,
            self.host_pub,
            self.anchor,
            limits=self.limits,
            sinks=sinks,
            on_time=self.anchor.set_trusted,
            batch_size=batch_size,
            random_bytes=random_bytes,
            counters=dict(sorted(self.gate.counts.items())),
        )

    def status(self) -> dict[str, Any]:
        now = self.anchor.now()
        lim = self.limits.status(now)
        return {
            "device_id": self.device_id,
            "state": self.gate.state,
            "time": now,
            "pending": self.journal.pending_count(),
            "last_seq": self.journal.last_seq,
            "oldest_unsynced_age_s": lim["oldest_age_s"],
            "deny_version": self.validator.deny.version,
            "trust_version": self.validator.trust.list.version if self.validator.trust.list else 0,
            "clock_untrusted": self.anchor.untrusted,
        }

    def close(self) -> None:
        self.journal.close()
        self.validator.replay.close()
        if self.validator.audit is not None:
            self.validator.audit.close()
