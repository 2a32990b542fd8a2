"""P7: full verification of one ride code on the MicroPython unix port, pure-Python P-256.

CPython makes the codes (the wallet, OpenSSL keys) and writes a small script; `micropython`
runs the real firmware.verify.validator with protocol.p256 in a subprocess and reports medians. The
reference, measured in the same MicroPython run, is one plain P-256 verify (joint 4-bit
window, no precomputed table): the TARGETS.md reference point (~7 ms).
"""

import json
import os
import shutil
import subprocess
import tempfile

from bench.util import row
from host_sim.wallet import Issuer, Rider

NOW = 1_767_254_400
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 15

SCRIPT = """
import json, sys, time
sys.path.insert(0, ".")
from protocol import p256
from firmware.verify.validator import IssuerKey, Validator, ValidatorConfig
data = json.load(open(sys.argv[1]))
issuer_pub = bytes.fromhex(data["issuer_pub"])
codes = data["codes"]
now = data["now"]

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]

def us(fn):
    t = time.ticks_us()
    fn()
    return time.ticks_diff(time.ticks_us(), t)

verifier = p256.Verifier()
t_g = us(p256.g_table)
trust = {1: IssuerKey(1, issuer_pub)}
t_key = us(lambda: verifier.prepare_key(issuer_pub))
plain_msg = bytes.fromhex(data["plain_msg"])
plain_sig = bytes.fromhex(data["plain_sig"])
assert p256.verify_plain(issuer_pub, plain_msg, plain_sig)
plain = median([us(lambda: p256.verify_plain(issuer_pub, plain_msg, plain_sig))
                for _ in range(len(codes))])
results = {}
for name, cache in (("full", 0), ("cached", 64)):
    v = Validator(verifier, trust, config=ValidatorConfig(cache_size=cache))
    if cache:
        assert v.check(codes[0], now).accept  # warm: the credential is verified once
    times = []
    for text in codes:
        box = []
        times.append(us(lambda: box.append(v.check(text, now))))
        assert box[0].accept, box[0].reason
    results[name] = median(times)
print(json.dumps({"plain_us": plain, "full_us": results["full"],
                  "cached_us": results["cached"], "g_table_us": t_g, "key_table_us": t_key}))
"""


def _micropython() -> str | None:
    here = os.path.join(ROOT, ".venv", "bin", "micropython")
    return here if os.path.exists(here) else shutil.which("micropython")


def p7() -> list[dict]:
    mpy = _micropython()
    if mpy is None:
        return [row("P7", "MicroPython: micropython not found", 0, "ms", None, "<= 20 ms")]
    issuer = Issuer(key_id=1)
    rider = Rider()
    issuer.issue(rider, account_id=7, valid_from=NOW - 60, valid_until=NOW + 86400)
    codes = [rider.present(NOW) for _ in range(ROUNDS)]
    msg = b"plain verify reference"
    sig = issuer.signer.sign(msg)
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "p7.json")
        script = os.path.join(d, "p7.py")
        with open(data, "w") as f:
            json.dump(
                {
                    "issuer_pub": issuer.public_key.hex(),
                    "codes": codes,
                    "now": NOW,
                    "plain_msg": msg.hex(),
                    "plain_sig": sig.hex(),
                },
                f,
            )
        with open(script, "w") as f:
            f.write(SCRIPT)
        out = subprocess.run(
            [mpy, script, data], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
    if out.returncode != 0:
        raise RuntimeError("micropython failed: %s" % out.stderr.strip()[-500:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ms = {k: v / 1000 for k, v in r.items()}
    return [
        row(
            "P7",
            "MicroPython: full verification, pure P-256",
            ms["full_us"],
            "ms",
            ms["plain_us"],
            "<= 20 ms (ref: one plain verify)",
        ),
        row(
            "P7",
            "  same, credential already verified (cache)",
            ms["cached_us"],
            "ms",
            ms["plain_us"],
            "(info)",
        ),
        row(
            "P7",
            "  one-off tables: generator + issuer key",
            ms["g_table_us"] + ms["key_table_us"],
            "ms",
            None,
            "(info: at boot / trust list install)",
        ),
    ]


BENCHES = {"P7": p7}
