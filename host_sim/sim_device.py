"""One simulated gate whose service console is on a pseudo-terminal (`faregate sim device`).

The gate runs the real firmware console (firmware.service) over the real framing; the laptop's
tools open the pty's path through pyserial exactly as they open /dev/ttyUSB0. Its state
directory persists like a real gate's flash: stop it, start it again with the same --state,
and it is the same gate (same device id, key, config, journal).

Simulated hardware: an RTC that reads 2000-01-01 until set (persisted in rtc.json), a QR engine
on its own pty read through drivers.qrengine_serial (the "technician" holds the test card up
whenever the self-test reads it), a barrier with position feedback and two passage beams.
The faults (FAULTS) are described in host_sim/sim_device_cli.py, which runs this.
"""

import json
import os
import select
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from drivers import crypto_openssl as es256
from drivers.qrengine_serial import SerialQREngine
from firmware import platform
from firmware.device_store import DeviceStore
from firmware.eventlog import EventLog
from firmware.journal import Journal
from firmware.service import ServiceConsole
from host_sim.hardware import PtyQREngine
from protocol import records, service
from provisioning.operator_keys import Signer

RTC_RESET_TIME = 946684800  # 2000-01-01T00:00:00Z: what an RTC reads after losing power
FAULTS = ("mute", "unplug-after", "barrier-jam", "beam-blocked", "no-test-card")
TEST_CARD = "FGTEST:sim-card-1"


class DeviceKeys:
    """The Linux gate's key backend: a P-256 secret on the gate's storage (cryptography)."""

    def generate(self) -> bytes:
        return int(es256.generate_key().private_numbers().private_value).to_bytes(32, "big")

    def signer(self, secret: bytes) -> Signer:
        return Signer(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))


class SimRTC:
    """A battery-backed clock: reads RTC_RESET_TIME + uptime until a technician sets it."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "rtc.json")
        raw = platform.read_file(self.path)
        if raw:
            self.offset = int(json.loads(raw)["offset"])
        else:
            self.offset = RTC_RESET_TIME - int(time.time())

    def now(self) -> int:
        return int(time.time()) + self.offset

    def set(self, t: int) -> None:
        self.offset = t - int(time.time())
        platform.write_atomic(self.path, json.dumps({"offset": self.offset}).encode())


class SimBarrier:
    def __init__(self, jammed: bool = False) -> None:
        self.jammed = jammed
        self.position_open = False
        self.openings = 0

    def open(self) -> None:
        if not self.jammed:
            self.position_open = True
            self.openings += 1

    def close(self) -> None:
        if not self.jammed:
            self.position_open = False

    def is_open(self) -> bool:
        return self.position_open


class SimBeam:
    def __init__(self, name: str, blocked: bool = False) -> None:
        self.name = name
        self._blocked = blocked

    def blocked(self) -> bool:
        return self._blocked


class SimScanner:
    """A QR engine on a pty, read through pyserial like a real one."""

    def __init__(self, card: str | None) -> None:
        self.engine = PtyQREngine()
        self.reader = SerialQREngine(self.engine.path)
        self.card = card

    def read(self, timeout_s: float) -> str | None:
        if self.card:
            self.engine.show(self.card)  # the technician holds the test card up
        return self.reader.read(timeout_s)

    def close(self) -> None:
        self.reader.close()
        self.engine.close()


class SimHardware:
    def __init__(self, faults: dict[str, int]) -> None:
        self.scanner = SimScanner(None if "no-test-card" in faults else TEST_CARD)
        self.barrier = SimBarrier(jammed="barrier-jam" in faults)
        self.sensors = [SimBeam("beam-in", "beam-blocked" in faults), SimBeam("beam-out")]


def parse_faults(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in FAULTS:
            raise ValueError("unknown fault %r (known: %s)" % (item, ", ".join(FAULTS)))
        if name == "unplug-after":
            if not value.isdigit() or int(value) < 1:
                raise ValueError("unplug-after needs a count: unplug-after=3")
        out[name] = int(value) if value else 1
    return out


def init_state(directory: str, device_id: int | None, rng: Any = os.urandom) -> int:
    """Make `directory` a gate's flash if it is not one yet; return its device id."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "factory.json")
    raw = platform.read_file(path)
    if raw:
        have = int(json.loads(raw)["device_id"])
        if device_id is not None and device_id != have:
            raise ValueError(
                "%s is already gate %d (not %d): use another --state" % (directory, have, device_id)
            )
        return have
    if device_id is None:
        device_id = 1000 + int.from_bytes(rng(2), "big") % 9000
    factory = {"device_id": device_id, "model": "faregate-sim", "firmware": "0.1.0"}
    platform.write_atomic(path, json.dumps(factory).encode())
    return device_id


class SimDevice:
    def __init__(
        self,
        state: str,
        device_id: int | None = None,
        faults: dict[str, int] | None = None,
        link_dir: str | None = None,
    ) -> None:
        self.faults = faults or {}
        self.device_id = init_state(state, device_id)
        self.clock = SimRTC(state)
        self.hw = SimHardware(self.faults)
        self.journal = Journal(state, self.device_id)
        self.log = EventLog(state, self.clock)
        self.console = ServiceConsole(
            DeviceStore(state, DeviceKeys()),
            self.journal,
            self.clock,
            self.hw,
            es256.OpenSSLVerifier(),
            os.urandom,
            self.log,
        )
        self.commands = 0
        inner = self.console.handle

        def handle(ftype: int, payload: bytes) -> bytes:
            out = inner(ftype, payload)
            if ftype == service.REQUEST:
                self.commands += 1
                if self.commands == self.faults.get("unplug-after"):
                    os._exit(0)  # the cable is pulled: no answer, no cleanup
            return out

        self.console.handle = handle  # type: ignore[method-assign]
        self.pty = PtyQREngine()
        self.path = self.pty.path
        self.link = ""
        if link_dir:
            os.makedirs(link_dir, exist_ok=True)
            self.link = os.path.join(link_dir, "gate-%d-%d" % (self.device_id, os.getpid()))
            os.symlink(self.path, self.link)

    def add_passages(self, n: int) -> None:
        """Riders who passed since the last sync: n journaled passages."""
        for i in range(n):
            rec = records.Record(records.KIND_PASSAGE, 0, 0, 0, self.clock.now(), account_id=i + 1)
            self.journal.append(rec)

    def step(self, timeout: float) -> bytes:
        """Serve what arrived within `timeout` seconds; return the bytes answered."""
        ready, _, _ = select.select([self.pty.master], [], [], timeout)
        if not ready:
            return b""
        data = os.read(self.pty.master, 65536)
        if "mute" in self.faults:
            return b""
        out = self.console.feed(data)
        if out:
            self.pty.write(out)
        return out

    def close(self) -> None:
        if self.link:
            try:
                os.remove(self.link)
            except OSError:
                pass
        self.pty.close()
        self.hw.scanner.close()
        self.journal.close()
