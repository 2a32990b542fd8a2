"""`backoffice import`: store a gate's factory-reset export as if the gate had synced it.

The export (`faregate device reset --export FILE --force`, provisioning/cli/device.py) is the
gate's unsynced records as they were journaled: records of version 2 (245 bytes) or, from a
journal of before, version 1 (64 bytes) (protocol/records.py; the version byte gives each one's
length), concatenated, in seq order. They go through the same ingest as a sync upload
(Store.store_batch: continuity and replay checks, idempotent by (device_id, seq)), one batch
per run of consecutive seqs of one device, so importing a file twice, or after some of its
records synced, stores nothing twice.
"""

from typing import Any

from protocol import records
from protocol.errors import FormatError


def import_export(store: Any, data: bytes, now: int) -> dict[str, Any]:
    """Store the export's records; returns {records, new, devices}. FormatError (nothing
    stored) if the file is not whole records, a record does not parse, or a gate is not
    registered."""
    try:
        raws = records.split(data)
    except FormatError as e:
        raise FormatError("not a run of whole records: %s" % e, "bad_export") from None
    recs = [records.decode(r) for r in raws]
    devices = sorted({r.device_id for r in recs})
    for d in devices:
        if store.device(d) is None:
            raise FormatError("device %d is not registered" % d, "unknown_device")
    before = store.count()
    runs: list[list[int]] = []
    for i, r in enumerate(recs):
        prev = recs[i - 1] if i else None
        if prev is None or prev.device_id != r.device_id or r.seq != prev.seq + 1:
            runs.append([])
        runs[-1].append(i)
    for run in runs:
        store.store_batch(recs[run[0]].device_id, [raws[i] for i in run], now)
    return {"records": len(recs), "new": store.count() - before, "devices": devices}
