"""The station mesh with real gate processes on loopback and no back office: each gate is
tests/meshgate.py (the real Device composition, OpenSSL, its UDP mesh socket), provisioned under
one operator root. A copied code accepted at gate A is refused at gate B as `replayed`; a gate
that joins late and a gate killed and restarted catch up; in a partition each side refuses its
own copies, and after it heals the other side's too."""

import pytest

from tests.meshlab import Station


@pytest.fixture
def station(tmp_path):
    s = Station(str(tmp_path), 4)
    yield s
    s.close()


def _knows(gate_id: int, head: int):
    return lambda m: m["peers"].get(str(gate_id), {}).get("have", 0) >= head


def test_a_copy_is_refused_next_door_and_late_and_rebooted_gates_catch_up(station):
    a, b = station.start(1), station.start(2)
    rider = station.rider(4242)
    copy = rider.present(station.now())
    assert a.scan(copy) == "accepted"
    head = a.mesh()["head"]
    assert head >= 1
    b.wait_mesh(_knows(1, head))
    assert b.scan(copy) == "replayed"  # the screenshot, at the next gate
    assert b.scan(rider.present(station.now())) == "anti_passback"  # its owner is inside

    c = station.start(3)  # a gate that joins late: it asks for what it missed
    c.wait_mesh(_knows(1, head))
    assert c.scan(copy) == "replayed"
    assert c.mesh()["asks_sent"] >= 1

    b.kill()  # power cut: what B learnt from A lived in RAM only
    b = station.start(2)
    b.wait_mesh(_knows(1, head))
    assert b.scan(copy) == "replayed"

    # forged and foreign traffic on the mesh port: counted and dropped, the gate serves on
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for junk in (b"\x00" * 10, bytes(300)):
        s.sendto(junk, ("127.0.0.1", station.port(2)))
    s.close()
    b.wait_mesh(lambda m: m["refused"].get("mesh_malformed", 0) >= 2)
    other = station.rider(77)
    assert b.scan(other.present(station.now())) == "accepted"


def test_a_partition_refuses_copies_on_each_side_then_heals(station):
    a, b, c = station.start(1), station.start(2), station.start(3)
    for g in (a, b, c):
        g.wait_mesh(lambda m: len(m["peers"]) == 2)
    # {A} | {B, C}
    a.send("block %d,%d" % (station.port(2), station.port(3)))
    b.send("block %d" % station.port(1))
    c.send("block %d" % station.port(1))
    for g in (a, b, c):
        g.status()  # each has taken its command
    across = station.rider(1).present(station.now())
    same_side = station.rider(2).present(station.now())
    assert a.scan(across) == "accepted"
    assert c.scan(same_side) == "accepted"
    b.wait_mesh(_knows(3, c.mesh()["head"]))
    assert b.scan(same_side) == "replayed"  # its own side still refuses copies
    assert b.scan(across) == "accepted"  # the other side's: only the back office can tell
    head_a = a.mesh()["head"]
    for g in (a, b, c):
        g.send("unblock")
    c.wait_mesh(_knows(1, head_a))  # heartbeats show the gap, catch-up fills it
    assert c.scan(across) == "replayed"
    a.wait_mesh(_knows(3, c.mesh()["head"]))
    assert a.scan(same_side) == "replayed"
