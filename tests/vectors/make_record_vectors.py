"""Generate tests/vectors/records-v2.json: journal record vectors (docs/sync-protocol.md,
"Journal record").

    python tests/vectors/make_record_vectors.py            (re)write the file
    python tests/vectors/make_record_vectors.py --check    exit 1 if the file differs

Three records of one gate's chain: a version 1 passage (as written before version 2), a
version 2 passage that keeps the rider's ride code (case `valid_basic` of ridecode-v1.json:
its signature verifies with the rider key inside it) and a version 2 event with no evidence.
Each: its bytes, its fields, its hash (the next record's prev_hash) and, for the passage with
evidence, the rider's signed bytes and signature.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from protocol import records  # noqa: E402

OUT = os.path.join(ROOT, "tests", "vectors", "records-v2.json")
T = 1767254400
FIELDS = (
    "version",
    "kind",
    "reason",
    "device_id",
    "seq",
    "time",
    "mode",
    "direction",
    "station",
    "account_id",
    "cred_no",
    "counter",
    "value",
    "flags",
    "issuer",
)


def code_of(name: str) -> bytes:
    with open(os.path.join(ROOT, "tests", "vectors", "ridecode-v1.json")) as f:
        cases = json.load(f)["cases"]
    return bytes.fromhex([c for c in cases if c["name"] == name][0]["hex"])


def build() -> dict:
    v1 = records.Record(
        records.KIND_PASSAGE,
        0,
        17,
        1,
        T - 60,
        records.MODE_METRO,
        records.DIR_ENTRY,
        3,
        123456789,
        2,
        41,
        0,
        0,
        version=records.VERSION_1,
    )
    raw1 = v1.to_bytes()
    v2 = records.Record(
        records.KIND_PASSAGE,
        0,
        17,
        2,
        T + 5,
        records.MODE_METRO,
        records.DIR_EXIT,
        9,
        value=250,
        flags=records.FLAG_CLOCK_UNTRUSTED,
        prev_hash=records.record_hash(raw1),
        code=code_of("valid_basic"),
    )
    raw2 = v2.to_bytes()
    ev = records.Record(
        records.KIND_EVENT,
        0,
        17,
        3,
        T + 9,
        records.MODE_METRO,
        0,
        9,
        7,
        0,
        0,
        0,
        0,
        records.record_hash(raw2),
        issuer=0,
    )
    out = []
    for name, what, rec in (
        ("v1_passage", "a version 1 record (64 bytes), as journals before version 2 hold", v1),
        ("v2_passage_with_code", "a version 2 passage keeping the rider's ride code", v2),
        ("v2_event", "a version 2 event: no issuer, no evidence", ev),
    ):
        raw = rec.to_bytes()
        case = {"name": name, "what": what, "hex": raw.hex(), "len": len(raw)}
        case["fields"] = {k: getattr(rec, k) for k in FIELDS}
        case["record_hash"] = records.record_hash(raw).hex()
        case["prev_hash"] = records.prev_hash_of(raw).hex()
        ev_ = rec.rider_evidence()
        if ev_:
            case["rider_signed"] = ev_[0].hex()
            case["rider_sig"] = ev_[1].hex()
            case["rider_pub"] = rec.code[27:60].hex()
        out.append(case)
    return {
        "format": "faregate journal records, version 2 (and 1)",
        "generated_by": "tests/vectors/make_record_vectors.py",
        "cases": out,
    }


def main(argv) -> int:
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in argv:
        with open(OUT) as f:
            if f.read() != text:
                print("%s is stale: run %s" % (OUT, argv[0]))
                return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
