"""Bench P11's load generator against the real back office, tiny: a correctness check.

Every gate's session runs the full device authentication over loopback TLS, and afterwards
the store holds every record of every gate exactly once, byte for byte, with no anomaly (no
gap, no chain break, no replay), and every gate saw all its records acknowledged: with each
write its own transaction, and with the group commit in one worker and in two worker
processes on one socket, or on a socket each (SO_REUSEPORT). Gates that resume offer their
last TLS session, and the back office (its workers sharing the ticket key) takes it. No
timing."""

import pytest

from bench import bench_fleet
from host_sim.backoffice.store import Store


@pytest.mark.parametrize(
    "resume,group_commit,workers,reuse_port",
    [
        (False, False, 1, False),
        (True, True, 1, False),
        (True, True, 2, False),
        (True, True, 2, True),
    ],
    ids=["baseline", "resume+group-commit", "two-workers", "two-workers-reuse-port"],
)
def test_fleet_stores_every_record_of_every_gate_once(
    tmp_path, resume, group_commit, workers, reuse_port
):
    run = bench_fleet.fleet(
        gates=12,
        records_per_gate=9,
        concurrency=4,
        batch_size=4,
        directory=str(tmp_path),
        resume=resume,
        group_commit=group_commit,
        workers=workers,
        reuse_port=reuse_port,
    )
    expected = run["expected"]
    rounds = 2 if resume else 1  # resuming gates synced once before (their TLS session)
    assert run["sessions"] == 12
    assert run["acked"] == 12 * 9  # the measured session's new records
    assert run["resumed"] == (12 if resume else 0)
    store = Store(run["store"])
    try:
        got = store.records()
        want = sorted(
            (dev, seq, raw) for dev, raws in expected.items() for seq, raw in enumerate(raws, 1)
        )
        assert sorted((d, s, bytes(r)) for d, s, r in got) == want
        assert len(got) == len({(d, s) for d, s, _ in got})
        assert store.anomaly_counts() == {}
        for dev in expected:
            device = store.device(dev)
            assert device is not None and device.high_seq == 9 * rounds
        sessions = store.sessions()
        assert sorted(s["device_id"] for s in sessions) == sorted(list(expected) * rounds)
        assert {s["outcome"] for s in sessions} == {"ok"}
        assert len([a for a in store.auth_log() if a["outcome"] == "ok"]) == 12 * rounds
    finally:
        store.close()


def test_fleet_chain_continues_across_gates_separately():
    a, b = bench_fleet.chain(1, 3), bench_fleet.chain(2, 3)
    from protocol import records

    assert records.verify_chain(a) == -1 and records.verify_chain(b) == -1
    assert a[0] != b[0]
    assert [records.decode(r).seq for r in a] == [1, 2, 3]
