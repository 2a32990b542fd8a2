"""Sync sessions over a simulated station network, on the virtual clock, driven by the seed.

The gate's SyncClient and the back office's HostSession are the real sans-IO machines
(firmware/sync/client.py, host_sim/backoffice/sync_server.py); only the wire between them is
simulated,
so every run with one seed sends the same bytes at the same virtual times (the TCP, TLS and
pty paths are tested elsewhere: tests/test_sync_links.py).

    sched = Scheduler(clock)                    # virtual-time events, in a stable order
    net = Network(cfg, rng)                     # delay, loss, duplication, corruption,
    net.outage = True; net.partition([gate])    # back-office outages and partitions
    s = Session(sched, net, gate, client, host, timeout_ms, on_end)
    s.start()                                   # on_end(session) once it finished or failed

A transmission is whatever one side's machine returned at once (one or more frames). It is lost
if its gate is cut off (or the back office down) when it would arrive. A session that hears
nothing for `timeout_ms` is abandoned, as the gate's link timeout would; `kill()` is a power
cut (the gate side vanishes without a word).
"""

import functools
import heapq
import random
from collections.abc import Callable
from typing import Any

from firmware.sync.client import SyncError
from protocol import messages as m


class Scheduler:
    """Events at virtual times (ms); equal times run in the order they were scheduled."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._n = 0

    def at(self, t_ms: int, fn: Callable[[], None]) -> None:
        self._n += 1
        heapq.heappush(self._heap, (max(int(t_ms), self.clock.ticks_ms()), self._n, fn))

    def after(self, ms: int, fn: Callable[[], None]) -> None:
        self.at(self.clock.ticks_ms() + int(ms), fn)

    def peek(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self, t_ms: int) -> int:
        """Run every event due at or before t_ms, moving the clock to each; returns how many."""
        n = 0
        clock = self.clock
        while self._heap and self._heap[0][0] <= t_ms:
            t, _n, fn = heapq.heappop(self._heap)
            if t > clock.ticks_ms():
                clock.advance_ms(t - clock.ticks_ms())
            fn()
            n += 1
        return n


class Network:
    """The links between gates and the back office."""

    def __init__(self, cfg: dict[str, Any], rng: random.Random) -> None:
        self.latency = cfg["latency_ms"]
        self.drop_rate = float(cfg["drop_rate"])
        self.duplicate_rate = float(cfg["duplicate_rate"])
        self.corrupt_rate = float(cfg["corrupt_rate"])
        self.rng = rng
        self.outage = False  # the back office is down: nothing gets through
        self.cut: dict[int, int] = {}  # gate -> partitions (they may overlap) cutting it off
        self.noise = True  # False during recovery: losses and corruption stop
        self.stats = {"sent": 0, "lost": 0, "duplicated": 0, "corrupted": 0, "bytes": 0}

    def reachable(self, gate: int) -> bool:
        return not self.outage and gate not in self.cut

    def partition(self, gates: list[int]) -> None:
        for g in gates:
            self.cut[g] = self.cut.get(g, 0) + 1

    def heal(self, gates: list[int]) -> None:
        for g in gates:
            n = self.cut.get(g, 0) - 1
            if n > 0:
                self.cut[g] = n
            else:
                self.cut.pop(g, None)

    def heal_all(self) -> None:
        self.cut.clear()

    def transmit(self, data: bytes) -> list[tuple[int, bytes]]:
        """What becomes of one transmission: [(delay ms, bytes)], empty if lost."""
        rng = self.rng
        self.stats["sent"] += 1
        self.stats["bytes"] += len(data)
        delay = rng.randint(int(self.latency[0]), int(self.latency[1]))
        if self.noise and self.drop_rate and rng.random() < self.drop_rate:
            self.stats["lost"] += 1
            return []
        if self.noise and self.corrupt_rate and rng.random() < self.corrupt_rate:
            self.stats["corrupted"] += 1
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        out = [(delay, data)]
        if self.noise and self.duplicate_rate and rng.random() < self.duplicate_rate:
            self.stats["duplicated"] += 1
            out.append((delay + rng.randint(1, 50), data))
        return out


class Session:
    """One sync session between gate `gate`'s client and a host session."""

    def __init__(
        self,
        sched: Scheduler,
        net: Network,
        gate: int,
        client: Any,
        host: Any,
        timeout_ms: int,
        on_end: Callable[["Session"], None],
    ) -> None:
        self.sched = sched
        self.net = net
        self.gate = gate
        self.client = client
        self.host = host
        self.timeout_ms = timeout_ms
        self.on_end = on_end
        self.alive = True
        self.host_alive = True  # False once the back office restarted: its side is gone
        self.ok = False
        self.reason = ""
        self.started_ms = sched.clock.ticks_ms()
        self.ended_ms = 0
        self.crash: BaseException | None = None  # what escaped the gate's client, if anything
        self._heard_ms = self.started_ms

    def start(self) -> None:
        if not self.net.reachable(self.gate):
            self.end(False, "unreachable")
            return
        self._send(self.client.start(), self._host_gets)
        self.sched.after(self.timeout_ms, self._watch)

    def kill(self, reason: str) -> None:
        """The gate lost power mid-session: it says nothing more and hears nothing more."""
        if self.alive:
            self.end(False, reason)

    def host_down(self) -> None:
        """The back office process died: its half of the session is gone for good."""
        self.host_alive = False

    def end(self, ok: bool, reason: str) -> None:
        self.alive = False
        self.ok = ok
        self.reason = reason
        self.ended_ms = self.sched.clock.ticks_ms()
        self.on_end(self)

    # -- the wire ----------------------------------------------------------------------------
    def _send(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        for delay, chunk in self.net.transmit(data):
            self.sched.after(delay, functools.partial(deliver, chunk))

    def _host_gets(self, data: bytes) -> None:
        if not self.host_alive or not self.net.reachable(self.gate):
            return  # lost on the way (a partition, or the server is down or restarted)
        out = self.host.receive(data)  # even from a gate that died since: it was on the wire
        if out:
            self._send(out, self._gate_gets)

    def _gate_gets(self, data: bytes) -> None:
        if not self.alive or not self.net.reachable(self.gate):
            return
        self._heard_ms = self.sched.clock.ticks_ms()
        try:
            out = self.client.receive(data)
        except SyncError as e:
            if not e.from_peer:
                reason = e.reason if e.reason in m.ERRORS else "bad_message"
                self._send(self.client.abort_frame(reason), self._host_gets)
            self.end(False, e.reason)
            return
        except Exception as e:  # a firmware bug: the simulator reports it and reboots the gate
            self.crash = e
            self.end(False, "crash")
            return
        if out:
            self._send(out, self._host_gets)
        if self.client.done:
            self.end(True, "ok")

    def _watch(self) -> None:
        if not self.alive:
            return
        now = self.sched.clock.ticks_ms()
        if now - self._heard_ms >= self.timeout_ms:
            self.end(False, "timeout")
        else:
            self.sched.at(self._heard_ms + self.timeout_ms, self._watch)
