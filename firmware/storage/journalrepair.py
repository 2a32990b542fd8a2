"""Journal repair: what `faregate device journal repair` (console JOURNAL_REPAIR) runs. Kept
apart from firmware/storage/journal.py because a gate needs it only when a technician asks: on
an MCU its bytecode then stays out of the heap the rest of the time (docs/mcu.md). Portable.

`repair(journal, seq_floor)` rewrites every damaged segment as a clean version 3 segment and
reopens the journal; the byte layouts are in protocol/journalfile.py and docs/sync-protocol.md.
"""

from binascii import crc32

from firmware.storage.journal import JournalUnverified
from protocol import journalfile as jf
from protocol import records


def repair(j, seq_floor: int = 0) -> dict:
    """Rewrite every damaged segment of journal `j` as a clean version 3 segment (a mended
    record of an old segment whole again, a lost slot as a hole, a damaged footer recomputed),
    rewrite both copies of journal.meta, and reopen. `seq_floor`: the back office's high seq
    for this gate (`faregate backoffice queues`), taken as acknowledged; needed when
    journal.meta was unreadable (the journal could not vouch for its seq): new records start
    after it. -> {"before": report, "after": report}."""
    before = j.report()
    if not j.vouched and seq_floor <= 0:
        raise JournalUnverified(
            "journal.meta is unreadable: repair needs the back office's high seq for "
            "this gate (seq_floor)"
        )
    j._close_file()
    for seg in j._segs:
        if seg.dirty or (seg.fmt != 3 and seg.bad):
            _rewrite(j, seg)
    if seq_floor > j.acked_seq:  # the back office holds every record up to it
        j._write_meta(seq_floor, records.ZERO_HASH)
    elif before["meta"] != "ok":
        j._write_meta(j.acked_seq, j.acked_hash)
    if seq_floor > j.last_seq:
        if j._segs:
            j._segs[-1].closed = True
        j._new_segment(seq_floor + 1)
    j._open()
    return {"before": before, "after": j.report()}


def _rewrite(j, seg) -> None:
    """`seg` again as a version 3 segment: records, holes for lost slots, and its footer
    if it was sealed. Streamed a chunk at a time; replaces the file atomically."""
    elen = jf.entry_len(seg.name)
    fmt = seg.fmt
    src = j._path(seg.name)
    name = jf.segment_name(seg.first)
    full = seg.sealed or seg.count >= j.segment_records

    def fill(out):
        f = j.fs.open_file(src, "rb")
        crc = 0
        last = records.ZERO_HASH
        i = 0
        try:
            for buf, n in j._chunks(f, seg.count * elen, seg.name, elen):
                off = 0
                parts = []
                while off < n:
                    seq = seg.first + i
                    _st, raw, k = jf.slot(buf, off, fmt, seq)
                    if raw is None:
                        parts.append(jf.hole3(seq))
                        last = records.ZERO_HASH
                    else:
                        parts.append(jf.entry3(raw, k))
                        last = records.record_hash(raw)
                    off += elen
                    i += 1
                data = b"".join(parts)
                crc = crc32(data, crc)
                out.write(data)
        finally:
            f.close()
        if full:
            out.write(jf.footer(seg.count, crc, last))

    j.fs.write_atomic_with(j._path(name), fill)
    if name != seg.name:
        j.fs.remove_if_exists(src)
        seg.name = name
