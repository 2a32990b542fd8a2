"""Merkle tree hashing of the transparency log (RFC 9162 section 2.1) and its signed tree head.

Pure functions over bytes; the log engine that stores the tree is host_sim/backoffice/translog.py.

Hashing (RFC 9162 2.1.1, SHA-256):
    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")                         (EMPTY_ROOT)
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))  k: the largest power of 2 below n

Proofs: `inclusion_path` (2.1.3.1) and `consistency_path` (2.1.4.1) build them from a
`subtree(start, end) -> MTH of leaves start..end-1` function, so one algorithm serves a list of
leaf hashes (`list_subtree`, any interpreter) and the back office's stored tree. The verifiers
`verify_inclusion` (2.1.3.2) and `verify_consistency` (2.1.4.2) follow the RFC's algorithms step
by step; they return None or raise ProofError with one of the reasons
    proof_out_of_range   index >= tree size; old size 0 or above the new size
    proof_malformed      a hash that is not 32 bytes; a path of the wrong length
    proof_mismatch       the path leads to another root: the log does not hold this leaf or
                         the two heads are not of one append-only log

Signed tree head (big-endian, TREE_HEAD_LEN = 122 bytes):
     0  4B   magic          "FGTH"
     4  u8   format         = 1
     5  u8   alg            = 1 (ES256)
     6  u64  tree_size      leaves in the tree
    14  u64  timestamp      unix milliseconds at signing
    22  32B  root_hash      MTH of the tree's leaves (EMPTY_ROOT for size 0)
    54  u32  key_id         protocol.certs.key_id of the log's public key
    58  64B  signature      ES256 r||s over bytes 0..57
Parsing is strict: exact length, magic, format, alg, the empty tree's root; else TreeHeadError
("head_malformed", or "head_unknown_alg"). The signature is checked by whoever holds the log's
public key (protocol code holds no keys). docs/settlement.md has a vector.
"""

import hashlib
import struct

from protocol.errors import FormatError, UsageError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

MAGIC = b"FGTH"
FORMAT = 1
ALG_ES256 = 1
SIG_LEN = 64
HEAD_BODY_LEN = 58
TREE_HEAD_LEN = HEAD_BODY_LEN + SIG_LEN
_HEAD_FMT = ">4sBBQQ32sI"


class ProofError(FormatError):
    """An inclusion or consistency proof does not verify (reason says how)."""

    reason = "proof_mismatch"


class TreeHeadError(FormatError):
    """The bytes are not a well-formed signed tree head."""

    reason = "head_malformed"


def leaf_hash(data) -> bytes:
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left, right) -> bytes:
    return hashlib.sha256(b"\x01" + bytes(left) + bytes(right)).digest()


def split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 9162 splits D[n]."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaf_hashes) -> bytes:
    """MTH of a list of leaf hashes: pair each level left to right, an odd last node moves up
    unchanged (the same tree as RFC 9162's recursive definition)."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        up = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            up.append(level[-1])
        level = up
    return bytes(level[0])


def mth(entries) -> bytes:
    """MTH of the leaf inputs themselves."""
    return root([leaf_hash(d) for d in entries])


def list_subtree(leaf_hashes):
    """A `subtree(start, end)` over a list of leaf hashes, for the proof builders (O(n) each)."""

    def subtree(start, end):
        return root(leaf_hashes[start:end])

    return subtree


def inclusion_path(index: int, size: int, subtree) -> list:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1: the audit path, leaf level first."""
    if not 0 <= index < size:
        raise UsageError("no leaf %d in a tree of %d" % (index, size))
    out = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            out.append(subtree(start + k, end))
            end = start + k
        else:
            out.append(subtree(start, start + k))
            start += k
    out.reverse()
    return out


def consistency_path(old_size: int, size: int, subtree) -> list:
    """PROOF(old_size, D[size]) of RFC 9162 2.1.4.1 (empty when the sizes are equal)."""
    if not 0 < old_size <= size:
        raise UsageError("no consistency proof from size %d to %d" % (old_size, size))
    out = []
    start, end, m, whole = 0, size, old_size, True
    while m != end - start:
        k = split(end - start)
        if m <= k:
            out.append(subtree(start + k, end))
            end = start + k
        else:
            out.append(subtree(start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        out.append(subtree(start, end))
    out.reverse()
    return out


def _check_hashes(hashes):
    for h in hashes:
        if len(h) != HASH_LEN:
            raise ProofError("a %d-byte hash where 32 belong" % len(h), "proof_malformed")


def verify_inclusion(leaf, index: int, size: int, path, root_hash) -> None:
    """Check that `leaf` (a leaf hash) is leaf `index` of the tree of `size` with `root_hash`,
    by RFC 9162 2.1.3.2. Raises ProofError."""
    if not 0 <= index < size:
        raise ProofError("no leaf %d in a tree of %d" % (index, size), "proof_out_of_range")
    _check_hashes([leaf, root_hash])
    _check_hashes(path)
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in path:
        if sn == 0:
            raise ProofError("the path is longer than the tree is deep", "proof_malformed")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the path is shorter than the tree is deep", "proof_malformed")
    if r != bytes(root_hash):
        raise ProofError("the path leads to another root", "proof_mismatch")


def verify_consistency(old_size: int, size: int, path, old_root, root_hash) -> None:
    """Check that the tree of `size` with `root_hash` extends the tree of `old_size` with
    `old_root`, by RFC 9162 2.1.4.2. Raises ProofError."""
    if not 0 < old_size <= size:
        raise ProofError(
            "no consistency proof from size %d to %d" % (old_size, size), "proof_out_of_range"
        )
    _check_hashes([old_root, root_hash])
    _check_hashes(path)
    if old_size == size:
        if path:
            raise ProofError("equal sizes take an empty proof", "proof_malformed")
        if bytes(old_root) != bytes(root_hash):
            raise ProofError("one size, two roots", "proof_mismatch")
        return
    if not path:
        raise ProofError("an empty proof between different sizes", "proof_malformed")
    path = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the path is longer than the tree is deep", "proof_malformed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the path is shorter than the tree is deep", "proof_malformed")
    if fr != bytes(old_root) or sr != bytes(root_hash):
        raise ProofError("the path does not join the two roots", "proof_mismatch")


def multi_inclusion_path(indices, size: int, subtree) -> list:
    """The audit paths of several leaves at once: the hashes RFC 9162's PATH of each leaf
    needs, each node sent once and none that the leaves themselves give. Walked bottom-up, a
    level at a time (RFC 9162's tree is the one where a level's last node, when it has no
    sibling, moves up unchanged): for each node known at a level, in order, its sibling is
    taken from the known nodes or else appended to the path. `indices`: distinct, ascending.
    For one leaf it is exactly `inclusion_path`. Verified by `verify_multi_inclusion`."""
    known = list(indices)
    _check_indices(known, size)
    out = []
    n, level = size, 0
    while n > 1:
        nxt = []
        i = 0
        while i < len(known):
            pos = known[i]
            i += 1
            if not pos & 1:
                if pos == n - 1:  # the level's last node, alone: moves up
                    nxt.append(pos >> 1)
                    continue
                if i < len(known) and known[i] == pos + 1:
                    i += 1
                else:
                    sib = pos + 1
                    out.append(subtree(sib << level, min((sib + 1) << level, size)))
            else:
                sib = pos - 1
                out.append(subtree(sib << level, (sib + 1) << level))
            nxt.append(pos >> 1)
        known = nxt
        n = (n + 1) >> 1
        level += 1
    return out


def _check_indices(indices, size: int) -> None:
    if not indices:
        raise ProofError("no leaves to prove", "proof_out_of_range")
    last = -1
    for i in indices:
        if i <= last:
            raise ProofError("leaf indices must be distinct and ascending", "proof_malformed")
        last = i
    if last >= size:
        raise ProofError("no leaf %d in a tree of %d" % (last, size), "proof_out_of_range")


def verify_multi_inclusion(indices, leaves, size: int, path, root_hash) -> None:
    """Check that `leaves` (leaf hashes) are the leaves `indices` (distinct, ascending) of the
    tree of `size` with `root_hash`, from `multi_inclusion_path`'s path: the same walk,
    hashing. Raises ProofError like verify_inclusion."""
    _check_indices(indices, size)
    if len(leaves) != len(indices):
        raise ProofError("one leaf hash per index", "proof_malformed")
    _check_hashes(leaves)
    _check_hashes(path)
    _check_hashes([root_hash])
    sha = hashlib.sha256
    pos_ = list(indices)
    hs = [bytes(h) for h in leaves]
    p, np_ = 0, len(path)
    n = size
    while n > 1:
        npos, nhs = [], []
        i, m = 0, len(pos_)
        while i < m:
            pos, h = pos_[i], hs[i]
            i += 1
            if not pos & 1:
                if pos == n - 1:
                    npos.append(pos >> 1)
                    nhs.append(h)
                    continue
                if i < m and pos_[i] == pos + 1:
                    h = sha(b"\x01" + h + hs[i]).digest()
                    i += 1
                else:
                    if p == np_:
                        raise ProofError("the path is too short", "proof_malformed")
                    h = sha(b"\x01" + h + path[p]).digest()
                    p += 1
            else:
                if p == np_:
                    raise ProofError("the path is too short", "proof_malformed")
                h = sha(b"\x01" + path[p] + h).digest()
                p += 1
            npos.append(pos >> 1)
            nhs.append(h)
        pos_, hs = npos, nhs
        n = (n + 1) >> 1
    if p != np_:
        raise ProofError("the path is too long", "proof_malformed")
    if hs[0] != bytes(root_hash):
        raise ProofError("the path leads to another root", "proof_mismatch")


class TreeHead:
    __slots__ = ("tree_size", "timestamp", "root_hash", "key_id", "raw")

    def __init__(self, tree_size, timestamp, root_hash, key_id, raw=b""):
        self.tree_size = tree_size
        self.timestamp = timestamp  # unix milliseconds
        self.root_hash = root_hash
        self.key_id = key_id
        self.raw = raw

    def signed_bytes(self) -> bytes:
        return self.raw[:HEAD_BODY_LEN]

    def signature(self) -> bytes:
        return self.raw[HEAD_BODY_LEN:]

    def __repr__(self):
        return "TreeHead(%d, %d ms, %08x)" % (self.tree_size, self.timestamp, self.key_id)


def encode_head_body(tree_size: int, timestamp: int, root_hash, key_id: int) -> bytes:
    """The bytes the log key signs."""
    if len(root_hash) != HASH_LEN:
        raise UsageError("a root hash is 32 bytes, not %d" % len(root_hash))
    if not (0 <= tree_size < 1 << 64 and 0 <= timestamp < 1 << 64 and 0 <= key_id < 1 << 32):
        raise UsageError("tree head field out of range")
    return struct.pack(
        _HEAD_FMT, MAGIC, FORMAT, ALG_ES256, tree_size, timestamp, bytes(root_hash), key_id
    )


def build_head(tree_size: int, timestamp: int, root_hash, key_id: int, sign) -> bytes:
    """A signed tree head; `sign(message) -> r||s` is the log key's signer."""
    body = encode_head_body(tree_size, timestamp, root_hash, key_id)
    sig = bytes(sign(body))
    if len(sig) != SIG_LEN:
        raise UsageError("signer returned %d bytes, expected 64" % len(sig))
    return body + sig


def parse_head(blob) -> TreeHead:
    blob = bytes(blob)
    if len(blob) != TREE_HEAD_LEN:
        raise TreeHeadError("tree head: %d bytes, expected %d" % (len(blob), TREE_HEAD_LEN))
    magic, fmt, alg, size, ts, root_hash, key_id = struct.unpack(_HEAD_FMT, blob[:HEAD_BODY_LEN])
    if magic != MAGIC:
        raise TreeHeadError("tree head: bad magic")
    if fmt != FORMAT:
        raise TreeHeadError("tree head: unknown format %d" % fmt)
    if alg != ALG_ES256:
        raise TreeHeadError("tree head: unknown signature algorithm %d" % alg, "head_unknown_alg")
    if size == 0 and root_hash != EMPTY_ROOT:
        raise TreeHeadError("tree head: an empty tree with a root other than SHA-256('')")
    return TreeHead(size, ts, root_hash, key_id, blob)
