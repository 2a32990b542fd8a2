"""Statements (host_sim/backoffice/statements.py): built from a real store whose records are
in its transparency log, verified as an issuer would, offline; each way an operator can tamper
with one is caught, by verify or (a dropped record) by reconcile."""

import json

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier, signer
from host_sim import wallet
from host_sim.backoffice import clearing, statements
from host_sim.backoffice.store import Store
from protocol import records, ridecode

NOW = 1_767_254_400  # 2026-01-01T08:00:00Z
DAY = clearing.service_day(NOW, clearing.DEFAULT_TARIFF)
LOG_KEY = signer(0x5E771E)
DEV_KEY = b"\x02" + bytes(32)
VERIFY = OpenSSLVerifier()


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
        self.store.store_batch(7, raws, NOW + 7200)

    def statement(self, issuer: int, previous_head: bytes | None = None, now_ms: int = 0):
        clearing.run(self.store, clearing.DEFAULT_TARIFF, NOW + 86400, NOW + 86400)
        return statements.build(
            self.store, LOG_KEY, issuer, DAY, clearing.DEFAULT_TARIFF, b"", NOW + 86400,
            now_ms or (NOW + 86400) * 1000, previous_head,
        )  # fmt: skip


def verify(st, previous=None, issuer_key=None) -> statements.Report:
    return statements.verify(
        statements.encode(st), LOG_KEY.public_key, VERIFY, b"", previous, issuer_key
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
    assert verify(resign(st)).reasons() == ["leaf_not_included", "tariff_mismatch"]
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
    # appended to the log through a session it is a leaf, but nobody signed it as the rider
    world.store.store_batch(7, [_continue(world, forged)], NOW + 7300)
    st = world.statement(1)
    assert verify(st).reasons() == ["rider_signature_bad"]


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
    other.store.store_batch(7, raws, NOW)
    st = statements.build(
        other.store, LOG_KEY, 1, DAY, clearing.DEFAULT_TARIFF, b"", NOW + 86400,
        (NOW + 86400) * 1000 + 5, bytes.fromhex(first["head"]),
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
    assert statements.verify(blob.replace(b",", b", ", 1), LOG_KEY.public_key, VERIFY, b"")\
        .reasons() == ["statement_malformed"]  # fmt: skip
    assert statements.verify(b"[]", LOG_KEY.public_key, VERIFY, b"").reasons() == [
        "statement_malformed"
    ]
    assert statements.verify(blob, LOG_KEY.public_key, VERIFY, b"[metro]\n").reasons() == [
        "tariff_mismatch"
    ]
    assert json.loads(blob)["format"] == "faregate-statement/1"
