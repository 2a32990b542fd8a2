"""Issues 14 and 17, attacks on the deny and plate lists a gate takes: each refused with its reason.

Finding: the deny and plate lists were signed with the operator root key alone (one 64-byte
signature), whatever the root metadata said about the lists role. A gate holding root metadata
whose lists role is a 2-of-3 took a deny list signed by one of those keys (or by the old anchor,
or, for plate lists, by the anchor only), and a deny entry for issuer 1's account 42 also stopped
issuer 2's account 42.

Now both lists carry the lists role's signatures (protocol/sigtail.py: key id and signature
each) and a gate holding root metadata takes one only with the role's threshold of its keys:
list_below_threshold, list_wrong_role (a key of another role, the sync key say),
list_unknown_key (a key the root rotated out). A gate without root metadata trusts its anchor
as the lists role's one key (docs/security.md, "Lists"). The gate is composed from its state
directory and provisioned through its real console (tests/portable/device_kit.py), synced by
the portable suite's MiniHost; the lists keys are real ES256 keys.
"""

from firmware.verify.platestore import PlateStore
from firmware.verify.truststore import ListError
from protocol import certs, denylist, p256, platelist, rootmeta, sigtail, trustlist
from protocol import messages as m
from tests.portable import codes
from tests.portable.device_kit import HOST_PUB, NOW, ROOT, _scan
from tests.test_attacks_roles import R1, R2, R3, _gate, _refusals, _signed, _sync

L1, L2, L3 = (p256.Signer(0x7157_0000 + i) for i in (1, 2, 3))  # a 2-of-3 lists role
L4 = p256.Signer(0x7157_0004)  # the key that replaces L3 at the rotation


def _meta(version, lists, threshold):
    """Root metadata: the 2-of-3 root R1..R3, the sync key of device_kit, `lists` with its
    threshold for the lists role."""
    anchor = ROOT.public_key
    roles = {
        rootmeta.ROOT: (2, [k.public_key for k in (R1, R2, R3)]),
        rootmeta.SYNC: (1, [HOST_PUB]),
        rootmeta.RELEASE: (1, [anchor]),
        rootmeta.LISTS: (threshold, [k.public_key for k in lists]),
        rootmeta.TECHNICIAN: (1, [anchor]),
    }
    return rootmeta.encode(rootmeta.Root(version, NOW, NOW + 365 * 86400, roles))


def _bound_with_lists(dev, lists=(L1, L2, L3), threshold=2):
    """Root version 1 (signed by the anchor, the implicit root, and two root keys), then the
    trust list again, signed by a lists key (trust lists carry one signature: any lists key)."""
    v1 = _signed(_meta(1, lists, threshold), ROOT, R1, R2)
    client = _sync(dev, {(m.KIND_ROOT, 1): v1})
    assert client.applied == [(m.KIND_ROOT, 1)] and dev.store.root_version() == 1
    rid = trustlist.root_key_id(lists[0].public_key)
    trust = codes.trust_blob(2, valid_until=NOW + 7 * 86400, root_key_id=rid, signer=lists[0])
    client = _sync(dev, {(m.KIND_TRUST_LIST, 2): trust})
    assert client.applied == [(m.KIND_TRUST_LIST, 2)]


def _deny_42(signers, issuer=1, to=2):
    """The delta after the provisioned deny list: issuer `issuer`'s account 42 denied."""
    return denylist.build_delta(to - 1, to, NOW, [denylist.account_key(issuer, 42)], [], signers)


def test_a_deny_list_below_the_lists_threshold_is_refused(tmp_path):
    dev, hw, _clock = _gate(tmp_path)
    _bound_with_lists(dev)
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42([L1])})
    assert _refusals(client) == [(m.KIND_DENY_DELTA, 2, "list_below_threshold")]
    assert "1 valid signature(s) of the lists role, 2 needed" in client.refused[0][3]
    assert dev.validator.deny.version == 1 and _scan(dev, hw, codes.code())["accepted"] == 1
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42([L3, L1])})
    assert client.applied == [(m.KIND_DENY_DELTA, 2)]
    assert _scan(dev, hw, codes.code(counter=2))["denied"] == 1
    dev.close()


def test_the_anchor_alone_no_longer_signs_lists_once_the_root_names_the_lists_keys(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    _bound_with_lists(dev)
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42([ROOT])})
    assert _refusals(client) == [(m.KIND_DENY_DELTA, 2, "list_wrong_role")]
    assert "role's key %08x" % certs.key_id(ROOT.public_key) in client.refused[0][3]
    dev.close()


def test_a_deny_list_signed_by_the_sync_key_is_refused(tmp_path):
    """The back office's sync key signs sessions, never lists: a list carrying its key id is
    refused by name, whatever else signed it (one lists key is not the threshold)."""
    dev, _hw, _clock = _gate(tmp_path)
    _bound_with_lists(dev)
    body = denylist.encode_body(denylist.KIND_DELTA, 1, 2, NOW, [denylist.account_key(1, 42)], [])
    sync_id = certs.key_id(HOST_PUB)
    forged = sigtail.attach(
        body, [(sync_id, bytes(64)), (certs.key_id(L1.public_key), L1.sign(body))]
    )
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): forged})
    assert _refusals(client) == [(m.KIND_DENY_DELTA, 2, "list_wrong_role")]
    assert "the sync role's key" in client.refused[0][3]
    assert dev.validator.deny.version == 1
    dev.close()


def test_a_lists_key_rotated_out_no_longer_counts(tmp_path):
    dev, _hw, _clock = _gate(tmp_path)
    _bound_with_lists(dev)
    v2 = _signed(_meta(2, (L1, L2, L4), 2), R1, R2)  # L3 revoked: replaced by L4
    client = _sync(dev, {(m.KIND_ROOT, 2): v2})
    assert client.applied == [(m.KIND_ROOT, 2)]
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42([L1, L3])})
    assert _refusals(client) == [(m.KIND_DENY_DELTA, 2, "list_unknown_key")]
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42([L4, L2])})
    assert client.applied == [(m.KIND_DENY_DELTA, 2)]
    dev.close()


def test_a_deny_entry_stops_its_own_issuers_account_only(tmp_path):
    dev, hw, _clock = _gate(tmp_path)  # no root metadata: the anchor signs lists
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): _deny_42(ROOT, issuer=2)})
    assert client.applied == [(m.KIND_DENY_DELTA, 2)]
    assert _scan(dev, hw, codes.code())["accepted"] == 1  # issuer 1's account 42 rides
    client = _sync(dev, {(m.KIND_DENY_DELTA, 3): _deny_42(ROOT, issuer=1, to=3)})
    assert client.applied == [(m.KIND_DENY_DELTA, 3)]
    assert _scan(dev, hw, codes.code(counter=2))["denied"] == 1
    dev.close()


def test_a_deny_list_of_the_old_format_is_refused_by_name(tmp_path):
    import struct

    dev, _hw, _clock = _gate(tmp_path)
    body = struct.pack(">4sBBHIIIII", b"FGDL", 1, 2, 1, 1, 2, NOW, 1, 0) + struct.pack(
        ">Q", 42 << 24
    )
    client = _sync(dev, {(m.KIND_DENY_DELTA, 2): body + ROOT.sign(body)})
    assert _refusals(client) == [(m.KIND_DENY_DELTA, 2, "deny_needs_issuer")]
    dev.close()


def test_a_plate_list_needs_the_lists_threshold_too():
    """The lane's plate store takes the lists role as the deny store does (the gate builds it
    from the same root metadata: DeviceStore.lists_signers)."""
    from firmware.verify.truststore import ListKeys

    lists = ListKeys([k.public_key for k in (L1, L2, L3)], 2, {certs.key_id(HOST_PUB): "sync"})
    entry = [(platelist.plain_key("BAB1234"), 7, (1001 << 24) | 1)]

    def plate_list(signers):
        return platelist.build(platelist.KIND_SNAPSHOT, 0, 1, NOW, entry, (), signers)

    for signers, reason in (([L1], "list_below_threshold"), ([ROOT], "list_unknown_key")):
        store = PlateStore(None, lists, codes.VERIFIER)
        e = None
        try:
            store.install(plate_list(signers))
        except ListError as err:
            e = err
        assert e is not None and e.reason == reason and store.version == 0
    store = PlateStore(None, lists, codes.VERIFIER)
    assert store.install(plate_list([L2, L3])) and store.lookup("BAB1234")[1] == entry[0][1:]
