"""The station LAN the gates' mesh nodes talk over (firmware/mesh/, docs/mesh.md), on the
virtual clock and driven by the seed, as simlink.py does for the sync link.

    lan = StationLan(sched, cfg, rng)          # cfg: the scenario's [mesh] table
    link = lan.link(gate, station)             # a gate's socket: broadcast, send, recv
    lan.partition([[0, 1], [2, 3]]); lan.heal()
    lan.plan(t0_ms, duration_ms)               # the [mesh] partitions, at seeded times

A datagram reaches each gate of the sender's station (broadcast) or one gate (send) after a
seeded delay in `latency_ms`, unless it is lost (`drop_rate`) or the two gates are on different
sides of a partition when it would arrive; it waits in the receiver's inbox until that gate's
loop next turns (`waiting(gate)` says the gate has something to do). A gate that loses power
gets a new link when it boots: what was in its inbox is gone.
"""

import functools
import random
from typing import Any

from host_sim.station.simlink import Scheduler


class StationLan:
    def __init__(self, sched: Scheduler, cfg: dict[str, Any], rng: random.Random) -> None:
        self.sched = sched
        self.latency = cfg["latency_ms"]
        self.drop_rate = float(cfg["drop_rate"])
        self.cfg = cfg
        self.rng = rng
        self.links: dict[int, LanLink] = {}
        self.station: dict[int, int] = {}
        self.side: dict[int, int] = {}  # gate -> side while partitioned
        self.partitions: list[dict[str, Any]] = []  # what plan() did, for the report
        self.stats = {"sent": 0, "delivered": 0, "lost": 0, "cut": 0, "bytes": 0}

    def link(self, gate: int, station: int) -> "LanLink":
        self.links[gate] = link = LanLink(self, gate)
        self.station[gate] = station
        return link

    def partition(self, sides: list[list[int]]) -> None:
        self.side = {g: i for i, side in enumerate(sides) for g in side}

    def heal(self) -> None:
        self.side = {}

    def apart(self, a: int, b: int) -> bool:
        return bool(self.side) and self.side.get(a, -1) != self.side.get(b, -1)

    def waiting(self, gate: int) -> bool:
        link = self.links.get(gate)
        return link is not None and bool(link.inbox)

    def plan(self, t0_ms: int, duration_ms: int) -> None:
        """Schedule the scenario's mesh partitions: each at a seeded time, cutting a seeded
        half of the station's gates off the other half for a seeded time."""
        rng = self.rng
        lo, hi = self.cfg["partition_s"]
        for _ in range(int(self.cfg["partitions"])):
            at = t0_ms + rng.randrange(max(1, duration_ms))
            length = int(rng.uniform(lo, hi)) * 1000
            self.sched.at(at, functools.partial(self._cut, length))

    def _cut(self, length_ms: int) -> None:
        gates = sorted(self.links)
        if len(gates) < 2:
            return
        rng = self.rng
        rng.shuffle(gates)
        k = rng.randint(1, len(gates) - 1)
        a, b = sorted(gates[:k]), sorted(gates[k:])
        self.partition([a, b])
        t = self.sched.clock.ticks_ms()
        self.partitions.append({"t_ms": t, "sides": [a, b], "duration_s": length_ms // 1000})
        self.sched.after(length_ms, self.heal)

    def carry(self, src: int, dst: int, data: bytes) -> None:
        self.stats["sent"] += 1
        self.stats["bytes"] += len(data)
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self.stats["lost"] += 1
            return
        delay = self.rng.randint(int(self.latency[0]), int(self.latency[1]))
        to = self.links.get(dst)
        self.sched.after(delay, functools.partial(self._arrive, src, dst, to, data))

    def _arrive(self, src: int, dst: int, to: "LanLink | None", data: bytes) -> None:
        if to is None or self.links.get(dst) is not to:
            self.stats["lost"] += 1  # the gate rebooted (or is off) meanwhile
            return
        if self.apart(src, dst):
            self.stats["cut"] += 1
            return
        to.inbox.append((data, src))
        self.stats["delivered"] += 1


class LanLink:
    """One gate's socket on the station LAN (the link firmware/mesh/node.py takes)."""

    def __init__(self, lan: StationLan, gate: int) -> None:
        self.lan = lan
        self.gate = gate
        self.inbox: list[tuple[bytes, int]] = []

    def broadcast(self, data: bytes) -> None:
        lan = self.lan
        here = lan.station[self.gate]
        for g in sorted(lan.links):
            if g != self.gate and lan.station[g] == here:
                lan.carry(self.gate, g, data)

    def send(self, data: bytes, addr: Any) -> None:
        self.lan.carry(self.gate, int(addr), data)

    def recv(self) -> tuple[bytes, int] | None:
        return self.inbox.pop(0) if self.inbox else None

    def close(self) -> None:
        if self.lan.links.get(self.gate) is self:
            del self.lan.links[self.gate]
