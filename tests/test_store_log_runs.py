"""The store's log kept in runs (host_sim/backoffice/translog.runs, store.leaf_runs): batches of
every size around the powers of two and around translog.CHUNK give the RFC 9162 tree, node for
node the in-memory engine's, with proofs across batches; and a store written before runs (one
row per node and per leaf) keeps working and grows. On both backends."""

import pytest

from drivers.linux.crypto_openssl import signer
from host_sim.backoffice import translog
from host_sim.backoffice.store import Store, leaf_runs
from host_sim.backoffice.translog import CHUNK, MemoryNodeStore, TransLog
from protocol import merkle
from tests.test_store_backends import KEY, NOW, chain

# 1, 2^k - 1, 2^k, 2^k + 1 for k = 1..6: batch edges on every side of a power of two and of
# CHUNK (16); the sum, 311 leaves, crosses several chunks of levels 0..4
SIZES = [1] + [n for k in range(1, 7) for n in ((1 << k) - 1, 1 << k, (1 << k) + 1)]


def _upload(s: Store, sizes: list[int]) -> list[bytes]:
    """Store batches of `sizes` records, taking turns between devices 5 and 6 (so leaf runs
    alternate); returns every record in leaf order."""
    raws = {5: chain(5, sum(sizes), 100), 6: chain(6, sum(sizes), 90_000)}
    pos = {5: 0, 6: 0}
    order: list[bytes] = []
    for i, n in enumerate(sizes):
        d = 5 + i % 2
        batch = raws[d][pos[d] : pos[d] + n]
        pos[d] += n
        s.store_batch(d, batch, NOW)
        order += batch
    return order


def _check_tree(s: Store, order: list[bytes], sizes_seen: list[int]) -> None:
    leaves = [merkle.leaf_hash(r) for r in order]
    n = len(leaves)
    log = s.translog()
    assert log.size == n and log.root() == merkle.root(leaves)
    mem = TransLog(MemoryNodeStore(), signer(0x51))
    mem.append_many(order)
    for level in range(n.bit_length()):  # every stored node, as the engine in memory has it
        keys = [(level, i) for i in range(n >> level)]
        assert log.store.nodes(keys) == mem.store.nodes(keys), level
    sub = merkle.list_subtree(leaves)
    for size in sizes_seen:  # the heads a log would have signed after each batch
        root = merkle.root(leaves[:size])
        for i in sorted({0, size // 2, size - 1}):
            proof = log.inclusion_proof(i, size)
            assert proof == merkle.inclusion_path(i, size, sub)
            merkle.verify_inclusion(leaves[i], i, size, proof, root)
        proof = log.consistency_proof(size, n)  # from each batch's head to the last
        assert proof == merkle.consistency_path(size, n, sub)
        merkle.verify_consistency(size, n, proof, root, log.root())
    picked = list(range(0, n, 7))
    multi = log.inclusion_proof_many(picked)
    merkle.verify_multi_inclusion(picked, [leaves[i] for i in picked], n, multi, log.root())


def test_batches_around_powers_of_two_and_chunks(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    s.add_device(6, KEY, NOW)
    order = _upload(s, SIZES)
    sizes_seen = [sum(SIZES[: i + 1]) for i in range(len(SIZES))]
    _check_tree(s, order, sizes_seen)
    for i, raw in enumerate(order):  # each leaf's record, both ways
        got = s.log_leaf(i)
        assert got is not None and got[2] == raw
        assert s.log_leaf_of(got[0], got[1]) == i
    assert s.log_leaf(len(order)) is None and s.log_leaf_of(5, 10_000) is None
    # one row per batch per device in log_leaves, and the nodes in runs inside chunks
    assert s.b.one("SELECT COUNT(*) FROM log_leaves") == (len(SIZES),)
    rows = s.b.rows("SELECT level, idx, hash FROM log_nodes")
    assert sum(len(h) for _lv, _i, h in rows) == 32 * sum(len(order) >> k for k in range(10))
    assert all(i // CHUNK == (i + len(h) // 32 - 1) // CHUNK for _lv, i, h in rows)
    assert len(rows) < len(order)
    s.close()


def test_one_big_batch_is_few_rows(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    raws = chain(5, 1000, 100)
    s.store_batch(5, raws, NOW)
    _check_tree(s, raws, [1000])
    # level k holds 1000 >> k nodes in ceil((1000 >> k) / 16) rows
    want = sum(-(-(1000 >> k) // CHUNK) for k in range(10))
    assert s.b.one("SELECT COUNT(*) FROM log_nodes") == (want,)
    assert s.b.one("SELECT leaf, device_id, seq, n FROM log_leaves") == (0, 5, 1, 1000)
    s.close()


def _to_one_row_each(s: Store, order: list[bytes]) -> None:
    """Rewrite the store's log as a store from before runs kept it: a row per node, a row per
    leaf, and log_leaves without its n column."""
    mem = MemoryNodeStore()
    TransLog(mem, signer(0x51)).append_many(order)
    n = len(order)
    leaves = [s.log_leaf(i) for i in range(n)]
    db = s.db
    db.execute("DELETE FROM log_nodes")
    db.execute("DROP TABLE log_leaves")
    db.execute(
        "CREATE TABLE log_leaves (leaf BIGINT NOT NULL PRIMARY KEY, device_id BIGINT NOT NULL, "
        "seq BIGINT NOT NULL, UNIQUE (device_id, seq))"
    )
    mark = "?" if s.backend == "sqlite" else "%s"
    cur = db.cursor()
    cur.executemany(
        "INSERT INTO log_nodes VALUES (%s)" % ",".join([mark] * 3),
        [(lv, i, mem.node(lv, i)) for lv in range(n.bit_length()) for i in range(n >> lv)],
    )
    cur.executemany(
        "INSERT INTO log_leaves VALUES (%s)" % ",".join([mark] * 3),
        [(i, got[0], got[1]) for i, got in enumerate(leaves) if got],
    )
    if s.backend == "sqlite":
        db.commit()


def test_a_store_from_before_runs_keeps_working(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    s.add_device(6, KEY, NOW)
    first = SIZES[:8]
    order = _upload(s, first)
    root = s.translog().root()
    _to_one_row_each(s, order)
    s.close()
    s = Store(store_target)  # migrates: log_leaves gains n (1 for the old rows)
    assert "n" in s.b.columns("log_leaves")
    assert s.b.one("SELECT COUNT(*) FROM log_leaves WHERE n = 1") == (len(order),)
    assert s.translog().root() == root
    assert [s.log_leaf(i)[2] for i in range(len(order))] == order  # type: ignore[index]
    # it grows with runs beside the old rows; proofs mix both
    more = {5: chain(5, 200, 100), 6: chain(6, 200, 90_000)}
    held = {5: sum(first[0::2]), 6: sum(first[1::2])}
    for d, n in ((5, 33), (6, 16), (5, 1), (6, 40)):
        batch = more[d][held[d] : held[d] + n]
        held[d] += n
        s.store_batch(d, batch, NOW)
        order += batch
    sizes = [sum(first[: i + 1]) for i in range(len(first))] + [len(order)]
    _check_tree(s, order, sizes)
    s.close()


def test_leaf_runs_cut_where_device_or_seq_changes():
    new = [(5, 1, b""), (5, 2, b""), (6, 3, b""), (6, 4, b""), (6, 6, b""), (5, 3, b"")]
    assert leaf_runs(10, new) == [(10, 5, 1, 2), (12, 6, 3, 2), (14, 6, 6, 1), (15, 5, 3, 1)]
    assert leaf_runs(0, []) == []


@pytest.mark.parametrize("start", [0, 1, 15, 16, 17, 31])
def test_runs_never_cross_a_chunk(start):
    hashes = [bytes([i]) * 32 for i in range(40)]
    got = translog.runs(start, hashes)
    assert b"".join(b for _i, b in got) == b"".join(hashes)
    for first, blob in got:
        last = first + len(blob) // 32 - 1
        assert first // CHUNK == last // CHUNK
        assert translog.run_node(first, blob, last) == hashes[last - start]
        assert translog.run_node(first, blob, last + 1) is None
        assert translog.run_node(first, blob, first - 1) is None


def test_the_top_of_the_tree_is_remembered_only_once_committed(store_target):
    """Store.log_nodes keeps the nodes of levels LOG_TOP and up in memory: never those read
    inside a transaction that then rolls back (their slots get other nodes)."""
    from host_sim.backoffice import store as store_mod

    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    s.add_device(6, KEY, NOW)
    top = (store_mod.LOG_TOP, 0)  # complete once 2**LOG_TOP leaves are in
    n = 1 << store_mod.LOG_TOP
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.store_batch_in_transaction(5, chain(5, n, 100), NOW)
            assert s.log_nodes([top])[0] is not None  # read inside: seen, not remembered
            raise RuntimeError("the disk failed")
    assert s.log_nodes([top]) == [None]
    raws = chain(6, n + 3, 5000)
    s.store_batch(6, raws, NOW)
    log = s.translog()
    assert log.store.nodes([top]) == [merkle.root([merkle.leaf_hash(r) for r in raws[:n]])]
    assert top in s._log_top  # read outside a transaction: remembered
    _check_tree(s, raws, [1, n, n + 3])
    s.close()
