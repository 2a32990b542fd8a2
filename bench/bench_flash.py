"""P9: flashing a 1 MB image over a simulated 115,200-baud serial line, and resuming.

The gate is host_sim.sim_gate.SimGate running the real linux image in a child process, its
service port a pty paced like a UART at 115,200 baud 8N1 (11,520 bytes/s each way). The rate
is esptool's "effective" rate: image bytes x 8 / seconds from the first chunk sent to the last
chunk acknowledged as durable. The reference is the raw line measured in the same run: bytes
pushed through the same pty and pacer with no protocol at all.
"""

import hashlib
import os
import random
import tempfile
import time

from bench.util import row
from drivers import crypto_openssl as es256
from host_sim.sim_gate import SimGate
from protocol import flash, image
from provisioning import image_build
from provisioning.flash import FlashClient, FrameLink, open_port

BAUD = 115200
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1024 * 1024


def padded_image(key, version: str, counter: int, total: int, seed: int) -> bytes:
    """The real firmware plus an incompressible padding file, `total` bytes in all."""
    base = image_build.build(ROOT, "linux", version, counter, 1767254400)
    _h, m, off = image.parse(base)
    files = {f.path: base[s:e] for f, s, e in image.file_spans(m, off)}
    overhead = len(base) + 1 + len("firmware/padding.bin") + 36
    files["firmware/padding.bin"] = random.Random(seed).randbytes(total - overhead)
    entries = [
        image.FileEntry(p, len(d), hashlib.sha256(d).digest()) for p, d in sorted(files.items())
    ]
    m2 = image.Manifest(m.profile, m.version, m.counter, m.build_time, entries)
    data = image_build.sign(image.build(m2, files), key)
    assert len(data) == total, len(data)
    return data


def raw_line_rate(port_path: str, n: int) -> float:
    """Bytes/s through the paced pty with no protocol: n bytes of filler, then a QUERY whose
    answer proves the gate has read them all."""
    port = open_port(port_path, BAUD)
    try:
        link = FrameLink(port)
        client = FlashClient(link, timeout_s=30)
        client.query()  # the gate is up and the line idle
        t0 = time.monotonic()
        port.write(b"\x00" * n)
        link.send(flash.QUERY)
        fr = link.recv(n / (BAUD / 10) * 2 + 10)
        assert fr is not None and fr.type == flash.STATUS
        return n / (time.monotonic() - t0)
    finally:
        port.close()


def transfer(port_path: str, data: bytes, stop_at: int | None = None) -> tuple[int, int, float]:
    """(resumed from, bytes sent, seconds) of one `faregate flash`-like run, no activation."""
    port = open_port(port_path, BAUD)
    try:
        client = FlashClient(FrameLink(port), timeout_s=10)
        offset, chunk, window = client.begin(data, image.parse_header(data).head_len)
        secs = client.send(data, offset, chunk, window, stop_at=stop_at)
        if stop_at is None:
            digest, _summary = client.end()
            assert digest == hashlib.sha256(data).digest(), "read-back hash differs"
        sent = (stop_at or len(data)) - offset
        return offset, sent, secs
    finally:
        port.close()


def p9() -> list[dict]:
    key = es256.generate_key()
    pub = es256.public_bytes(key)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "gate")
        factory = image_build.sign(image_build.build(ROOT, "linux", "1.0.0", 1, 0), key)
        SimGate.create(state, factory, [pub])
        gate = SimGate(state, baud=BAUD)
        path = gate.start()
        try:
            gate.wait_state(lambda st: st.get("active") == "a" and not st.get("trial"))
            line = raw_line_rate(path, 192 * 1024)
            big = padded_image(key, "1.1.0", 2, MB, seed=9)
            _off, sent, secs = transfer(path, big)
            rate = sent / secs
            rows.append(
                row(
                    "P9",
                    "flash 1 MB over a 115,200-baud pty, effective rate (esptool's)",
                    rate * 8 / 1000,
                    "kbit/s",
                    line * 8 / 1000,
                    ">= 0.9 x raw line rate",
                )
            )
            # resumable: the cable is pulled half-way through, then the same command again
            small = padded_image(key, "1.2.0", 2, 256 * 1024, seed=10)
            _o1, sent1, _s1 = transfer(path, small, stop_at=len(small) // 2)
            resumed, sent2, _s2 = transfer(path, small)
            rows.append(
                row(
                    "P9",
                    "resume after a cut at 50%% of 256 KiB: bytes on the line / image "
                    "(resumed at %d)" % resumed,
                    (sent1 + sent2) / len(small),
                    "x image",
                    None,
                    "<= 1.05 (resumable)",
                )
            )
        finally:
            gate.stop()
    return rows


BENCHES = {"P9": p9}
