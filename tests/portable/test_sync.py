"""The sync state machines, device against host, over an in-memory pipe (both interpreters).

Signatures use the stand-in hash scheme of tests/portable/codes.py; the real ES256 path is
driven by tests/test_sync_links.py over a pipe, a pty and TLS."""

from firmware.storage.journal import Journal
from firmware.sync.client import SyncClient, SyncError
from protocol import frames, records, sync, synchost
from protocol import messages as m
from protocol.errors import FormatError
from tests.portable.codes import HashVerifier
from tests.portable.harness import mkdtemp, raises, rmtree
from tests.portable.sync_kit import (  # noqa: F401 (MiniHost: other tests import it here)
    DEV_PUB,
    HOST_PUB,
    NOW,
    Clock,
    MiniHost,
    Signer,
    _deliver,
    _nonce,
)


def _pair():
    dev = sync.DeviceConnection(7, Signer(DEV_PUB), HashVerifier(), HOST_PUB, window=2)
    host = synchost.HostConnection(Signer(HOST_PUB), HashVerifier())
    return dev, host


def _handshake(dev, host):
    [hello] = _deliver(dev.send(sync.Hello(7, _nonce(16), 0, m.VERSION)), host)
    assert hello == sync.Hello(7, _nonce(16), 0, m.VERSION)
    host.accept_device(DEV_PUB)
    [ch] = _deliver(host.send(sync.Challenge(b"\x22" * 16, NOW, m.VERSION)), dev)
    assert ch.host_time == NOW and dev.state == sync.CHALLENGED
    [auth] = _deliver(dev.send(sync.Auth(7)), host)
    assert host.state == sync.AUTHENTICATED
    [w] = _deliver(host.send(sync.Welcome(0, [(m.KIND_CONFIG, 3, 10)])), dev)
    assert w.offers == [(m.KIND_CONFIG, 3, 10)]
    assert dev.state == host.state == sync.READY


def _recs(first, n):
    out = []
    prev = records.ZERO_HASH
    for s in range(first, first + n):
        raw = records.Record(1, 0, 7, s, NOW, prev_hash=prev).to_bytes()
        prev = records.record_hash(raw)
        out.append(raw)
    return out


def test_full_exchange_and_the_table():
    dev, host = _pair()
    _handshake(dev, host)
    b1 = dev.send(sync.Batch(_recs(1, 3)))
    b2 = dev.send(sync.Batch(_recs(4, 2)))
    assert not dev.can_send_batch()  # window of 2
    raises(sync.LocalProtocolError, dev.send, sync.Batch(_recs(6, 1)))
    [e1, e2] = _deliver(b1 + b2, host)
    assert [len(e.records) for e in (e1, e2)] == [3, 2] and host.acks_owed == 2
    [a1] = _deliver(host.send(sync.Ack(3)), dev)
    [a2] = _deliver(host.send(sync.Ack(5)), dev)
    assert dev.in_flight == [] and a2.up_to_seq == 5
    raises(sync.LocalProtocolError, host.send, sync.Ack(5))  # nothing left to acknowledge
    st = sync.Status(NOW, 0, 0, 5, 0, [(m.KIND_CONFIG, 3)], b'{"a":1}')
    assert _deliver(dev.send(st), host) == [st]
    [f] = _deliver(dev.send(sync.Fetch(m.KIND_CONFIG, 3, 0, 100)), host)
    [b] = _deliver(host.send(sync.Blob(m.KIND_CONFIG, 3, 4, 0, b"conf")), dev)
    assert b.data == b"conf" and dev.fetching is None
    _deliver(dev.send(sync.Bye()), host)
    assert host.state == sync.CLOSING
    _deliver(host.send(sync.Bye()), dev)
    assert dev.state == host.state == sync.CLOSED


def test_sending_out_of_turn_is_a_local_error():
    dev, host = _pair()
    raises(sync.LocalProtocolError, dev.send, sync.Batch(_recs(1, 1)))
    dev.send(sync.Hello(7, _nonce(16), 0, m.VERSION))
    raises(sync.LocalProtocolError, dev.send, sync.Auth(7))  # no challenge yet
    raises(sync.LocalProtocolError, host.send, sync.Challenge(_nonce(16), NOW, m.VERSION))


def test_duplicated_frames_are_dropped_and_lost_ones_fail_the_session():
    dev, host = _pair()
    _handshake(dev, host)
    b1 = dev.send(sync.Batch(_recs(1, 1)))
    assert len(_deliver(b1 + b1, host)) == 1 and host.stats["duplicates"] == 1
    dev.send(sync.Batch(_recs(2, 1)))  # lost on the link
    b3 = dev.send(sync.Status(NOW, 0, 0, 2, 0, [], b""))
    e = raises(sync.RemoteProtocolError, _deliver, b3, host)
    assert e.reason == "sequence_gap" and host.state == sync.FAILED


def test_a_host_without_the_operator_key_is_never_obeyed():
    dev, host = _pair()
    host.signer = Signer(b"\x02" + bytes(32))  # an impostor back office
    _deliver(dev.send(sync.Hello(7, _nonce(16), 0, m.VERSION)), host)
    host.accept_device(DEV_PUB)
    assert _deliver(host.send(sync.Challenge(_nonce(16), NOW, m.VERSION)), dev) == []
    assert dev.state == sync.HELLO_SENT and dev.stats["stale_challenges"] == 1


def test_a_device_with_the_wrong_key_is_refused():
    dev, host = _pair()
    dev.signer = Signer(b"\x03" + bytes(32))
    _deliver(dev.send(sync.Hello(7, _nonce(16), 0, m.VERSION)), host)
    host.accept_device(DEV_PUB)
    _deliver(host.send(sync.Challenge(_nonce(16), NOW, m.VERSION)), dev)
    e = raises(sync.RemoteProtocolError, _deliver, dev.send(sync.Auth(7)), host)
    assert e.reason == "bad_signature" and host.state == sync.FAILED


def test_ack_for_a_batch_never_sent_fails():
    dev, host = _pair()
    _handshake(dev, host)
    _deliver(dev.send(sync.Batch(_recs(1, 2))), host)
    host.acks_owed = 1
    e = raises(sync.RemoteProtocolError, _deliver, host.send(sync.Ack(99)), dev)
    assert e.reason == "unexpected_message"


def test_tampered_payload_is_refused():
    dev, host = _pair()
    _handshake(dev, host)
    fr = frames.decode_one(dev.send(sync.Batch(_recs(1, 1))))
    body = bytearray(fr.payload)
    body[30] ^= 1  # the account id inside a record, CRC recomputed by an attacker
    e = raises(sync.RemoteProtocolError, _deliver, frames.encode(fr.type, bytes(body)), host)
    assert e.reason == "bad_signature"


def test_every_batch_carries_the_gates_batch_signature_and_a_bad_one_is_refused():
    dev, host = _pair()
    _handshake(dev, host)
    raws = _recs(1, 3)
    [b] = _deliver(dev.send(sync.Batch(raws)), host)
    msg = sync.batch_signing_input(7, raws)
    assert msg[:8] == b"FGBATCH2" and len(msg) == 8 + 4 + 2 + 32
    assert HashVerifier().verify(DEV_PUB, msg, b.sig) and b.records == raws
    assert host.acks_owed == 1
    # a batch signed over other records (or by another key), inside a good session signature
    forged = sync.Batch(_recs(4, 2), Signer(DEV_PUB).sign(sync.batch_signing_input(7, raws)))
    e = raises(sync.RemoteProtocolError, _deliver, dev.send(forged), host)
    assert e.reason == "bad_batch_signature" and host.state == sync.FAILED
    assert m.ERRORS["bad_batch_signature"][0] == 11


def test_a_batch_mixes_records_of_both_versions():
    old = records.Record(1, 0, 7, 1, NOW, account_id=5, version=records.VERSION_1).to_bytes()
    new = records.Record(1, 0, 7, 2, NOW, prev_hash=records.record_hash(old)).to_bytes()
    body = m.batch([old, new], bytes(64))
    assert len(body) == 2 + 64 + 245 + 64
    assert m.parse_batch(body) == ([old, new], bytes(64))
    assert raises(FormatError, m.parse_batch, body[:-1]).reason == "bad_message"
    assert raises(FormatError, m.parse_batch, b"\x00\x03" + body[2:]).reason == "bad_message"


def test_a_new_hello_restarts_the_host_session():
    dev, host = _pair()
    _handshake(dev, host)
    dev2 = sync.DeviceConnection(7, Signer(DEV_PUB), HashVerifier(), HOST_PUB)
    [h] = _deliver(dev2.send(sync.Hello(7, b"\x33" * 16, 5, m.VERSION)), host)
    assert h.last_seq == 5 and host.state == sync.HELLO_RECEIVED


# -- the gate's client against a small host application ------------------------------------
class Sink:
    def __init__(self, version):
        self.v = version
        self.got = []

    def version(self):
        return self.v

    def apply(self, version, data):
        self.got.append((version, data))
        self.v = version


def _run(client, host, max_rounds=1000):
    data = client.start()
    for _ in range(max_rounds):
        data = host.receive(data)
        if not data:
            break
        data = client.receive(data)
        if client.done:
            return
    raise AssertionError("session did not finish")


def test_client_uploads_downloads_and_reports():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(25):
            j.append(records.Record(1, 0, 0, 0, NOW, account_id=i))
        deny = Sink(1)
        conf = Sink(None)  # a kind this gate does not take
        blobs = {(m.KIND_DENY_DELTA, 2): b"d2", (m.KIND_DENY_DELTA, 3): b"d3" * 40000}
        blobs[(m.KIND_CONFIG, 1)] = b"c"
        host = MiniHost(blobs)
        times = []
        c = SyncClient(
            j,
            Signer(DEV_PUB),
            HashVerifier(),
            HOST_PUB,
            Clock(),
            batch_size=10,
            sinks={m.KIND_DENY_DELTA: deny, m.KIND_CONFIG: conf},
            on_time=times.append,
            random_bytes=_nonce,
        )
        _run(c, host)
        assert sorted(host.held) == list(range(1, 26)) and j.pending_count() == 0
        assert c.acked == 25 and times == [NOW + 5]
        assert [v for v, _ in deny.got] == [2, 3] and deny.got[1][1] == b"d3" * 40000
        assert c.applied == [(m.KIND_DENY_DELTA, 2), (m.KIND_DENY_DELTA, 3)]
        assert host.status.last_seq == 25 and host.status.versions == [(m.KIND_DENY_DELTA, 3)]
        j.close()
    finally:
        rmtree(d)


def test_welcome_trims_what_a_lost_ack_left_behind():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for _ in range(5):
            j.append(records.Record(1, 0, 0, 0, NOW))
        host = MiniHost()
        for raw in j.pending(3):
            host.held[records.decode(raw).seq] = raw  # stored, but the ACK never arrived
        c = SyncClient(j, Signer(DEV_PUB), HashVerifier(), HOST_PUB, Clock(), random_bytes=_nonce)
        _run(c, host)
        assert j.pending_count() == 0 and c.acked == 5 and sorted(host.held) == [1, 2, 3, 4, 5]
        j.close()
    finally:
        rmtree(d)


def test_host_ahead_of_the_gate_is_a_sequence_reset():
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        j.append(records.Record(1, 0, 0, 0, NOW))
        host = MiniHost()
        host.held = {s: b"" for s in range(1, 10)}
        c = SyncClient(j, Signer(DEV_PUB), HashVerifier(), HOST_PUB, Clock(), random_bytes=_nonce)
        e = raises(SyncError, _run, c, host)
        assert e.reason == "sequence_reset" and j.pending_count() == 1
        j.close()
    finally:
        rmtree(d)


def test_status_carries_refused_blobs_only_when_there_are_some():
    """A STATUS without refusals is byte for byte the one before refusals existed; with some,
    they follow the JSON, strictly parsed."""
    plain = m.status(NOW, 1, 2, 3, 4, [(m.KIND_TRUST_LIST, 2)], b"{}")
    assert m.parse_status(plain) == (NOW, 1, 2, 3, 4, [(m.KIND_TRUST_LIST, 2)], b"{}", [])
    refused = [(m.KIND_TRUST_LIST, 3, "list_expired", "trust list 3 expired"), (5, 7, "x", "")]
    body = m.status(NOW, 1, 2, 3, 4, [(m.KIND_TRUST_LIST, 2)], b"{}", refused)
    assert body.startswith(plain) and m.parse_status(body)[7] == refused
    ev = sync.Status(*m.parse_status(body))
    assert ev.refused == refused and ev.body() == body
    for broken in (body[:-1], body + b"\x00", plain + b"\x00", plain + b"\x01\x09"):
        raises(FormatError, m.parse_status, broken)
    too_many = [(m.KIND_CONFIG, i, "r", "t") for i in range(m.MAX_REFUSALS + 1)]
    raises(FormatError, m.status, NOW, 0, 0, 0, 0, [], b"", too_many)


def test_a_damaged_journal_uploads_every_record_left_around_the_lost_one():
    # issue 19: the gate boots on a damaged journal and salvages what is unacknowledged
    d = mkdtemp()
    try:
        j = Journal(d, device_id=7)
        for i in range(12):
            j.append(records.Record(1, 0, 0, 0, NOW, account_id=i))
        j.close()
        seg = d + "/seg-%016x.jn3" % 1
        with open(seg, "rb") as f:
            data = bytearray(f.read())
        elen = len(data) // 12
        for p in range(4 * elen, 5 * elen):  # seq 5: gone
            data[p] ^= 0x33
        with open(seg, "wb") as f:
            f.write(data)
        j = Journal(d, device_id=7)
        assert j.report()["lost_seqs"] == [[5, 5]]
        host = MiniHost()
        c = SyncClient(
            j, Signer(DEV_PUB), HashVerifier(), HOST_PUB, Clock(), batch_size=3,
            random_bytes=_nonce,
        )  # fmt: skip
        _run(c, host)
        assert sorted(host.held) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
        assert j.pending_count() == 0 and j.acked_seq == 12
        j.close()
    finally:
        rmtree(d)
