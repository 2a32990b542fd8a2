"""ECDSA P-256 with SHA-256 (ES256, raw r||s) in pure Python, for gates without OpenSSL.

MicroPython gates verify ride codes with this module, and sign sync challenges and
provisioning proofs with their device key. Linux gates use `cryptography` instead (same
interface, drivers/linux/crypto_openssl.py); both agree with every Wycheproof P-256 case.

How it is fast enough on a microcontroller:
- points are kept in Jacobian coordinates (X, Y, Z) ~ (X/Z^2, Y/Z^3): no inversion per step;
- additions take their second point in affine form ("mixed" addition, 8M + 3S), so every table
  is converted to affine once, with one shared inversion (Montgomery's trick);
- the generator and every trusted issuer key get a fixed-base comb table: 64 / t rows of 15
  affine points, row i holding j * 16^(t*i) * P, packed as bytes (64 bytes a point); a scalar
  multiple is then 64 additions and 4 * (t - 1) doublings, and the doublings are shared by every
  term of one verification (u1 * G + u2 * Q in one loop);
- any other key (a rider's) uses a 4-bit window: 252 doublings and 64 additions (the generator's
  comb rows ride along in the same loop).
The spacing t trades speed for RAM (docs/mcu.md, bench P15): t = 1 is 61 KB a table, t = 2
31 KB, t = 4 15 KB, t = 8 (the default) 7.7 KB, for a few percent of a verification; kept as
Python int tuples instead of bytes, one t = 1 table would take about 310 KB of a MicroPython heap.
`verify_plain` is the textbook reference (joint 4-bit Shamir window, nothing precomputed),
kept for the P7 benchmark and as a cross-check.

Signing uses RFC 6979 deterministic k (HMAC-SHA256, written here: MicroPython has no hmac).
Python integers are not constant-time: a device key signed here can leak through timing to
someone who measures many signatures; production MCU gates keep the key in a secure element.
"""

import hashlib

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
_SQRT_EXP = (P + 1) // 4  # p = 3 mod 4, so sqrt(a) = a^((p+1)/4)

SIG_LEN = 64


# --- field and point arithmetic -----------------------------------------------------------
# A Jacobian point is a tuple (X, Y, Z); None is the point at infinity. Affine points are
# (x, y) tuples and never infinity.


def _double(pt):
    """2 * pt (dbl-2001-b, for a = -3)."""
    if pt is None:
        return None
    x, y, z = pt
    if y == 0:
        return None
    p = P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y + z) * (y + z) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return (x3, y3, z3)


def _add_affine(pt, q):
    """pt + q with pt Jacobian (or None) and q affine. Handles pt == q and pt == -q."""
    return _add_xy(pt, q[0], q[1])


def _add_xy(pt, qx, qy):
    """pt + (qx, qy), the affine point given by its coordinates."""
    if pt is None:
        return (qx, qy, 1)
    x1, y1, z1 = pt
    p = P
    zz = z1 * z1 % p
    h = (qx * zz - x1) % p
    r = (qy * z1 * zz - y1) % p
    if h == 0:
        if r == 0:
            return _double(pt)
        return None
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - y1 * hhh) % p
    return (x3, y3, z1 * h % p)


def _to_affine_all(points):
    """Convert Jacobian points (none at infinity) to affine with a single inversion."""
    p = P
    prefix = []
    acc = 1
    for pt in points:
        prefix.append(acc)
        acc = acc * pt[2] % p
    inv = pow(acc, p - 2, p)
    out = [None] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x, y, z = points[i]
        zi = inv * prefix[i] % p  # 1 / z_i
        inv = inv * z % p
        zi2 = zi * zi % p
        out[i] = (x * zi2 % p, y * zi2 * zi % p)
    return out


def _window_table(q):
    """[1q, 2q, ..., 15q] in affine form, for 4-bit windows."""
    pts = [(q[0], q[1], 1)]
    for _ in range(14):
        nxt = _add_affine(pts[-1], q)
        if nxt is None:  # cannot happen for a point of prime order n > 15
            raise ValueError("degenerate point")
        pts.append(nxt)
    return _to_affine_all(pts)


SPACING = 8  # the default comb spacing t (see the top of this module)
_POINT = 64  # bytes of one packed affine point: x || y, big-endian


def _pack(points):
    out = []
    for x, y in points:
        out.append(x.to_bytes(32, "big"))
        out.append(y.to_bytes(32, "big"))
    return b"".join(out)


def fixed_base_table(q, spacing=SPACING):
    """64 / spacing rows of 15 packed affine points; row i, point j-1 is j * 16^(spacing*i) * q."""
    if spacing not in (1, 2, 4, 8):
        raise ValueError("comb spacing must be 1, 2, 4 or 8")
    rows = []
    base = q
    for _ in range(64 // spacing):
        rows.append(_pack(_window_table(base)))
        nxt = (base[0], base[1], 1)
        for _ in range(4 * spacing):
            nxt = _double(nxt)
        base = _to_affine_all([nxt])[0]
    return rows


def table_bytes(table) -> int:
    """The packed size of a fixed-base table (what it holds of the heap, less list overhead)."""
    return sum(len(r) for r in table)


def _nibbles(k):
    """The 64 base-16 digits of k < 2^256, least significant first."""
    out = []
    for b in reversed(k.to_bytes(32, "big")):
        out.append(b & 15)
        out.append(b >> 4)
    return out


def _mul(fixed, window=None):
    """The sum of k * Q over `fixed` [(table of Q, k)] (tables of one spacing) and an optional
    `window` (Q affine, k), in one loop whose doublings every term shares."""
    spacing = 64 // len(fixed[0][0])
    terms = [(rows, _nibbles(k)) for rows, k in fixed]
    wtable = wdigits = None
    top = spacing - 1
    if window is not None:
        wtable = _window_table(window[0])
        wdigits = _nibbles(window[1])
        top = 63
    fb = int.from_bytes
    acc = None
    for i in range(top, -1, -1):
        if acc is not None:
            acc = _double(_double(_double(_double(acc))))
        if wdigits is not None:
            d = wdigits[i]
            if d:
                acc = _add_affine(acc, wtable[d - 1])
        if i < spacing:
            for rows, digits in terms:
                n = i
                for row in rows:
                    d = digits[n]
                    if d:
                        o = (d - 1) * _POINT
                        acc = _add_xy(
                            acc, fb(row[o : o + 32], "big"), fb(row[o + 32 : o + 64], "big")
                        )
                    n += spacing
    return acc


def _mul_fixed(table, k):
    """k * Q where table = fixed_base_table(Q)."""
    return _mul([(table, k)])


def _mul_shamir(q1, k1, q2, k2):
    """k1 * Q1 + k2 * Q2 with a joint 4-bit window, nothing precomputed (the reference)."""
    t1 = _window_table(q1)
    t2 = _window_table(q2)
    d1 = _nibbles(k1)
    d2 = _nibbles(k2)
    acc = None
    for i in range(63, -1, -1):
        if acc is not None:
            acc = _double(_double(_double(_double(acc))))
        if d1[i]:
            acc = _add_affine(acc, t1[d1[i] - 1])
        if d2[i]:
            acc = _add_affine(acc, t2[d2[i] - 1])
    return acc


G = (GX, GY)
_G_TABLES: dict = {}  # spacing -> the generator's table


def g_table(spacing=SPACING):
    """The generator's fixed-base table, built on first use (about 40 ms on MicroPython)."""
    table = _G_TABLES.get(spacing)
    if table is None:
        table = _G_TABLES[spacing] = fixed_base_table(G, spacing)
    return table


# --- keys ----------------------------------------------------------------------------------


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x - 3 * x + B)) % P == 0


def decode_point(pub):
    """SEC1 compressed (33 bytes) or uncompressed (65 bytes) -> affine point, or None if invalid."""
    pub = bytes(pub)
    if len(pub) == 33 and pub[0] in (2, 3):
        x = int.from_bytes(pub[1:], "big")
        if x >= P:
            return None
        rhs = (x * x * x - 3 * x + B) % P
        y = pow(rhs, _SQRT_EXP, P)
        if y * y % P != rhs:
            return None
        if (y & 1) != (pub[0] & 1):
            y = P - y
        return (x, y)
    if len(pub) == 65 and pub[0] == 4:
        x = int.from_bytes(pub[1:33], "big")
        y = int.from_bytes(pub[33:], "big")
        return (x, y) if on_curve(x, y) else None
    return None


def encode_point(pt, compressed=True):
    x, y = pt
    if compressed:
        return bytes((2 + (y & 1),)) + x.to_bytes(32, "big")
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _digest_int(msg):
    # SHA-256 is 256 bits, the size of n: no truncation needed.
    return int.from_bytes(hashlib.sha256(bytes(msg)).digest(), "big")


def _split_sig(sig):
    if len(sig) != SIG_LEN:
        return None
    r = int.from_bytes(bytes(sig[:32]), "big")
    s = int.from_bytes(bytes(sig[32:]), "big")
    if not (0 < r < N and 0 < s < N):
        return None
    return r, s


def _x_matches(acc, r):
    """Is x(acc) mod n == r? Compared as X == x * Z^2 (mod p), without an inversion."""
    if acc is None:
        return False
    x, _y, z = acc
    zz = z * z % P
    if r * zz % P == x:
        return True
    # x(acc) may be in [n, p): then x mod n = x - n, so x = r + n.
    return r + N < P and (r + N) * zz % P == x


def verify_plain(pub, msg, sig):
    """The textbook ES256 verification: joint 4-bit window, no precomputed table."""
    q = decode_point(pub)
    rs = _split_sig(sig)
    if q is None or rs is None:
        return False
    r, s = rs
    w = pow(s, N - 2, N)
    e = _digest_int(msg)
    return _x_matches(_mul_shamir(G, e * w % N, q, r * w % N), r)


class Verifier:
    """`.verify(pub_sec1, msg, sig_rs) -> bool`, the interface every signature backend has.

    `prepare_key(pub)` builds a fixed-base table for a key that will verify many signatures
    (the trust store calls it for every trusted issuer key). Other keys are decoded once and
    kept in a small cache (riders show the same credential many times).
    """

    def __init__(self, cache_size=256, spacing=SPACING):
        """spacing: the comb spacing of every table this verifier builds (1, 2, 4 or 8)."""
        if spacing not in (1, 2, 4, 8):
            raise ValueError("comb spacing must be 1, 2, 4 or 8")
        self._tables = {}  # pub bytes -> fixed-base table
        self._points = {}  # pub bytes -> affine point or None
        self._cache_size = cache_size
        self.spacing = spacing

    def prepare_key(self, pub):
        pub = bytes(pub)
        if pub in self._tables:
            return True
        q = decode_point(pub)
        if q is None:
            return False
        self._tables[pub] = fixed_base_table(q, self.spacing)
        return True

    def table_bytes(self) -> int:
        """Bytes the fixed-base tables of this verifier's keys and the generator hold."""
        return table_bytes(g_table(self.spacing)) + sum(
            table_bytes(t) for t in self._tables.values()
        )

    def forget_keys(self, keep=()):
        """Drop the tables of keys no longer trusted (all but `keep`)."""
        keep = set(bytes(k) for k in keep)
        for pub in list(self._tables):
            if pub not in keep:
                del self._tables[pub]

    def _point(self, pub):
        q = self._points.get(pub, 0)
        if q == 0:
            q = decode_point(pub)
            if len(self._points) >= self._cache_size:
                self._points.clear()
            self._points[pub] = q
        return q

    def verify(self, pub, msg, sig):
        rs = _split_sig(sig)
        if rs is None:
            return False
        pub = bytes(pub)
        r, s = rs
        w = pow(s, N - 2, N)
        u1 = _digest_int(msg) * w % N
        u2 = r * w % N
        g = (g_table(self.spacing), u1)
        table = self._tables.get(pub)
        if table is not None:
            return _x_matches(_mul([g, (table, u2)]), r)
        q = self._point(pub)
        if q is None:
            return False
        return _x_matches(_mul([g], (q, u2)), r)


# --- signing -------------------------------------------------------------------------------


def _hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def rfc6979_nonces(d, h1):
    """Yield the RFC 6979 (section 3.2) candidates for k, for secret d and message hash h1."""
    x = d.to_bytes(32, "big")
    h = (int.from_bytes(h1, "big") % N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = _hmac_sha256(k, v + b"\x00" + x + h)
    v = _hmac_sha256(k, v)
    k = _hmac_sha256(k, v + b"\x01" + x + h)
    v = _hmac_sha256(k, v)
    while True:
        v = _hmac_sha256(k, v)
        cand = int.from_bytes(v, "big")
        if 0 < cand < N:
            yield cand
        k = _hmac_sha256(k, v + b"\x00")
        v = _hmac_sha256(k, v)


class Signer:
    """A P-256 private key: `.sign(msg) -> r||s` (RFC 6979 k) and `.public_key` (SEC1, 33 B)."""

    def __init__(self, secret):
        d = int.from_bytes(bytes(secret), "big") if not isinstance(secret, int) else secret
        if not 0 < d < N:
            raise ValueError("P-256 secret out of range")
        self._d = d
        self.public_point = _affine(_mul_fixed(g_table(), d))
        self.public_key = encode_point(self.public_point)

    def secret_bytes(self):
        return self._d.to_bytes(32, "big")

    def sign(self, msg):
        h1 = hashlib.sha256(bytes(msg)).digest()
        e = int.from_bytes(h1, "big")
        for k in rfc6979_nonces(self._d, h1):
            r = _affine(_mul_fixed(g_table(), k))[0] % N
            if r == 0:
                continue
            s = pow(k, N - 2, N) * (e + r * self._d) % N
            if s != 0:
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ValueError("unreachable")  # the nonce generator never ends


def generate(randbytes):
    """A new Signer from a randomness source `randbytes(n) -> bytes` (e.g. os.urandom)."""
    while True:
        d = int.from_bytes(randbytes(32), "big")
        if 0 < d < N:
            return Signer(d)


def _affine(pt):
    return _to_affine_all([pt])[0]


def verifier():
    """The platform switch's factory: a Verifier for this backend."""
    return Verifier()


def signer(secret):
    """The platform switch's factory: a Signer for a 32-byte secret."""
    return Signer(secret)
