"""Plate-bound accounts: binding plates, publishing the plate list, the manual review queue.

A rider binds a vehicle plate to an issuer's account (and the credential the car park charges:
clearing charges that issuer's account, `issuer << 40 | account`); the back office publishes
the bindings as a signed, versioned plate list (protocol/platelist.py), the first as a
snapshot, then one delta per publish after the version published now, exactly as the deny
list goes (publication kind `plate_delta`; gates fetch one version after the
other). All SQL is in store.py (`plate_*`).

Privacy (`PlateConfig`, the operator's choice): with `scheme = "hmac"` a plate is turned into
its keyed hash (HMAC-SHA256 under the operator's plate hash key, first 63 bits) when it is
bound, and only the key is stored, published and journaled; nobody reading the database, a
gate's flash or the journal learns a plate without that key. The key is given to the lanes
that read plates (plates.hash_key in their config). With "plain" the back office keeps
the plate text too (for its screens), and the list packs plates reversibly.

Review queue: a lane that reads a plate it cannot match (not on the list, or below the
confidence threshold) journals plate_unknown / plate_low_confidence with the plate key, the
image tag and the confidence, and asks for a QR scan. `collect` queues every such event; one
followed by a passage at its lane within `window_s` is `fell_back` (nothing to do), the rest
stay `open` for an operator, who looks at the image and `decide`s: `charged` (to an account,
with `backoffice adjust` for the amount) or `dismissed`.
"""

from typing import Any

from host_sim.errors import SimError
from protocol import messages as m
from protocol import platelist, reasons, ridecode

REVIEW_REASONS = (reasons.number("plate_unknown"), reasons.number("plate_low_confidence"))
REVIEW_WINDOW_S = 300  # a QR passage this soon after a misread at the same lane: fell back
DECISIONS = ("charged", "dismissed")


class PlateError(SimError, ValueError):
    """A plate that cannot be bound, or a review decision that cannot apply."""

    reason = "bad_plate"
    remedy = "check the plate (letters and digits) and the review item's device and seq"


class PlateConfig:
    """How plates are keyed: scheme "plain" or "hmac" (with the hash key and its id)."""

    def __init__(self, scheme: str = "plain", hash_key: bytes = b"", hash_key_id: int = 0):
        if scheme not in ("plain", "hmac"):
            raise PlateError("plate scheme %r: plain or hmac" % scheme)
        if scheme == "hmac" and (len(hash_key) < 16 or not 0 < hash_key_id <= 0xFFFF):
            raise PlateError("the hmac scheme needs a hash key of 16 bytes or more and its id")
        self.scheme = platelist.SCHEME_HMAC if scheme == "hmac" else platelist.SCHEME_PLAIN
        self.hash_key = hash_key
        self.hash_key_id = hash_key_id if scheme == "hmac" else 0

    def key(self, plate: str) -> int:
        k = platelist.plate_key(plate, self.scheme, self.hash_key)
        if k is None:
            raise PlateError("plate %r has no key under this scheme" % plate)
        return k


def bind(
    store: Any, cfg: PlateConfig, plate: str, issuer: int, account: int, cred_no: int, now: int
) -> int:
    """Bind `plate` to issuer key `issuer`'s (account, cred_no); the plate key. A hashed scheme
    stores no text."""
    if not 0 <= issuer <= 0xFFFF:
        raise PlateError("issuer key id %d is not 0..65535" % issuer)
    key = cfg.key(plate)
    text = platelist.normalize(plate) if cfg.scheme == platelist.SCHEME_PLAIN else ""
    store.plate_bind(key, issuer, ridecode.cred_id(account, cred_no), text, now)
    return key


def unbind(store: Any, cfg: PlateConfig, plate: str, now: int) -> bool:
    return store.plate_unbind(cfg.key(plate), now)


def publish(store: Any, cfg: PlateConfig, signer: Any, now: int) -> dict[str, Any] | None:
    """Publish what changed: a snapshot of every binding when no plate list is out yet (or the
    one out is of format 1, without the issuer), else a delta after the published version.
    `signer`: the lists role's key, or a list of them (its threshold). None when nothing
    changed."""
    adds, removes = store.plate_changes()
    current = dict((k, v) for k, v, _n in store.offers()).get(m.KIND_PLATE_DELTA)
    kw = {"scheme": cfg.scheme, "hash_key_id": cfg.hash_key_id}
    old = platelist.parse(store.publication(m.KIND_PLATE_DELTA, current)) if current else None
    if current is None or old is None or old.legacy:
        adds = [
            (b["plate_key"], b["issuer"], b["cred_id"]) for b in store.plate_bindings() if b["want"]
        ]
        version = (current or 0) + 1
        blob = platelist.build(platelist.KIND_SNAPSHOT, 0, version, now, adds, (), signer, **kw)
    else:
        if not adds and not removes:
            return None
        if (old.scheme, old.hash_key_id) != (cfg.scheme, cfg.hash_key_id):
            raise PlateError(
                "the published plate list uses another key scheme: a scheme change needs every "
                "plate bound again and a new snapshot"
            )
        version = current + 1
        blob = platelist.build(
            platelist.KIND_DELTA, current, version, now, adds, removes, signer, **kw
        )
    store.publish(m.KIND_PLATE_DELTA, version, blob, now)
    store.plate_listed(adds, removes, version)
    return {"version": version, "adds": len(adds), "removes": len(removes), "bytes": len(blob)}


def collect(store: Any, window_s: int = REVIEW_WINDOW_S) -> int:
    """Queue new unmatched plate reads; mark those a passage followed. How many were queued."""
    return store.plate_review_collect(REVIEW_REASONS, window_s)


def queue(store: Any, status: str | None = "open") -> list[dict[str, Any]]:
    """The review items (open ones by default), each with its reason's name."""
    out = store.plate_review_items(status)
    for item in out:
        item["reason"] = reasons.by_number(item["reason"])
    return out


def decide(
    store: Any, device_id: int, seq: int, status: str, operator: str, note: str, now: int,
    account: int = 0,
) -> None:  # fmt: skip
    if status not in DECISIONS:
        raise PlateError("decision %r: one of %s" % (status, ", ".join(DECISIONS)))
    if status == "charged" and not account:
        raise PlateError("a charged review item names the account it is charged to")
    if not store.plate_review_decide(device_id, seq, status, account, operator, note, now):
        raise PlateError("no open review item %d/%d" % (device_id, seq))
