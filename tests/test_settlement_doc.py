"""docs/settlement.md's worked example is what the code produces, and it verifies.

    python -m tests.test_settlement_doc      prints the example blocks to paste into the page

The example log holds the first seven leaf inputs of tests/vectors/merkle/ (so its roots are
transparency-dev/merkle's), its heads signed with an example key and RFC 6979 signatures
(deterministic, so the block is byte-stable).
"""

import hashlib
import json
import os
import re

from drivers.linux.crypto_openssl import OpenSSLVerifier
from host_sim.backoffice.translog import MemoryNodeStore, TransLog, check_head
from protocol import merkle, p256

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "settlement.md")
SECRET = hashlib.sha256(b"faregate settlement example").digest()
T0 = 1_767_254_400_000  # 2026-01-01 08:00 UTC, in ms


def _inputs() -> list[bytes]:
    with open(os.path.join(ROOT, "tests", "vectors", "merkle", "rfc9162-vectors.json")) as f:
        return [bytes.fromhex(h) for h in json.load(f)["leaf_inputs"][:7]]


def _example() -> tuple[TransLog, bytes, bytes]:
    log = TransLog(MemoryNodeStore(), p256.signer(SECRET))
    inputs = _inputs()
    log.append_many(inputs[:4])
    head4 = log.sign_head(T0)
    log.append_many(inputs[4:])
    head7 = log.sign_head(T0 + 3_600_000)
    return log, head4, head7


def _hex_lines(b: bytes, indent: str = "  ") -> list[str]:
    return [indent + b[i : i + 32].hex() for i in range(0, len(b), 32)]


def _head_lines(blob: bytes) -> list[str]:
    h = merkle.parse_head(blob)
    fields = [
        (blob[0:4], 'magic "FGTH"'),
        (blob[4:6], "format 1, alg 1 (ES256)"),
        (blob[6:14], "tree_size %d" % h.tree_size),
        (blob[14:22], "timestamp %d ms" % h.timestamp),
        (blob[22:54], "root_hash"),
        (blob[54:58], "key_id"),
        (blob[58:90], "signature r"),
        (blob[90:122], "          s"),
    ]
    return ["  %-64s  %s" % (b.hex(), label) for b, label in fields]


def render() -> str:
    log, head4, head7 = _example()
    out = ["log public key   " + log.signer.public_key.hex(), "key id           %08x" % log.key_id]
    out.append("leaf inputs      " + " ".join(d.hex() or '""' for d in _inputs()))
    out += ["tree head at size 4:", *_head_lines(head4)]
    out += ["tree head at size 7:", *_head_lines(head7)]
    out.append("leaf hash of leaf 5 (input %s):" % _inputs()[5].hex())
    out += _hex_lines(log.leaf_hash(5))
    out.append("inclusion proof of leaf 5 in the tree of size 7:")
    out += [line for h in log.inclusion_proof(5, 7) for line in _hex_lines(h)]
    out.append("consistency proof from size 4 to size 7:")
    out += [line for h in log.consistency_proof(4, 7) for line in _hex_lines(h)]
    return "\n".join(out)


def _doc() -> str:
    with open(DOC) as f:
        return f.read()


def test_example_is_current() -> None:
    block = _doc().split("## Worked example", 1)[1].split("```", 2)[1]
    assert block.strip() == render(), "regenerate: python -m tests.test_settlement_doc"


def test_example_verifies() -> None:
    log, head4, head7 = _example()
    v = OpenSSLVerifier()
    h4 = check_head(head4, log.signer.public_key, v)
    h7 = check_head(head7, log.signer.public_key, v)
    vectors_root7 = merkle.mth(_inputs())
    assert h7.root_hash == vectors_root7 and h4.root_hash == merkle.mth(_inputs()[:4])
    merkle.verify_inclusion(log.leaf_hash(5), 5, 7, log.inclusion_proof(5, 7), h7.root_hash)
    merkle.verify_consistency(4, 7, log.consistency_proof(4, 7), h4.root_hash, h7.root_hash)


def test_byte_table_matches_the_layout() -> None:
    _, _, blob = _example()
    head = merkle.parse_head(blob)
    table = _doc().split("## Signed tree head", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| `(\w+)` \|", table, re.M)
    want = {
        "magic": merkle.MAGIC,
        "format": bytes([merkle.FORMAT]),
        "alg": bytes([merkle.ALG_ES256]),
        "tree_size": head.tree_size.to_bytes(8, "big"),
        "timestamp": head.timestamp.to_bytes(8, "big"),
        "root_hash": head.root_hash,
        "key_id": head.key_id.to_bytes(4, "big"),
        "signature": head.signature(),
    }
    assert [r[2] for r in rows] == list(want)
    pos = 0
    for off, size, name in rows:
        assert int(off) == pos, name
        assert blob[pos : pos + int(size)] == want[name], name
        pos += int(size)
    assert pos == merkle.TREE_HEAD_LEN


# -- the statement example ("## Statement example") -----------------------------------------
def example_keys():
    """(the log key, the operator root, gate 7's device key) of the statement example."""
    return tuple(
        p256.signer(hashlib.sha256(b"faregate settlement example" + who).digest())
        for who in (b"", b" root", b" gate 7")
    )


def statement_example() -> tuple[bytes, bytes, bytes, bytes]:
    """(the statement's bytes, yesterday's statement of the same log, the log's public key,
    the operator root's public key): a store whose log holds one record of another issuer
    (signed into a head of size 1, the head of the previous statement), then issuer 1's
    account 10 entering at station 1 and leaving at station 5 (zones 1 to 2: 300), all three
    uploaded by gate 7 in batches it signed (the last two in one); the statement of that day,
    signed an hour later, proves both records, that gate 7 signed their batch (the root
    certified its key) and that its head extends the size-1 head."""
    import tempfile

    from host_sim.backoffice import clearing, statements
    from host_sim.backoffice.store import Store
    from protocol import certs, records, sync

    key, root, gate = example_keys()
    t = T0 // 1000
    day = clearing.service_day(t, clearing.DEFAULT_TARIFF)
    cert = certs.sign(
        certs.Cert(certs.KIND_DEVICE, 7, certs.key_id(root.public_key), t - 86400,
                   t + 365 * 86400, gate.public_key, 0, "gate 7"), root,
    )  # fmt: skip

    def upload(s, raws, when):
        s.store_batch(7, raws, when, gate.sign(sync.batch_signing_input(7, raws)))

    def rec(seq, issuer, account, station, direction, when, prev):
        return records.Record(
            records.KIND_PASSAGE, 0, 7, seq, when, records.MODE_METRO, direction, station,
            account, 1, seq, 0, 0, prev, issuer=issuer,
        ).to_bytes()  # fmt: skip

    with tempfile.TemporaryDirectory() as d:
        s = Store(os.path.join(d, "bo.sqlite"))
        s.add_device(7, gate.public_key, t)
        first = rec(1, 2, 99, 3, records.DIR_ENTRY, t - 600, records.ZERO_HASH)
        upload(s, [first], t)
        yesterday = statements.build(
            s, key, 1, day - 1, clearing.DEFAULT_TARIFF, b"", t, T0 - 1000, None, {7: cert}
        )  # fmt: skip
        entry = rec(2, 1, 10, 1, records.DIR_ENTRY, t, records.record_hash(first))
        exit_ = rec(3, 1, 10, 5, records.DIR_EXIT, t + 900, records.record_hash(entry))
        upload(s, [entry, exit_], t + 1000)
        st = statements.build(
            s, key, 1, day, clearing.DEFAULT_TARIFF, b"", t + 86400, T0 + 3_600_000,
            bytes.fromhex(yesterday["head"]), {7: cert},
        )  # fmt: skip
        s.close()
    return statements.encode(st), statements.encode(yesterday), key.public_key, root.public_key


def render_statement() -> str:
    blob, _prev, pub, root = statement_example()
    st = json.loads(blob)
    return "\n".join(
        [
            "log public key  " + pub.hex(),
            "root public key " + root.hex(),
            "canonical bytes %d, SHA-256 %s" % (len(blob), hashlib.sha256(blob).hexdigest()),
            json.dumps(st, indent=1, sort_keys=True),
        ]
    )


def test_statement_example_is_current() -> None:
    block = _doc().split("## Statement example", 1)[1].split("```", 2)[1]
    assert block.strip() == render_statement(), "regenerate: python -m tests.test_settlement_doc"


def test_statement_example_verifies_and_a_changed_byte_does_not() -> None:
    from host_sim.backoffice import statements

    blob, prev, pub, root = statement_example()
    v = OpenSSLVerifier()
    assert statements.verify(blob, pub, v, b"", prev, root_key=root).ok
    st = json.loads(blob)
    assert st["totals"]["amount"] == 300 and len(st["records"]) == 2
    assert [b[2] for b in st["batches"]] == [[1, 2]]  # gate 7's batch: both records, leaves 1, 2
    bad = blob.replace(b'"amount":300', b'"amount":301', 1)
    assert statements.verify(bad, pub, v, b"", prev, root_key=root).reasons() == [
        "statement_bad_signature"
    ]


def test_every_settlement_reason_is_explained() -> None:
    from host_sim.backoffice import statements
    from protocol import reasons

    table = _doc().split("## What a failure means", 1)[1].split("\n## ", 1)[0]
    for name in statements.REASONS:
        assert "| %d | `%s` |" % (reasons.number(name), name) in table, name


if __name__ == "__main__":
    print(render())
    print()
    print(render_statement())
