"""Deny lists of formats 1 and 2 (before the issuer), parsed for migration only: a gate that
held one reads its deny.log (firmware/verify/denystore.py), and refuses any that arrives
(deny_needs_issuer). Big-endian:

     0  4B   magic "FGDL" | 4 u8 format 1 or 2 | 5 u8 kind | 6 u16 root_key_id
     8  u32  from_version | 12 u32 to_version | 16 u32 issued_at
   (20  u32  valid_until: format 2 only, > issued_at)
    20  u32  add_count | 24 u32 remove_count (24 and 28 in format 2)
    28  add_count x u64, then remove_count x u64, each strictly ascending (32 in format 2)
   end  64B  root signature r||s over every byte before it

Its keys are the ANY_ISSUER section's (they applied to every issuer). Loaded only when such a
list is met, so a gate of this release does not carry it otherwise.
"""

import struct

from protocol.denylist import (
    ANY_ISSUER,
    FORMAT_V1,
    KIND_SNAPSHOT,
    SIG_LEN,
    DenyList,
    _bad,
    _check_header,
    _keys_pair,
)

LEGACY_HEADER_LEN = 28
LEGACY_HEADER_LEN_FRESH = 32
_LEGACY_FMT = ">4sBBHIIIII"
_LEGACY_FMT_FRESH = ">4sBBHIIIIII"


def parse(blob) -> DenyList:
    """A format-1 or -2 list: its keys under ANY_ISSUER (its root_key_id is not kept)."""
    valid_until = 0
    if blob[4] == FORMAT_V1:
        head_len = LEGACY_HEADER_LEN
        if len(blob) < head_len + SIG_LEN:
            raise _bad("%d bytes is too short" % len(blob))
        _m, _f, kind, _root, from_v, to_v, issued_at, n_add, n_rem = struct.unpack(
            _LEGACY_FMT, blob[:head_len]
        )
    else:
        head_len = LEGACY_HEADER_LEN_FRESH
        if len(blob) < head_len + SIG_LEN:
            raise _bad("%d bytes is too short" % len(blob))
        _m, _f, kind, _root, from_v, to_v, issued_at, valid_until, n_add, n_rem = struct.unpack(
            _LEGACY_FMT_FRESH, blob[:head_len]
        )
        if not valid_until:
            raise _bad("format 2 without a valid_until")
    _check_header(kind, from_v, to_v, issued_at, valid_until)
    if kind == KIND_SNAPSHOT and n_rem:
        raise _bad("a snapshot has no removals")
    if len(blob) != head_len + 8 * (n_add + n_rem) + SIG_LEN:
        raise _bad("length %d does not match %d + %d entries" % (len(blob), n_add, n_rem))
    a, r = _keys_pair(blob, head_len, n_add, n_rem)
    dl = DenyList(
        kind,
        from_v,
        to_v,
        issued_at,
        valid_until,
        {ANY_ISSUER: a} if n_add else {},
        {ANY_ISSUER: r} if n_rem else {},
        blob,
    )
    dl.body_len = len(blob) - SIG_LEN
    dl.legacy = True
    return dl
