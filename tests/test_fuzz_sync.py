"""Fuzz the sync layer (R3): every message parser, and both state machines fed mutated bytes.
Only typed rejects come out; nothing hangs or escapes."""

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from protocol import messages as m
from protocol import records, sync, synchost
from protocol.errors import FormatError
from tests.fuzzing import QUICK, fuzz_parser

NOW = 1_767_254_400
HOST = OpenSSLSigner(generate_key())
DEV = OpenSSLSigner(generate_key())
REC = records.Record(records.KIND_PASSAGE, 0, 7, 1, NOW, account_id=9).to_bytes()


def _session_bytes() -> tuple[list[bytes], list[bytes]]:
    """Real frames of a session: (device -> host, host -> device)."""
    dev = sync.DeviceConnection(7, DEV, OpenSSLVerifier(), HOST.public_key)
    host = synchost.HostConnection(HOST, OpenSSLVerifier())
    up, down = [], []
    up.append(dev.send(sync.Hello(7, b"n" * 16, 1)))
    host.receive_data(up[-1])
    host.next_event()
    host.accept_device(DEV.public_key)
    down.append(host.send(sync.Challenge(b"h" * 16, NOW)))
    dev.receive_data(down[-1])
    dev.next_event()
    up.append(dev.send(sync.Auth(7)))
    host.receive_data(up[-1])
    host.next_event()
    down.append(host.send(sync.Welcome(0, [(m.KIND_CONFIG, 2, 5)])))
    dev.receive_data(down[-1])
    dev.next_event()
    up.append(dev.send(sync.Batch([REC])))
    up.append(dev.send(sync.Status(NOW, 1, 2, 1, 0, [(m.KIND_CONFIG, 1)], b"{}")))
    return up, down


UP, DOWN = _session_bytes()
BODIES = {
    m.HELLO: m.hello(7, b"n" * 16, 1),
    m.CHALLENGE: m.challenge(b"h" * 16, NOW),
    m.WELCOME: m.welcome(3, [(1, 2, 3), (5, 1, 100)]),
    m.BATCH: m.batch([REC, REC], bytes(64)),
    m.ACK: m.ack(5),
    m.STATUS: m.status(NOW, 1, 2, 3, 4, [(1, 2)], b'{"a":1}'),
    m.FETCH: m.fetch(1, 2, 0, 100),
    m.BLOB: m.blob(1, 2, 10, 0, b"0123456789"),
    m.ERROR: m.error(4, "unknown"),
    m.AUTH: m.auth(7),
}


def _parse_any(data: bytes) -> None:
    if data:
        sync.parse_event(data[0] % 12, data[1:])


def _host_session(data: bytes) -> None:
    from host_sim.backoffice.sync_server import HostSession

    s = HostSession(STORE, HOST, OpenSSLVerifier(), None)
    s.receive(data)  # must never raise: a refusal is an ERROR frame


def _device(data: bytes) -> None:
    dev = sync.DeviceConnection(7, DEV, OpenSSLVerifier(), HOST.public_key)
    dev.send(sync.Hello(7, b"n" * 16, 1))
    dev.receive_data(data)
    try:
        while dev.next_event() is not sync.NEED_DATA:
            pass
    except sync.RemoteProtocolError:
        pass


STORE = None


@pytest.fixture(autouse=True, scope="module")
def _store(tmp_path_factory):
    global STORE
    from host_sim.backoffice.store import Store

    STORE = Store(str(tmp_path_factory.mktemp("bo") / "bo.sqlite"))
    STORE.add_device(7, DEV.public_key, NOW)
    yield
    STORE.close()


SEEDS = [bytes([t]) + b for t, b in BODIES.items()]
CASES = {
    "messages": (_parse_any, SEEDS),
    "host_session": (_host_session, [b"".join(UP)] + UP),
    "device_connection": (_device, [b"".join(DOWN)] + DOWN),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_quick(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), n=QUICK)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_million(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,))
