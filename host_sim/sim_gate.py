"""A simulated gate that boots from A/B slots, with its service port on a real pty.

    gate = SimGate.create(state_dir, factory_image, [release_pub])   # factory programming
    gate = SimGate(state_dir, baud=115200)
    path = gate.start()         # /dev/pts/N: open it with pyserial like /dev/ttyUSB0
    ...
    gate.stop()

The gate is a child process running the bootloader copy `STATE/boot.py` (firmware/boot.py)
under CPython for linux images or the MicroPython unix port for mcu images, with nothing of
this checkout on its path: only what the chosen slot holds runs. The supervisor plays the
board around it:
- the serial line: bytes between the pty and the child's stdin/stdout, paced to `baud`
  (8N1: baud/10 bytes per second each way) when `baud` is given;
- power and watchdog: when the child exits (a reboot it asked for, or a crash) it is started
  again, as a watchdog reset would; bytes that arrive while it is down are lost, as on a board;
- the console log: the child's stderr goes to STATE/console.log (and to `on_log`).
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

from firmware import boot

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT_SRC = os.path.join(os.path.dirname(HERE), "firmware", "boot.py")
MAX_QUICK_CRASHES = 5


def micropython_binary() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else (shutil.which("micropython") or "micropython")


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


class SimGate:
    def __init__(
        self,
        state_dir: str,
        baud: int | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = os.path.abspath(state_dir)
        with open(os.path.join(self.dir, "device.json")) as f:
            self.device = json.load(f)
        self.baud = baud
        self.on_log = on_log
        self.boots: list[int] = []  # exit code of each boot, in order
        self.path = ""
        self.halted = threading.Event()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._up = Pacer(baud / 10 if baud else None)
        self._down = Pacer(baud / 10 if baud else None)

    # -- factory ---------------------------------------------------------------------------

    @staticmethod
    def create(
        state_dir: str,
        factory_image: bytes,
        release_keys: list[bytes],
        profile: str = "linux",
        mpy: str | None = None,
        slot_capacity: int = 4 * 1024 * 1024,
    ) -> None:
        """Program a blank gate: device.json, the bootloader, and a factory image in slot a
        (pending: its first boot is a trial that its self-test confirms)."""
        from drivers.crypto_openssl import OpenSSLVerifier
        from firmware.update_agent import UpdateAgent

        os.makedirs(state_dir, exist_ok=True)
        device = {
            "profile": profile,
            "release_keys": [k.hex() for k in release_keys],
            "slot_capacity": slot_capacity,
            "max_trial_boots": 1,
            "console": "stdio",
        }
        if profile == "mcu":
            device["mpy"] = mpy or mpy_of_unix_port()
        with open(os.path.join(state_dir, "device.json"), "w") as f:
            json.dump(device, f, indent=1)
        shutil.copyfile(BOOT_SRC, os.path.join(state_dir, "boot.py"))
        agent = UpdateAgent(state_dir, OpenSSLVerifier(), device)
        agent.stage(factory_image)
        agent.request_test()

    # -- running ---------------------------------------------------------------------------

    def argv(self) -> list[str]:
        boot_py = os.path.join(self.dir, "boot.py")
        if self.device.get("profile") == "mcu":
            return [micropython_binary(), boot_py, self.dir]
        return [sys.executable, "-I", boot_py, self.dir]

    def start(self) -> str:
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
        with self._lock:
            child = self._child
        if child and child.poll() is None:
            child.kill()
            child.wait()
        for t in self._threads:
            t.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def power_cut(self) -> None:
        """Kill the running gate at once (SIGKILL), as pulling its power would; the supervisor
        then boots it again."""
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def log(self, text: str) -> None:
        with open(os.path.join(self.dir, "console.log"), "a") as f:
            f.write(text + "\n")
        if self.on_log:
            self.on_log(text)

    def state(self) -> dict:
        return boot.load_state(self.dir)

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
            view = memoryview(data)
            while view:
                n = self._down.take(len(view))
                try:
                    os.write(self.master, view[:n])
                except OSError:
                    return
                view = view[n:]

    def _host_to_gate(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            n = self._up.take(4096)
            try:
                data = os.read(self.master, n)
            except OSError:
                return
            with self._lock:
                child = self._child
            if child is None or child.stdin is None:
                continue  # the gate is rebooting: the bytes are lost, as on a board
            try:
                child.stdin.write(data)
                child.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

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


def mpy_of_unix_port() -> str:
    """The .mpy ABI of the MicroPython unix port, from its sys.implementation._mpy."""
    out = subprocess.run(
        [
            micropython_binary(),
            "-c",
            "import sys; m=sys.implementation._mpy; print('%d.%d' % (m & 0xff, (m >> 8) & 3))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return out
