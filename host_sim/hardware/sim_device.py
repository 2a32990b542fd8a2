"""One simulated gate: the real firmware image booting from A/B slots, its service console on a
pseudo-terminal (`faregate sim device`, provisioning/cli/sim_device.py).

    SimDevice.program(state_dir, factory_image, release_keys, device_id)   # a blank gate, once
    dev = SimDevice(state_dir, baud=None, faults={})
    path = dev.start()     # /dev/pts/N: open it with pyserial like /dev/ttyUSB0
    dev.ready.wait(60)     # the gate's console serves (after its first boot's self-test)
    ...
    dev.stop()

The gate is a child process running the bootloader copy `STATE/boot.py`
(firmware/maintenance/boot.py) under CPython for linux images or the MicroPython unix port for mcu
images, with nothing of
this checkout on its path: only what the chosen slot holds runs. That image runs the service
console, with flashing inside its authenticated sessions (firmware/compose/app.py). The supervisor
plays the board around it:
- the serial line: bytes between the pty and the child's stdin/stdout, paced to `baud`
  (8N1: baud/10 bytes per second each way) when `baud` is given;
- power and watchdog: when the child exits (a reboot it asked for, or a crash) it is started
  again, as a watchdog reset would; bytes that arrive while it is down are lost, as on a board;
  `power_cut()` kills it at once;
- the peripherals: host_sim/hardware/board.py (QR engine with a phone in front of it, the test card
  the technician holds up when the laptop asks for a self-test, barrier, passage beams);
- the console log: the child's stderr goes to STATE/console.log (and to `on_log`).

The state directory persists like a real gate's flash: stop it, start it again on the same
directory, and it is the same gate (device id, key, config, journal, slots).

Faults (FAULTS), for rehearsal and tests:
    mute             the gate never hears the laptop (a dead gate, or the wrong port)
    unplug-after=N   the cable is pulled right after the gate ran the N-th command (REQUEST
                     frame), before its answer gets out: the pty goes away, `unplugged` is set
    barrier-jam      the barrier does not move
    beam-blocked     passage beam A reads blocked
    no-test-card     nobody holds the test card up to the reader
"""

import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from firmware import platform
from firmware.maintenance import boot
from host_sim.hardware import board
from protocol import flash, frames, service

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BOOT_SRC = os.path.join(ROOT, "firmware", "maintenance", "boot.py")
VERIFY_SRC = os.path.join(ROOT, "firmware", "maintenance", "boot_verify.py")
P256_SRC = os.path.join(ROOT, "protocol", "p256.py")  # the bootloader's verifier (boot_p256.py)
MAX_QUICK_CRASHES = 5
RTC_RESET_TIME = 946684800  # 2000-01-01T00:00:00Z: what an RTC reads after losing power
FAULTS = ("mute", "unplug-after", "barrier-jam", "beam-blocked", "no-test-card")
TEST_CARD = "FGTEST:sim-card-1"
FACTORY_VERSION = "0.1.0"


def micropython_binary() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else (shutil.which("micropython") or "micropython")


def mpy_of_unix_port() -> str:
    """The .mpy ABI of the MicroPython unix port, from its sys.implementation._mpy."""
    return subprocess.run(
        [
            micropython_binary(),
            "-c",
            "import sys; m=sys.implementation._mpy; print('%d.%d' % (m & 0xff, (m >> 8) & 3))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


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
    """Make `directory` a gate's flash if it is not one yet (factory.json); return its id."""
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
    factory = {"device_id": device_id, "model": "faregate-sim", "firmware": FACTORY_VERSION}
    platform.write_atomic(path, json.dumps(factory).encode())
    return device_id


def factory_image(profile: str = "linux") -> tuple[bytes, bytes]:
    """This checkout built as the factory image, signed with a one-off factory key that the
    new gate trusts beside the operator's release keys. Returns (image, factory public key)."""
    from drivers.linux import crypto_openssl as es256
    from provisioning import image_build

    key = es256.generate_key()
    data = image_build.build(image_build.SOURCE_ROOT, profile, FACTORY_VERSION, 1)
    return image_build.sign(data, key), es256.public_bytes(key)


class SimDevice:
    def __init__(
        self,
        state_dir: str,
        baud: int | None = None,
        faults: dict[str, int] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = os.path.abspath(state_dir)
        with open(os.path.join(self.dir, "device.json")) as f:
            self.device = json.load(f)
        with open(os.path.join(self.dir, "factory.json")) as f:
            self.device_id = int(json.load(f)["device_id"])
        self.baud = baud
        self.faults = faults or {}
        self.on_log = on_log
        self.boots: list[int] = []  # exit code of each boot, in order
        self.path = ""
        self.info: dict[str, Any] = {}  # the gate's last `console: ready` line
        self.ready = threading.Event()
        self.halted = threading.Event()
        self.unplugged = threading.Event()
        self.requests = 0  # REQUEST frames the gate was sent (counted for unplug-after)
        self.board: board.Board | None = None
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._up = Pacer(baud / 10 if baud else None)
        self._down = Pacer(baud / 10 if baud else None)
        self._up_frames = frames.FrameDecoder(flash.MAX_PAYLOAD)  # what the laptop asks
        self._down_frames = frames.FrameDecoder(flash.MAX_PAYLOAD)  # what the gate answers
        self._held: frames.FrameDecoder | None = None  # the answer being kept from the laptop

    # -- factory ---------------------------------------------------------------------------

    @staticmethod
    def program(
        state_dir: str,
        factory: bytes,
        release_keys: list[bytes],
        device_id: int | None = None,
        mpy: str | None = None,
        slot_capacity: int = 4 * 1024 * 1024,
    ) -> int:
        """Program a blank gate: factory.json, device.json, the bootloader, and `factory` in
        slot a, pending (its first boot is a trial that its self-test confirms). The gate
        trusts `release_keys` for every later image. Returns the device id."""
        from drivers.linux.crypto_openssl import OpenSSLVerifier
        from firmware.maintenance.update_agent import UpdateAgent
        from protocol import image

        _h, m = image.parse_head(factory)
        device_id = init_state(state_dir, device_id)
        device: dict[str, Any] = {
            "profile": m.profile_name,
            "release_keys": [k.hex() for k in release_keys],
            "slot_capacity": slot_capacity,
            "max_trial_boots": 1,
            "console": "stdio",
            "rtc_reset_time": RTC_RESET_TIME,
        }
        if m.profile_name == "mcu":
            device["mpy"] = mpy or mpy_of_unix_port()
        else:
            device["hardware"] = board.HARDWARE
        shutil.copyfile(BOOT_SRC, os.path.join(state_dir, "boot.py"))
        shutil.copyfile(VERIFY_SRC, os.path.join(state_dir, "boot_verify.py"))
        shutil.copyfile(P256_SRC, os.path.join(state_dir, "boot_p256.py"))  # its own crypto
        agent = UpdateAgent(state_dir, OpenSSLVerifier(), device)
        agent.stage(factory)
        agent.request_test()
        # last: a directory with device.json is a programmed gate
        platform.write_atomic(
            os.path.join(state_dir, "device.json"), json.dumps(device, indent=1).encode()
        )
        return device_id

    def add_passages(self, n: int) -> None:
        """Riders who passed since the last sync: n journaled passages (before start)."""
        from firmware.maintenance.wallclock import RTC
        from firmware.storage.journal import Journal
        from protocol import records

        clock = RTC(self.dir, RTC_RESET_TIME)
        journal = Journal(self.dir, self.device_id)
        try:
            for i in range(n):
                journal.append(
                    records.Record(records.KIND_PASSAGE, 0, 0, 0, clock.now(), account_id=i + 1)
                )
        finally:
            journal.close()

    # -- running ---------------------------------------------------------------------------

    def argv(self) -> list[str]:
        boot_py = os.path.join(self.dir, "boot.py")
        if self.device.get("profile") == "mcu":
            return [micropython_binary(), boot_py, self.dir]
        return [sys.executable, "-I", boot_py, self.dir]

    def start(self) -> str:
        if self.device.get("hardware"):
            card = None if "no-test-card" in self.faults else TEST_CARD
            self.board = board.Board(
                self.dir, card, "barrier-jam" in self.faults, "beam-blocked" in self.faults
            )
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        for target in (self._supervise, self._host_to_gate):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self.path

    def stop(self) -> None:
        self._stop.set()
        self.power_cut()
        for t in self._threads:
            t.join(timeout=5)
        self._close_line()
        if self.board:
            self.board.close()

    def power_cut(self) -> None:
        """Kill the running gate at once (SIGKILL), as pulling its power would; unless the
        simulator is stopping, the supervisor then boots it again."""
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def log(self, text: str) -> None:
        with open(os.path.join(self.dir, "console.log"), "a") as f:
            f.write(text + "\n")
        if text.startswith("console: ready "):
            try:
                self.info = json.loads(text[len("console: ready ") :])
            except ValueError:
                pass
            self.ready.set()
        if self.on_log:
            self.on_log(text)

    def state(self) -> dict:
        return boot.load_state(self.dir)

    def wait_state(self, pred: Callable[[dict], bool], timeout_s: float = 30.0) -> dict:
        """Wait until the gate's boot.json satisfies `pred` (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                st = self.state()
                if pred(st):
                    return st
            except (ValueError, boot.StateError):
                pass
            time.sleep(0.05)
        raise TimeoutError("gate state did not get there in %.0f s: %r" % (timeout_s, self.state()))

    def service_log(self, first: int) -> list[dict[str, Any]]:
        """The gate's service-log entries (firmware/storage/eventlog.py) numbered `first` and up."""
        out = []
        for line in platform.read_file(os.path.join(self.dir, "service.log"), b"").split(b"\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the line being written, or a torn one
            if isinstance(entry, dict) and isinstance(entry.get("i"), int) and entry["i"] >= first:
                out.append(entry)
        return out

    def _close_line(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1

    def _supervise(self) -> None:
        quick = 0
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MICROPYPATH")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        while not self._stop.is_set():
            started = time.monotonic()
            child = subprocess.Popen(
                self.argv(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.dir,
            )
            with self._lock:
                self._child = child
            out = threading.Thread(target=self._gate_to_host, args=(child,), daemon=True)
            err = threading.Thread(target=self._stderr, args=(child,), daemon=True)
            out.start()
            err.start()
            code = child.wait()
            out.join(timeout=5)
            err.join(timeout=5)
            with self._lock:
                self._child = None
            if self._stop.is_set():
                return
            self.boots.append(code)
            if code == boot.EXIT_HALT:
                self.log("sim: gate halted")
                self.halted.set()
                return
            what = (
                "reboot" if code == boot.EXIT_REBOOT else "crash (exit %d): watchdog reset" % code
            )
            self.log("sim: %s" % what)
            quick = quick + 1 if time.monotonic() - started < 2 and code != boot.EXIT_REBOOT else 0
            if quick >= MAX_QUICK_CRASHES or code == boot.EXIT_NO_IMAGE:
                self.log("sim: the gate cannot boot; giving up")
                self.halted.set()
                return

    def _stderr(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        for line in iter(child.stderr.readline, b""):
            self.log(line.decode(errors="replace").rstrip())

    def _gate_to_host(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        fd = child.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            for fr in self._down_frames.feed(data):
                if fr.type == service.RESPONSE and fr.payload[4:5] == bytes([service.SELFTEST]):
                    if self.board is not None:
                        self.board.lower_card()  # the self-test answered: the card goes away
            if self._held is not None:  # unplug-after: the answer to the N-th command...
                if any(fr.type == service.RESPONSE for fr in self._held.feed(data)):
                    self._unplug()  # ... is complete on the gate's side: pull the cable
                    return
                continue
            view = memoryview(data)
            while view:
                n = self._down.take(len(view))
                try:
                    os.write(self.master, view[:n])
                except OSError:
                    return
                view = view[n:]

    def _host_to_gate(self) -> None:
        while not self._stop.is_set() and not self.unplugged.is_set():
            try:
                r, _, _ = select.select([self.master], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.master, self._up.take(4096))
            except (OSError, ValueError):
                return
            if "mute" in self.faults:
                continue
            if self._held is None:
                for fr in self._up_frames.feed(data):
                    if fr.type == service.REQUEST:
                        self._on_request(fr.payload)
            with self._lock:
                child = self._child
            if child is None or child.stdin is None:
                continue  # the gate is rebooting: the bytes are lost, as on a board
            try:
                child.stdin.write(data)
                child.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def _on_request(self, payload: bytes) -> None:
        """A technician's command is on its way to the gate (REQUEST: u32 seq | u8 command)."""
        self.requests += 1
        if len(payload) > 4 and payload[4] == service.SELFTEST and self.board is not None:
            self.board.hold_card()  # "hold the test card to the reader"
        if self.requests == self.faults.get("unplug-after"):
            self._held = frames.FrameDecoder()

    def _unplug(self) -> None:
        self.log("sim: the service cable is pulled (unplug-after=%d)" % self.requests)
        self.unplugged.set()
        fd, self.master = self.master, -1
        os.close(fd)  # the laptop's side of the line hangs up


class Pacer:
    """Let bytes through at `rate` bytes per second (a UART at baud/10 with 8N1)."""

    def __init__(self, rate: float | None, burst: int = 256) -> None:
        self.rate = rate
        self.burst = burst
        self.credit = 0.0
        self.t = time.monotonic()

    def take(self, want: int) -> int:
        """Wait until at least one byte may pass; return how many (<= want) may pass now."""
        if not self.rate:
            return want
        while True:
            now = time.monotonic()
            self.credit = min(self.burst, self.credit + (now - self.t) * self.rate)
            self.t = now
            if self.credit >= 1:
                n = min(want, int(self.credit))
                self.credit -= n
                return n
            time.sleep(max(0.0005, (1 - self.credit) / self.rate))
