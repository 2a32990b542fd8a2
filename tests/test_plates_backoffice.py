"""Plate-bound accounts in the back office (host_sim/backoffice/plates.py, store.py's plate_*)
on SQLite and PostgreSQL: bindings published as a signed snapshot then deltas, installed by a
lane's PlateStore; hashed plates never stored in clear; the review queue of unmatched reads."""

import pytest

from firmware.verify.platestore import PlateStore
from host_sim.backoffice import plates, publishing
from host_sim.backoffice.store import Store
from protocol import messages as m
from protocol import p256, platelist, reasons, records, ridecode

NOW = 1_780_000_000
ROOT = p256.Signer(0x3C3C0001)
ROOTS = {1: ROOT.public_key}
VERIFIER = p256.Verifier()
HASH_KEY = bytes(range(100, 132))


def _lane(store: Store, lane: PlateStore) -> None:
    """What a lane's sync does: fetch each version after the one it holds."""
    latest = dict((k, v) for k, v, _n in store.offers())[m.KIND_PLATE_DELTA]
    for v in range(lane.version + 1, latest + 1):
        lane.install(store.publication(m.KIND_PLATE_DELTA, v))


def test_bindings_reach_a_lane_as_a_snapshot_then_deltas(store_target):
    store = Store(store_target)
    try:
        cfg = plates.PlateConfig()
        plates.bind(store, cfg, "b-ab 1234", 4, 1001, 1, NOW)
        plates.bind(store, cfg, "CD 56", 5, 1002, 2, NOW)
        first = plates.publish(store, cfg, ROOT, NOW)
        assert first == {"version": 1, "adds": 2, "removes": 0, "bytes": 32 + 36 + 1 + 68}
        assert plates.publish(store, cfg, ROOT, NOW) is None  # nothing changed
        lane = PlateStore(None, ROOTS, VERIFIER)
        _lane(store, lane)
        assert lane.lookup("BAB 1234")[1] == (4, ridecode.cred_id(1001, 1))
        assert lane.lookup("CD 56")[1] == (5, ridecode.cred_id(1002, 2))
        assert plates.unbind(store, cfg, "CD56", NOW + 1)
        plates.bind(store, cfg, "BAB1234", 4, 1003, 1, NOW + 2)  # the car changed hands
        second = plates.publish(store, cfg, ROOT, NOW + 3)
        assert second is not None and (second["version"], second["adds"]) == (2, 1)
        assert second["removes"] == 1
        _lane(store, lane)
        assert lane.lookup("BAB1234")[1] == (4, ridecode.cred_id(1003, 1))
        assert lane.lookup("CD56")[1] is None
        plates.bind(store, cfg, "BAB1234", 6, 1003, 1, NOW + 4)  # same account, another issuer's
        third = plates.publish(store, cfg, ROOT, NOW + 5)
        assert third is not None and (third["version"], third["adds"]) == (3, 1)
        _lane(store, lane)
        assert lane.lookup("BAB1234")[1] == (6, ridecode.cred_id(1003, 1))
        texts = {b["plate"] for b in store.plate_bindings()}
        assert texts == {"BAB1234", "CD56"}  # the plain scheme keeps the text
        blob = store.publication(m.KIND_PLATE_DELTA, 2)
        offer = publishing.check("plate_delta", blob, None, 1, NOW)
        assert offer.info == {"from": 1, "to": 2, "snapshot": False}
        old = bytearray(blob)
        old[4] = 1  # a format-1 list (its length no longer matches: refused either way)
        with pytest.raises(publishing.PublishRefused):
            publishing.check("plate_delta", bytes(old), None, 2, NOW)
    finally:
        store.close()


def test_a_hashed_scheme_keeps_no_plate_in_clear(store_target):
    store = Store(store_target)
    try:
        cfg = plates.PlateConfig("hmac", HASH_KEY, 3)
        key = plates.bind(store, cfg, "BAB 1234", 1, 1001, 1, NOW)
        assert [b["plate"] for b in store.plate_bindings()] == [""]
        assert key == platelist.hmac_key("BAB1234", HASH_KEY)
        plates.publish(store, cfg, ROOT, NOW)
        blob = store.publication(m.KIND_PLATE_DELTA, 1)
        assert (
            b"BAB1234" not in blob and platelist.plain_key("BAB1234").to_bytes(8, "big") not in blob
        )
        lane = PlateStore(None, ROOTS, VERIFIER, hash_key=HASH_KEY)
        lane.install(blob)
        assert lane.lookup("bab-1234")[1] == (1, ridecode.cred_id(1001, 1))
        with pytest.raises(plates.PlateError):
            plates.bind(store, plates.PlateConfig(), "X1", 1, 1, 1, NOW)
            plates.publish(store, plates.PlateConfig(), ROOT, NOW)  # no scheme switch by delta
    finally:
        store.close()


def test_the_plain_scheme_has_no_key_for_a_plate_it_cannot_pack(tmp_path):
    with pytest.raises(plates.PlateError):
        plates.PlateConfig().key("京A12345")
    with pytest.raises(plates.PlateError):
        plates.PlateConfig("hmac", b"short", 1)


def _rec(seq, kind, reason, t, direction=1, account=0, cred=0, counter=0):
    return records.Record(kind, reason, 7, seq, t, 2, direction, 4, account, cred, counter)


def test_unmatched_reads_are_queued_and_those_that_fell_back_need_nobody(store_target):
    store = Store(store_target)
    try:
        unknown = reasons.number("plate_unknown")
        low = reasons.number("plate_low_confidence")
        raws, prev = [], records.ZERO_HASH
        for r in (
            _rec(1, records.KIND_EVENT, unknown, NOW, account=555, cred=0xABCD, counter=93),
            _rec(2, records.KIND_PASSAGE, 0, NOW + 20, account=1001, cred=1, counter=9),
            _rec(3, records.KIND_EVENT, low, NOW + 900, account=556, cred=0xBEEF, counter=41),
        ):
            r.prev_hash = prev
            raw = r.to_bytes()
            prev = records.record_hash(raw)
            raws.append(raw)
        store.add_device(7, b"\x02" + bytes(32), NOW)
        store.store_batch(7, raws, NOW)
        assert plates.collect(store) == 2
        assert plates.collect(store) == 0  # queued once
        items = plates.queue(store, None)
        assert [(i["seq"], i["status"], i["reason"]) for i in items] == [
            (1, "fell_back", "plate_unknown"),
            (3, "open", "plate_low_confidence"),
        ]
        assert (items[1]["plate_key"], items[1]["image_tag"], items[1]["confidence"]) == (
            556,
            0xBEEF,
            41,
        )
        with pytest.raises(plates.PlateError):
            plates.decide(store, 7, 3, "charged", "ops", "seen on camera", NOW)  # no account
        plates.decide(store, 7, 3, "charged", "ops", "seen on camera", NOW, account=1001)
        assert plates.queue(store) == []
        with pytest.raises(plates.PlateError):
            plates.decide(store, 7, 3, "dismissed", "ops", "again", NOW)
    finally:
        store.close()


def test_the_cli_binds_publishes_and_reviews(tmp_path, capsys):
    from provisioning.cli.main import main

    db = str(tmp_path / "bo.sqlite")
    keydir = str(tmp_path / "operator")
    assert main(["keys", "init", "--dir", keydir]) == 0
    (tmp_path / "plates.key").write_text(HASH_KEY.hex())
    hk = ["--hash-key", str(tmp_path / "plates.key"), "--hash-key-id", "3"]
    Store(db).close()
    base = ["backoffice", "plates"]
    assert main(base + ["bind", "B AB 1234", "4711", "--db", db] + hk) == 0
    assert main(base + ["publish", "--key", keydir + "/root.key", "--db", db] + hk) == 0
    capsys.readouterr()
    assert main(base + ["list", "--db", db, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"account_id": 4711' in out and "BAB1234" not in out
    assert main(base + ["review", "--db", db]) == 0
    assert "nothing to review" in capsys.readouterr().out
    assert main(base + ["bind", "only-one-arg", "--db", db]) == 2
    store = Store(db)
    try:
        blob = store.publication(m.KIND_PLATE_DELTA, 1)
        assert platelist.parse(blob).hash_key_id == 3
    finally:
        store.close()


def test_the_plate_list_vector_on_the_page_is_the_format():
    import os
    import re

    from tests.portable.test_platelist import _doc_vector

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "parking.md")) as f:
        text = f.read()
    shown = re.search(r"<!-- plate-v2-vector -->\n`([0-9a-f]+)`\n", text).group(1)
    cred2 = (1002 << 24) | 2
    delta = platelist.encode_body(
        platelist.KIND_DELTA,
        1,
        2,
        1767254460,
        [(platelist.plain_key("CD34"), 7, cred2)],
        [platelist.plain_key("AB12")],
    )
    assert shown == delta.hex() == _doc_vector()
