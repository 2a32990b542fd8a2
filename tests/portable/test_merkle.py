"""protocol/merkle.py against transparency-dev/merkle's vectors, and its tree-head layout.

tests/vectors/merkle/ says where the vectors come from. Every probe must give the verdict its
source gives (one documented exception: we refuse hashes that are not 32 bytes), and the happy
paths must be exactly the proofs our builders produce. tests/test_translog.py checks the back
office's log engine against the same file.
"""

from protocol import merkle
from protocol.errors import UsageError
from tests.portable.harness import raises, read_json, repo_root

VECTORS = "/tests/vectors/merkle/rfc9162-vectors.json"
STRICTER = ("consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",)


def _h(hexes):
    return [bytes.fromhex(h) for h in hexes]


def _leaves(v):
    return [merkle.leaf_hash(d) for d in _h(v["leaf_inputs"])]


def _verdict(fn, *args):
    try:
        fn(*args)
    except merkle.ProofError as e:
        return e.reason
    return None


def test_roots_and_nodes():
    v = read_json(repo_root() + VECTORS)
    inputs = _h(v["leaf_inputs"])
    for n, want in enumerate(v["root_hashes"]):
        assert merkle.mth(inputs[:n]).hex() == want, n
    leaves = _leaves(v)
    for level, row in enumerate(v["node_hashes"]):
        for i, want in enumerate(row):
            assert merkle.root(leaves[i << level : (i + 1) << level]).hex() == want, (level, i)


def test_inclusion_probes():
    v = read_json(repo_root() + VECTORS)
    sub = merkle.list_subtree(_leaves(v))
    wrong = []
    for p in v["inclusion_probes"]:
        args = (bytes.fromhex(p["leaf_hash"]), p["leaf_index"], p["tree_size"])
        reason = _verdict(merkle.verify_inclusion, *args, _h(p["proof"]), bytes.fromhex(p["root"]))
        if (reason is not None) != p["want_error"]:
            wrong.append((p["file"], reason))
        if not p["want_error"]:
            path = merkle.inclusion_path(p["leaf_index"], p["tree_size"], sub)
            assert [h.hex() for h in path] == p["proof"], p["file"]
    assert wrong == [], wrong
    assert len(v["inclusion_probes"]) > 90


def test_consistency_probes():
    v = read_json(repo_root() + VECTORS)
    sub = merkle.list_subtree(_leaves(v))
    wrong = []
    built = 0
    for p in v["consistency_probes"]:
        args = (p["size1"], p["size2"], _h(p["proof"]))
        reason = _verdict(
            merkle.verify_consistency, *args, bytes.fromhex(p["root1"]), bytes.fromhex(p["root2"])
        )
        if p["file"] in STRICTER:
            assert reason == "proof_malformed", p["file"]
            continue
        if (reason is not None) != p["want_error"]:
            wrong.append((p["file"], reason))
        if not p["want_error"]:
            path = merkle.consistency_path(p["size1"], p["size2"], sub)
            assert [h.hex() for h in path] == p["proof"], p["file"]
            built += 1
    assert wrong == [], wrong
    assert built >= 5


def test_every_proof_of_small_trees():
    data = [("leaf %d" % i).encode() for i in range(17)]
    leaves = [merkle.leaf_hash(d) for d in data]
    sub = merkle.list_subtree(leaves)
    roots = [merkle.root(leaves[:n]) for n in range(18)]
    for n in range(1, 18):
        for i in range(n):
            path = merkle.inclusion_path(i, n, sub)
            merkle.verify_inclusion(leaves[i], i, n, path, roots[n])
            other = leaves[(i + 1) % 17]
            assert _verdict(merkle.verify_inclusion, other, i, n, path, roots[n])
            assert _verdict(merkle.verify_inclusion, leaves[i], i, n, path + [roots[0]], roots[n])
            if i + 1 < n:
                assert _verdict(merkle.verify_inclusion, leaves[i], i + 1, n, path, roots[n])
        for m in range(1, n + 1):
            path = merkle.consistency_path(m, n, sub)
            merkle.verify_consistency(m, n, path, roots[m], roots[n])
            if m < n:
                assert _verdict(merkle.verify_consistency, m, n, path, roots[m - 1], roots[n])
                assert _verdict(merkle.verify_consistency, m, n, path[:-1], roots[m], roots[n])


def test_several_leaves_at_once():
    """The several-leaves path: for one leaf the audit path; for every contiguous run and
    every other leaf of trees up to 17 leaves it verifies; a changed leaf does not."""
    leaves = [merkle.leaf_hash(("leaf %d" % i).encode()) for i in range(17)]
    sub = merkle.list_subtree(leaves)
    for n in range(1, 18):
        root = merkle.root(leaves[:n])
        picks = [[i] for i in range(n)] + [list(range(0, n, 2)), list(range(n // 2, n))]
        for idx in picks:
            path = merkle.multi_inclusion_path(idx, n, sub)
            if len(idx) == 1:
                assert path == merkle.inclusion_path(idx[0], n, sub)
            got = [leaves[i] for i in idx]
            merkle.verify_multi_inclusion(idx, got, n, path, root)
            bad = [merkle.leaf_hash(b"x")] + got[1:]
            assert _verdict(merkle.verify_multi_inclusion, idx, bad, n, path, root)


def test_verifier_reasons():
    leaf = merkle.leaf_hash(b"x")
    assert _verdict(merkle.verify_inclusion, leaf, 1, 1, [], leaf) == "proof_out_of_range"
    assert _verdict(merkle.verify_inclusion, leaf[:31], 0, 1, [], leaf) == "proof_malformed"
    assert _verdict(merkle.verify_inclusion, leaf, 0, 2, [], leaf) == "proof_malformed"
    assert _verdict(merkle.verify_inclusion, leaf, 0, 1, [leaf], leaf) == "proof_malformed"
    assert _verdict(merkle.verify_inclusion, leaf, 0, 1, [], merkle.EMPTY_ROOT) == "proof_mismatch"
    assert _verdict(merkle.verify_consistency, 0, 1, [], leaf, leaf) == "proof_out_of_range"
    assert _verdict(merkle.verify_consistency, 2, 1, [], leaf, leaf) == "proof_out_of_range"
    assert _verdict(merkle.verify_consistency, 1, 1, [leaf], leaf, leaf) == "proof_malformed"
    assert _verdict(merkle.verify_consistency, 1, 2, [], leaf, leaf) == "proof_malformed"
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert raises(UsageError, merkle.inclusion_path, 3, 3, None)
    assert raises(UsageError, merkle.consistency_path, 0, 3, None)


def _sign(msg):
    return b"\x5a" * 64


def test_tree_head_layout():
    root_hash = bytes(range(32))
    blob = merkle.build_head(7, 1767254400123, root_hash, 0xDEADBEEF, _sign)
    assert len(blob) == merkle.TREE_HEAD_LEN == 122
    assert blob[:6] == b"FGTH\x01\x01"
    assert blob[6:14] == b"\x00" * 7 + b"\x07"
    assert blob[22:54] == root_hash and blob[54:58] == b"\xde\xad\xbe\xef"
    head = merkle.parse_head(blob)
    assert (head.tree_size, head.timestamp, head.root_hash, head.key_id) == (
        7,
        1767254400123,
        root_hash,
        0xDEADBEEF,
    )
    assert head.signed_bytes() == blob[:58] and head.signature() == b"\x5a" * 64
    empty = merkle.build_head(0, 1, merkle.EMPTY_ROOT, 1, _sign)
    assert merkle.parse_head(empty).tree_size == 0


def test_tree_head_strict():
    blob = merkle.build_head(7, 1767254400123, bytes(32), 1, _sign)

    def reason(b):
        return raises(merkle.TreeHeadError, merkle.parse_head, b).reason

    assert reason(blob[:-1]) == "head_malformed"
    assert reason(blob + b"\x00") == "head_malformed"
    assert reason(b"FGTX" + blob[4:]) == "head_malformed"
    assert reason(blob[:4] + b"\x02" + blob[5:]) == "head_malformed"
    assert reason(blob[:5] + b"\x02" + blob[6:]) == "head_unknown_alg"
    assert reason(blob[:6] + bytes(8) + blob[14:]) == "head_malformed"  # size 0, root not empty
    assert raises(UsageError, merkle.build_head, 1, 1, bytes(31), 1, _sign)
    assert raises(UsageError, merkle.build_head, 1, 1, bytes(32), 1, lambda m: b"")
    assert raises(UsageError, merkle.encode_head_body, -1, 1, bytes(32), 1)
