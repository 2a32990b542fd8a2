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
    _provision,
    _scan,
)
from tests.portable.sync_kit import MiniHost

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


# -- what the root may do: security config, threshold, rotation -------------------------------

NEW_SYNC = kit.HashSigner(b"the operator's new sync key")
R1, R2, R3 = (kit.HashSigner(b"root key %d" % i) for i in (1, 2, 3))  # a 2-of-3 root
N1, N2 = (kit.HashSigner(b"new root key %d" % i) for i in (1, 2))  # the 2-of-2 that follows
LISTS2 = codes.FORGER  # (a real ES256 key: the lists role's new key signs real lists)


def _meta(version, root_keys, threshold, sync=HOST_PUB, lists=None, tech=None, expires=None):
    from protocol import rootmeta

    anchor = ROOT.public_key
    roles = {
        rootmeta.ROOT: (threshold, [k.public_key for k in root_keys]),
        rootmeta.SYNC: (1, sync if isinstance(sync, list) else [sync]),
        rootmeta.RELEASE: (1, [anchor]),
        rootmeta.LISTS: (1, [lists or anchor]),
        rootmeta.TECHNICIAN: (1, [tech or anchor]),
    }
    root = rootmeta.Root(version, NOW, expires or NOW + 365 * 86400, roles)
    return rootmeta.encode(root)


def _signed(body, *signers):
    from protocol import rootmeta

    return rootmeta.sign(body, list(signers))


def _bound(dev):
    """Version 1 of a 2-of-3 root: signed by the anchor the gate was claimed with (the implicit
    root's threshold) and by two of its own keys, taken at a sync."""
    v1 = _signed(_meta(1, (R1, R2, R3), 2), ROOT, R1, R2)
    client = _sync(dev, {(m.KIND_ROOT, 1): v1})
    assert client.applied == [(m.KIND_ROOT, 1)] and dev.store.root_version() == 1
    return v1


def _security_config(dev, version, cfg, *signers):
    from protocol import rootmeta

    body = rootmeta.security_config(dev.device_id, version, _blob(cfg))
    return rootmeta.sign(body, list(signers))


def test_a_root_signed_config_changes_security_settings_once(tmp_path):
    dev, hw, _clock = _gate(tmp_path)
    old = codes.code(time=NOW - 50 * 60)
    widened = _security_config(
        dev, 1, _cfg(validation__window_s=3600, revoked_technicians=[]), ROOT
    )
    client = _sync(dev, {(m.KIND_CONFIG, 2): widened})
    assert client.applied == [(m.KIND_CONFIG, 2)] and client.refused == []
    assert dev.console.config["validation"]["window_s"] == 3600
    assert dev.store.flags["security_version"] == 1
    assert _scan(dev, hw, old)["accepted"] == 1  # the operator's own decision, root-signed
    assert _login(dev, REVOKED) == "accepted"
    # the back office offers an older root-signed config again under a new config version
    narrow = _security_config(dev, 1, _cfg(), ROOT)
    client = _sync(dev, {(m.KIND_CONFIG, 3): narrow})
    assert _refusals(client) == [(m.KIND_CONFIG, 3, "root_rollback")]
    # the sync key signing a config in the root's format is still only the sync key
    forged = _security_config(dev, 9, _cfg(clock__set_bound_s=86400), ATTACKER_SYNC)
    client = _sync(dev, {(m.KIND_CONFIG, 4): forged})
    assert _refusals(client) == [(m.KIND_CONFIG, 4, "root_threshold")]
    assert dev.console.config["validation"]["window_s"] == 3600
    dev.close()


def test_a_threshold_of_root_keys_is_needed_once_the_gate_holds_root_metadata(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    _bound(dev)
    cfg = _cfg(revoked_technicians=[REVOKED, 78])
    one = _security_config(dev, 1, cfg, R1)
    client = _sync(dev, {(m.KIND_CONFIG, 2): one})
    assert _refusals(client) == [(m.KIND_CONFIG, 2, "root_threshold")]
    assert "1 valid signature(s) of the root role (version 1), 2 needed" in client.refused[0][3]
    # the anchor it was claimed with is one key no longer enough: it is not in root version 1
    client = _sync(dev, {(m.KIND_CONFIG, 3): _security_config(dev, 1, cfg, ROOT, R3)})
    assert _refusals(client) == [(m.KIND_CONFIG, 3, "root_threshold")]
    client = _sync(dev, {(m.KIND_CONFIG, 4): _security_config(dev, 1, cfg, R1, R3)})
    assert client.applied == [(m.KIND_CONFIG, 4)]
    assert dev.console.config["revoked_technicians"] == [REVOKED, 78]
    dev.close()


def test_root_metadata_is_refused_without_the_old_threshold_its_own_or_in_order(tmp_path):
    from protocol import rootmeta

    dev, _hw, _clock = _gate(tmp_path)
    # the first version needs the anchor (the implicit root) and two of its own three keys
    body = _meta(1, (R1, R2, R3), 2)
    for signers, reason in (
        ((R1, R2), "root_threshold"),  # not the gate's root: anyone can make keys
        ((ROOT, R1), "root_threshold"),  # the old root, but one of its own two
    ):
        client = _sync(dev, {(m.KIND_ROOT, 1): _signed(body, *signers)})
        assert _refusals(client) == [(m.KIND_ROOT, 1, reason)], signers
    assert dev.store.root_version() == 0
    v1 = _bound(dev)
    # rotation to a 2-of-2 of new keys: the old threshold and the new one
    body2 = _meta(2, (N1, N2), 2)
    for signers in ((N1, N2), (R1, N1, N2), (R1, R2, N1)):
        client = _sync(dev, {(m.KIND_ROOT, 2): _signed(body2, *signers)})
        assert _refusals(client) == [(m.KIND_ROOT, 2, "root_threshold")], signers
    # over the console: a rollback to the version held, a version that skips one, one expired
    tech = kit.Tech(dev.console, *kit.tech_cert(ROOT, valid_until=NOW + 30 * 86400), root=ROOT)
    tech.login(claim=False)
    assert tech.put(service.BLOB_ROOT, v1)[2] == "root_rollback"
    v3 = _signed(_meta(3, (N1, N2), 2), R1, R2, N1, N2)
    assert tech.put(service.BLOB_ROOT, v3)[2] == "root_rollback"
    expired = _signed(_meta(2, (N1, N2), 2, expires=NOW - 1), R1, R2, N1, N2)
    assert tech.put(service.BLOB_ROOT, expired)[2] == "root_expired"
    assert tech.put(service.BLOB_ROOT, v1[:-1])[2] == "root_malformed"
    assert dev.store.root_version() == 1
    out = tech.put(service.BLOB_ROOT, _signed(body2, R2, R3, N1, N2))
    assert out[2] == "accepted" and json.loads(out[3])["summary"]["version"] == 2
    held = open(str(tmp_path / "root_meta.bin"), "rb").read()
    assert dev.store.root_version() == 2 and rootmeta.parse(held).keys(rootmeta.ROOT) == [
        N1.public_key,
        N2.public_key,
    ]
    dev.close()


def test_a_root_rotation_at_a_real_sync_then_only_the_new_keys_count(tmp_path):
    """The back office's real store (a SQLite file) and session serve root versions 1 and 2
    (published like any blob); the gate takes both in one session, in order. Version 2 names
    a new technician key, a new lists key and, beside the old sync key, a new one; version 3
    drops the old sync key. Then the old keys are refused everywhere."""
    from firmware.sync.client import SyncError, run_session
    from host_sim.backoffice.store import Store
    from host_sim.backoffice.sync_server import HostSession
    from host_sim.hardware.devices import ManualClock
    from protocol import denylist, trustlist
    from tests.portable.device_kit import Verifier
    from tests.synclab import PipeLink

    (tmp_path / "gate").mkdir()
    dev, _hw, _clock = _gate(tmp_path / "gate")
    office = Store(str(tmp_path / "bo.sqlite"))
    office.add_device(dev.device_id, dev.store.signer().public_key, NOW, "A1")
    new_tech = kit.HashSigner(b"technician key 2")
    both = [HOST_PUB, NEW_SYNC.public_key]
    v1 = _signed(_meta(1, (R1, R2, R3), 2), ROOT, R1, R2)
    v2 = _signed(
        _meta(2, (N1, N2), 2, sync=both, lists=LISTS2.public_key, tech=new_tech.public_key),
        R1,
        R3,
        N1,
        N2,
    )
    office.publish(m.KIND_ROOT, 1, v1, NOW)
    office.publish(m.KIND_ROOT, 2, v2, NOW)

    def session(host_signer):
        from tests.portable.sync_kit import Signer

        link = PipeLink(HostSession(office, Signer(host_signer), Verifier(), ManualClock(NOW)))
        return run_session(dev.sync_client(random_bytes=lambda n: b"\x07" * n), link)

    client = session(HOST_PUB)
    assert client.applied == [(m.KIND_ROOT, 1), (m.KIND_ROOT, 2)] and client.refused == []
    assert dev.store.root_version() == 2 and dev.host_key() == both
    assert dev.in_service  # its own certificate, checked against the key it was claimed with
    # the technician key rotated out: a credential it signed no longer opens a session
    assert _login(dev, 7) == "svc_bad_credential"
    tech_signer = kit.HashSigner(b"technician 9")
    c = certs.Cert(
        certs.KIND_TECHNICIAN,
        9,
        certs.key_id(new_tech.public_key),
        NOW - 60,
        NOW + 86400,
        tech_signer.public_key,
        certs.PERM_ALL,
    )
    tech = kit.Tech(dev.console, tech_signer, certs.sign(c, new_tech), new_tech)
    tech.login(claim=False)
    # lists: the old root key's are refused, the new lists key's taken
    old_list = codes.trust_blob(
        2, valid_until=NOW + 7 * 86400, root_key_id=trustlist.root_key_id(ROOT.public_key)
    )
    assert tech.put(service.BLOB_TRUST, old_list)[2] == "svc_bad_blob"
    lid = trustlist.root_key_id(LISTS2.public_key)
    new_list = codes.trust_blob(2, valid_until=NOW + 7 * 86400, root_key_id=lid, signer=LISTS2)
    assert tech.put(service.BLOB_TRUST, new_list)[2] == "accepted"
    delta = denylist.build_delta(1, 2, NOW, [denylist.account_key(1, 42)], [], ROOT)
    office.publish(m.KIND_DENY_DELTA, 2, delta, NOW)
    # the back office switches to its new sync key; version 3 then drops the old one
    v3 = _signed(
        _meta(
            3,
            (N1, N2),
            2,
            sync=NEW_SYNC.public_key,
            lists=LISTS2.public_key,
            tech=new_tech.public_key,
        ),
        N1,
        N2,
    )
    office.publish(m.KIND_ROOT, 3, v3, NOW)
    client = session(NEW_SYNC.public_key)
    assert (m.KIND_ROOT, 3) in client.applied
    # the old lists key is no lists key any more; it still holds other roles (release, technician)
    assert (m.KIND_DENY_DELTA, 2, "list_wrong_role") in _refusals(client)
    assert dev.host_key() == [NEW_SYNC.public_key]
    try:
        session(HOST_PUB)
        raise AssertionError("a session signed by the old sync key went through")
    except SyncError as e:
        assert e.reason == "timeout"  # its CHALLENGE is dropped unanswered, as a forgery's
    office.close()
    dev.close()


# -- claiming: who may take a blank gate --------------------------------------------------------
#
# Finding: whoever claims a blank or factory-reset gate first owns it; another operator's
# credential claimed a gate, which then accepted that operator's codes. Now an operator binds a
# gate to its root metadata at the factory (root_meta.bin next to factory.json) or in the
# warehouse (the console's root_meta blob); a claim by a key that metadata does not name for
# technicians is refused (claim_foreign), and a factory reset keeps the binding unless a
# threshold of root keys signed a release for this gate.


def _factory(d, meta=None):
    """A gate as the factory ships it: its identity, and (`meta`) its operator's root."""
    kit.write_atomic(
        d + "/factory.json",
        json.dumps({"device_id": kit.DEVICE_ID, "model": "t", "firmware": "0.1.0"}).encode(),
    )
    if meta is not None:
        kit.write_atomic(d + "/root_meta.bin", meta)
    from tests.portable.device_kit import _open

    return _open(d, Hardware(), Clock())


def _claim(dev, root):
    """A technician of the operator whose key is `root` claims the gate: the AUTH's reason."""
    signer, cert = kit.tech_cert(root, valid_from=NOW - 86400, valid_until=NOW + 30 * 86400)
    tech = kit.Tech(dev.console, signer, cert, root)
    tech.hello()
    return tech, tech.auth(claim=True)[2]


def _reset(tech):
    out = tech.request(service.RESET, service.reset_body(False, b"\x00" * 32))
    assert out[2] == "accepted", out


def test_an_unbound_blank_gate_is_still_first_come(tmp_path):
    """What the finding was: without a binding, another operator's credential claims it."""
    dev = _factory(str(tmp_path))
    _tech, reason = _claim(dev, kit.OTHER_ROOT)
    assert reason == "accepted" and dev.store.anchor() == kit.OTHER_ROOT.public_key
    dev.close()


def test_a_gate_bound_at_the_factory_refuses_a_foreign_claim(tmp_path):
    meta = _signed(_meta(1, (R1, R2, R3), 2), R1, R2)
    dev = _factory(str(tmp_path), meta)
    assert dev.store.anchor() is None and dev.store.root_version() == 1  # blank, but bound
    _tech, reason = _claim(dev, kit.OTHER_ROOT)
    assert reason == "claim_foreign" and dev.store.anchor() is None
    tech, reason = _claim(dev, ROOT)  # ROOT is the technician key of this operator's root
    assert reason == "accepted" and dev.store.anchor() == ROOT.public_key
    logs = [e["ev"] for e in tech.ok_json(service.LOGS, b"\x00\x00\x00\x01\x00\x64")["entries"]]
    assert "claimed" in logs
    dev.close()


def test_a_factory_reset_keeps_the_binding_unless_the_root_releases_it(tmp_path):
    hw, clock = Hardware(), Clock()
    dev, tech = _provision(str(tmp_path), hw, clock, config=_blob(_cfg()))
    # bound in the warehouse: the console's root_meta blob, signed by the anchor and its own
    v1 = _signed(_meta(1, (R1, R2, R3), 2), ROOT, R1, R2)
    assert tech.put(service.BLOB_ROOT, v1)[2] == "accepted"
    _reset(tech)
    assert dev.store.anchor() is None and dev.store.root_version() == 1
    assert _claim(dev, kit.OTHER_ROOT)[1] == "claim_foreign"
    tech, reason = _claim(dev, ROOT)
    assert reason == "accepted"
    from protocol import rootmeta

    # releases that do not count: one root key of two, another gate, another root version
    for body, signers in (
        (rootmeta.release(dev.device_id, 1), (R1,)),
        (rootmeta.release(dev.device_id + 1, 1), (R1, R2)),
        (rootmeta.release(dev.device_id, 2), (R1, R2)),
        (rootmeta.release(dev.device_id, 1), (ROOT, ATTACKER_SYNC)),
    ):
        assert tech.put(service.BLOB_RELEASE, _signed(body, *signers))[2] == "release_refused"
    _reset(tech)
    assert dev.store.root_version() == 1  # still bound
    tech, reason = _claim(dev, ROOT)
    release = _signed(rootmeta.release(dev.device_id, 1), R2, R3)
    assert tech.put(service.BLOB_RELEASE, release)[2] == "accepted"
    _reset(tech)
    assert dev.store.root_version() == 0 and not (tmp_path / "root_meta.bin").exists()
    assert _claim(dev, kit.OTHER_ROOT)[1] == "accepted"  # released: the next operator's now
    dev.close()
