"""One gate as its own process, for the station mesh's real-process tests (tests/test_mesh_e2e.py
and bench/bench_mesh.py):

    python -m tests.meshgate STATE_DIR CLOCK_OFFSET_S

The gate is a provisioned state directory (host_sim/station/gatedir.py) opened by the real
composition (firmware/compose/device.Device, OpenSSL signatures) with its mesh socket from
drivers/linux/mesh_udp.py, as the config's mesh.* settings say; there is no back office. Its
clock is the wall clock plus CLOCK_OFFSET_S (the same for every gate of a test, and across a
restart). Commands on stdin, one a line; answers on stdout, one JSON object a line:

    scan TEXT       a phone at the reader: {"decision": reason, "t": monotonic s}; an accepted
                    rider walks through (the beams' events), so the gate is ready again
    status          {"status": Device.report()} (its "mesh" part: peers, counts, refusals)
    block P1,P2     drop mesh datagrams to and from these UDP ports (one side of a partition)
    unblock         heal it
    quit            close the gate and exit

It prints {"ready": device_id} once it is in service, and {"accepted_at": t} with the monotonic
time of each acceptance (for the benchmark: acceptance -> refusal at a peer).
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

SCAN_EVENTS = ("occupied", "passage_fwd")


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

    def read(self, timeout_s: float = 0.0) -> str | None:
        return self.queue.pop(0) if self.queue else None


class Barrier:
    def open(self) -> None:
        pass

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
    hw = wiring.Hardware(barrier=Barrier(), readers=[(reader, None)])
    dev = Device.open(
        state_dir,
        hw,
        WallClock(offset),
        crypto=crypto_openssl,
        log=lambda text: emit({"log": text}),
        mesh_link=open_link,
    )
    decisions: list[Any] = []
    dev.loop.on_decision = decisions.append
    emit({"ready": dev.device_id})
    buf = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.002)
        if ready:
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
            t = time.monotonic()
            if d.accept:
                for event in SCAN_EVENTS:  # the rider walks through
                    dev.gate.on_event(event)
                emit({"accepted_at": t})
            emit({"decision": d.reason, "t": t})
        decisions.clear()
    dev.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
