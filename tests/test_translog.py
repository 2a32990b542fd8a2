"""The back office's transparency log (host_sim/backoffice/translog.py).

Against transparency-dev/merkle's vectors (tests/vectors/merkle/), against protocol/merkle.py's
list-based builders by property (hypothesis), and its signed heads with OpenSSL.
"""

import json
import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.linux import crypto_openssl
from host_sim.backoffice.translog import MemoryNodeStore, TransLog, check_head
from protocol import merkle
from protocol.errors import UsageError

HERE = os.path.dirname(os.path.abspath(__file__))
SIGNER = crypto_openssl.signer(0x5EED)


def _vectors() -> dict:
    with open(os.path.join(HERE, "vectors", "merkle", "rfc9162-vectors.json")) as f:
        return json.load(f)


def _log(entries: list[bytes], batch: int = 3) -> TransLog:
    log = TransLog(MemoryNodeStore(), SIGNER)
    for i in range(0, len(entries), batch):
        log.append_many(entries[i : i + batch])
    return log


def test_engine_against_vectors() -> None:
    v = _vectors()
    inputs = [bytes.fromhex(h) for h in v["leaf_inputs"]]
    log = _log(inputs)
    assert [log.root(n).hex() for n in range(9)] == v["root_hashes"]
    for level, row in enumerate(v["node_hashes"]):  # every complete node, stored as Go has it
        assert [log.store.node(level, i).hex() for i in range(len(row))] == row
    for p in v["inclusion_probes"]:
        if not p["want_error"]:
            proof = log.inclusion_proof(p["leaf_index"], p["tree_size"])
            assert [h.hex() for h in proof] == p["proof"], p["file"]
    checked = 0
    for p in v["consistency_probes"]:
        if not p["want_error"] and 0 < p["size1"] and len(p["root1"]) == 64:
            proof = log.consistency_proof(p["size1"], p["size2"])
            assert [h.hex() for h in proof] == p["proof"], p["file"]
            checked += 1
    assert checked >= 5


def _flip(b: bytes, bit: int) -> bytes:
    bit %= len(b) * 8
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _fails(fn: Callable[..., None], *args: object) -> bool:
    try:
        fn(*args)
    except merkle.ProofError:
        return True
    return False


TREES = st.lists(st.binary(max_size=24), min_size=1, max_size=140, unique=True)


@settings(max_examples=200, deadline=None)
@given(TREES, st.integers(1, 9), st.data())
def test_inclusion_property(entries: list[bytes], batch: int, data: st.DataObject) -> None:
    log = _log(entries, batch)
    leaves = [merkle.leaf_hash(e) for e in entries]
    assert log.root() == merkle.root(leaves)
    size = data.draw(st.integers(1, len(entries)), "size")
    index = data.draw(st.integers(0, size - 1), "index")
    root, leaf = log.root(size), leaves[index]
    proof = log.inclusion_proof(index, size)
    assert proof == merkle.inclusion_path(index, size, merkle.list_subtree(leaves))
    merkle.verify_inclusion(leaf, index, size, proof, root)
    bit = data.draw(st.integers(0, 255), "bit")
    assert _fails(merkle.verify_inclusion, _flip(leaf, bit), index, size, proof, root)
    assert _fails(merkle.verify_inclusion, leaf, index, size, proof, _flip(root, bit))
    for i in range(len(proof)):
        bad = proof[:i] + [_flip(proof[i], bit)] + proof[i + 1 :]
        assert _fails(merkle.verify_inclusion, leaf, index, size, bad, root)
    other = data.draw(st.integers(0, len(entries) - 1), "other")
    if other != index:
        assert _fails(merkle.verify_inclusion, leaf, other, size, proof, root)
    if other + 1 != size:  # a head of another size: its own root
        assert _fails(merkle.verify_inclusion, leaf, index, other + 1, proof, log.root(other + 1))
    assert _fails(merkle.verify_inclusion, leaf, index, size, [*proof, root], root)
    if proof:
        assert _fails(merkle.verify_inclusion, leaf, index, size, proof[:-1], root)


@settings(max_examples=200, deadline=None)
@given(TREES, st.integers(1, 9), st.data())
def test_consistency_property(entries: list[bytes], batch: int, data: st.DataObject) -> None:
    log = _log(entries, batch)
    leaves = [merkle.leaf_hash(e) for e in entries]
    size = data.draw(st.integers(1, len(entries)), "size")
    old = data.draw(st.integers(1, size), "old")
    proof = log.consistency_proof(old, size)
    assert proof == merkle.consistency_path(old, size, merkle.list_subtree(leaves))
    r1, r2 = log.root(old), log.root(size)
    merkle.verify_consistency(old, size, proof, r1, r2)
    bit = data.draw(st.integers(0, 255), "bit")
    assert _fails(merkle.verify_consistency, old, size, proof, _flip(r1, bit), r2)
    assert _fails(merkle.verify_consistency, old, size, proof, r1, _flip(r2, bit))
    for i in range(len(proof)):
        bad = proof[:i] + [_flip(proof[i], bit)] + proof[i + 1 :]
        assert _fails(merkle.verify_consistency, old, size, bad, r1, r2)
    other = data.draw(st.integers(1, len(entries)), "other")
    if other != old and other <= size:
        assert _fails(merkle.verify_consistency, other, size, proof, log.root(other), r2)
    if other != size and other >= old:
        assert _fails(merkle.verify_consistency, old, other, proof, r1, log.root(other))
    assert _fails(merkle.verify_consistency, old, size, [*proof, r1], r1, r2)
    if proof:
        assert _fails(merkle.verify_consistency, old, size, proof[:-1], r1, r2)


@settings(max_examples=50, deadline=None)
@given(TREES, st.lists(st.integers(0, 20), max_size=20))
def test_batches_and_reopening_do_not_matter(entries: list[bytes], cuts: list[int]) -> None:
    store = MemoryNodeStore()
    pos = 0
    for n in [*cuts, len(entries)]:  # each batch on a log opened anew over the same store
        TransLog(store, SIGNER).append_many(entries[pos : pos + n])
        pos = min(len(entries), pos + n)
    log = TransLog(store, SIGNER)
    assert log.size == len(entries)
    assert log.root() == merkle.mth(entries)
    one = _log(entries, batch=len(entries))
    for level in range(12):
        assert store.count(level) == one.store.count(level) == len(entries) >> level


class FailingStore(MemoryNodeStore):
    fail = False

    def extend(self, new: list[list[bytes]]) -> None:
        if self.fail:
            raise OSError("disk full")
        super().extend(new)


def test_a_failed_write_changes_nothing() -> None:
    store = FailingStore()
    log = TransLog(store, SIGNER)
    log.append_many([b"a", b"b", b"c"])
    store.fail = True
    with pytest.raises(OSError):
        log.append_many([b"d", b"e"])
    store.fail = False
    assert log.size == 3
    assert log.append(b"d") == 3
    assert log.root() == merkle.mth([b"a", b"b", b"c", b"d"])
    assert log.append_many([]) == 4


def test_misuse() -> None:
    log = _log([b"a", b"b"])
    with pytest.raises(UsageError):
        log.inclusion_proof(0, 3)
    with pytest.raises(UsageError):
        log.inclusion_proof(2)
    with pytest.raises(UsageError):
        log.consistency_proof(0)
    with pytest.raises(UsageError):
        TransLog(MemoryNodeStore(), SIGNER, head_interval_ms=0)
    assert log.root(0) == merkle.EMPTY_ROOT


def test_signed_heads_on_schedule() -> None:
    log = TransLog(MemoryNodeStore(), SIGNER, head_interval_ms=60_000)
    verifier = crypto_openssl.verifier()
    first = log.publish_due(1_000)
    assert first is not None
    assert check_head(first, SIGNER.public_key, verifier).tree_size == 0
    log.append_many([b"r1", b"r2", b"r3"])
    assert log.publish_due(60_999) is None  # not yet due
    second = log.publish_due(61_000)
    assert second is not None
    head = check_head(second, SIGNER.public_key, verifier)
    assert (head.tree_size, head.timestamp, head.root_hash) == (3, 61_000, log.root())
    assert head.key_id == log.key_id
    assert log.publish_due(121_000) is not None  # due again, no new leaves: still signed
    with pytest.raises(UsageError):
        log.sign_head(120_999)  # the clock went back
    reopened = TransLog(log.store, SIGNER, head_interval_ms=60_000)
    assert reopened.last_head is not None and reopened.last_head.timestamp == 121_000
    assert len(log.store.heads()) == 3


def test_check_head_refuses() -> None:
    log = _log([b"x"])
    blob = log.sign_head(5)
    verifier = crypto_openssl.verifier()
    other = crypto_openssl.signer(0xBEEF).public_key

    def reason(b: bytes, pub: bytes = SIGNER.public_key) -> str:
        with pytest.raises(merkle.TreeHeadError) as e:
            check_head(b, pub, verifier)
        return e.value.reason

    assert reason(blob, other) == "head_unknown_key"
    assert reason(blob[:-1] + bytes([blob[-1] ^ 1])) == "head_bad_signature"
    assert reason(blob[:30] + bytes([blob[30] ^ 1]) + blob[31:]) == "head_bad_signature"
    assert reason(blob[:-1]) == "head_malformed"


def test_multi_inclusion_proofs_agree_with_the_single_ones_and_catch_a_change():
    """The several-leaves path (merkle.multi_inclusion_path) is each leaf's RFC 9162 path with
    shared nodes sent once: for one leaf it is the audit path; for any subset of any size up
    to 70 it verifies, and any altered leaf, index, hash or size is refused."""
    import random

    from protocol import merkle

    rnd = random.Random(9162)
    for size in range(1, 71):
        hashes = [merkle.leaf_hash(b"leaf %d" % i) for i in range(size)]
        sub = merkle.list_subtree(hashes)
        root = merkle.root(hashes)
        for i in range(size):
            one = merkle.multi_inclusion_path([i], size, sub)
            assert one == merkle.inclusion_path(i, size, sub)
        for _ in range(4):
            idx = sorted(rnd.sample(range(size), rnd.randint(1, size)))
            path = merkle.multi_inclusion_path(idx, size, sub)
            leaves = [hashes[i] for i in idx]
            merkle.verify_multi_inclusion(idx, leaves, size, path, root)
            bad = list(leaves)
            bad[rnd.randrange(len(bad))] = merkle.leaf_hash(b"other")
            with pytest.raises(merkle.ProofError):
                merkle.verify_multi_inclusion(idx, bad, size, path, root)
            if path:
                worse = list(path)
                worse[rnd.randrange(len(worse))] = bytes(32)
                with pytest.raises(merkle.ProofError):
                    merkle.verify_multi_inclusion(idx, leaves, size, worse, root)
                with pytest.raises(merkle.ProofError):
                    merkle.verify_multi_inclusion(idx, leaves, size, path[:-1], root)
            if size > 1 and idx[-1] < size - 1:
                moved = idx[:-1] + [idx[-1] + 1]
                with pytest.raises(merkle.ProofError):
                    merkle.verify_multi_inclusion(moved, leaves, size, path, root)
