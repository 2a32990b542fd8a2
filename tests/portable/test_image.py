"""protocol.image: the image format, parsed strictly."""

import hashlib

from protocol import image
from protocol.errors import FormatError
from tests.portable.codes import fake_sig
from tests.portable.harness import raises
from tests.portable.images import FILES, RELEASE_PUB, make


def test_round_trip_and_layout():
    data = make(version=(2, 3, 4), counter=7)
    h, m, off = image.parse(data)
    assert data[:4] == b"FGIM" and h.alg == image.ALG_ES256
    assert h.key_id == hashlib.sha256(RELEASE_PUB).digest()[:8]
    assert m.version == (2, 3, 4) and m.counter == 7 and m.profile_name == "linux"
    assert [f.path for f in m.files] == sorted(FILES)
    assert off == image.HEADER_LEN + h.manifest_len and len(data) == h.total_len
    for f, start, end in image.file_spans(m, off):
        assert data[start:end] == FILES[f.path]
    # the signature covers header bytes 0..23 and the whole manifest
    msg = image.signing_input(data[: h.head_len])
    assert msg == image.SIGNING_DOMAIN + data[:24] + data[88 : h.head_len]
    assert h.signature == fake_sig(RELEASE_PUB, msg)


def test_unsigned_image_has_zero_key_and_signature():
    data = make(signed=False)
    h, _m, _off = image.parse(data)
    assert h.alg == image.ALG_NONE and h.key_id == bytes(8) and h.signature == bytes(64)
    bad = data[:20] + b"\x01" + data[21:]
    assert raises(FormatError, image.parse, bad).reason == "image_malformed"


def test_strict_parsing_rejects_each_deviation():
    data = make()
    h, _m, _off = image.parse(data)
    cases = {
        "magic": b"XGIM" + data[4:],
        "format": data[:4] + b"\x02" + data[5:],
        "alg": data[:5] + b"\x07" + data[6:],
        "reserved": data[:6] + b"\x00\x01" + data[8:],
        "trailing": data + b"\x00",
        "truncated": data[:-1],
        "manifest version": data[:88] + b"\x02" + data[89:],
        "profile": data[:89] + b"\x09" + data[90:],
    }
    for name, bad in cases.items():
        e = raises(FormatError, image.parse, bad)
        assert e.reason.startswith("image_"), name
    assert raises(FormatError, image.parse, data[:-1]).reason == "image_truncated"
    assert raises(FormatError, image.parse, data[:50]).reason == "image_malformed"


def test_paths_must_be_clean_sorted_and_unique():
    for bad in ("../x.py", "/abs.py", "a//b.py", "a/./b.py", "sp ace.py", "", "x" * 201):
        raises(FormatError, image.check_path, bad)
    image.check_path("firmware/maintenance/update_agent.py")
    m = image.parse(make())[1]
    raw = m.to_bytes()
    # swap the first two entries' order: no longer sorted
    m.files = [m.files[1], m.files[0]] + m.files[2:]
    try:
        m.to_bytes()
        raise AssertionError("unsorted manifest encoded")
    except Exception as e:
        assert "sorted" in str(e)
    assert image.parse_manifest(raw).files[0].path == "firmware/__init__.py"


def test_mcu_manifest_names_its_mpy_abi():
    data = make(profile=image.PROFILE_MCU, mpy=(6, 3))
    m = image.parse(data)[1]
    assert m.mpy == (6, 3) and m.summary()["mpy"] == "6.3"
    # a linux manifest naming an mpy ABI, or an mcu one without, is malformed
    raises(FormatError, image.parse, make(profile=image.PROFILE_MCU, signed=False))
    raises(FormatError, image.parse, make(mpy=(6, 3), signed=False))


def test_header_payload_length_must_match_manifest():
    data = bytearray(make())
    data[15] ^= 1
    raises(FormatError, image.parse, bytes(data))


def test_version_text():
    assert image.parse_version("1.20.300") == (1, 20, 300)
    assert image.version_str((1, 20, 300)) == "1.20.300"
    for bad in ("1.2", "1.2.x", "1.2.70000"):
        try:
            image.parse_version(bad)
            raise AssertionError(bad)
        except Exception as e:
            assert "MAJOR" in str(e) or "0..65535" in str(e)


def test_documented_vector():
    # docs/firmware-images.md, "Test vector"
    data = make(
        files={"firmware/hello.py": b"print(1)\n"}, signed=False, version=(1, 2, 3), counter=5
    )
    assert len(data) == 175
    assert data[:16].hex() == "4647494d01000000000000 4e00000009".replace(" ", "")
    assert hashlib.sha256(data).digest().hex() == (
        "39e634dfe00a4b1e5d94277dc9a3a2e522017689bfd433070788946088164663"
    )
