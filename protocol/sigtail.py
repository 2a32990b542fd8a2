"""The threshold-signature tail of signed blobs (root metadata, deny lists, plate lists).

    body | u8 n_sigs (1..16) | n_sigs x (u32 key_id | 64-byte ES256 signature r||s over body)

key_id is protocol.certs.key_id of the signing public key; key ids are distinct. Pure functions,
portable to MicroPython; `reason` names the fault of the blob kind (root_malformed,
list_malformed).
"""

import struct

from protocol.certs import key_id
from protocol.errors import FormatError

SIG_LEN = 64
MAX_SIGS = 16


def sign(body, signers, reason="list_malformed") -> bytes:
    """`body` with the signatures of `signers` (objects with .public_key, .sign(msg))."""
    sigs = [(key_id(s.public_key), bytes(s.sign(body))) for s in signers]
    return attach(body, sigs, reason)


def attach(body, sigs, reason="list_malformed") -> bytes:
    """`body` with signatures [(key_id, 64-byte sig)] (collected from several key holders)."""
    if not 1 <= len(sigs) <= MAX_SIGS:
        raise FormatError("%d signatures (1..%d)" % (len(sigs), MAX_SIGS), reason)
    out = [bytes(body), bytes((len(sigs),))]
    for kid, sig in sigs:
        if len(sig) != SIG_LEN:
            raise FormatError("a signature is not 64 bytes", reason)
        out.append(struct.pack(">I", kid) + bytes(sig))
    return b"".join(out)


def split(data, body_len, reason="list_malformed"):
    """(body, [(key_id, sig)]) of a signed blob whose body is `body_len` bytes."""
    data = bytes(data)
    if len(data) < body_len + 1:
        raise FormatError("signed blob cut short", reason)
    n = data[body_len]
    if not 1 <= n <= MAX_SIGS:
        raise FormatError("%d signatures (1..%d)" % (n, MAX_SIGS), reason)
    if len(data) != body_len + 1 + n * (4 + SIG_LEN):
        raise FormatError(
            "signatures are %d bytes, expected %d" % (len(data) - body_len - 1, n * 68), reason
        )
    sigs = []
    ids = []
    at = body_len + 1
    for _ in range(n):
        kid = struct.unpack(">I", data[at : at + 4])[0]
        if kid in ids:
            raise FormatError("key %08x signs twice" % kid, reason)
        ids.append(kid)
        sigs.append((kid, data[at + 4 : at + 4 + SIG_LEN]))
        at += 4 + SIG_LEN
    return data[:body_len], sigs


def signers_of(signer):
    """A list of signers from one signer or several."""
    return list(signer) if isinstance(signer, (list, tuple)) else [signer]
