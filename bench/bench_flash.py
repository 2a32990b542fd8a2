"""P9: flashing a 1 MB image over a simulated 115,200-baud serial line, and resuming.

The gate is host_sim.hardware.sim_device.SimDevice running the real linux image in a child process,
its service console on a pty paced like a UART at 115,200 baud 8N1 (11,520 bytes/s each way). The
path is the product's: the image frames go through the console's authenticated session (a
technician credential of a throwaway operator, HELLO and AUTH first), into the flash service
and the update agent, each chunk durable before its ACK. The rate is esptool's "effective"
rate: image bytes x 8 / seconds from the first chunk sent to the last chunk acknowledged. The
reference is the raw line measured in the same run: bytes pushed through the same pty and
pacer with no protocol at all (the median of 3 runs).
"""

import hashlib
import os
import random
import statistics
import tempfile
import time
from typing import Any

from bench.util import row
from drivers.linux import crypto_openssl as es256
from host_sim.hardware.sim_device import SimDevice
from protocol import image
from provisioning import image_build, operator_keys
from provisioning.console import ServiceClient
from provisioning.flasher import FlashClient
from provisioning.transport import Transport

BAUD = 115200
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1024 * 1024


def padded_image(key, version: str, counter: int, total: int, seed: int) -> bytes:
    """The real firmware plus an incompressible padding file, `total` bytes in all (the real
    image must be smaller than `total`)."""
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


def raw_line_rate(link: Transport, n: int) -> float:
    """Bytes/s through the paced pty with no protocol: n bytes of filler, then a HELLO whose
    answer proves the gate has read them all."""
    client = ServiceClient(link)
    client.hello()  # the gate is up and the line idle
    t0 = time.monotonic()
    link.port.write(b"\x00" * n)
    link.timeout = n / (BAUD / 10) * 2 + 10
    client.hello()
    link.timeout = 10
    return n / (time.monotonic() - t0)


def session(link: Transport, cred: Any, claim: bool = False) -> ServiceClient:
    client = ServiceClient(link)
    client.hello()
    client.authenticate(cred.signer, cred.raw, cred.anchor, claim)
    return client


def transfer(link: Transport, data: bytes, stop_at: int | None = None) -> tuple[int, int, float]:
    """(resumed from, bytes sent, seconds) of one `faregate flash`-like run, no activation."""
    flasher = FlashClient(link, timeout_s=10)
    offset, chunk, window = flasher.begin(data, image.parse_header(data).head_len)
    secs = flasher.send(data, offset, chunk, window, stop_at=stop_at)
    if stop_at is None:
        digest, _summary = flasher.end()
        assert digest == hashlib.sha256(data).digest(), "read-back hash differs"
    sent = (stop_at or len(data)) - offset
    return offset, sent, secs


def p9() -> list[dict]:
    key = es256.generate_key()
    pub = es256.public_bytes(key)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        now = int(time.time())
        operator_keys.init_operator(os.path.join(tmp, "op"), "Bench Metro", now)
        cred_dir = os.path.join(tmp, "tech")
        operator_keys.issue_technician(os.path.join(tmp, "op"), cred_dir, 1, "b", "full", 1, now)
        cred = operator_keys.Credential(cred_dir)
        state = os.path.join(tmp, "gate")
        factory = image_build.sign(image_build.build(ROOT, "linux", "1.0.0", 1, 0), key)
        SimDevice.program(state, factory, [pub], 1009)
        gate = SimDevice(state, baud=BAUD)
        path = gate.start()
        try:
            assert gate.ready.wait(60), "the simulated gate did not come up"
            with Transport(path, timeout=10) as link:
                line = statistics.median(raw_line_rate(link, 64 * 1024) for _ in range(3))
                session(link, cred, claim=True)
                big = padded_image(key, "1.1.0", 2, MB, seed=9)
                _off, sent, secs = transfer(link, big)
                rate = sent / secs
                rows.append(
                    row(
                        "P9",
                        "flash 1 MB over a 115,200-baud pty in an authenticated console "
                        "session, effective rate (esptool's)",
                        rate * 8 / 1000,
                        "kbit/s",
                        line * 8 / 1000,
                        ">= 0.9 x raw line rate",
                    )
                )
                # resumable: the cable is pulled half-way through, then the same command again
                small = image_build.sign(
                    image_build.build(ROOT, "linux", "1.2.0", 2, 1767254400), key
                )  # the real image, whatever its size today
                _o1, sent1, _s1 = transfer(link, small, stop_at=len(small) // 2)
            with Transport(path, timeout=10) as link:  # plugged in again: a new session
                session(link, cred)
                resumed, sent2, _s2 = transfer(link, small)
            rows.append(
                row(
                    "P9",
                    "resume after a cut at 50%% of the %d-KiB real image: bytes on the line / "
                    "image (resumed at %d)" % (len(small) // 1024, resumed),
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
