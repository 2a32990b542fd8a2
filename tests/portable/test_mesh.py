"""The station mesh on both interpreters: the message parser (docs/mesh.md), and gates' nodes
over an in-memory LAN: a presentation accepted at one gate is a replay at the others, anti-passback
is station-wide, lost datagrams, late joiners, reboots and partitions catch up, and forged,
replayed or foreign messages are refused with their reason."""

import os

from firmware.gate.gate import Gate
from firmware.gate.policy import Passback
from firmware.mesh import node
from firmware.mesh.node import MeshNode
from firmware.storage.journal import Journal
from firmware.verify.replay import ReplayCache, presentation_key
from firmware.verify.validator import Validator
from protocol import certs, mesh, p256, records, ridecode
from protocol.errors import FormatError
from tests.portable import codes, mesh_kit
from tests.portable.fake_machine import Ticks
from tests.portable.harness import mkdtemp, raises, rmtree
from tests.portable.test_gate_core import Barrier

T0 = codes.NOW
CID = ridecode.cred_id(42, 1)


def _announce(n=1017, entries=None, msg=1, time=T0, from_seq=0, head=None, key=None, cert=None):
    if entries is None:
        entries = [mesh.Entry(5, mesh.KIND_ACCEPTED, 1, 1, 0, time, 42, 1, 3)]
    if head is None:
        head = entries[-1].seq if entries else from_seq
    m = mesh.Message(
        mesh.TYPE_ANNOUNCE,
        n,
        mesh_kit.STATION,
        time,
        msg,
        from_seq,
        head,
        0,
        cert or mesh_kit.device_cert(n),
        entries,
    )
    return mesh.encode(m, key or mesh_kit.device_key(n))


# -- the parser ---------------------------------------------------------------------------
def test_round_trip_and_lengths():
    raw = _announce()
    assert len(raw) == mesh.MIN_LEN + mesh.ENTRY_LEN
    m = mesh.parse(raw)
    assert (m.type, m.sender, m.station, m.msg, m.head) == (1, 1017, mesh_kit.STATION, 1, 5)
    assert m.entries == [mesh.Entry(5, mesh.KIND_ACCEPTED, 1, 1, 0, T0, 42, 1, 3)]
    assert mesh.check(m, codes.ROOT.public_key, codes.VERIFIER, T0) is None
    full = [mesh.Entry(i, 1, 1, 1, 0, T0, 42, 1, i) for i in range(1, mesh.MAX_ENTRIES + 1)]
    assert len(_announce(entries=full)) == mesh.MAX_LEN <= 1472  # one unfragmented datagram


def test_parse_is_strict():
    raw = _announce()

    def bad(data):
        assert raises(FormatError, mesh.parse, data).reason == "mesh_malformed"

    bad(b"")
    bad(raw[:-1])
    bad(raw + b"\x00")
    bad(b"XX" + raw[2:])  # magic
    bad(raw[:2] + b"\x01" + raw[3:])  # version 1: 32-byte entries without the issuer
    bad(raw[:3] + b"\x09" + raw[4:])  # type
    bad(raw[:10] + b"\x02" + raw[11:])  # count says 2, one is there
    bad(raw[:11] + b"\x01" + raw[12:])  # reserved
    at = mesh.ENTRIES_AT
    bad(raw[: at + 8] + b"\x07" + raw[at + 9 :])  # entry kind
    bad(raw[: at + 11] + b"\x80" + raw[at + 12 :])  # unknown flag
    two = [mesh.Entry(9, 1, 1, 1, 0, T0, 1, 1, 1), mesh.Entry(8, 1, 1, 1, 0, T0, 2, 1, 1)]
    bad(_announce(entries=two, head=9))  # out of order
    ask = mesh.Message(mesh.TYPE_ASK, 1, 1, T0, 1, 0, 0, 0, mesh_kit.device_cert(1), two)
    assert raises(FormatError, ask.body).reason == "mesh_malformed"


def test_check_names_what_is_wrong():
    other_root = p256.Signer(0x3C3C0009)
    forged = _announce(key=mesh_kit.device_key(99))  # right certificate, wrong key
    foreign = _announce(cert=mesh_kit.device_cert(1017, root=other_root))
    tech = _announce(cert=mesh_kit.device_cert(1017, kind=certs.KIND_TECHNICIAN))
    someone = _announce(cert=mesh_kit.device_cert(1017, subject=1018))
    root = codes.ROOT.public_key
    for raw, why in (
        (forged, "mesh_bad_signature"),
        (foreign, "mesh_foreign_cert"),
        (tech, "mesh_bad_cert"),
        (someone, "mesh_bad_cert"),
    ):
        assert mesh.check(mesh.parse(raw), root, codes.VERIFIER, T0) == why
    assert mesh.check(mesh.parse(_announce()), root, codes.VERIFIER, T0 + 2 * 86400) == (
        "mesh_bad_cert"
    )  # the certificate expired


# -- nodes over a LAN -----------------------------------------------------------------------
def test_an_acceptance_is_a_replay_and_an_entry_at_every_peer():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b, c = (mesh_kit.node(hub, n, ticks) for n in (1, 2, 3))
    mesh_kit.settle([a, b, c])
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    a.poll()
    b.poll()
    c.poll()
    for n in (b, c):
        assert n.replay.is_replay(CID, 3) and n.replay.is_replay(CID, 2)
        assert not n.replay.is_replay(CID, 4)  # the rider's next code still works
        assert n.policy.check(42, records.DIR_ENTRY, T0 + 5) == "anti_passback"
        assert n.peers[1].have == 10
    assert a.status()["outbox"] == 1 and b.status()["applied"] == 1


def test_an_entry_is_refused_under_its_issuers_replay_and_account_keys():
    """Issuer 1's account 42 is another rider than issuer 2's (or issuer 0's) account 42: the
    peer keeps the copy under the key its validator and its anti-passback look up."""
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b = (mesh_kit.node(hub, n, ticks) for n in (1, 2))
    mesh_kit.settle([a, b])
    a.committed(mesh_kit.passage(10, 42, 3, T0, issuer=1))
    mesh_kit.settle([a, b])
    assert b.replay.is_replay(presentation_key(1, CID), 3)
    assert not b.replay.is_replay(presentation_key(2, CID), 3) and not b.replay.is_replay(CID, 3)
    key = records.account_key(1, 42)
    assert b.policy.check(key, records.DIR_ENTRY, T0 + 5) == "anti_passback"
    assert b.policy.check(records.account_key(2, 42), records.DIR_ENTRY, T0 + 5) is None
    assert b.policy.check(42, records.DIR_ENTRY, T0 + 5) is None
    a.committed(mesh_kit.passage(11, 42, 3, T0, kind=records.KIND_EVENT, issuer=1))
    mesh_kit.settle([a, b])
    assert b.policy.check(key, records.DIR_ENTRY, T0 + 20) is None  # voided under its key too


def test_an_exit_elsewhere_ends_the_passback_and_a_late_entry_does_not_undo_it():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b, c = (mesh_kit.node(hub, n, ticks) for n in (1, 2, 3))
    mesh_kit.settle([a, b, c])
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    c.committed(mesh_kit.passage(4, 42, 4, T0 + 60, records.DIR_EXIT))
    mesh_kit.settle([a, b, c])
    assert b.policy.check(42, records.DIR_ENTRY, T0 + 61) is None  # the exit came after
    assert b.policy.check(42, records.DIR_EXIT, T0 + 61) == "already_exited"
    assert not node.learn(b.policy, 42, records.DIR_ENTRY, T0)  # the old entry: not taken


def test_a_voided_passage_frees_the_rider_everywhere():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b = (mesh_kit.node(hub, n, ticks) for n in (1, 2))
    mesh_kit.settle([a, b])
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    mesh_kit.settle([a, b])
    assert b.policy.check(42, records.DIR_ENTRY, T0 + 1) == "anti_passback"
    a.committed(mesh_kit.passage(11, 42, 3, T0, kind=records.KIND_EVENT))
    mesh_kit.settle([a, b])
    assert b.policy.check(42, records.DIR_ENTRY, T0 + 20) is None
    assert b.replay.is_replay(CID, 3)  # that code stays used: the phone shows a new one


def test_a_lost_datagram_is_asked_for_and_comes():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b = (mesh_kit.node(hub, n, ticks) for n in (1, 2))
    mesh_kit.settle([a, b])
    hub.drop = lambda src, dst, data: True
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    a.poll()
    hub.drop = None
    b.poll()
    assert not b.replay.is_replay(CID, 3)
    ticks.advance(1000)  # A's heartbeat says head 10; B has 0: it asks
    mesh_kit.settle([a, b])
    assert b.replay.is_replay(CID, 3) and b.peers[1].have == 10
    assert b.status()["asks_sent"] >= 2 and a.status()["answered"] >= 2


def test_a_gap_is_taken_at_once_and_repaired():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b = (mesh_kit.node(hub, n, ticks) for n in (1, 2))
    mesh_kit.settle([a, b])
    hub.drop = lambda src, dst, data: src == 1
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    a.poll()
    hub.drop = None
    a.committed(mesh_kit.passage(12, 77, 1, T0))
    a.poll()
    b.poll()  # the second came: taken now, though the first is missing
    assert b.replay.is_replay(ridecode.cred_id(77, 1), 1)
    assert not b.replay.is_replay(CID, 3) and b.peers[1].have == 0
    mesh_kit.settle([a, b])
    assert b.replay.is_replay(CID, 3) and b.peers[1].have == 12


def test_a_late_joiner_and_a_rebooted_gate_catch_up():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b = (mesh_kit.node(hub, n, ticks) for n in (1, 2))
    mesh_kit.settle([a, b])
    for i in range(40):  # more than one datagram's worth
        a.committed(mesh_kit.passage(100 + i, 1000 + i, 1, T0))
    mesh_kit.settle([a, b])
    late = mesh_kit.node(hub, 3, ticks)  # a gate that joins now
    mesh_kit.settle([a, b, late])
    ticks.advance(1500)
    b = mesh_kit.node(hub, 2, ticks)  # B reboots: its RAM is gone
    mesh_kit.settle([a, b, late])
    for n in (late, b):
        assert all(n.replay.is_replay(ridecode.cred_id(1000 + i, 1), 1) for i in range(40))
        assert n.peers[1].have == 139


def test_a_partition_each_side_refuses_its_own_then_both_catch_up():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    a, b, c = (mesh_kit.node(hub, n, ticks) for n in (1, 2, 3))
    mesh_kit.settle([a, b, c])
    hub.partition([1], [2, 3])
    a.committed(mesh_kit.passage(10, 42, 3, T0))
    c.committed(mesh_kit.passage(20, 77, 1, T0))
    mesh_kit.settle([a, b, c])
    assert b.replay.is_replay(ridecode.cred_id(77, 1), 1)  # its own side's
    assert not b.replay.is_replay(CID, 3)  # across the cut: the back office flags it
    hub.heal()
    ticks.advance(1000)
    mesh_kit.settle([a, b, c])
    assert b.replay.is_replay(CID, 3) and a.replay.is_replay(ridecode.cred_id(77, 1), 1)


def test_forged_replayed_foreign_and_garbage_never_stop_the_node():
    hub, ticks = mesh_kit.Hub(), Ticks(0)
    b = mesh_kit.node(hub, 2, ticks)
    b.poll()
    good = _announce(n=1)
    other_root = p256.Signer(0x3C3C0009)
    evil = [
        b"\x00" * 5,
        _announce(n=1, key=mesh_kit.device_key(99), msg=2),
        _announce(n=1, cert=mesh_kit.device_cert(1, root=other_root), msg=3),
        _announce(n=1, time=T0 - 3600, msg=4),
    ]
    for raw in evil:
        b.receive(raw, 1)
    assert not b.replay.is_replay(CID, 3)
    b.receive(good, 1)
    assert b.replay.is_replay(CID, 3)
    b.receive(good, 1)  # the same datagram again
    m = mesh.parse(_announce(n=1))
    m.station = 99
    b.receive(mesh.encode(m, mesh_kit.device_key(1)), 1)
    assert b.status()["refused"] == {
        "mesh_malformed": 1,
        "mesh_bad_signature": 1,
        "mesh_foreign_cert": 1,
        "mesh_stale": 1,
        "mesh_replayed": 1,
        "mesh_other_station": 1,
    }
    assert b.status()["applied"] == 1


class _BrokenLink:
    def broadcast(self, data):
        raise OSError(101, "network unreachable")

    def send(self, data, addr):
        raise OSError(101, "network unreachable")

    def recv(self):
        raise OSError(9, "bad file descriptor")


def test_a_dead_link_is_counted_not_raised():
    ticks = Ticks(0)
    n = MeshNode(
        mesh_kit.identity(1), _BrokenLink(), mesh_kit.Clock(ticks), ReplayCache(None), Passback()
    )
    n.committed(mesh_kit.passage(10, 42, 3, T0))
    assert n.poll() == [] and n.errors >= 2


def test_gates_refuse_a_copy_accepted_next_door():
    """Two real gates (validator, journal, barrier) whose nodes listen to their journals."""
    d = mkdtemp("mesh")
    ticks = Ticks(0)
    hub = mesh_kit.Hub()
    try:
        gates = []
        for n in (1, 2):
            v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
            os.mkdir(d + "/%d" % n)
            j = Journal(d + "/%d" % n, device_id=n)
            clock = mesh_kit.Clock(ticks)
            g = Gate(v, j, Barrier(), None, clock, station=7, mode=1, direction=1, ticks=ticks)
            mn = MeshNode(mesh_kit.identity(n), hub.link(n), clock, v.replay, g.policy)
            mn.restore(j.unsynced())
            j.listeners.append(mn)
            gates.append((g, mn))
        (ga, na), (gb, nb) = gates
        text = codes.code(codes.credential(account_id=42), time=T0, counter=5)
        assert ga.on_scan(text).accept
        na.poll()
        nb.poll()
        assert gb.on_scan(text).reason == "replayed"  # the screenshot, at the next gate
        assert ga.barrier.cmds == ["open"] and gb.barrier.cmds == []
        fresh = codes.code(codes.credential(account_id=42), time=T0, counter=6)
        assert gb.on_scan(fresh).reason == "anti_passback"  # the rider is inside already
        for g, _n in gates:
            g.journal.close()
    finally:
        rmtree(d)
