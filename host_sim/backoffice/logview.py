"""The transparency log's answers, as JSON-able dicts: for `faregate backoffice log` and the
back office's HTTP port (GET /log/heads, /log/prove?device=D&seq=S, /log/consistency?old=M).

Proofs are made for the size of a signed head (the newest, or one of a given size), never for
a size the caller merely names, so whoever checks them has a signed root to check against.
"""

from typing import Any

from host_sim.errors import SimError
from protocol import merkle


class NoProof(SimError):
    """A proof that cannot be given: no such record or head, or not under a signed head yet."""

    reason = "no_proof"
    exit_code = 1
    remedy = "wait for the next signed head, or sign one: faregate backoffice log sign --key KEY"


def head_fields(blob: bytes) -> dict[str, Any]:
    h = merkle.parse_head(blob)
    return {
        "tree_size": h.tree_size,
        "timestamp_ms": h.timestamp,
        "root_hash": h.root_hash.hex(),
        "key_id": "%08x" % h.key_id,
        "head": bytes(blob).hex(),
    }


def heads(store: Any, since_ms: int | None = None) -> list[dict[str, Any]]:
    return [head_fields(h) for h in store.log_heads(since_ms)]


def signed_head(store: Any, size: int | None = None) -> bytes:
    """The newest signed head, or the newest of tree size `size`."""
    for blob in reversed(store.log_heads()):
        if size is None or merkle.parse_head(blob).tree_size == size:
            return blob
    raise NoProof("no signed head%s" % ("" if size is None else " of size %d" % size))


def prove(store: Any, device_id: int, seq: int, size: int | None = None) -> dict[str, Any]:
    """Record (device_id, seq): its leaf, its bytes and its RFC 9162 audit path in a signed
    head's tree (with that head)."""
    leaf = store.log_leaf_of(device_id, seq)
    if leaf is None:
        raise NoProof("no record %d/%d in the log" % (device_id, seq), remedy="check the seq")
    head = signed_head(store, size)
    n = merkle.parse_head(head).tree_size
    if leaf >= n:
        raise NoProof(
            "record %d/%d (leaf %d) is not yet under a signed head (size %d)"
            % (device_id, seq, leaf, n)
        )
    got = store.log_leaf(leaf)
    assert got is not None
    return {
        "device_id": device_id,
        "seq": seq,
        "leaf": leaf,
        "record": got[2].hex(),
        "tree_size": n,
        "proof": [p.hex() for p in store.translog().inclusion_proof(leaf, n)],
        "head": head.hex(),
    }


def consistency(store: Any, old_size: int, size: int | None = None) -> dict[str, Any]:
    """The consistency proof from the tree of `old_size` to a signed head's (with that head)."""
    head = signed_head(store, size)
    n = merkle.parse_head(head).tree_size
    if not 0 < old_size <= n:
        raise NoProof("old size %d is not 1..%d" % (old_size, n), remedy="give a smaller size")
    return {
        "old_size": old_size,
        "tree_size": n,
        "proof": [p.hex() for p in store.translog().consistency_proof(old_size, n)],
        "head": head.hex(),
    }
