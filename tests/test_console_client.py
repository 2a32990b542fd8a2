"""The laptop's service client against late and forged IDENTITY answers (no gate needed).

A gate that reboots answers a HELLO the client already gave up on; that late answer is signed over
the earlier nonce and must be dropped, not taken for a forgery (it failed `faregate flash` on a
loaded CI machine). An answer signed over no nonce we sent is still refused.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from drivers.linux import crypto_openssl as ossl
from protocol import frames, service
from provisioning.console import DeviceMisbehaves, ServiceClient

KEY = ossl.generate_key()
PUB = ossl.public_bytes(KEY)


def identity_for(host_nonce: bytes, key=KEY) -> bytes:
    ident = service.Identity(
        service.STATE_IN_SERVICE, service.ID_HAS_KEY, 1017, bytes(range(16)), 0, PUB, None, {}
    )
    head = ident.head_bytes()
    ident.sig = ossl.sign(key, service.identity_signing_input(host_nonce, head))
    return service.identity(ident, b"{}")


class ScriptedLink:
    """Answers each HELLO with the frames `script(nonce_of_this_hello, earlier_nonces)` gives."""

    def __init__(self, script: Callable[[bytes, list[bytes]], list[bytes]]) -> None:
        self.script = script
        self.nonces: list[bytes] = []

    def exchange(self, ftype, payload, want, timeout=None, retries=None):
        assert ftype == service.HELLO
        nonce = service.parse_hello(payload)
        earlier = list(self.nonces)
        self.nonces.append(nonce)
        for p in self.script(nonce, earlier):
            fr = frames.Frame(service.IDENTITY, p)
            if want(fr):
                return fr
        raise AssertionError("no frame wanted")


def counting_rng():
    n = [0]

    def rng(k: int) -> bytes:
        n[0] += 1
        return bytes([n[0]]) * k

    return rng


def test_a_late_answer_to_an_earlier_hello_is_dropped_and_the_current_one_taken() -> None:
    # the second HELLO first receives the gate's late answer to the first, then its own
    link = ScriptedLink(
        lambda nonce, earlier: [identity_for(n) for n in earlier[-1:]] + [identity_for(nonce)]
    )
    client = ServiceClient(link, rng=counting_rng())  # type: ignore[arg-type]
    client.hello()
    ident = client.hello()
    assert ident.device_id == 1017 and client.host_nonce == link.nonces[-1]


def test_an_identity_signed_over_no_nonce_we_sent_is_still_refused() -> None:
    link = ScriptedLink(lambda nonce, earlier: [identity_for(b"\x99" * service.NONCE_LEN)])
    client = ServiceClient(link, rng=counting_rng())  # type: ignore[arg-type]
    with pytest.raises(DeviceMisbehaves, match="identity signature does not verify"):
        client.hello()


def test_an_answer_by_another_key_over_an_earlier_nonce_is_refused() -> None:
    other = ossl.generate_key()  # signs over the earlier nonce but with a key not in the frame
    link = ScriptedLink(
        lambda nonce, earlier: (
            [identity_for(n, other) for n in earlier[-1:]] or [identity_for(nonce)]
        )
    )
    client = ServiceClient(link, rng=counting_rng())  # type: ignore[arg-type]
    client.hello()
    with pytest.raises(DeviceMisbehaves):
        client.hello()
