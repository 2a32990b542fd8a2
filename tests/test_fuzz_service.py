"""Fuzz the service console's parsers and the console itself (R3): only typed rejects."""

import json
import struct

import pytest

from firmware.compose import gate_config
from protocol import certs, frames, reasons, service
from protocol.errors import FormatError
from tests.fuzzing import QUICK, fuzz_parser
from tests.portable import console_kit as kit

CERT = kit.device_cert(kit.HashSigner(b"dev").public_key)
CONFIG = json.dumps(dict(kit.CONFIG, validation={"window_s": 60}, revoked_technicians=[3])).encode()
IDENT = service.Identity(1, 3, kit.DEVICE_ID, b"n" * 16, 7, b"\x02" + bytes(32), bytes(64), b"")
AUTH = service.auth_body(1, kit.ROOT.public_key, CERT) + bytes(64)
PUT = service.put_blob_body(service.BLOB_TRUST, 10, 0, bytes(32), b"0123456789")


def _config(data: bytes) -> None:
    gate_config.parse(data, kit.DEVICE_ID)


CASES = {
    "cert": (certs.parse, [CERT]),
    "identity": (service.parse_identity, [service.identity(IDENT, b'{"model": "x"}')]),
    "auth": (service.parse_auth, [AUTH]),
    "request": (service.parse_request, [service.request_head(3, 8, PUT) + bytes(64)]),
    "put_blob": (service.parse_put_blob, [PUT]),
    "config": (_config, [CONFIG]),
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


class AcceptAll:
    """Lets mutated requests past the signature check, so they reach every handler."""

    def verify(self, pub, msg, sig):
        return True


def _console_fuzzer(tmp_path):
    console = kit.make_gate(str(tmp_path))
    console.verifier = AcceptAll()
    tech = kit.Tech(console)
    tech.login()
    seeds = []
    for cmd, body in (
        (service.STATUS, b""),
        (service.LOGS, struct.pack(">IH", 1, 5)),
        (service.BLOB_INFO, b"\x03"),
        (service.EXPORT, struct.pack(">IH", 0, 5)),
        (service.SET_TIME, struct.pack(">I", kit.NOW)),
        (service.SET_TIME, service.set_time_body(kit.NOW + 3600, bytes(64))),  # root-signed
        (service.GEN_KEY, b""),
        (service.PUT_BLOB, service.put_blob_body(2, len(CONFIG), 0, b"x" * 32, CONFIG)),
        (service.PUT_BLOB, service.put_blob_body(1, len(CERT), 0, b"x" * 32, CERT)),
        (service.RESET, service.reset_body(False, bytes(32))),
    ):
        seeds.append(service.request_head(1, cmd, body) + bytes(64))
    internal = reasons.number("svc_internal")

    def feed(data: bytes) -> None:
        console.state = "open"  # a reset may have closed the session: reopen it
        console.tech = certs.parse(tech.cert)
        console.last_seq = 0
        console._last_request = None
        for fr in frames.FrameDecoder().feed(console.feed(frames.encode(service.REQUEST, data))):
            status = service.parse_response(fr.payload)[2]
            assert status != internal, json.loads(service.parse_response(fr.payload)[3])

    return feed, seeds


def test_fuzz_console_quick(tmp_path) -> None:
    feed, seeds = _console_fuzzer(tmp_path)
    fuzz_parser(feed, seeds, (), n=QUICK)


@pytest.mark.fuzz
def test_fuzz_console_long(tmp_path) -> None:
    feed, seeds = _console_fuzzer(tmp_path)
    fuzz_parser(feed, seeds, (), n=100000)  # writes to storage: 100k, not a million
