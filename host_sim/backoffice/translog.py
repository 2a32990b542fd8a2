"""The back office's transparency log: leaves appended to an RFC 9162 Merkle tree, signed heads.

Hashing, proof algorithms and the tree-head layout are protocol/merkle.py's; this module keeps
the tree and answers from it:

- `append_many(entries)` hashes a batch level by level (the leaves, then each new complete
  parent), starting from the frontier: the pending left node of every level whose node count is
  odd (the tree's compact range). Nothing already stored is hashed again, so an append costs
  O(1) amortised hashes (O(log n) at worst) and one `store.extend` call per batch.
- Every complete node stays stored: level 0 holds the leaf hashes, level k node i is the root of
  the perfect subtree over leaves i*2^k .. (i+1)*2^k - 1, never changed once written. Any
  subtree the RFC's PATH and PROOF ask for is O(log n) stored nodes, so inclusion proofs for
  any (index, tree size) and consistency proofs between any two sizes cost O(log^2 n) at worst.
  A proof first works out which stored nodes it needs, then fetches them with one
  `store.nodes` call (one database round trip on the back office's store).
- A database keeps the nodes a batch completes as runs (`runs`): the batch's new nodes of one
  level, cut at every multiple of CHUNK, one row each (a batch of 10,000 leaves is about 1,300
  rows, not 20,000; a lookup reads at most CHUNK hashes). A row is written once and never
  changed; a row of one node (how stores before runs kept every node) is a run of one.
- `sign_head(now_ms)` signs a tree head with the signer handed in; `publish_due(now_ms)` does it
  when the schedule says (every `head_interval_ms`, with or without new leaves, so a head's age
  shows the log is alive). The clock is the caller's.

Persistence is a `NodeStore` handed in: `MemoryNodeStore` here; the back office's store backends
implement the same five methods. The engine is not thread-safe: its owner serialises calls.
"""

import hashlib
from collections.abc import Callable, Iterable
from typing import Protocol

from protocol import certs, merkle
from protocol.errors import UsageError

HOUR_MS = 3_600_000


class NodeStore(Protocol):
    """Where the tree's nodes and signed heads live.

    `count(level)` nodes are stored at each level (level 0: the leaves); `nodes(keys)` the
    nodes (level, index) of `keys`, in order (one query); `extend(new)` appends `new[k]` to
    level k for every k, atomically (one transaction for the whole batch).
    """

    def count(self, level: int) -> int: ...

    def node(self, level: int, index: int) -> bytes: ...

    def nodes(self, keys: list[tuple[int, int]]) -> list[bytes]: ...

    def extend(self, new: list[list[bytes]]) -> None: ...

    def add_head(self, head: bytes) -> None: ...

    def heads(self) -> list[bytes]: ...


class Signer(Protocol):
    public_key: bytes

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, pub: bytes, message: bytes, sig: bytes) -> bool: ...


class NoSigner:
    """The signer of a log that is only read (proofs): signing a head is a UsageError."""

    public_key = b"\x02" + bytes(32)

    def sign(self, message: bytes) -> bytes:
        raise UsageError("this log is opened read only: give it the log key to sign heads")


class MemoryNodeStore:
    """A NodeStore in memory: one bytearray of 32-byte slots per level (64 bytes a leaf)."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []
        self._heads: list[bytes] = []

    def count(self, level: int) -> int:
        return len(self._levels[level]) // merkle.HASH_LEN if level < len(self._levels) else 0

    def node(self, level: int, index: int) -> bytes:
        if not 0 <= index < self.count(level):
            raise UsageError("no node %d at level %d" % (index, level))
        off = index * merkle.HASH_LEN
        return bytes(self._levels[level][off : off + merkle.HASH_LEN])

    def nodes(self, keys: list[tuple[int, int]]) -> list[bytes]:
        return [self.node(level, index) for level, index in keys]

    def extend(self, new: list[list[bytes]]) -> None:
        while len(self._levels) < len(new):
            self._levels.append(bytearray())
        for level, hashes in zip(self._levels, new):
            level += b"".join(hashes)

    def add_head(self, head: bytes) -> None:
        self._heads.append(bytes(head))

    def heads(self) -> list[bytes]:
        return list(self._heads)


class TransLog:
    """An append-only log over a NodeStore, its heads signed by `signer` (`.sign(msg) -> r||s`,
    `.public_key` SEC1), which names itself in heads by protocol.certs.key_id."""

    def __init__(self, store: NodeStore, signer: Signer, head_interval_ms: int = HOUR_MS) -> None:
        if head_interval_ms <= 0:
            raise UsageError("head_interval_ms must be positive")
        self.store = store
        self.signer = signer
        self.key_id = certs.key_id(signer.public_key)
        self.head_interval_ms = head_interval_ms
        self.size = 0
        self._pending: list[bytes | None] = []
        self.last_head: merkle.TreeHead | None = None
        self.refresh()

    def append(self, data: bytes) -> int:
        """Append one leaf; returns its index."""
        return self.append_many([data])

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append a batch of leaf inputs; returns the index of the first. Either the whole batch
        is stored (one `store.extend`) or, if the store raises, nothing changes."""
        first = self.size
        new, pending = grow(self._pending, leaf_hashes(entries))
        if not new:
            return first
        self.store.extend(new)
        self._pending = pending
        self.size = first + len(new[0])
        return first

    def refresh(self) -> None:
        """(Re)read the size, frontier and last head from the store: at start, and to catch up
        with leaves another writer appended (the back office's store appends its records
        itself, in the transaction that stores them)."""
        store = self.store
        self.size = store.count(0)
        # the frontier: level k has an unpaired left node when its count, size >> k, is odd
        self._pending = []
        k = 0
        while self.size >> k:
            n = self.size >> k
            self._pending.append(store.node(k, n - 1) if n & 1 else None)
            k += 1
        heads = store.heads()
        self.last_head = merkle.parse_head(heads[-1]) if heads else None

    def leaf_hash(self, index: int) -> bytes:
        return self.store.node(0, index)

    def _prefetched(self, build: Callable[[Callable[[int, int], bytes]], list[bytes]]):
        """`build(subtree)` (a proof builder of protocol/merkle.py, whose choice of subtrees
        depends on sizes only) run twice: once to learn the subtrees it asks for, then with
        the stored nodes they split into fetched by one `store.nodes` call."""
        asked: list[tuple[int, int]] = []

        def ask(start: int, end: int) -> bytes:
            asked.append((start, end))
            return merkle.EMPTY_ROOT

        build(ask)
        keys = sorted({key for start, end in asked for key in pieces(start, end)})
        got = dict(zip(keys, self.store.nodes(keys)))
        return build(lambda start, end: _join([got[key] for key in pieces(start, end)]))

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves start..end-1, from the stored perfect subtrees it splits into."""
        return _join(self.store.nodes(pieces(start, end)))

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise UsageError("tree size %d: the log holds %d leaves" % (size, self.size))
        return size

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all)."""
        n = self._size(size)
        return self._subtree(0, n) if n else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 audit path of leaf `index` in the tree of `size` leaves (default: all)."""
        n = self._size(size)
        return self._prefetched(lambda sub: merkle.inclusion_path(index, n, sub))

    def inclusion_proof_many(self, indices: list[int], size: int | None = None) -> list[bytes]:
        """merkle.multi_inclusion_path of leaves `indices` (ascending) in the tree of `size`."""
        n = self._size(size)
        return self._prefetched(lambda sub: merkle.multi_inclusion_path(indices, n, sub))

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of `old_size` to that of `size`."""
        n = self._size(size)
        return self._prefetched(lambda sub: merkle.consistency_path(old_size, n, sub))

    def sign_head(self, now_ms: int) -> bytes:
        """Sign and store a head for the log as it is now; returns its bytes."""
        if self.last_head is not None and now_ms < self.last_head.timestamp:
            raise UsageError(
                "clock went back: %d ms is before the last head's %d ms"
                % (now_ms, self.last_head.timestamp)
            )
        blob = merkle.build_head(self.size, now_ms, self.root(), self.key_id, self.signer.sign)
        self.store.add_head(blob)
        self.last_head = merkle.parse_head(blob)
        return blob

    def publish_due(self, now_ms: int) -> bytes | None:
        """Sign a head if none is younger than head_interval_ms; else None."""
        if self.last_head and now_ms - self.last_head.timestamp < self.head_interval_ms:
            return None
        return self.sign_head(now_ms)


def pieces(start: int, end: int) -> list[tuple[int, int]]:
    """The stored nodes (level, index) whose perfect subtrees make up leaves start..end-1,
    left to right (the ranges RFC 9162's PATH and PROOF ask for start at a multiple of their
    split, so each piece is aligned)."""
    out = []
    while start < end:
        k = 1 << ((end - start).bit_length() - 1)  # the largest power of two <= it
        if start & (k - 1):
            raise UsageError("subtree %d..%d is not aligned" % (start, end))
        level = k.bit_length() - 1
        out.append((level, start >> level))
        start += k
    return out


def _join(nodes: list[bytes]) -> bytes:
    """MTH of consecutive perfect subtrees, largest first (what `pieces` gives)."""
    h = nodes[-1]
    for left in reversed(nodes[:-1]):
        h = merkle.node_hash(left, h)
    return h


# nodes: a stored run never crosses a multiple of it. 16 * 32 = 512 bytes, a row that stays
# inside its B-tree page (SQLite keeps up to about 1,000 bytes of a WITHOUT ROWID row there)
CHUNK = 16


def runs(start: int, hashes: list[bytes]) -> list[tuple[int, bytes]]:
    """Nodes start, start+1, ... of one level as the rows a database keeps: (index of the
    run's first node, its nodes' hashes joined), cut at every multiple of CHUNK."""
    out = []
    i, n = 0, len(hashes)
    while i < n:
        take = min(n - i, CHUNK - (start + i) % CHUNK)
        out.append((start + i, b"".join(hashes[i : i + take])))
        i += take
    return out


def run_node(first: int, blob: bytes, index: int) -> bytes | None:
    """Node `index` from the run starting at node `first`; None if the run does not hold it."""
    off = (index - first) * merkle.HASH_LEN
    if not 0 <= off < len(blob):
        return None
    return bytes(blob[off : off + merkle.HASH_LEN])


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(b"\x00" + bytes(d)).digest() for d in entries]


def grow(
    pending: list[bytes | None], leaves: list[bytes]
) -> tuple[list[list[bytes]], list[bytes | None]]:
    """Append leaf hashes to a tree given by its frontier (`pending[k]`: the unpaired left node
    of level k, None if level k's count is even). Returns (new, frontier): `new[k]` the nodes
    the batch completes at level k (the store appends them), and the new frontier. Pure: the
    store keeps the frontier beside the tree and calls this inside its transaction."""
    sha = hashlib.sha256
    cur = leaves
    pending = list(pending)
    new: list[list[bytes]] = []
    k = 0
    while cur:
        new.append(cur)
        if k == len(pending):
            pending.append(None)
        left = pending[k]
        row = cur if left is None else [left, *cur]
        pending[k] = row[-1] if len(row) & 1 else None
        cur = [sha(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2])]
        k += 1
    return new, pending


def pack_frontier(pending: list[bytes | None]) -> bytes:
    """The frontier as bytes: its nodes, lowest level first (which levels: the tree size's bits)."""
    return b"".join(p for p in pending if p is not None)


def unpack_frontier(size: int, blob: bytes) -> list[bytes | None]:
    out: list[bytes | None] = []
    off = 0
    k = 0
    while size >> k:
        if (size >> k) & 1:
            out.append(bytes(blob[off : off + merkle.HASH_LEN]))
            off += merkle.HASH_LEN
        else:
            out.append(None)
        k += 1
    if off != len(blob):
        raise UsageError("log frontier of %d bytes for a tree of %d leaves" % (len(blob), size))
    return out


def check_head(blob: bytes, public_key: bytes, verifier: Verifier) -> merkle.TreeHead:
    """Parse a signed tree head and check it is signed by `public_key` (SEC1). Raises
    TreeHeadError: head_malformed, head_unknown_alg, head_unknown_key, head_bad_signature."""
    head = merkle.parse_head(blob)
    if head.key_id != certs.key_id(public_key):
        raise merkle.TreeHeadError("tree head: by key %08x" % head.key_id, "head_unknown_key")
    if not verifier.verify(public_key, head.signed_bytes(), head.signature()):
        raise merkle.TreeHeadError("tree head: bad signature", "head_bad_signature")
    return head
