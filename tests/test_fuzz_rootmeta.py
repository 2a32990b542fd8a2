"""Fuzz the roles' parsers (protocol/rootmeta.py): root metadata, root-signed configs, releases,
and the body length the tools use to sign in turn. Anything but a FormatError escaping is a bug."""

import pytest

from protocol import rootmeta
from protocol.errors import FormatError
from tests.fuzzing import QUICK, fuzz_parser
from tests.portable.test_rootmeta import R1, R2, vector

CONFIG = rootmeta.sign(rootmeta.security_config(1017, 3, b'{"version": 1}'), [R1])
RELEASE = rootmeta.sign(rootmeta.release(1017, 1), [R1, R2])

CASES = {
    "rootmeta": (rootmeta.parse, [vector()]),
    "rootmeta_body": (rootmeta.parse_body, [vector()[: rootmeta.body_len(vector())]]),
    "security_config": (rootmeta.parse_security_config, [CONFIG]),
    "release": (rootmeta.parse_release, [RELEASE]),
    "body_len": (rootmeta.body_len, [vector(), CONFIG, RELEASE]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_quick(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,), n=QUICK)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_million(name: str) -> None:
    parse, seeds = CASES[name]
    fuzz_parser(parse, seeds, (FormatError,))
