"""Statements (host_sim/backoffice/statements.py): built from a real store whose records are
in its transparency log, verified as an issuer would, offline; each way an operator can tamper
with one is caught, by verify or (a dropped record) by reconcile."""

import json

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier, signer
from host_sim import wallet
from host_sim.backoffice import clearing, statements
from host_sim.backoffice.store import Store
from protocol import certs, records, ridecode, sync

NOW = 1_767_254_400  # 2026-01-01T08:00:00Z
DAY = clearing.service_day(NOW, clearing.DEFAULT_TARIFF)
LOG_KEY = signer(0x5E771E)
ROOT = signer(0x2007)  # the operator root: certifies the gates' device keys
GATE = signer(0x6A7E)  # gate 7's device key
DEV_KEY = GATE.public_key
VERIFY = OpenSSLVerifier()


def device_cert(device_id: int, key, root=ROOT, valid_until: int = NOW + 365 * 86400) -> bytes:
    cert = certs.Cert(
        certs.KIND_DEVICE,
        device_id,
        certs.key_id(root.public_key),
        NOW - 30 * 86400,
        valid_until,
        key.public_key,
        0,
        "gate %d" % device_id,
    )
    return certs.sign(cert, root)  # fmt: skip


CERTS = {7: device_cert(7, GATE)}


def upload(store, raws: list[bytes], now: int, key=GATE) -> None:
    """A batch as sync stores it: signed by the gate's key (or `key`, a forger's)."""
    store.store_batch(7, raws, now, key.sign(sync.batch_signing_input(7, raws)))


class World:
    """Two issuers (key ids 1 and 2), three riders each, a day of metro journeys at gate 7."""

    def __init__(self, path: str) -> None:
        self.store = Store(path)
        self.store.add_device(7, DEV_KEY, NOW)
        self.issuers = {k: wallet.Issuer(k) for k in (1, 2)}
        self.riders: dict[tuple[int, int], wallet.Rider] = {}
        self.prev = records.ZERO_HASH
        self.seq = 0
        self.reported: dict[int, list[list[int]]] = {1: [], 2: []}
        for k, iss in self.issuers.items():
            for a in (10, 11, 12):
                r = wallet.Rider()
                iss.issue(r, a, NOW - 86400, NOW + 86400 * 30)
                self.riders[(k, a)] = r

    def tap(self, issuer: int, account: int, t: int, station: int, direction: int) -> bytes:
        rider = self.riders[(issuer, account)]
        text = rider.present(t)
        code = ridecode.parse_text(text).raw
        self.reported[issuer].append([account, 1, rider.counter, t])
        self.seq += 1
        raw = records.Record(
            records.KIND_PASSAGE, 0, 7, self.seq, t, records.MODE_METRO, direction, station,
            prev_hash=self.prev, code=code,
        ).to_bytes()  # fmt: skip
        self.prev = records.record_hash(raw)
        return raw

    def day_of_journeys(self) -> None:
        raws = []
        for k in (1, 2):
            for i, a in enumerate((10, 11, 12)):
                t = NOW + 600 * i + 60 * k
                raws.append(self.tap(k, a, t, 1, records.DIR_ENTRY))
                raws.append(self.tap(k, a, t + 900, 4 + 3 * i, records.DIR_EXIT))
        raws.sort(key=lambda r: records.seq_of(r))
        upload(self.store, raws, NOW + 7200)

    def statement(self, issuer: int, previous_head: bytes | None = None, now_ms: int = 0):
        clearing.run(self.store, clearing.DEFAULT_TARIFF, NOW + 86400, NOW + 86400)
        return statements.build(
            self.store, LOG_KEY, issuer, DAY, clearing.DEFAULT_TARIFF, b"", NOW + 86400,
            now_ms or (NOW + 86400) * 1000, previous_head, CERTS,
        )  # fmt: skip


def verify(st, previous=None, issuer_key=None, root_key=ROOT.public_key) -> statements.Report:
    return statements.verify(
        statements.encode(st), LOG_KEY.public_key, VERIFY, b"", previous, issuer_key, root_key
    )


def resign(st) -> dict:
    """What an operator holding the log key can do after changing a statement."""
    st["totals"] = statements.totals(st["charges"])
    st["signature"] = LOG_KEY.sign(statements.signing_input(st)).hex()
    return st


@pytest.fixture
def world(tmp_path):
    w = World(str(tmp_path / "bo.sqlite"))
    w.day_of_journeys()
    yield w
    w.store.close()


def test_an_honest_statement_verifies_and_reconciles(world):
    st = world.statement(1)
    rep = verify(st, issuer_key=world.issuers[1].public_key)
    assert rep.ok, rep.failures
    assert rep.checked["records"] == 6 and rep.checked["record_signatures"] == 6
    assert [c["account"] for c in st["charges"]] == [10, 11, 12]
    assert [c["amount"] for c in st["charges"]] == [300, 400, 500]  # 2, 3, 4 zones
    assert st["totals"]["amount"] == 1200
    assert statements.reconcile([st], {"presentations": world.reported[1]}) == []
    other = world.statement(2, bytes.fromhex(st["head"]), (NOW + 86400) * 1000 + 1)
    assert verify(other, statements.encode(st)).ok  # the next statement extends this one's head
    # the other issuer's key does not vouch for this issuer's credentials
    assert verify(st, issuer_key=world.issuers[2].public_key).reasons() == ["rider_signature_bad"]


def test_an_altered_record_is_not_the_logs_leaf(world):
    st = world.statement(1)
    leaf, hexraw = st["records"][1]
    rec = records.decode(bytes.fromhex(hexraw))
    rec.station = 12  # the exit moved to a farther zone: a dearer journey
    st["records"][1][1] = rec.to_bytes().hex()
    # nor is it what the gate signed
    assert verify(resign(st)).reasons() == [
        "gate_signature_bad",
        "leaf_not_included",
        "tariff_mismatch",
    ]
    # re-priced to match, the record still is not the leaf the log holds
    c = st["charges"][0]
    c["journeys"][0].update(fare=600, charged=600, rule="metro.fares[3]")
    c["cleared"] = c["amount"] = 600
    assert "leaf_not_included" in verify(resign(st)).reasons()


def test_an_invented_record_is_caught(world):
    st = world.statement(1)
    rider = world.riders[(1, 10)]
    forged = records.Record(
        records.KIND_PASSAGE, 0, 7, 999, NOW + 5000, records.MODE_METRO, records.DIR_ENTRY, 1,
        code=ridecode.parse_text(wallet.present_with(wallet.new_signer(), rider.credential,
                                                     NOW + 5000, 99)).raw,
    ).to_bytes()  # fmt: skip
    st["records"].append([999_999, forged.hex()])
    st["charges"][0]["leaves"].append(999_999)
    assert "leaf_not_included" in verify(resign(st)).reasons()
    # appended to the log behind sync's back it is a leaf, but no gate signed it, nor the rider
    world.store.store_batch(7, [_continue(world, forged)], NOW + 7300)
    st = world.statement(1)
    assert verify(st).reasons() == ["gate_signature_bad", "rider_signature_bad"]


def _continue(world, raw: bytes) -> bytes:
    rec = records.decode(raw)
    world.seq += 1
    rec.seq, rec.prev_hash = world.seq, world.prev
    out = rec.to_bytes()
    world.prev = records.record_hash(out)
    return out


def test_a_rewritten_log_is_inconsistent_with_the_previous_head(world, tmp_path):
    first = world.statement(1)
    # the operator rebuilds the whole log with the first record altered, and restates
    other = World(str(tmp_path / "rewritten.sqlite"))
    raws = [r for _d, _s, r in world.store.records()]
    rec = records.decode(raws[0])
    rec.station = 12
    raws[0] = rec.to_bytes()
    upload(other.store, raws, NOW, LOG_KEY)
    st = statements.build(
        other.store, LOG_KEY, 1, DAY, clearing.DEFAULT_TARIFF, b"", NOW + 86400,
        (NOW + 86400) * 1000 + 5, bytes.fromhex(first["head"]), CERTS,
    )  # fmt: skip
    assert "head_inconsistent" in verify(st, statements.encode(first)).reasons()
    other.store.close()


def test_a_changed_amount_or_total_is_caught(world):
    st = world.statement(1)
    c = st["charges"][1]
    c["journeys"][0]["fare"] += 100  # a dearer fare than the table's, added up right
    c["journeys"][0]["charged"] += 100
    c["cleared"] += 100
    c["amount"] += 100
    assert verify(resign(st)).reasons() == ["tariff_mismatch"]
    c["amount"] += 100  # an amount that is not cleared + corrections
    assert verify(resign(st)).reasons() == ["tariff_mismatch", "totals_mismatch"]
    st = world.statement(1)
    st["totals"]["amount"] += 1
    st["signature"] = LOG_KEY.sign(statements.signing_input(st)).hex()
    assert verify(st).reasons() == ["totals_mismatch"]
    st["totals"]["amount"] -= 1  # without the log key the operator cannot restate
    assert verify(st).reasons() == ["statement_bad_signature"]


def test_a_dropped_record_is_missing_in_reconcile(world):
    st = world.statement(1)
    world.store.db.execute("DELETE FROM records WHERE seq = ?", (records.seq_of(
        bytes.fromhex(st["records"][1][1])),))  # fmt: skip
    world.store.db.commit()
    st = world.statement(1)
    assert verify(st).ok  # consistent in itself: a missing exit, charged the maximum fare
    assert st["charges"][0]["amount"] == 600
    found = statements.reconcile([st], {"presentations": world.reported[1]})
    assert [f["finding"] for f in found] == ["missing"]
    assert found[0]["account"] == 10


def test_the_statement_bytes_are_strict(world):
    st = world.statement(1)
    blob = statements.encode(st)
    pub, root = LOG_KEY.public_key, ROOT.public_key
    assert statements.verify(blob.replace(b",", b", ", 1), pub, VERIFY, b"", root_key=root)\
        .reasons() == ["statement_malformed"]  # fmt: skip
    assert statements.verify(b"[]", pub, VERIFY, b"", root_key=root).reasons() == [
        "statement_malformed"
    ]
    assert statements.verify(blob, pub, VERIFY, b"[metro]\n", root_key=root).reasons() == [
        "tariff_mismatch"
    ]
    assert json.loads(blob)["format"] == "faregate-statement/1"


# -- the gate's signature (sync FGBATCH2 batches, device certificates by the operator root) ----
def test_the_issuer_sees_its_records_and_only_digests_of_the_others(world):
    st = world.statement(1)
    [(dev, _sig, items)] = st["batches"]
    assert dev == 7 and len(items) == 12  # the one batch gate 7 signed: 6 records each issuer
    mine = [i for i in items if isinstance(i, int)]
    assert sorted(mine) == [leaf for leaf, _ in st["records"]]
    others = [bytes.fromhex(i) for i in items if isinstance(i, str)]
    assert len(others) == 6
    blob = statements.encode(st)
    for _d, _q, raw in world.store.records():
        if records.decode(raw).issuer == 2:  # never shown to issuer 1, only its digest
            assert raw.hex().encode() not in blob and sync.record_digest(raw) in others
    assert st["gates"] == [[7, CERTS[7].hex()]]
    assert verify(st).checked["gate_batches"] == 1


def test_a_record_in_a_batch_the_gate_did_not_sign_is_refused(world):
    # a copy of a real passage (its rider signature verifies), uploaded in a batch signed by
    # a key that is not the gate's: only the gate's signature tells it from a real passage
    st = world.statement(1)
    real = bytes.fromhex(st["records"][0][1])
    copy = records.decode(_continue(world, real))
    copy.time += 3000
    raw = copy.to_bytes()
    world.prev = records.record_hash(raw)
    upload(world.store, [raw], NOW + 7300, key=LOG_KEY)
    st = world.statement(1)
    assert verify(st).reasons() == ["gate_signature_bad"]
    # nor can the operator claim that record is in the gate's real batch
    st = world.statement(1)
    leaf = max(leaf for leaf, _ in st["records"])
    st["batches"] = [b for b in st["batches"] if leaf not in b[2]]
    st["batches"][0][2].append(leaf)
    assert verify(resign(st)).reasons() == ["gate_signature_bad"]


def test_a_changed_batch_signature_or_digest_is_refused(world):
    st = world.statement(1)
    sig = bytearray.fromhex(st["batches"][0][1])
    sig[5] ^= 1
    st["batches"][0][1] = sig.hex()
    assert verify(resign(st)).reasons() == ["gate_signature_bad"]
    st = world.statement(1)
    items = st["batches"][0][2]
    k = next(i for i, x in enumerate(items) if isinstance(x, str))
    items[k] = "00" * 32  # another issuer's record swapped for something else
    assert verify(resign(st)).reasons() == ["gate_signature_bad"]
    st = world.statement(1)
    st["batches"] = []  # the gate's evidence left out
    assert verify(resign(st)).reasons() == ["gate_signature_bad"]
    st["batches"] = [[1 << 40, "00", [1]]]  # a batch that does not fit FGBATCH2's fields
    assert verify(resign(st)).reasons() == ["statement_malformed"]


def test_the_gate_key_must_be_certified_by_the_operator_root(world):
    st = world.statement(1)
    assert verify(st, root_key=None).reasons() == ["gate_certificate_bad"]
    assert verify(st, root_key=LOG_KEY.public_key).reasons() == ["gate_certificate_bad"]
    # a certificate the operator made for a key of its own, not by its root: refused
    st["gates"] = [[7, device_cert(7, LOG_KEY, root=LOG_KEY).hex()]]
    assert verify(resign(st)).reasons() == ["gate_certificate_bad"]
    # the right root, but another gate's certificate, or one expired before the passages
    st["gates"] = [[7, device_cert(8, GATE).hex()]]
    assert verify(resign(st)).reasons() == ["gate_certificate_bad"]
    st["gates"] = [[7, device_cert(7, GATE, valid_until=NOW - 1).hex()]]
    assert verify(resign(st)).reasons() == ["gate_certificate_bad"]


# -- the weekly cap: each day's statement carries the week's running totals ---------------------
WEEKLY = dict(clearing.DEFAULT_TARIFF, metro=dict(clearing.DEFAULT_TARIFF["metro"], weekly_cap=700))
WEEKLY_BYTES = statements.canonical(WEEKLY)  # the published fare table, as the simulator's


def _week(world) -> list[dict]:
    """Account 10 of issuer 1 rides 1 -> 4 (300) twice on Thursday and twice on Friday of
    one week (2026-01-01 is a Thursday); the weekly cap of 700 leaves 100 for Friday's first
    journey and nothing for its second. The statements of both days, chained."""
    for d in (0, 1):
        raws = []
        for k in (0, 1):
            t = NOW + d * 86400 + 3600 * k
            raws.append(world.tap(1, 10, t, 1, records.DIR_ENTRY))
            raws.append(world.tap(1, 10, t + 900, 4, records.DIR_EXIT))
        upload(world.store, raws, NOW + d * 86400 + 7200)
    sts, head = [], None
    for d in (0, 1):
        st = statements.build(
            world.store, LOG_KEY, 1, DAY + d, WEEKLY, WEEKLY_BYTES, NOW + 3 * 86400,
            (NOW + 86400 * (d + 3)) * 1000, head, CERTS,
        )  # fmt: skip
        head = bytes.fromhex(st["head"])
        sts.append(st)
    return sts


def _verify_week(st, previous=None) -> statements.Report:
    return statements.verify(
        statements.encode(st), LOG_KEY.public_key, VERIFY, WEEKLY_BYTES,
        statements.encode(previous) if previous else None, None, ROOT.public_key,
    )  # fmt: skip


def test_a_week_where_the_weekly_cap_bites(tmp_path):
    world = World(str(tmp_path / "week.sqlite"))
    thu, fri = _week(world)
    # clearing, over the whole week, charges what the statements state
    clearing.run(world.store, WEEKLY, NOW + 3 * 86400, NOW + 3 * 86400)
    key = records.account_key(1, 10)
    cleared = {c["day"]: c["cleared"] for c in world.store.clearing_charges(key)}
    assert cleared == {DAY: 600, DAY + 1: 100}
    assert [c["cleared"] for c in thu["charges"]] == [600] and thu["week"] == [[10, 600]]
    [c] = fri["charges"]
    assert c["week_before"] == 600 and [j["charged"] for j in c["journeys"]] == [100, 0]
    assert c["amount"] == 100 and fri["week"] == [[10, 700]]
    assert _verify_week(thu).ok  # Thursday: no statement before it from this log
    rep = _verify_week(fri, thu)
    assert rep.ok, rep.failures
    # without Thursday's statement, Friday's running total cannot be checked
    assert _verify_week(fri).reasons() == ["week_total_mismatch"]
    # the operator forgets Thursday's spending and charges Friday in full, re-signed
    c["week_before"] = 0
    for j in c["journeys"]:
        j["charged"] = 300
    c["cleared"] = c["amount"] = 600
    fri["week"] = [[10, 600]]
    assert _verify_week(resign(fri), thu).reasons() == ["week_total_mismatch"]
    # or states Friday's cap right, but from a running total of its own
    c["week_before"] = 500
    c["journeys"][0]["charged"], c["journeys"][1]["charged"] = 200, 0
    c["cleared"] = c["amount"] = 200
    fri["week"] = [[10, 700]]
    assert _verify_week(resign(fri), thu).reasons() == ["week_total_mismatch"]
    world.store.close()


def test_the_signed_part_is_cut_from_the_bytes_as_signing_input_encodes_it(world):
    st = world.statement(1)
    blob = statements.encode(st)
    assert statements._signed_part(blob, st) == statements.signing_input(st)
    # a statement with a member like it inside (a quote in a string is escaped, so only a
    # nested "signature" key can be) is encoded again rather than cut at the wrong place
    st["charges"][0]["corrections"] = [
        {"kind": "adjust", "delta": 0, "reason": "x", "signature": st["signature"]}
    ]
    blob = statements.encode(st)
    assert blob.count(b'"signature":"' + st["signature"].encode()) == 2
    assert statements._signed_part(blob, st) == statements.signing_input(st)
