"""R4, the attacks that concern ride codes: each refused with its own reason, on a gate whose
state is real files (firmware/verify/gatestate.py) and whose signatures are checked by OpenSSL.

(Replay at another gate is caught by the back office, issue 4; images and service commands are
other issues'.)
"""

import random
import signal
import subprocess
import sys
import time

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.verify import gatestate
from firmware.verify.denystore import DenyStore
from firmware.verify.truststore import ListError
from firmware.verify.validator import ValidatorConfig
from host_sim.wallet import Issuer, Operator, Rider, mint_bad, present_with
from protocol import denylist, p256, ridecode
from tests.conftest import ROOT

T = 1_767_254_400


class RTC:
    def __init__(self, t: int) -> None:
        self.t = t

    def now(self) -> int:
        return self.t


class Ticks:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


class World:
    """An operator, an issuer, riders, and one gate's state directory."""

    def __init__(self, path: str, **cfg) -> None:  # type: ignore[no-untyped-def]
        self.dir = path
        self.op = Operator()
        self.issuer = Issuer(1)
        self.rider = Rider()
        self.issuer.issue(self.rider, 42, T - 3600, T + 86400, scope=1)
        gatestate.write_setup(path, self.op.roots(), ValidatorConfig(**cfg))
        self.trust_blob = self.op.trust_list(
            2, [self.issuer.trust_entry(0x00FF, T - 86400, T + 30 * 86400)], T - 60, T + 7 * 86400
        )
        self.rtc = RTC(T)
        self.ticks = Ticks()
        self.gate = self.boot()
        self.gate.trust.install(self.trust_blob)
        self.gate.deny.install(self.op.deny_snapshot(1, [], T - 60))

    def boot(self):  # type: ignore[no-untyped-def]
        from firmware.verify import timeanchor

        v = gatestate.open_validator(self.dir, OpenSSLVerifier())
        v.clock = timeanchor.TimeAnchor(
            self.rtc, self.dir + "/anchor.bin", ticks_ms=self.ticks, ticks_diff=lambda a, b: a - b
        )
        return v

    def reboot(self):  # type: ignore[no-untyped-def]
        self.gate.replay.close()
        self.gate = self.boot()
        return self.gate

    def show(self, text: str):  # type: ignore[no-untyped-def]
        """What a gate does with a scan: check at its clock's time, commit an accept."""
        now = self.gate.clock.now()
        d = self.gate.check(text, now)
        if d.accept:
            self.gate.committed(d.code)
        return d


@pytest.fixture
def world(tmp_path):
    w = World(str(tmp_path))
    yield w
    w.gate.replay.close()


def test_each_code_attack_has_its_own_reason(world):
    w = world
    assert w.show(w.rider.present(T)).accept
    attacks = {
        "forged_issuer": "bad_issuer_signature",
        "tampered": "bad_issuer_signature",
        "unknown_issuer": "unknown_issuer",
        "forged_rider": "bad_rider_signature",
        "swapped": "bad_rider_signature",
        "expired": "credential_expired",
        "not_yet_valid": "credential_not_yet_valid",
        "stale": "presentation_stale",
        "future": "presentation_future",
        "replayed": "replayed",
    }
    for kind, reason in attacks.items():
        d = w.show(mint_bad(kind, w.issuer, w.rider, T))
        assert (kind, d.reason) == (kind, reason)
    # out of scope: the issuer key may sign scopes 0x00FF; this gate serves scope 1
    other = Rider()
    w.issuer.issue(other, 43, T - 60, T + 3600, scope=2)
    assert w.show(other.present(T)).reason == "out_of_scope"
    w.issuer.issue(other, 43, T - 60, T + 3600, scope=0x0100)
    assert w.show(other.present(T)).reason == "issuer_out_of_scope"


def test_replay_is_refused_after_a_reboot(world):
    w = world
    code = w.rider.present(T)
    assert w.show(code).accept
    w.reboot()
    assert w.show(code).reason == "replayed"
    older = present_with(w.rider.signer, w.rider.credential, T, w.rider.counter - 1)
    assert w.show(older).reason == "replayed"
    # a malleated signature (r, n - s) is a valid signature of the same presentation: still a
    # replay, because the cache keys on the credential id and counter, not on signature bytes
    raw = ridecode.parse_text(code).raw
    s = int.from_bytes(raw[-32:], "big")
    twin = ridecode.encode_bytes(raw[:-32] + (p256.N - s).to_bytes(32, "big"))
    assert twin != code and w.show(twin).reason == "replayed"
    assert w.show(w.rider.present(T)).accept


def test_deny_list_delta_by_account_and_credential(world):
    w = world
    assert w.show(w.rider.present(T)).accept
    w.gate.deny.install(w.op.deny_delta(1, 2, T, [denylist.credential_key(1, 42, 1)]))
    assert w.show(w.rider.present(T)).reason == "denied"
    w.issuer.issue(w.rider, 42, T - 60, T + 3600, cred_no=2, scope=1)  # a new phone credential
    assert w.show(w.rider.present(T)).accept
    w.gate.deny.install(w.op.deny_delta(2, 3, T, [denylist.account_key(1, 42)]))
    w.reboot()
    assert w.show(w.rider.present(T)).reason == "denied"


def test_clock_rolled_back_keeps_screenshots_stale_and_limits_acceptance(tmp_path):
    w = World(str(tmp_path), clock_offline_limit=200)
    screenshot = w.rider.present(T)
    assert w.show(screenshot).accept
    # an hour later someone rolls the RTC back an hour and reboots the gate
    w.ticks.ms += 3600 * 1000
    w.rtc.t = T + 3600
    assert w.show(w.rider.present(T + 3600)).accept
    w.rtc.t = T
    w.reboot()
    assert w.gate.clock.now() == T + 3600  # the anchor remembers the last good time
    assert w.gate.clock.untrusted
    other = Rider()
    w.issuer.issue(other, 44, T - 60, T + 86400, scope=1)
    old_shot = other.present(T)  # made "now" by the rolled-back clock: an hour stale really
    assert w.show(old_shot).reason == "presentation_stale"
    d = w.show(other.present(T + 3600))
    assert d.accept and d.flags == ("clock_untrusted",) and d.offline_limit == 200
    assert w.gate.status(T + 3600)["clock"]["untrusted"] is True
    assert w.gate.notice(T + 3600).startswith("Clock not trusted")
    w.gate.config.clock_policy = "refuse"
    assert w.show(other.present(T + 3600)).reason == "clock_untrusted"


def test_stale_forged_and_downgraded_trust_lists(world):
    w = world
    with pytest.raises(ListError) as e:
        w.gate.trust.install(Operator().trust_list(3, [], T, T + 86400))  # another operator
    assert e.value.reason == "list_bad_signature"
    with pytest.raises(ListError) as e:
        w.gate.trust.install(w.op.trust_list(1, [w.issuer.trust_entry()], T, T + 86400))
    assert e.value.reason == "list_downgrade"
    # a rogue issuer key can't be slipped in by re-signing: the root signature covers the keys
    rogue = Issuer(1)
    blob = bytearray(w.trust_blob)
    at = blob.find(w.issuer.public_key)
    blob[at : at + 33] = rogue.public_key
    with pytest.raises(ListError) as e:
        w.gate.trust.install(bytes(blob))
    assert e.value.reason == "list_bad_signature"
    # past valid_until + grace the gate refuses everything, and says so
    w.gate.config.stale_policy = "refuse"
    w.ticks.ms += 7 * 86400 * 1000  # a week passes (an RTC that jumped alone would be flagged)
    w.rtc.t = T + 7 * 86400
    fresh = Rider()
    w.issuer.issue(fresh, 45, T + 7 * 86400 - 60, T + 8 * 86400, scope=1)
    assert w.show(fresh.present(T + 7 * 86400)).reason == "trust_list_stale"
    assert w.gate.status(T + 7 * 86400)["trust"]["stale"] is True


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from drivers.linux.crypto_openssl import OpenSSLVerifier
from firmware.verify.denystore import DenyStore
roots = {1: bytes.fromhex(sys.argv[3])}
store = DenyStore(sys.argv[2], roots, OpenSSLVerifier(), compact_after=3)
print("ready", flush=True)
while True:
    try:
        blob = open("%s/../delta-%d.bin" % (sys.argv[2], store.version), "rb").read()
    except OSError:
        break
    store.install(blob)
    print(store.version, flush=True)
"""


def test_power_cut_mid_delta_leaves_the_old_list_or_the_new(tmp_path):
    """SIGKILL a process applying deny deltas (and compacting) at random moments."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    op = Operator()
    rounds = 30
    expected = {1: set(denylist.account_key(1, a) for a in range(0, 600000, 3))}
    for v in range(1, rounds + 1):
        adds = [denylist.account_key(1, rng.randrange(1 << 40)) for _ in range(2000)]
        removes = rng.sample(sorted(expected[v]), 500)
        expected[v + 1] = (expected[v] - set(removes)) | set(adds)
        (tmp_path / ("delta-%d.bin" % v)).write_bytes(op.deny_delta(v, v + 1, T, adds, removes))
    store_dir = tmp_path / "deny"
    store_dir.mkdir()
    DenyStore(str(store_dir), op.roots(), OpenSSLVerifier()).install(
        op.deny_snapshot(1, expected[1], T)
    )
    kills = 0
    for _attempt in range(8):
        before = DenyStore(str(store_dir), op.roots(), OpenSSLVerifier()).version
        if before > rounds:
            break
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, ROOT, str(store_dir), op.public_key.hex()],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(rng.random() * 0.03)  # a few deltas (and compactions) at most
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        after = DenyStore(str(store_dir), op.roots(), OpenSSLVerifier())
        assert after.version >= before, "seed %d: went back" % seed
        assert set(after.entries()) == expected[after.version], (
            "seed %d: version %d holds a mix"
            % (
                seed,
                after.version,
            )
        )
    assert kills >= 3, "seed %d" % seed
