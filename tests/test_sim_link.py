"""The simulator's station network (host_sim/station/simlink.py): the real sync machines over a
seeded, virtual-time link. A clean link delivers everything; loss, duplication, corruption,
partitions and a back office that dies mid-session make sessions fail, never lose or double a
record."""

import random

from host_sim.backoffice.sync_server import HostSession
from host_sim.station.simlink import Network, Scheduler, Session
from tests.synclab import Lab

CLEAN = {"latency_ms": [5, 20], "drop_rate": 0.0, "duplicate_rate": 0.0, "corrupt_rate": 0.0}


def _session(lab, net, sched, ended, timeout_ms=5000):
    rnd = random.Random(9)
    client = lab.client(batch_size=50, random_bytes=rnd.randbytes)
    host = HostSession(lab.store, lab.host_signer, lab.verifier, lab.clock, "sim", rnd.randbytes)
    return Session(sched, net, 0, client, host, timeout_ms, ended.append)


def _run(sched, limit_ms=600_000):
    while sched.peek() is not None and sched.peek() <= limit_ms + sched.clock.ticks_ms():
        sched.run_due(sched.peek())


def test_a_clean_link_uploads_everything_in_virtual_time(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.passages(230)
        sched, ended = Scheduler(lab.clock), []
        net = Network(CLEAN, random.Random(1))
        t0 = lab.clock.ticks_ms()
        s = _session(lab, net, sched, ended)
        s.start()
        _run(sched)
        assert ended == [s] and s.ok and s.reason == "ok"
        assert lab.journal.pending_count() == 0 and lab.store.count() == 230
        assert 0 < s.ended_ms - t0 < 2000  # five batches and the rest, a few ms each way
    finally:
        lab.close()


def test_noise_fails_sessions_but_never_loses_or_doubles_a_record(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.passages(400)
        sched = Scheduler(lab.clock)
        noisy = {
            "latency_ms": [1, 30],
            "drop_rate": 0.1,
            "duplicate_rate": 0.2,
            "corrupt_rate": 0.1,
        }
        net = Network(noisy, random.Random(4))
        outcomes = []
        for _ in range(60):
            ended = []
            _session(lab, net, sched, ended, timeout_ms=2000).start()
            _run(sched)
            outcomes.append(ended[0].reason)
            if lab.journal.pending_count() == 0 and ended[0].ok:
                break
        assert "ok" in outcomes and len(set(outcomes)) > 1, outcomes
        assert net.stats["lost"] and net.stats["duplicated"] and net.stats["corrupted"]
        assert lab.journal.pending_count() == 0 and lab.store.count() == 400
    finally:
        lab.close()


def test_partition_outage_and_a_gate_that_dies_mid_session(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.passages(300)
        sched = Scheduler(lab.clock)
        net = Network(CLEAN, random.Random(2))
        net.partition([0])
        ended = []
        _session(lab, net, sched, ended).start()
        assert ended[0].reason == "unreachable"  # refused at once
        net.heal([0])
        ended = []
        s = _session(lab, net, sched, ended)
        s.start()
        sched.run_due(sched.peek() + 15)  # a few transmissions in
        s.kill("power_cut")
        _run(sched)
        assert ended == [s] and s.reason == "power_cut"
        ended = []
        s = _session(lab, net, sched, ended)
        s.start()
        sched.run_due(sched.peek())
        net.outage = True  # the back office dies; the gate hears nothing more
        s.host_down()
        _run(sched)
        assert ended[0].reason == "timeout"
        net.outage = False
        ended = []
        _session(lab, net, sched, ended).start()
        _run(sched)
        assert ended[0].ok and lab.journal.pending_count() == 0 and lab.store.count() == 300
    finally:
        lab.close()
