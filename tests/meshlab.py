"""A station of gate processes on loopback for the mesh's real-process tests and bench P13:
provisioned state directories (host_sim/station/gatedir.py) under one operator root, each gate
run by tests/meshgate.py in its own process with its UDP mesh socket on 127.0.0.1, and no back
office. `Station.start(n)` starts gate n (again, after a kill: a reboot on the same directory)."""

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from drivers.linux.crypto_openssl import OpenSSLSigner, generate_key
from host_sim.station import demand, gatedir
from host_sim.wallet import Issuer, Operator, Rider
from protocol import trustlist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1_767_254_400
STATION = 5


def free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class GateProc:
    def __init__(self, state_dir: str, offset: float) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.meshgate", state_dir, str(offset)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.learned: list[tuple[int, int, float]] = []  # (account, counter, monotonic s)
        self.decisions: list[dict[str, Any]] = []  # every decision, also when not expected
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.device_id = self.expect("ready", timeout=30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            obj = json.loads(raw)
            if "log" in obj:
                self.log.append(obj["log"])
            elif "learned" in obj:
                self.learned.append(tuple(obj["learned"]))  # type: ignore[arg-type]
            else:
                if "decision" in obj:
                    self.decisions.append(obj)
                self.lines.put(obj)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, key: str, timeout: float = 10) -> Any:
        end = time.monotonic() + timeout
        while True:
            try:
                obj = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    "no %r from the gate in %s s; log: %s" % (key, timeout, self.log[-5:])
                ) from None
            if key in obj:
                return obj[key]

    def scan(self, text: str) -> str:
        while not self.lines.empty():  # decisions of scans sent without waiting (a load)
            self.lines.get_nowait()
        self.send("scan " + text)
        return str(self.expect("decision"))

    def status(self) -> dict[str, Any]:
        self.send("status")
        return dict(self.expect("status"))

    def mesh(self) -> dict[str, Any]:
        return dict(self.status()["mesh"])

    def wait_mesh(self, pred: Any, timeout: float = 10) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            m = self.mesh()
            if pred(m):
                return m
            if time.monotonic() > end:
                raise AssertionError("mesh status never got there: %r" % m)
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


class Station:
    def __init__(self, base: str, n: int, heartbeat_ms: int = 200, mesh: bool = True) -> None:
        self.base = base
        self.offset = NOW - time.time()  # every gate's clock reads NOW at the start
        self.ports = free_udp_ports(n)
        self.root = OpenSSLSigner(generate_key())
        self.operator = Operator(self.root, trustlist.root_key_id(self.root.public_key))
        self.issuer = Issuer(key_id=1)
        self.procs: dict[int, GateProc] = {}
        self.dirs = {}
        for i in range(1, n + 1):
            peers = ",".join("127.0.0.1:%d" % p for j, p in enumerate(self.ports, 1) if j != i)
            cfg = {
                "version": 1,
                "device_id": i,
                "name": "G%d" % i,
                "station": STATION,
                "lane": i,
                "mode": "metro",
                "direction": "entry",
                "scope": 1,
                "mesh": {
                    "enabled": mesh,
                    "bind": "127.0.0.1",
                    "port": self.ports[i - 1],
                    "peers": peers,
                    "heartbeat_ms": heartbeat_ms,
                },
            }
            d = os.path.join(base, "gate%d" % i)
            gatedir.provision(
                d,
                i,
                self.root,
                demand.keys(i, "mesh-lab").secret_bytes(),
                cfg,
                self.operator.trust_list(1, [self.issuer.trust_entry()], NOW - 60, NOW + 86400),
                self.operator.deny_snapshot(1, [], NOW - 60),
                NOW,
            )
            self.dirs[i] = d

    def now(self) -> int:
        return int(time.time() + self.offset)

    def rider(self, account: int) -> Rider:
        r = Rider()
        self.issuer.issue(r, account_id=account, valid_from=NOW - 60, valid_until=NOW + 3600)
        return r

    def start(self, i: int) -> GateProc:
        self.procs[i] = GateProc(self.dirs[i], self.offset)
        return self.procs[i]

    def port(self, i: int) -> int:
        return self.ports[i - 1]

    def close(self) -> None:
        for p in self.procs.values():
            p.stop()
