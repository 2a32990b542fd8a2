"""P15: the MCU gate's memory on the MicroPython unix port, and the in-flash deny lookup.

`micropython -X heapsize=512K` runs four phases of the real firmware and reports the heap's
high-water mark of each: `gc.mem_alloc()` after a `gc.collect()`, sampled at every file read,
write and open (every store goes through firmware/storage/fs.py) and at every turn of the gate
loop or round of the sync session, so it is the live peak at those points:
    passage      an MCU-profile gate (tests/portable/test_mcu_profile.py's rig: UART reader,
                 GPIO barrier and beams) lets a rider through: verify, journal, open, close
    sync         a session uploads 200 passages (sync.batch_records, sync.window) to a back
                 office in the same heap (tests/portable/test_sync.py's MiniHost; the records
                 it keeps are dropped, so what is counted is the gate's side and the frames)
    deny update  a 1,000-add / 1,000-remove delta applied to a 100,000-entry deny list held in
                 flash (firmware/verify/flashdeny.py)
    journal open a journal holding a full 16,384-record segment (1.1 MB, twice the heap) and
                 10 records after it is opened and checked, streamed (firmware/storage/journal.py)
and the lookup time of that list (searched in its file). A second run (16 MB heap) states the
P-256 comb tables' trade-off: bytes of the generator's and one issuer key's tables against the
time of one issuer-key verification, for each spacing (protocol/p256.py). A last 512 KB run
fills the credential cache at the MCU profile's `validation.cache_size` default and reports its
heap, and what the Linux default of 4096 entries would take at the same size an entry; and
another fills the offline limits (firmware/verify/limits.py) with the MCU default of
`limits.max_unsynced_count` unsynced passages, without and with a value each.
"""

import json
import os
import subprocess
import tempfile
from array import array

from bench.bench_mpy import _micropython
from bench.util import row
from firmware import settings
from firmware.storage.journal import Journal
from protocol import denyfile, denylist, records
from tests.portable import codes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAP = "512K"
ENTRIES = 100_000
SEGMENT = 16384  # Journal's segment_records: a full segment is 1.1 MB
CACHE_CODES = settings.default("validation.cache_size", "mcu")  # fills the MCU default

SCRIPT = """
import gc, json, sys, time
sys.path.insert(0, ".")
gc.collect()
gc.threshold(gc.mem_free() // 8)  # as the MCU entry point sets it (drivers/mcu/entry.py)
START = gc.mem_alloc()
from firmware.storage import fs as fsmod


class Peak:
    def __init__(self):
        self.peak = 0
        self.on = True  # off while lookups are timed: a sample is a whole collection

    def sample(self):
        if not self.on:
            return
        gc.collect()
        a = gc.mem_alloc()
        if a > self.peak:
            self.peak = a

    def reset(self):
        gc.collect()
        self.peak = self.base = gc.mem_alloc()


P = Peak()


class ProbeFile(fsmod.FileProxy):
    def write(self, data):
        r = self.f.write(data)
        P.sample()
        return r

    def read(self, n=-1):
        r = self.f.read(n)
        P.sample()
        return r

    def readinto(self, buf):
        r = self.f.readinto(buf)
        P.sample()
        return r


_open = fsmod.Storage.open_file
_sync = fsmod.Storage.sync_file


def open_file(self, path, mode):
    P.sample()
    return ProbeFile(_open(self, path, mode))


def sync_file(self, f):
    _sync(self, f.f if isinstance(f, ProbeFile) else f)


fsmod.Storage.open_file = open_file
fsmod.Storage.sync_file = sync_file


def us(fn):
    t = time.ticks_us()
    fn()
    return time.ticks_diff(time.ticks_us(), t)


def tables(_data):
    from protocol import p256
    from tests.portable import codes
    msg = b"P15 trade-off"
    sig = codes.ISSUER.sign(msg)
    pub = codes.ISSUER.public_key
    out = []
    for spacing in (1, 2, 4, 8):
        gc.collect()
        a = gc.mem_alloc()
        v = p256.Verifier(spacing=spacing)
        v.prepare_key(pub)
        p256.g_table(spacing)
        gc.collect()
        heap = gc.mem_alloc() - a
        ts = sorted(us(lambda: v.verify(pub, msg, sig)) for _ in range(15))
        out.append({"spacing": spacing, "bytes": v.table_bytes(), "heap": heap, "verify_us": ts[7]})
        p256._G_TABLES.clear()
        del v
    return out


def base():
    gc.collect()
    return {"code": gc.mem_alloc() - START, "heap": gc.mem_alloc() + gc.mem_free()}


def passage(_data):
    from tests.portable.test_mcu_profile import _metro

    res = base()
    rig = _metro()
    step = rig.loop.step

    def sampled(t):
        r = step(t)
        P.sample()
        return r

    rig.loop.step = sampled
    rig.steps(3)
    P.reset()
    t = time.ticks_us()
    rig.scan()
    rig.limit(True)
    rig.walk()
    rig.limit(False)
    res["us"] = time.ticks_diff(time.ticks_us(), t)
    assert rig.events()[0][1] == "accepted", rig.events()
    res["peak"] = (P.base, P.peak)
    rig.close()
    return res


def sync(_data):
    from firmware.sync.client import SyncClient
    from firmware.storage.journal import Journal
    from protocol import records
    from tests.portable import test_sync as ts
    from tests.portable.harness import mkdtemp, rmtree

    res = base()
    d = mkdtemp("p15")
    j = Journal(d, device_id=7)
    for i in range(200):
        j.append(records.Record(1, 0, 0, 0, ts.NOW, account_id=i))

    class Held:
        # the back office's records, but only the highest seq (it is not the gate)

        def __init__(self):
            self.top = []

        def __setitem__(self, k, v):
            self.top = [max(self.top + [k])]

        def __len__(self):
            return len(self.top)

        def __iter__(self):
            return iter(self.top)

    host = ts.MiniHost()
    host.held = Held()
    c = SyncClient(j, ts.Signer(ts.DEV_PUB), ts.HashVerifier(), ts.HOST_PUB, ts.Clock(),
                   random_bytes=ts._nonce)
    P.reset()
    t = time.ticks_us()
    out = c.start()
    for _ in range(1000):
        out = host.receive(out)
        P.sample()
        if not out:
            break
        out = c.receive(out)
        P.sample()
        if c.done:
            break
    res["us"] = time.ticks_diff(time.ticks_us(), t)
    assert c.acked == 200 and j.pending_count() == 0, (c.acked, j.pending_count())
    res["peak"] = (P.base, P.peak)
    j.close()
    rmtree(d)
    return res


def deny(data):
    from firmware.verify.flashdeny import FlashDenyStore
    from tests.portable import codes

    res = base()
    store = FlashDenyStore(data["deny_dir"], codes.ROOTS, codes.VERIFIER)
    assert len(store) == data["entries"], len(store)
    times = []
    P.on = False
    for a in data["probes"]:
        times.append(us(lambda: store.is_denied(1, a, 1)))
    P.on = True
    times.sort()
    res["lookup_us"] = times[len(times) // 2]
    res["lookup_p99_us"] = times[len(times) * 99 // 100]
    blob = open(data["delta"], "rb").read()
    P.reset()
    t = time.ticks_us()
    assert store.install(blob)
    res["us"] = time.ticks_diff(time.ticks_us(), t)
    res["peak"] = (P.base, P.peak)
    assert store.version == 2
    store.close()
    return res


def journal(data):
    from firmware.storage.journal import Journal

    res = base()
    P.reset()
    j = Journal(data["journal_dir"], 7)
    res["peak"] = (P.base, P.peak)
    assert j.last_seq == j.pending_count() == data["journal_records"], j.last_seq
    j.close()
    return res


def cache(data):
    from firmware import settings
    from firmware.verify.validator import IssuerKey, Validator, ValidatorConfig
    from protocol import p256
    from tests.portable import codes

    size = settings.default("validation.cache_size")  # the MCU profile's default
    v = Validator(p256.Verifier(), {1: IssuerKey(1, codes.ISSUER.public_key)},
                  config=ValidatorConfig(cache_size=size))
    for text in data["cache_codes"]:
        assert v.check(text, codes.NOW + 1).accept
    gc.collect()
    full = gc.mem_alloc()
    n = len(v._cache)
    v._cache.clear()
    gc.collect()
    return {"size": size, "entries": n, "bytes": full - gc.mem_alloc()}


def limits(_data):
    from firmware import settings
    from firmware.verify.limits import LimitsConfig, OfflineLimits
    from protocol import records

    n = settings.default("limits.max_unsynced_count")  # the MCU profile's default
    out = {"count": n}
    rec = records.Record(records.KIND_PASSAGE, 0, 0, 0, 1767254400, account_id=1)
    for key, value in (("plain", 0), ("valued", 100)):  # gate.value 0, and a value each
        gc.collect()
        a = gc.mem_alloc()
        lim = OfflineLimits(LimitsConfig(max_unsynced=n))
        for i in range(n):
            rec.seq, rec.value, rec.account_id = i + 1, value, 10**9 + i  # an account each
            lim.committed(rec)
        assert lim.unsynced() == n
        gc.collect()
        out[key] = gc.mem_alloc() - a
        del lim
    return out


data = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
PHASES = {"tables": tables, "passage": passage, "sync": sync, "deny": deny, "journal": journal,
          "cache": cache, "limits": limits}
print(json.dumps(PHASES[sys.argv[1]](data)))
"""


def _deny_files(d: str) -> dict:
    """A 100,000-entry deny.base (version 1) and a signed delta 1 -> 2, made on CPython."""
    accounts = list(range(1000, 1000 + 3 * ENTRIES, 3))
    keys = array("Q", (denylist.account_key(1, a) & denylist.KEY_MASK for a in accounts))
    deny_dir = os.path.join(d, "deny")
    os.makedirs(deny_dir)
    with open(os.path.join(deny_dir, "deny.base"), "wb") as f:
        f.write(denyfile.base(keys, [(1, 0, len(keys))], 1, codes.NOW - 600))
    adds = [denylist.account_key(1, a + 1) for a in accounts[::100]]
    removes = [denylist.account_key(1, a) for a in accounts[50::100]]
    delta = os.path.join(d, "delta.bin")
    with open(delta, "wb") as f:
        f.write(codes.deny_delta(1, 2, adds=adds, removes=removes))
    # half denied accounts, half not (between them)
    probes = [a + (i % 2) for i, a in enumerate(accounts[7::97])][:1000]
    return {"deny_dir": deny_dir, "delta": delta, "entries": ENTRIES, "probes": probes}


def _journal_files(d: str) -> dict:
    """A journal of one full, sealed 16384-record segment (1.1 MB) and 10 records after it,
    made on CPython, for the MCU gate's journal open."""
    jdir = os.path.join(d, "journal")
    os.makedirs(jdir)
    j = Journal(jdir, 7)
    n = SEGMENT + 10
    j.append_many(
        [records.Record(records.KIND_PASSAGE, 0, 0, 0, codes.NOW, account_id=9) for _ in range(n)]
    )
    j.close()
    return {"journal_dir": jdir, "journal_records": n}


def _cache_codes() -> dict:
    """CACHE_CODES ride codes of as many credentials (each one cache entry)."""
    return {
        "cache_codes": [
            codes.code(codes.credential(account_id=100 + i, cred_no=i + 1), time=codes.NOW)
            for i in range(CACHE_CODES)
        ]
    }


def _run(mpy: str, d: str, heap: str, *args: str) -> dict:
    script = os.path.join(d, "p15.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    out = subprocess.run(
        [mpy, "-X", "heapsize=" + heap, script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError("micropython failed: %s" % (out.stdout + out.stderr).strip()[-800:])
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def p15() -> list[dict]:
    mpy = _micropython()
    if mpy is None:
        return [row("P15", "MCU memory: micropython not found", 0, "KB", None, "(info)")]
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "p15.json")
        with open(data, "w") as f:
            json.dump(dict(_deny_files(d), **_journal_files(d), **_cache_codes()), f)
        r = {ph: _run(mpy, d, HEAP, ph, data) for ph in ("passage", "sync", "deny", "journal")}
        c = _run(mpy, d, HEAP, "cache", data)
        lim = _run(mpy, d, HEAP, "limits")
        t = _run(mpy, d, "16M", "tables")
    kb = 1024
    code = max(x["code"] for x in r.values())
    rows = [
        row(
            "P15",
            "MCU gate, %s heap: code and constants (most)" % HEAP,
            code / kb,
            "KB",
            None,
            "(info: in flash on a board, frozen)",
        ),
    ]
    for key, what in (
        ("passage", "peak heap: a passage (verify, journal, barrier)"),
        ("sync", "peak heap: a sync session (200 passages up)"),
        ("deny", "peak heap: deny delta on 100,000 entries in flash"),
        ("journal", "peak heap: journal open, a full 16,384-record segment (1.1 MB) + 10"),
    ):
        base, peak = r[key]["peak"]
        rows.append(
            row(
                "P15",
                what,
                peak / kb,
                "KB",
                r[key]["heap"] / kb,
                "fits %s (+%.0f KB over idle)" % (HEAP, (peak - base) / kb),
            )
        )
    per = c["bytes"] / max(1, c["entries"])
    rows.append(
        row(
            "P15",
            "credential cache full at the MCU default (validation.cache_size %d)" % c["size"],
            c["bytes"] / kb,
            "KB",
            None,
            "(info: %.2f KB an entry; the Linux default 4096 would be %.0f KB)"
            % (per / kb, 4096 * per / kb),
        )
    )
    n = lim["count"]
    rows.append(
        row(
            "P15",
            "offline limits at the MCU default (limits.max_unsynced_count %d unsynced)" % n,
            lim["plain"] / kb,
            "KB",
            None,
            "(info: %.1f B a passage; %.1f B with a value and an account each; "
            "the Linux default 20000 would be %.0f-%.0f KB)"
            % (
                lim["plain"] / n,
                lim["valued"] / n,
                20000 * lim["plain"] / n / kb,
                20000 * lim["valued"] / n / kb,
            ),
        )
    )
    rows += [
        row(
            "P15",
            "  deny update time (rewrite deny.base through a temp file)",
            r["deny"]["us"] / 1000,
            "ms",
            None,
            "(info)",
        ),
        row(
            "P15",
            "in-flash deny lookup, 100,000 entries (median)",
            r["deny"]["lookup_us"] / 1000,
            "ms",
            None,
            "<= 2 ms",
        ),
        row(
            "P15",
            "  same, p99 of 1,000",
            r["deny"]["lookup_p99_us"] / 1000,
            "ms",
            None,
            "(info)",
        ),
    ]
    for e in t:
        rows.append(
            row(
                "P15",
                "  P-256 tables, spacing %d: G + one issuer key %.1f KB"
                % (e["spacing"], e["bytes"] / kb),
                e["verify_us"] / 1000,
                "ms",
                None,
                "(info: one issuer-key verify; heap %.1f KB)" % (e["heap"] / kb),
            )
        )
    return rows


BENCHES = {"P15": p15}
