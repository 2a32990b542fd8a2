"""The host's flash client, on its real transport, against the gate's flash service over a
lossy in-memory line (go-back-N), and fuzzing of the image and flash parsers (R3)."""

import random

import pytest

from firmware.maintenance.flash_service import FlashService
from protocol import flash, frames, image
from protocol.errors import FormatError
from provisioning.flasher import FlashClient
from provisioning.transport import Transport
from tests.fuzzing import QUICK, fuzz_parser
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, confirmed_gate, make


class LossyLine:
    """A serial port whose far end is a FlashService; drops or corrupts some frames to it."""

    def __init__(self, service: FlashService, rng: random.Random, loss: float) -> None:
        self.service = service
        self.rng = rng
        self.loss = loss
        self.dec = frames.FrameDecoder()
        self.rx = b""
        self.timeout = 0.0
        self.dropped = 0

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def reset_input_buffer(self) -> None:
        self.rx = b""

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        if self.rng.random() < self.loss:
            self.dropped += 1
            if self.rng.random() < 0.5:
                return len(data)  # lost on the line
            i = self.rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :]  # corrupted: CRC fails
        for fr in self.dec.feed(data):
            for t, p in self.service.handle(fr.type, fr.payload):
                self.rx += frames.encode(t, p)
        return len(data)

    def read(self, n: int) -> bytes:
        out, self.rx = self.rx[:n], self.rx[n:]
        return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_line_still_delivers_the_exact_image(seed: int) -> None:
    d = mkdtemp()
    try:
        confirmed_gate(d)
        rng = random.Random(seed)
        data = make(version=(1, 3, 0), counter=2, files={"firmware/x.py": rng.randbytes(60000)})
        line = LossyLine(FlashService(agent(d, running="a"), max_chunk=1024, window=6), rng, 0.08)
        link = Transport("lossy://", opener=lambda _url, **_kw: line)
        client = FlashClient(link, timeout_s=0.3, retries=5, rewinds=50)
        offset, chunk, window = client.begin(data, image.parse_header(data).head_len)
        client.send(data, offset, chunk, window)
        digest, summary = client.end()
        import hashlib

        assert digest == hashlib.sha256(data).digest(), "seed %d" % seed
        assert summary["version"] == "1.3.0" and line.dropped > 0, "seed %d" % seed
    finally:
        rmtree(d)


def _image_seeds() -> list[bytes]:
    return [make(), make(profile=image.PROFILE_MCU, mpy=(6, 3)), make(signed=False)]


def _flash_seeds() -> list[bytes]:
    img = make()
    h = image.parse_header(img)
    return [
        flash.begin(len(img), bytes(32), img[: h.head_len]),
        flash.ready(10, 20),
        flash.data(0, b"abc"),
        flash.done(bytes(32), {"slot": "a"}),
        flash.refused("image_rollback", "no"),
    ]


def _parse_flash(p: bytes) -> None:
    for fn in (
        flash.parse_begin,
        flash.parse_ready,
        flash.parse_data,
        flash.parse_ack,
        flash.parse_done,
        flash.parse_status,
        flash.parse_refused,
    ):
        try:
            fn(p)
        except FormatError:
            pass


def _agent_head(p: bytes) -> None:
    from firmware.maintenance.update_agent import ImageRefused
    from tests.portable.images import device

    try:
        agent("", device()).check_head(p, 0)
    except ImageRefused:
        pass


CASES = {
    "image": (image.parse, _image_seeds),
    "manifest": (image.parse_manifest, lambda: [image.parse(make())[1].to_bytes()]),
    "flash": (_parse_flash, _flash_seeds),
    "agent_head": (_agent_head, _image_seeds),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_quick(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds(), (FormatError,), n=QUICK)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_million(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds(), (FormatError,))
