"""Fuzz the foundation's parsers: base45, frames, records, sync messages (R3)."""

import pytest

from protocol import base45, frames, messages, records
from protocol.errors import FormatError
from tests.fuzzing import QUICK, fuzz_parser

RECORD = records.Record(records.KIND_PASSAGE, 0, 7, 1, 1767254400, account_id=9).to_bytes()


def _frames(data: bytes) -> None:
    dec = frames.FrameDecoder(max_payload=4096)
    for fr in dec.feed(data):
        assert isinstance(fr.payload, bytes)


CASES = {
    "base45": (base45.decode, ["QED8WEX0", "%69 VD92EX0"], True),
    "frames": (_frames, [frames.encode(2, messages.batch([RECORD], bytes(64)))], False),
    "records": (records.decode, [RECORD], False),
    "batch": (messages.parse_batch, [messages.batch([RECORD, RECORD], bytes(64))], False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_quick(name: str) -> None:
    parse, seeds, as_text = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), n=QUICK, as_text=as_text)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_million(name: str) -> None:
    parse, seeds, as_text = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), as_text=as_text)
