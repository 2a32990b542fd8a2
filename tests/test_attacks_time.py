"""Issue 16, the attacks on a gate's time: each refused with its own reason.

- A technician with only the maintain role sets the clock back an hour (or a week): a code
  refused as stale would be accepted again, a stale trust list would look fresh. Beyond
  clock.set_bound_s of the gate's anchored time the console refuses it (svc_clock_bound) unless
  the operator root signed that time for this gate and this session; every change and every
  refusal is journaled (clock_set / svc_clock_bound events) and in the service log.
- The clock jumps forward (a wrong trusted time), the replay cache prunes the entries the new
  time calls old, the clock comes back: the code accepted before must still be a replay.

The gate of the first is composed from its state directory and provisioned through its real
console (tests/portable/device_kit.py); the second is the ride-code attacks' gate on real files
with OpenSSL signatures (tests/test_attacks_ridecode.py).
"""

import struct

from firmware import settings
from host_sim.wallet import Rider
from protocol import certs, reasons, records, ridecode, service
from tests.portable import codes
from tests.portable import console_kit as kit
from tests.portable.device_kit import (
    HOST_PUB,
    NOW,
    ROOT,
    Clock,
    Hardware,
    _open,
    _provision,
    _scan,
    _walk,
)
from tests.test_attacks_ridecode import T, World

BOUND = settings.default("clock.set_bound_s")


def _maintainer(dev):
    """A technician whose credential allows reading and maintaining, nothing more."""
    signer, cert = kit.tech_cert(
        ROOT,
        perms=certs.PERM_READ | certs.PERM_MAINTAIN,
        valid_from=NOW - 86400,
        valid_until=NOW + 30 * 86400,
    )
    tech = kit.Tech(dev.console, signer, cert, ROOT)
    tech.login(claim=False)
    return tech


def _clock_events(dev):
    out = []
    for raw in dev.journal.pending():
        rec = records.decode(raw)
        if rec.kind == records.KIND_EVENT:
            out.append((reasons.by_number(rec.reason), rec.time, rec.value, rec.counter))
    return out


def _root_signed(tech, dev, t, signer=ROOT):
    sig = signer.sign(service.time_signing_input(dev.store.device_id, t, tech.ident.device_nonce))
    return service.set_time_body(t, sig)


def test_a_technician_cannot_set_the_clock_back_to_make_a_stale_code_pass(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, _admin = _provision(str(tmp_path), hw, clock)
    screenshot = codes.code(time=NOW)
    clock.advance(3600)
    assert _scan(dev, hw, screenshot)["presentation_stale"] == 1
    tech = _maintainer(dev)
    was = dev.clock.now()
    _seq, _cmd, reason, body = tech.request(service.SET_TIME, struct.pack(">I", NOW))
    assert reason == "svc_clock_bound", body
    assert b"clock.set_bound_s" in body and dev.clock.now() == was
    assert _scan(dev, hw, screenshot)["presentation_stale"] == 2 and hw.barrier.opened == 0
    assert _clock_events(dev) == [("svc_clock_bound", was, NOW, 0)]
    logs = tech.ok_json(service.LOGS, struct.pack(">IH", 1, 100))["entries"]
    refused = [e for e in logs if e["ev"] == "set_time_refused"]
    assert refused == [dict(refused[0], technician=7, was=was, time=NOW)]
    assert logs[-1]["ev"] == "refused" and logs[-1]["reason"] == "svc_clock_bound"
    # forwards beyond the bound too (it would make every fresh code stale)
    assert tech.request(service.SET_TIME, struct.pack(">I", was + 2 * BOUND))[2] == (
        "svc_clock_bound"
    )
    # within the bound: the technician's ordinary correction, journaled
    out = tech.ok_json(service.SET_TIME, struct.pack(">I", was - BOUND))
    assert out["time"] == was - BOUND and out["root"] is False
    assert _clock_events(dev)[-1] == ("clock_set", was, was - BOUND, 0)
    assert _scan(dev, hw, screenshot)["presentation_stale"] == 3 and hw.barrier.opened == 0
    dev.close()


def test_a_week_back_does_not_make_a_stale_trust_list_fresh(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, _admin = _provision(str(tmp_path), hw, clock)
    fresh = dev.validator.notice(dev.clock.now())
    clock.advance(8 * 86400)  # the trust list ran out a day ago
    stale = dev.validator.notice(dev.clock.now())
    assert fresh == "" and "Trust list" in stale
    tech = _maintainer(dev)
    assert tech.request(service.SET_TIME, struct.pack(">I", NOW))[2] == "svc_clock_bound"
    assert dev.validator.notice(dev.clock.now()) == stale
    dev.close()


def test_stepping_back_within_the_bound_again_and_again_adds_up(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, _admin = _provision(str(tmp_path), hw, clock, host="127.0.0.1", host_key=HOST_PUB.hex())
    clock.advance(3600)
    tech = _maintainer(dev)
    step = BOUND * 2 // 3
    first = dev.clock.now() - step
    assert tech.ok_json(service.SET_TIME, struct.pack(">I", first))["time"] == first
    clock.advance(600)  # ten minutes later, after a reboot, another step back: both count
    dev.close()
    dev = _open(str(tmp_path), hw, clock)
    tech = _maintainer(dev)
    was = dev.clock.now()
    _seq, _cmd, reason, body = tech.request(service.SET_TIME, struct.pack(">I", was - step))
    assert reason == "svc_clock_bound" and b"since its last trusted time" in body, body
    assert dev.clock.now() == was
    # back to the time the gate counted is fine; the root's time clears the sum
    assert tech.ok_json(service.SET_TIME, struct.pack(">I", was + step))["root"] is False
    tech.ok_json(service.SET_TIME, _root_signed(tech, dev, was + step + 60))
    assert dev.store.flags["clock_nudged"] == 0
    # and so does the back office's time at sync (the sync client's on_time)
    first = dev.clock.now() - step
    assert tech.ok_json(service.SET_TIME, struct.pack(">I", first))["time"] == first
    assert dev.store.flags["clock_nudged"] == -step
    dev.sync_client(random_bytes=lambda n: b"\x07" * n).on_time(first + step)
    assert dev.store.flags["clock_nudged"] == 0 and dev.clock.now() == first + step
    assert tech.ok_json(service.SET_TIME, struct.pack(">I", first))["time"] == first
    dev.close()


def test_only_the_operator_roots_signature_for_this_gate_and_session_moves_it_further(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, _admin = _provision(str(tmp_path), hw, clock)
    clock.advance(3600)
    tech = _maintainer(dev)
    was = dev.clock.now()
    # signed by someone else (the technician's own key), or for another time: refused
    forged = service.set_time_body(NOW, tech.signer.sign(b"x" * 32))
    assert tech.request(service.SET_TIME, forged)[2] == "svc_bad_signature"
    other = _root_signed(tech, dev, NOW + 5)
    assert tech.request(service.SET_TIME, struct.pack(">I", NOW) + other[4:])[2] == (
        "svc_bad_signature"
    )
    signed = _root_signed(tech, dev, NOW)
    # recorded for this session, it is worthless in the next (a new nonce)
    later = _maintainer(dev)
    assert later.request(service.SET_TIME, signed)[2] == "svc_bad_signature"
    assert dev.clock.now() == was
    fresh = _root_signed(later, dev, NOW)
    out = later.ok_json(service.SET_TIME, fresh)
    assert out["root"] is True and out["was"] == was and dev.clock.now() == NOW
    assert _clock_events(dev)[-1] == ("clock_set", was, NOW, 1)
    logs = later.ok_json(service.LOGS, struct.pack(">IH", 1, 100))["entries"]
    assert [e for e in logs if e["ev"] == "set_time"][-1]["root"] is True
    # the root's time is trusted like the back office's: a code of that time passes
    assert _scan(dev, hw, codes.code(time=NOW))["accepted"] == 1
    _walk(dev, hw, clock)
    dev.close()


def test_a_code_accepted_before_a_jump_forward_and_back_is_still_a_replay(tmp_path):
    w = World(str(tmp_path))
    code = w.rider.present(T)
    assert w.show(code).accept
    # a wrong trusted time a day ahead (a mistyped root-signed set-time, a bad sync time)
    w.gate.clock.set_trusted(T + 86400)
    commuter = Rider()
    w.issuer.issue(commuter, 43, T - 3600, T + 3 * 86400, scope=1)
    for _ in range(63):  # the gate prunes its replay cache every 64 accepted passages
        assert w.show(commuter.present(w.gate.clock.now())).accept
    assert w.gate.replay.newest(code_id(code)) is None  # pruned: a day is past retention
    w.gate.clock.set_trusted(T + 10)  # corrected back
    assert w.show(code).reason == "replayed"
    w.reboot()
    assert w.show(code).reason == "replayed"
    # a code made after the correction still passes
    assert w.show(w.rider.present(T + 10)).accept


def code_id(text):
    return ridecode.parse_text(text).credential.credential_id()
