"""Fuzz the parsers of issue 16's keys and boot work (R3): the device-key URL (RFC 7512
PKCS#11 URIs, drivers/linux/pkcs11_uri.py) and the slot head the boot shim verifies
(firmware/maintenance/boot_verify.parse_head). The URL parser raises only Pkcs11UriError; the
head parser never raises at all (it answers with a reason string), and a mutated head never
passes: every accepted input is the seed's own bytes."""

import hashlib

import pytest

from drivers.linux import crypto_openssl as es256
from drivers.linux import pkcs11_uri
from firmware.maintenance import boot_verify
from protocol import image
from tests.fuzzing import QUICK, fuzz_parser

URIS = [
    "pkcs11:token=gate;object=device?module-path=/usr/lib/softhsm/libsofthsm2.so"
    "&pin-source=file:/etc/faregate/pin",
    "pkcs11:token=My%20Gate;object=device;id=%01%02;serial=12ab?module-path=/m.so&pin-value=1234",
    "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;token=t;object=o;type=private"
    "?module-path=/m.so",
]

RELEASE = es256.OpenSSLSigner(es256.generate_key())
KEYS = {image.key_id(RELEASE.public_key): RELEASE.public_key}
FILES = {"firmware/__init__.py": b"", "firmware/hello.py": b"print(1)\n"}


def _head() -> bytes:
    entries = [
        image.FileEntry(p, len(FILES[p]), hashlib.sha256(FILES[p]).digest()) for p in sorted(FILES)
    ]
    m = image.Manifest(image.PROFILE_LINUX, (1, 2, 3), 7, 1767254400, entries)
    signed = image.with_signature(
        image.build(m, FILES), image.key_id(RELEASE.public_key), RELEASE.sign
    )
    return signed[: image.parse_header(signed).head_len]


HEAD = _head()
VERIFY = es256.verifier().verify


def _head_check(data: bytes) -> None:
    got = boot_verify.parse_head(data, KEYS, VERIFY)
    if isinstance(got, str):
        raise ValueError(got)  # refused, with its reason
    assert data == HEAD and got[0] == 7, "a mutated head passed the boot check"


def test_the_seed_head_passes_and_names_its_files():
    counter, files = boot_verify.parse_head(HEAD, KEYS, VERIFY)
    assert counter == 7 and [f[0] for f in files] == sorted(FILES)


def test_fuzz_pkcs11_uri_quick():
    fuzz_parser(pkcs11_uri.parse, URIS, (pkcs11_uri.Pkcs11UriError,), n=QUICK, as_text=True)


def test_fuzz_boot_head_quick():
    fuzz_parser(_head_check, [HEAD], (ValueError,), n=QUICK)


@pytest.mark.fuzz
def test_fuzz_pkcs11_uri_million():
    fuzz_parser(pkcs11_uri.parse, URIS, (pkcs11_uri.Pkcs11UriError,), as_text=True)


@pytest.mark.fuzz
def test_fuzz_boot_head_million():
    fuzz_parser(_head_check, [HEAD], (ValueError,))
