"""One gate as its own process, for the station mesh's real-process tests (tests/test_mesh_e2e.py
and bench/bench_mesh.py):

    python -m tests.meshgate STATE_DIR CLOCK_OFFSET_S

The gate is a provisioned state directory (host_sim/station/gatedir.py) opened by the real
composition (firmware/compose/device.Device, OpenSSL signatures) with its mesh socket from
drivers/linux/mesh_udp.py, as the config's mesh.* settings say; there is no back office. Its
clock is the wall clock plus CLOCK_OFFSET_S (the same for every gate of a test, and across a
restart). Commands on stdin, one a line; answers on stdout, one JSON object a line:

    scan TEXT       a phone at the reader: {"decision": reason, "account": id, "t": monotonic
                    s of the barrier's open command (else of the decision), "p2_ms": the
                    reader's text to the open command}; an accepted rider walks through (the
                    beams' events), so the gate is ready again
    status          {"status": Device.report()} (its "mesh" part: peers, counts, refusals)
    block P1,P2     drop mesh datagrams to and from these UDP ports (one side of a partition)
    unblock         heal it
    quit            close the gate and exit

It prints {"ready": device_id} once it is in service, and {"learned": [account, counter, t]}
when its mesh node puts a peer's presentation into the replay cache (t: monotonic s; from then
on a copy is refused here), so bench P13 times acceptance -> refusal across processes
(CLOCK_MONOTONIC is one clock for the whole machine).
"""

import json
import os
import select
import sys
import time
from typing import Any

from drivers.linux import crypto_openssl, mesh_udp
from drivers.portable import wiring
from firmware.compose.device import Device
from firmware.mesh import node
from protocol import ridecode

SCAN_EVENTS = ("occupied", "passage_fwd")
WAIT_S = 0.02


class WallClock:
    def __init__(self, offset_s: float) -> None:
        self.offset = offset_s

    def now(self) -> int:
        return int(time.time() + self.offset)

    def ticks_ms(self) -> int:
        return int(time.monotonic() * 1000)


class Reader:
    def __init__(self) -> None:
        self.queue: list[str] = []
        self.read_at = 0.0

    def read(self, timeout_s: float = 0.0) -> str | None:
        if not self.queue:
            return None
        self.read_at = time.monotonic()
        return self.queue.pop(0)


class Barrier:
    opened_at = 0.0

    def open(self) -> None:
        self.opened_at = time.monotonic()

    def close(self) -> None:
        pass


class Partitionable:
    """The UDP link with a set of peer ports it drops traffic to and from."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self.blocked: set[int] = set()

    def broadcast(self, data: bytes) -> None:
        for addr in self.link.peers:
            if addr[1] not in self.blocked:
                self.link.sock.sendto(data, addr)

    def send(self, data: bytes, addr: Any) -> None:
        if addr[1] not in self.blocked:
            self.link.send(data, addr)

    def recv(self) -> Any:
        while True:
            got = self.link.recv()
            if got is None or got[1][1] not in self.blocked:
                return got

    def close(self) -> None:
        self.link.close()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    state_dir, offset = argv[0], float(argv[1])
    links: list[Partitionable] = []

    def open_link(settings: dict[str, Any]) -> Partitionable:
        links.append(Partitionable(mesh_udp.open_link(settings)))
        return links[-1]

    reader = Reader()
    barrier = Barrier()
    hw = wiring.Hardware(barrier=barrier, readers=[(reader, None)])
    hw.mesh_link = open_link  # type: ignore[attr-defined]
    dev = Device.open(
        state_dir, hw, WallClock(offset), crypto=crypto_openssl, log=lambda t: emit({"log": t})
    )
    decisions: list[Any] = []
    dev.loop.on_decision = decisions.append
    learn = node.learn_presentation

    def learned(replay: Any, cred_id: int, counter: int, t: int) -> bool:
        news = learn(replay, cred_id, counter, t)
        if news:
            emit({"learned": [cred_id >> ridecode.CRED_NO_BITS, counter, time.monotonic()]})
        return news

    node.learn_presentation = learned
    emit({"ready": dev.device_id})
    buf = b""
    while True:
        # wake for a command or a datagram, else every WAIT_S (heartbeats, timers), as the
        # gate's main loop turns (firmware/compose/app.py waits 20 ms a turn for a scan)
        fds = [0] + [link.link.sock.fileno() for link in links]
        ready, _, _ = select.select(fds, [], [], WAIT_S)
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd, _, arg = line.decode().strip().partition(" ")
            if cmd == "scan":
                reader.queue.append(arg)
            elif cmd == "status":
                emit({"status": dev.report()})
            elif cmd == "block":
                for link in links:
                    link.blocked = {int(p) for p in arg.split(",") if p}
            elif cmd == "unblock":
                for link in links:
                    link.blocked = set()
            elif cmd == "quit":
                dev.close()
                return 0
        dev.step(0)
        for d in decisions:
            out = {"decision": d.reason, "t": time.monotonic(), "p2_ms": None}
            out["account"] = d.code.credential.account_id if d.code is not None else None
            if d.accept:
                out["t"] = barrier.opened_at
                out["p2_ms"] = (barrier.opened_at - reader.read_at) * 1000
                for event in SCAN_EVENTS:  # the rider walks through
                    dev.gate.on_event(event)
            emit(out)
        decisions.clear()
    dev.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
