"""Building deny lists of format 3 (protocol/denylist.py has the layout): the back office's,
the wallet's and the tests' side. A gate only parses lists, so it never loads this module.
"""

import struct

from protocol import sigtail
from protocol.denylist import (
    _HEADER_FMT,
    _SECTION_FMT,
    FORMAT,
    KIND_DELTA,
    KIND_SNAPSHOT,
    MAGIC,
    MAX_SECTIONS,
    keys_to_be,
    split_entry,
)
from protocol.errors import UsageError


def by_issuer(entries) -> dict:
    """{issuer: ascending distinct u64 keys} of entries."""
    out: dict = {}
    for e in entries:
        issuer, k = split_entry(e)
        if issuer > 0xFFFF:
            raise UsageError("issuer %d is not a u16" % issuer)
        out.setdefault(issuer, set()).add(k)
    return {i: sorted(ks) for i, ks in out.items()}


def encode_body(kind, from_version, to_version, issued_at, adds, removes=(), valid_until=0):
    """The signed body of a format-3 list; adds and removes are entries (`entry`)."""
    adds = by_issuer(adds)
    removes = by_issuer(removes)
    if kind not in (KIND_SNAPSHOT, KIND_DELTA):
        raise UsageError("unknown deny list kind %d" % kind)
    if kind == KIND_SNAPSHOT and (removes or from_version):
        raise UsageError("a snapshot has no removals and from_version 0")
    if to_version <= from_version:
        raise UsageError("to_version must be above from_version")
    if valid_until and valid_until <= issued_at:
        raise UsageError("valid_until must be after issued_at")
    issuers = sorted(set(adds) | set(removes))
    if len(issuers) > MAX_SECTIONS:
        raise UsageError("%d issuers, at most %d" % (len(issuers), MAX_SECTIONS))
    out = [
        struct.pack(
            _HEADER_FMT,
            MAGIC,
            FORMAT,
            kind,
            len(issuers),
            from_version,
            to_version,
            issued_at,
            valid_until,
        )
    ]
    for issuer in issuers:
        a = adds.get(issuer, [])
        r = removes.get(issuer, [])
        if set(a) & set(r):
            raise UsageError("a key cannot be both added and removed")
        out.append(struct.pack(_SECTION_FMT, issuer, 0, len(a), len(r)))
        out.append(keys_to_be(a) + keys_to_be(r))
    return b"".join(out)


def build_snapshot(version, issued_at, entries, signers, valid_until=0) -> bytes:
    """A signed snapshot; `signers`: the lists role's signer(s) (.public_key, .sign)."""
    body = encode_body(KIND_SNAPSHOT, 0, version, issued_at, entries, (), valid_until)
    return sigtail.sign(body, sigtail.signers_of(signers))


def build_delta(from_version, to_version, issued_at, adds, removes, signers, valid_until=0):
    body = encode_body(KIND_DELTA, from_version, to_version, issued_at, adds, removes, valid_until)
    return sigtail.sign(body, sigtail.signers_of(signers))
