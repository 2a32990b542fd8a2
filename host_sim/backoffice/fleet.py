"""The fleet as the back office sees it: one dict of plain values per registered gate.

Built from the registry, each gate's last STATUS (firmware/compose/device.py `report`), its
anomalies and its session history (store.py); no display strings, so a page or a script
formats them as it likes. `alarms` names what an operator should look at, from the rules
below, each a short text:

    revoked                 the gate's sessions are refused (`devices revoke`)
    never synced            registered, no session stored yet
    no sync for N s         the last session is older than `quiet_s` (default an hour)
    last session <outcome>  the gate's latest session did not end "ok" (with its reason)
    trust list <state>      its trust list is not fresh (stale, stale_limited, refusing)
    deny list stale         its deny list is past its valid_until (validation.stale_deny applies)
    clock untrusted         the gate does not trust its clock (with its reason)
    firmware on trial       an update is booted but not confirmed yet
    <state>                 the gate is not in service (its lifecycle state)
    notice: <text>          the gate's own notice (its validator's)
    refused <kind> vN: <r>  the gate refused the blob published now (its STATUS said so)
"""

from typing import Any

from host_sim.backoffice.store import Store
from protocol import messages

QUIET_S = 3600  # a gate silent longer than this raises "no sync for N s"


def gates(store: Store, now: int, quiet_s: int = QUIET_S) -> list[dict[str, Any]]:
    """Every registered gate, by device id, as of `now` (unix s)."""
    counts = store.anomaly_counts_by_device()
    last_session = {s["device_id"]: s for s in store.last_sessions()}
    # refusals of what is offered now (an older version a gate refused is history, not an alarm)
    published = {messages.KINDS[k]: v for k, v, _n in store.offers()}
    refused: dict[int, list[dict[str, Any]]] = {}
    for r in store.blob_refusals():
        if published.get(r["kind"]) == r["version"]:
            refused.setdefault(r["device_id"], []).append(r)
    out = []
    for d in store.devices():
        dev, label, high, seen = d["device_id"], d["label"], d["high_seq"], d["last_seen"]
        st, revoked = d["status"], d["revoked"]
        extra = st.get("extra") or {}
        image = extra.get("image") or {}
        trust = extra.get("trust") or {}
        deny = extra.get("deny") or {}
        versions = st.get("versions") or {}
        oldest = st.get("oldest_age_s")
        row = {
            "device_id": dev,
            "label": label,
            "stored_up_to": high,
            "last_sync": seen,
            "queue_depth": st.get("unsynced"),
            # when the oldest record still on the gate was made, from its last report
            "oldest_unsynced": st["time"] - oldest if oldest and "time" in st else None,
            "oldest_unsynced_age_s": oldest,
            "firmware": image.get("version"),
            "slot": image.get("slot"),
            "trial": bool(image["trial"]) if "trial" in image else None,
            # versions as the STATUS's own field has them (its JSON is from the session's start)
            "trust_version": versions.get("trust_list", trust.get("version")),
            "trust_state": trust.get("state"),
            "trust_valid_until": trust.get("valid_until"),
            "deny_version": versions.get("deny_delta", deny.get("version")),
            "deny_state": deny.get("state"),
            "deny_valid_until": deny.get("valid_until"),
            "state": extra.get("state"),
            "revoked": revoked,
            "last_session": last_session.get(dev),
            "anomalies": {k: n for (d, k), n in sorted(counts.items()) if d == dev},
            # published blobs this gate refused: kind, version, reason, detail, first, last, count
            "refused": refused.get(dev, []),
        }
        row["alarms"] = alarms(row, extra, now, quiet_s)
        out.append(row)
    return out


def alarms(row: dict[str, Any], extra: dict[str, Any], now: int, quiet_s: int) -> list[str]:
    """What is wrong with one gate (the module docstring lists the rules)."""
    out = []
    if row["revoked"] is not None:
        out.append("revoked")
    last = row["last_session"]
    if row["last_sync"] is None and last is None:
        out.append("never synced")
    else:
        seen = max(t for t in (row["last_sync"], last and last["started"]) if t is not None)
        if now - seen > quiet_s:
            out.append("no sync for %d s" % (now - seen))
    if last is not None and last["outcome"] != "ok":
        why = ": %s" % last["reason"] if last["reason"] else ""
        out.append("last session %s%s" % (last["outcome"], why))
    if row["trust_state"] not in (None, "fresh"):
        out.append("trust list %s" % row["trust_state"])
    if row["deny_state"] not in (None, "fresh"):
        out.append("deny list %s" % row["deny_state"])
    clock = extra.get("clock") or {}
    if clock.get("untrusted"):
        out.append("clock untrusted" + (": %s" % clock["reason"] if clock.get("reason") else ""))
    if row["trial"]:
        out.append("firmware on trial")
    if row["state"] not in (None, "in_service"):
        out.append(str(row["state"]))
    if extra.get("notice"):
        out.append("notice: %s" % extra["notice"])
    for r in row["refused"]:
        out.append("refused %s v%d: %s" % (r["kind"], r["version"], r["reason"]))
    return out
