"""Firmware image files (`.fgi`): a signed manifest and the files it names. Parsing only.

An image is one file, big-endian (docs/firmware-images.md has the worked example):

    offset  size  field
      0       4   magic            b"FGIM"
      4       1   format version   1
      5       1   signature alg    0 = unsigned, 1 = ES256 (raw r||s, P-256, SHA-256)
      6       2   reserved         0
      8       4   manifest length  M, 24 + entries, <= MAX_MANIFEST
     12       4   payload length   P, the sum of the file sizes, <= MAX_PAYLOAD
     16       8   key id           first 8 bytes of SHA-256(release public key, SEC1 compressed)
     24      64   signature        r||s over signing_input(); zeros when unsigned
     88       M   manifest
   88+M       P   payload: each file's bytes, in manifest order; nothing after it

Manifest:

    offset  size  field
      0       1   manifest version  1
      1       1   target profile    1 = linux (CPython), 2 = mcu (MicroPython)
      2       1   mpy major         .mpy ABI the files need (mcu); 0 for linux
      3       1   mpy minor
      4       6   version           major, minor, patch: u16 each
     10       4   security counter  u32; a gate refuses a counter below the one it confirmed
     14       8   build time        u64 unix seconds
     22       2   file count        1..MAX_FILES
     24       .   entries: u8 path length, path (ASCII), u32 size, 32-byte SHA-256 of the file

Paths are relative ("firmware/gate/gate.py"), made of [A-Za-z0-9_.-] segments joined by "/", no
empty, "." or ".." segment, and strictly increasing (sorted, no duplicates), so one manifest
has one encoding. The signature covers bytes 0..23 of the header (so the algorithm, both lengths
and the key id) and the whole manifest (so every field that decides acceptance: profile, mpy
ABI, version, security counter, and through the file hashes, every byte of the payload).
"""

import hashlib
import struct

from protocol.errors import FormatError, UsageError

MAGIC = b"FGIM"
FORMAT_VERSION = 1
MANIFEST_VERSION = 1
ALG_NONE = 0
ALG_ES256 = 1
HEADER_LEN = 88
SIGNED_HEADER_LEN = 24  # header bytes covered by the signature (all but the signature itself)
MANIFEST_FIXED_LEN = 24
KEY_ID_LEN = 8
SIG_LEN = 64
MAX_MANIFEST = 64 * 1024
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_FILES = 1024
MAX_PATH = 200
SIGNING_DOMAIN = b"faregate-image-v1\x00"

PROFILE_LINUX = 1
PROFILE_MCU = 2
PROFILES = {PROFILE_LINUX: "linux", PROFILE_MCU: "mcu"}
PROFILE_IDS = {"linux": PROFILE_LINUX, "mcu": PROFILE_MCU}

_PATH_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-/")
_ZERO_KEY = bytes(KEY_ID_LEN)
_ZERO_SIG = bytes(SIG_LEN)


class ImageFormatError(FormatError):
    """The bytes are not a well-formed image (reason "image_malformed" unless more precise)."""

    reason = "image_malformed"


def key_id(pub_sec1: bytes) -> bytes:
    """The 8-byte id of a release key: SHA-256 of its compressed SEC1 encoding, truncated."""
    return hashlib.sha256(bytes(pub_sec1)).digest()[:KEY_ID_LEN]


def version_str(v) -> str:
    return "%d.%d.%d" % (v[0], v[1], v[2])


def parse_version(text: str):
    parts = text.split(".")
    if len(parts) != 3:
        raise UsageError("version %r is not MAJOR.MINOR.PATCH" % text)
    try:
        v = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError("version %r is not MAJOR.MINOR.PATCH" % text) from None
    for n in v:
        if not 0 <= n <= 0xFFFF:
            raise UsageError("version %r: each part must be 0..65535" % text)
    return v


def check_path(path: str) -> None:
    raw = path.encode() if isinstance(path, str) else bytes(path)
    if not 0 < len(raw) <= MAX_PATH:
        raise ImageFormatError("file path length %d is outside 1..%d" % (len(raw), MAX_PATH))
    for b in raw:
        if b not in _PATH_CHARS:
            raise ImageFormatError("file path %r has a character outside [A-Za-z0-9_.-/]" % path)
    for seg in raw.split(b"/"):
        if seg in (b"", b".", b".."):
            raise ImageFormatError("file path %r has an empty, '.' or '..' segment" % path)


class FileEntry:
    __slots__ = ("path", "size", "sha256")

    def __init__(self, path: str, size: int, sha256: bytes):
        self.path = path
        self.size = size
        self.sha256 = sha256


class Manifest:
    """What an image holds and for which gates. `to_bytes()` is the canonical, signed form."""

    def __init__(self, profile, version, counter, build_time, files, mpy=(0, 0)):
        self.profile = profile  # PROFILE_LINUX or PROFILE_MCU
        self.version = tuple(version)  # (major, minor, patch)
        self.counter = counter
        self.build_time = build_time
        self.files = list(files)  # FileEntry, sorted by path
        self.mpy = tuple(mpy)  # (major, minor) of the .mpy ABI; (0, 0) for linux

    @property
    def profile_name(self) -> str:
        return PROFILES.get(self.profile, "unknown")

    @property
    def payload_len(self) -> int:
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        if self.profile not in PROFILES:
            raise UsageError("unknown target profile %r" % (self.profile,))
        if not 0 <= self.counter <= 0xFFFFFFFF:
            raise UsageError("security counter must be 0..2^32-1")
        if not 0 < len(self.files) <= MAX_FILES:
            raise UsageError("an image holds 1..%d files" % MAX_FILES)
        out = [
            struct.pack(
                ">BBBBHHHIQH",
                MANIFEST_VERSION,
                self.profile,
                self.mpy[0],
                self.mpy[1],
                self.version[0],
                self.version[1],
                self.version[2],
                self.counter,
                self.build_time,
                len(self.files),
            )
        ]
        prev = b""
        for f in self.files:
            check_path(f.path)
            p = f.path.encode()
            if p <= prev:
                raise UsageError("manifest paths must be sorted and unique (%s)" % f.path)
            prev = p
            if len(f.sha256) != 32:
                raise UsageError("file hash must be 32 bytes")
            out.append(struct.pack(">B", len(p)) + p + struct.pack(">I", f.size) + f.sha256)
        data = b"".join(out)
        if len(data) > MAX_MANIFEST:
            raise UsageError("manifest of %d bytes exceeds %d" % (len(data), MAX_MANIFEST))
        return data

    def summary(self) -> dict:
        return {
            "profile": self.profile_name,
            "version": version_str(self.version),
            "counter": self.counter,
            "build_time": self.build_time,
            "files": len(self.files),
            "payload_bytes": self.payload_len,
            "mpy": "%d.%d" % self.mpy if self.profile == PROFILE_MCU else None,
        }


def parse_manifest(data: bytes) -> Manifest:
    data = bytes(data)
    if len(data) < MANIFEST_FIXED_LEN:
        raise ImageFormatError("manifest is %d bytes, shorter than %d" % (len(data), 24))
    mv, profile, mpy_a, mpy_b, v0, v1, v2, counter, build_time, n = struct.unpack(
        ">BBBBHHHIQH", data[:MANIFEST_FIXED_LEN]
    )
    if mv != MANIFEST_VERSION:
        raise ImageFormatError("unknown manifest version %d" % mv)
    if profile not in PROFILES:
        raise ImageFormatError("unknown target profile %d" % profile)
    if profile == PROFILE_LINUX and (mpy_a or mpy_b):
        raise ImageFormatError("a linux image must not name an mpy ABI")
    if profile == PROFILE_MCU and not mpy_a:
        raise ImageFormatError("an mcu image must name its mpy ABI")
    if not 0 < n <= MAX_FILES:
        raise ImageFormatError("file count %d is outside 1..%d" % (n, MAX_FILES))
    pos = MANIFEST_FIXED_LEN
    files = []
    prev = b""
    for _ in range(n):
        if pos >= len(data):
            raise ImageFormatError("manifest ends inside its file list")
        plen = data[pos]
        end = pos + 1 + plen + 36
        if end > len(data):
            raise ImageFormatError("manifest ends inside a file entry")
        raw = data[pos + 1 : pos + 1 + plen]
        if raw <= prev:
            raise ImageFormatError("manifest paths are not sorted and unique")
        prev = raw
        try:
            path = raw.decode()
        except UnicodeError:
            raise ImageFormatError("file path is not ASCII") from None
        check_path(path)
        (size,) = struct.unpack(">I", data[pos + 1 + plen : pos + 5 + plen])
        files.append(FileEntry(path, size, data[pos + 5 + plen : end]))
        pos = end
    if pos != len(data):
        raise ImageFormatError("%d bytes after the manifest's last entry" % (len(data) - pos))
    m = Manifest(profile, (v0, v1, v2), counter, build_time, files, (mpy_a, mpy_b))
    if m.payload_len > MAX_PAYLOAD:
        raise ImageFormatError("files add up to %d bytes, over %d" % (m.payload_len, MAX_PAYLOAD))
    return m


class Header:
    __slots__ = ("alg", "manifest_len", "payload_len", "key_id", "signature", "raw")

    def __init__(self, alg, manifest_len, payload_len, key_id, signature, raw):
        self.alg = alg
        self.manifest_len = manifest_len
        self.payload_len = payload_len
        self.key_id = key_id
        self.signature = signature
        self.raw = raw  # the 88 header bytes as read

    @property
    def total_len(self) -> int:
        return HEADER_LEN + self.manifest_len + self.payload_len

    @property
    def head_len(self) -> int:
        """Bytes of header plus manifest: what a gate checks before taking any payload."""
        return HEADER_LEN + self.manifest_len


def parse_header(data: bytes) -> Header:
    data = bytes(data[:HEADER_LEN])
    if len(data) < HEADER_LEN:
        raise ImageFormatError("image is %d bytes, shorter than its header" % len(data))
    if data[:4] != MAGIC:
        raise ImageFormatError("not a faregate image (bad magic)")
    fmt, alg, reserved, mlen, plen = struct.unpack(">BBHII", data[4:16])
    if fmt != FORMAT_VERSION:
        raise ImageFormatError("unknown image format version %d" % fmt)
    if alg not in (ALG_NONE, ALG_ES256):
        raise ImageFormatError("unknown signature algorithm %d" % alg, "image_unknown_alg")
    if reserved:
        raise ImageFormatError("reserved header bytes are not zero")
    if not MANIFEST_FIXED_LEN < mlen <= MAX_MANIFEST:
        raise ImageFormatError("manifest length %d is out of range" % mlen)
    if plen > MAX_PAYLOAD:
        raise ImageFormatError("payload length %d exceeds %d" % (plen, MAX_PAYLOAD))
    kid = data[16:24]
    sig = data[24:HEADER_LEN]
    if alg == ALG_NONE and (kid != _ZERO_KEY or sig != _ZERO_SIG):
        raise ImageFormatError("an unsigned image must have a zero key id and signature")
    return Header(alg, mlen, plen, kid, sig, data)


def parse_head(data: bytes):
    """Header and manifest from the first bytes of an image; returns (Header, Manifest)."""
    h = parse_header(data)
    if len(data) < h.head_len:
        raise ImageFormatError("image ends inside its manifest", "image_truncated")
    m = parse_manifest(bytes(data[HEADER_LEN : h.head_len]))
    if m.payload_len != h.payload_len:
        raise ImageFormatError("header payload length does not match the manifest's files")
    return h, m


def signing_input(head: bytes) -> bytes:
    """What the release key signs: domain, header bytes 0..23, and the manifest."""
    h = parse_header(head)
    return SIGNING_DOMAIN + bytes(head[:SIGNED_HEADER_LEN]) + bytes(head[HEADER_LEN : h.head_len])


def parse(data: bytes):
    """A whole image: (Header, Manifest, payload offset). Structure only: no hash or signature
    is checked here (firmware.maintenance.update_agent decides acceptance)."""
    h, m = parse_head(data)
    if len(data) < h.total_len:
        raise ImageFormatError(
            "image is %d bytes, its header says %d" % (len(data), h.total_len), "image_truncated"
        )
    if len(data) > h.total_len:
        raise ImageFormatError("%d bytes after the image's end" % (len(data) - h.total_len))
    return h, m, h.head_len


def file_spans(m: Manifest, payload_offset: int) -> list:
    """[(FileEntry, start, end)] of each file in the image bytes."""
    out = []
    pos = payload_offset
    for f in m.files:
        out.append((f, pos, pos + f.size))
        pos += f.size
    return out


def build(m: Manifest, contents: dict) -> bytes:
    """An unsigned image from a manifest and {path: bytes} (the hashes must match)."""
    mb = m.to_bytes()
    body = []
    for f in m.files:
        data = contents[f.path]
        if len(data) != f.size or hashlib.sha256(data).digest() != f.sha256:
            raise UsageError("contents of %s do not match its manifest entry" % f.path)
        body.append(data)
    header = (
        MAGIC
        + struct.pack(">BBHII", FORMAT_VERSION, ALG_NONE, 0, len(mb), m.payload_len)
        + _ZERO_KEY
        + _ZERO_SIG
    )
    return header + mb + b"".join(body)


def with_signature(image: bytes, kid: bytes, sign) -> bytes:
    """The image signed: `sign(message) -> r||s` with the release key whose id is `kid`.
    Re-signing an already signed image replaces its signature."""
    if len(kid) != KEY_ID_LEN:
        raise UsageError("key id must be %d bytes" % KEY_ID_LEN)
    parse(image)
    head = bytearray(image[:HEADER_LEN])
    head[5] = ALG_ES256
    head[16:24] = kid
    head[24:HEADER_LEN] = _ZERO_SIG
    h = parse_header(bytes(head))
    msg = signing_input(bytes(head) + bytes(image[HEADER_LEN : h.head_len]))
    sig = bytes(sign(msg))
    if len(sig) != SIG_LEN:
        raise UsageError("signature must be %d bytes r||s" % SIG_LEN)
    head[24:HEADER_LEN] = sig
    return bytes(head) + bytes(image[HEADER_LEN:])
