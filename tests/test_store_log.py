"""The transparency log fed by the store (docs/settlement.md): every stored record is a leaf,
appended in the transaction that stores it, on both backends; several writers at once give one
append-only tree; the proofs the store's log gives verify against its signed heads."""

import pytest

from drivers.linux.crypto_openssl import OpenSSLVerifier, signer
from host_sim.backoffice import translog
from host_sim.backoffice.store import Store
from protocol import merkle, records
from protocol.errors import FormatError
from tests.test_store_backends import KEY, NOW, chain, upload_concurrently


def leaves_of(s: Store) -> list[bytes]:
    """Every leaf's record, in leaf order, read back through the store."""
    out = []
    for i in range(s.log_size()):
        got = s.log_leaf(i)
        assert got is not None
        out.append(got[2])
    return out


def test_every_stored_record_is_one_leaf_and_proofs_verify(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    s.add_device(6, KEY, NOW)
    a, b = chain(5, 7, 100), chain(6, 4, 900)
    s.store_batch(5, a[:4], NOW)
    s.store_batch(6, b, NOW)
    s.store_batch(5, a[2:], NOW)  # overlaps: the two already held are not leaves twice
    s.store_batch(5, a, NOW)  # all held: no leaf
    assert s.log_size() == 11
    assert leaves_of(s) == a[:4] + b + a[4:]
    assert s.log_leaf_of(6, 1) == 4 and s.log_leaf_of(5, 5) == 8 and s.log_leaf_of(5, 99) is None
    log = s.translog(signer(0x51))
    head = translog.check_head(log.sign_head(NOW * 1000), log.signer.public_key, OpenSSLVerifier())
    assert head.tree_size == 11
    assert head.root_hash == merkle.mth(leaves_of(s))
    for i, raw in enumerate(leaves_of(s)):
        merkle.verify_inclusion(
            merkle.leaf_hash(raw), i, 11, log.inclusion_proof(i), head.root_hash
        )
    # a later batch: the log grows, the old head is consistent with the new one
    s.add_device(7, KEY, NOW)
    s.store_batch(7, chain(7, 5, 5000), NOW)
    log.refresh()
    new = merkle.parse_head(log.sign_head(NOW * 1000 + 1))
    assert new.tree_size == 16
    merkle.verify_consistency(11, 16, log.consistency_proof(11), head.root_hash, new.root_hash)
    assert [merkle.parse_head(h).tree_size for h in s.log_heads()] == [11, 16]
    # a reopened store (a restarted serve) continues the same tree
    s.close()
    s = Store(store_target)
    log = s.translog(signer(0x51))
    assert (
        log.size == 16 and log.root() == new.root_hash and log.last_head.timestamp == new.timestamp
    )
    s.close()


def test_a_failed_batch_appends_no_leaf(store_target):
    s = Store(store_target)
    s.add_device(5, KEY, NOW)
    s.store_batch(5, chain(5, 3, 0), NOW)
    bad = chain(5, 3, 0)
    bad[1] = bad[1][:10]
    with pytest.raises(FormatError):
        s.store_batch(5, bad, NOW)
    with pytest.raises(Exception):  # noqa: B017  the store fails inside the transaction
        with s.transaction():
            s.store_batch_in_transaction(5, chain(5, 6, 0)[3:], NOW)
            raise RuntimeError("the disk failed")
    assert s.log_size() == 3 and s.count() == 3
    s.close()


def test_a_store_from_before_the_log_puts_its_records_in_it(tmp_path):
    path = str(tmp_path / "old.sqlite")
    s = Store(path)
    s.add_device(5, KEY, NOW)
    s.store_batch(5, chain(5, 4, 0), NOW)
    s.db.execute("DROP TABLE log_state")  # as a store written before the log existed
    s.db.execute("DELETE FROM log_nodes")
    s.db.execute("DELETE FROM log_leaves")
    s.db.commit()
    s.close()
    s = Store(path)
    assert s.log_size() == 4 and leaves_of(s) == chain(5, 4, 0)
    s.close()


def test_several_writers_make_one_append_only_tree(store_target):
    """Four front ends storing three devices' overlapping batches at once: every record is a
    leaf exactly once, and the stored tree is the RFC 9162 tree of the leaves in their order."""
    setup = Store(store_target)
    chains = {d: chain(d, 60, d * 10_000) for d in (1, 2, 3)}
    for d in chains:
        setup.add_device(d, KEY, NOW)
    upload_concurrently(store_target, chains, 4)
    got = leaves_of(setup)
    assert sorted(got) == sorted(r for raws in chains.values() for r in raws)
    for raws in chains.values():  # each device's records are leaves in seq order
        assert [r for r in got if r in set(raws)] == raws
    log = setup.translog(signer(0x51))
    assert log.root() == merkle.mth(got)
    keys = [(records.decode(r).device_id, records.decode(r).seq) for r in got]
    assert setup.log_leaves_of(keys) == {k: i for i, k in enumerate(keys)}
    setup.close()


def test_heads_and_proofs_over_http(tmp_path):
    """GET /log/heads, /log/prove, /log/consistency on the back office's HTTP port: what an
    issuer fetches, checked here as it would check them."""
    import asyncio
    import json
    import urllib.error
    import urllib.request

    from host_sim.backoffice import http
    from host_sim.backoffice.metrics import Metrics

    s = Store(str(tmp_path / "bo.sqlite"))
    s.add_device(5, KEY, NOW)
    raws = chain(5, 9, 100)
    s.store_batch(5, raws[:4], NOW)
    log = s.translog(signer(0x51))
    old = merkle.parse_head(log.sign_head(NOW * 1000))
    s.store_batch(5, raws[4:], NOW)
    log.refresh()
    log.sign_head(NOW * 1000 + 1)

    def get(port: int, path: str) -> tuple[int, object]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    async def main() -> list:
        runner = await http.start_http(http.make_app(s, Metrics(s)), "127.0.0.1", 0)
        port = http.bound_port(runner)
        loop = asyncio.get_running_loop()
        paths = ["/log/heads", "/log/prove?device=5&seq=7", "/log/consistency?old=4",
                 "/log/prove?device=5&seq=99"]  # fmt: skip
        try:
            return [await loop.run_in_executor(None, get, port, p) for p in paths]
        finally:
            await runner.cleanup()

    (c1, heads), (c2, proof), (c3, cons), (c4, none) = asyncio.run(main())
    assert (c1, c2, c3, c4) == (200, 200, 200, 404)
    assert [h["tree_size"] for h in heads] == [4, 9]
    head = translog.check_head(bytes.fromhex(proof["head"]), signer(0x51).public_key,
                               OpenSSLVerifier())  # fmt: skip
    assert proof["leaf"] == 6 and bytes.fromhex(proof["record"]) == raws[6]
    merkle.verify_inclusion(merkle.leaf_hash(raws[6]), 6, head.tree_size,
                            [bytes.fromhex(p) for p in proof["proof"]], head.root_hash)  # fmt: skip
    merkle.verify_consistency(4, 9, [bytes.fromhex(p) for p in cons["proof"]], old.root_hash,
                              head.root_hash)  # fmt: skip
    assert none["reason"] == "no_proof"
    s.close()
