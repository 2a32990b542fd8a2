"""Issue 16, attacks on who may sign what a gate takes at sync: each refused with its own reason.

Finding: with only the back office's sync key (the key that signs a sync session), a gate's
config was changed to widen the presentation window to an hour and to empty the list of revoked
technicians; after the next sync a 50-minute-old code was accepted and a revoked technician logged
in again. The same config carried the back office's own key (sync.host_key), and nothing stopped
the sync key from replacing the gate's trust anchors either.

Now every blob a gate takes names the role that must sign it (protocol/rootmeta.py, the root
metadata): config settings that touch security (firmware/settings.py SECURITY) change only with a
threshold of root signatures; the sync key alone delivers the rest (a new pass time, a fare
table). The gate is composed from its state directory and provisioned through its real console
(tests/portable/device_kit.py); its back office is the portable suite's MiniHost over an in-memory
link, the session signed with the sync key.
"""

import json

from protocol import certs, service
from protocol import messages as m
from tests.portable import codes
from tests.portable import console_kit as kit
from tests.portable.device_kit import (
    HOST_PUB,
    NOW,
    ROOT,
    Clock,
    Hardware,
    MiniHost,
    _provision,
    _scan,
)

REVOKED = 77  # a technician the operator revoked before the attack
ATTACKER_SYNC = kit.HashSigner(b"the attacker's own back office")


def _cfg(**changes) -> dict:
    """The config the gate was provisioned with: the sync key, technician 77 revoked."""
    cfg = json.loads(json.dumps(kit.CONFIG))
    cfg["sync"] = {"host": "127.0.0.1", "host_key": HOST_PUB.hex()}
    cfg["revoked_technicians"] = [REVOKED]
    for name, value in changes.items():
        section, _, key = name.partition("__")
        if key:
            cfg.setdefault(section, {})[key] = value
        else:
            cfg[section] = value
    return cfg


def _blob(cfg: dict) -> bytes:
    return json.dumps(cfg).encode()


def _gate(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, tech = _provision(str(tmp_path), hw, clock, config=_blob(_cfg()))
    return dev, hw, clock


def _sync(dev, blobs):
    """One session with a back office that holds only the sync key and offers `blobs`."""
    host = MiniHost(blobs, device_pub=dev.store.signer().public_key)
    client = dev.sync_client(random_bytes=lambda n: b"\x07" * n)
    data = client.start()
    while not client.done:
        data = client.receive(host.receive(data))
    return client


def _refusals(client):
    return [(k, v, reason) for k, v, reason, _text in client.refused]


def _login(dev, tech_id):
    """A technician credential, signed by the operator root, for `tech_id`."""
    signer = kit.HashSigner(b"technician %d" % tech_id)
    c = certs.Cert(
        certs.KIND_TECHNICIAN,
        tech_id,
        certs.key_id(ROOT.public_key),
        NOW - 86400,
        NOW + 30 * 86400,
        signer.public_key,
        certs.PERM_ALL,
    )
    tech = kit.Tech(dev.console, signer, certs.sign(c, ROOT), ROOT)
    tech.hello()
    return tech.auth(claim=False)[2]


# -- the finding, as it was found --------------------------------------------------------------


def test_the_sync_key_alone_cannot_widen_the_presentation_window(tmp_path):
    dev, hw, clock = _gate(tmp_path)
    old = codes.code(time=NOW - 50 * 60)  # a screenshot taken 50 minutes ago
    assert _scan(dev, hw, old)["presentation_stale"] == 1
    client = _sync(dev, {(m.KIND_CONFIG, 2): _blob(_cfg(validation__window_s=3600))})
    assert _refusals(client) == [(m.KIND_CONFIG, 2, "config_needs_root")]
    assert "validation.window_s" in client.refused[0][3]
    assert "validation" not in dev.console.config  # the old config stays
    assert _scan(dev, hw, old)["presentation_stale"] == 2 and hw.barrier.opened == 0
    # what the sync key may deliver still goes through: the pass time is not security
    client = _sync(dev, {(m.KIND_CONFIG, 3): _blob(_cfg(gate__pass_ms=9000))})
    assert client.applied == [(m.KIND_CONFIG, 3)] and client.refused == []
    assert dev.console.config["gate"]["pass_ms"] == 9000
    dev.close()


def test_the_sync_key_alone_cannot_empty_the_revoked_technicians(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    assert _login(dev, REVOKED) == "svc_revoked"
    client = _sync(dev, {(m.KIND_CONFIG, 2): _blob(_cfg(revoked_technicians=[]))})
    assert _refusals(client) == [(m.KIND_CONFIG, 2, "config_needs_root")]
    assert "revoked_technicians" in client.refused[0][3]
    assert _login(dev, REVOKED) == "svc_revoked"
    # leaving the setting out is the same change (its default: nobody revoked)
    cfg = _cfg()
    del cfg["revoked_technicians"]
    client = _sync(dev, {(m.KIND_CONFIG, 3): _blob(cfg)})
    assert _refusals(client) == [(m.KIND_CONFIG, 3, "config_needs_root")]
    assert _login(dev, REVOKED) == "svc_revoked"
    dev.close()


def test_the_sync_key_alone_cannot_replace_the_back_offices_own_key(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    theirs = ATTACKER_SYNC.public_key.hex()
    client = _sync(dev, {(m.KIND_CONFIG, 2): _blob(_cfg(sync__host_key=theirs))})
    assert _refusals(client) == [(m.KIND_CONFIG, 2, "config_needs_root")]
    assert "sync.host_key" in client.refused[0][3]
    assert dev.host_key() == HOST_PUB
    dev.close()


def test_the_sync_key_alone_cannot_loosen_the_clock_or_stale_policies(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    for n, change in enumerate(
        (
            {"clock__set_bound_s": 86400},
            {"validation__skew_s": 600},
            {"validation__stale_trust": "grace", "validation__stale_grace_s": 30 * 86400},
            {"validation__stale_deny": "accept"},
            {"risk__first_ride_s": 0},
            {"clock__ahead_tolerance_s": 86400},
        )
    ):
        client = _sync(dev, {(m.KIND_CONFIG, 2 + n): _blob(_cfg(**change))})
        assert _refusals(client) == [(m.KIND_CONFIG, 2 + n, "config_needs_root")], change
    dev.close()


def test_the_sync_key_alone_cannot_replace_the_trust_anchors(tmp_path):
    """A root metadata naming the attacker's keys for every role, signed by the sync key (and
    by the attacker's own key) but not by the gate's root: refused, the anchors stay."""
    from protocol import rootmeta

    dev, _hw, _clock = _gate(tmp_path)
    mine = ATTACKER_SYNC.public_key
    roles = {r: (1, [mine]) for r in rootmeta.ROLES}
    body = rootmeta.encode(rootmeta.Root(1, NOW, NOW + 365 * 86400, roles))
    forged = rootmeta.sign(body, [ATTACKER_SYNC])
    client = _sync(dev, {(m.KIND_ROOT, 1): forged})
    assert _refusals(client) == [(m.KIND_ROOT, 1, "root_threshold")]
    assert dev.store.anchor() == ROOT.public_key and dev.host_key() == HOST_PUB
    dev.close()


def test_a_console_time_signature_still_needs_the_root(tmp_path):
    """The sync key cannot stand in for the root anywhere the root signs: a set-time signed
    with it is refused as before (tests/test_attacks_time.py has the root's own)."""
    dev, _hw, _clock = _gate(tmp_path)
    signer, cert = kit.tech_cert(ROOT, valid_from=NOW - 86400, valid_until=NOW + 30 * 86400)
    tech = kit.Tech(dev.console, signer, cert, ROOT)
    tech.login(claim=False)
    t = NOW - 7 * 86400
    sig = ATTACKER_SYNC.sign(service.time_signing_input(dev.device_id, t, tech.ident.device_nonce))
    reason = tech.request(service.SET_TIME, service.set_time_body(t, sig))[2]
    assert reason == "svc_bad_signature"
    dev.close()
