"""Rebuild rfc9162-vectors.json from a checkout of github.com/transparency-dev/merkle.

    python tests/vectors/merkle/extract.py CHECKOUT COMMIT > rfc9162-vectors.json

Reads testonly/constants.go (leaf inputs, node hashes, roots for sizes 0..8) and every probe
under testdata/inclusion and testdata/consistency (base64 in the source, hex here). Run by hand
when the source moves; tests/test_merkle_vectors.py only reads the JSON.
"""

import base64
import json
import os
import re
import sys


def _hexes(go: str, func: str) -> list[str]:
    body = go.split("func %s()" % func, 1)[1].split("\n}\n", 1)[0]
    return re.findall(r'hd\("([0-9a-f]*)"\)', body)


def _node_levels(go: str) -> list[list[str]]:
    body = go.split("func NodeHashes()", 1)[1].split("\n}\n", 1)[0]
    return [re.findall(r'hd\("([0-9a-f]*)"\)', part) for part in body.split("}, {")]


def _b64(v: str | None) -> str:
    return base64.b64decode(v or "").hex()


def _probes(root: str, kind: str) -> list[dict]:
    out = []
    base = os.path.join(root, "testdata", kind)
    for d, _, files in sorted(os.walk(base)):
        for f in sorted(files):
            if not f.endswith(".json"):
                continue
            with open(os.path.join(d, f)) as fh:
                p = json.load(fh)
            name = os.path.relpath(os.path.join(d, f), os.path.join(root, "testdata"))
            row: dict = {"file": name, "desc": p["desc"], "want_error": p["wantErr"]}
            if kind == "inclusion":
                row.update(
                    leaf_index=p["leafIdx"],
                    tree_size=p["treeSize"],
                    leaf_hash=_b64(p["leafHash"]),
                    root=_b64(p["root"]),
                )
            else:
                row.update(size1=p["size1"], size2=p["size2"])
                row.update(root1=_b64(p["root1"]), root2=_b64(p["root2"]))
            row["proof"] = [_b64(h) for h in p["proof"] or []]
            out.append(row)
    return out


def main(root: str, commit: str) -> None:
    with open(os.path.join(root, "testonly", "constants.go")) as f:
        go = f.read()
    roots = _hexes(go, "EmptyRootHash") + _hexes(go, "RootHashes")
    doc = {
        "source": {
            "repository": "https://github.com/transparency-dev/merkle",
            "commit": commit,
            "paths": ["testonly/constants.go", "testdata/inclusion/", "testdata/consistency/"],
            "licence": "Apache-2.0",
        },
        "leaf_inputs": _hexes(go, "LeafInputs"),
        "node_hashes": _node_levels(go),
        "root_hashes": roots,
        "inclusion_probes": _probes(root, "inclusion"),
        "consistency_probes": _probes(root, "consistency"),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
