"""The gate's trust store: the installed trust list, checked against the operator root keys.

`install(blob)` takes a signed trust list as bytes (from provisioning or sync), checks it (strict
parse, known root key, root signature, no downgrade) and only then replaces the current one,
atomically on disk: a power cut leaves the old list or the new one. Every trusted issuer key is
handed to the verifier's `prepare_key` (the pure-Python backend builds its fixed-base table).

Staleness: past the list's `valid_until` the validator applies its configured stale policy
(firmware/verify/validator.py); `status(now)` reports it to the display, the service console and the
back office.
"""

from firmware.storage.fs import DISK
from protocol import certs, trustlist
from protocol.errors import FormatError


class ListError(FormatError):
    """A trust or deny list was refused; `reason` says why (protocol/reasons.py, "lists")."""

    reason = "list_malformed"


def check_root_signature(roots, verifier, parsed, what):
    """Raise ListError unless `parsed` (a parsed list) is signed by one of the operator roots."""
    root = roots.get(parsed.root_key_id)
    if root is None:
        raise ListError(
            "%s signed by unknown root key %d" % (what, parsed.root_key_id), "list_unknown_root"
        )
    if verifier is None or not verifier.verify(root, parsed.signed_bytes(), parsed.signature()):
        raise ListError("%s: root signature does not verify" % what, "list_bad_signature")


class ListKeys:
    """Who signs deny and plate lists: the lists role of the root metadata the gate holds (its
    keys and threshold), or on a gate without root metadata the anchor alone (threshold 1).
    `roles` maps the key ids of the other roles to their names, so a list signed by, say,
    the sync key is refused as list_wrong_role rather than list_unknown_key."""

    def __init__(self, keys, threshold=1, roles=None):
        self.keys = {}
        for k in keys:
            self.keys[certs.key_id(k)] = bytes(k)
        self.threshold = threshold
        self.roles = dict(roles or {})

    @classmethod
    def of(cls, roots):
        """ListKeys from ListKeys, or from a {root_key_id: key} dict (threshold 1)."""
        if isinstance(roots, ListKeys):
            return roots
        return cls(list((roots or {}).values()))

    def check(self, verifier, body, sigs, what) -> None:
        """Raise ListError unless `threshold` of the lists keys signed `body`: list_wrong_role
        (a key of another role signed), list_unknown_key (a key the gate does not hold, e.g. one
        the root rotated out), list_bad_signature, list_below_threshold."""
        good = []
        e = None  # (reason, text) of the first signature that does not count
        for kid, sig in sigs:
            pub = self.keys.get(kid)
            if pub is None:
                name = self.roles.get(kid)
                if e is None and name is not None:
                    e = ("list_wrong_role", "signed by the %s role's key %08x" % (name, kid))
                elif e is None:
                    e = ("list_unknown_key", "signed by key %08x, not a lists key" % kid)
            elif verifier is not None and verifier.verify(pub, body, sig):
                good.append(kid)  # (sigtail.split refuses a key id twice)
            elif e is None:
                e = ("list_bad_signature", "the signature of key %08x does not verify" % kid)
        if len(good) >= self.threshold:
            return
        if e is not None:
            raise ListError("%s: %s" % (what, e[1]), e[0])
        raise ListError(
            "%s: %d valid signature(s) of the lists role, %d needed"
            % (what, len(good), self.threshold),
            "list_below_threshold",
        )


class TrustStore:
    """Issuer keys by id, from a signed trust list (or, for tests and simulators, a plain dict)."""

    def __init__(self, roots=None, verifier=None, path=None, fs=DISK):
        self.roots = dict(roots or {})  # root_key_id -> SEC1 public key of the operator root
        self.verifier = verifier
        self.path = path
        self.fs = fs  # the storage object (firmware/storage/fs.py)
        self.list = None  # the installed trustlist.TrustList
        self.keys = {}  # key_id -> IssuerKey
        self.signed = True  # False for an unsigned in-memory store (tests, simulator)
        self.epoch = 0  # bumped on every change: caches of verified credentials key on it
        self.load_error = ""
        if path:
            blob = fs.read_file(path)
            if blob is not None:
                try:
                    self._accept(self._check(blob))
                except ListError as e:
                    self.load_error = e.reason  # reported by status(); nothing is trusted

    @classmethod
    def unsigned(cls, keys, verifier=None):
        """A store holding `keys` (IssuerKey list or key_id dict) with no list: never stale."""
        store = cls(verifier=verifier)
        store.signed = False
        store.keys = dict(keys) if isinstance(keys, dict) else {k.key_id: k for k in keys}
        store._prepare()
        return store

    def _check(self, blob):
        try:
            tl = trustlist.parse(blob)
        except FormatError as e:
            raise ListError(str(e), "list_malformed") from None
        check_root_signature(self.roots, self.verifier, tl, "trust list")
        cur = self.list
        if cur is not None:
            if tl.version < cur.version or (tl.version == cur.version and tl.raw != cur.raw):
                raise ListError(
                    "trust list version %d is not newer than installed %d"
                    % (tl.version, cur.version),
                    "list_downgrade",
                )
            if tl.version == cur.version:
                return None  # the same list again: nothing to do
        return tl

    def install(self, blob) -> bool:
        """Check and install a signed trust list. True if it changed; raises ListError."""
        tl = self._check(bytes(blob))
        if tl is None:
            return False
        if self.path:
            self.fs.write_atomic(self.path, tl.raw)
        self._accept(tl)
        return True

    def _accept(self, tl):
        self.list = tl
        self.keys = tl.key_map()
        self.signed = True
        self.load_error = ""
        self._prepare()

    def _prepare(self):
        self.epoch += 1
        prepare = getattr(self.verifier, "prepare_key", None)
        forget = getattr(self.verifier, "forget_keys", None)
        usable = [k.pub for k in self.keys.values() if k.alg == trustlist.ALG_ES256]
        if forget is not None:
            forget(usable)
        if prepare is not None:
            for pub in usable:
                prepare(pub)

    def get(self, key_id):
        return self.keys.get(key_id)

    @property
    def missing(self) -> bool:
        """No usable trust list: none installed, or the stored one failed its checks."""
        return self.signed and self.list is None

    def stale(self, now: int) -> bool:
        """Past the list's valid_until (what that means is the validator's stale policy)."""
        return self.list is not None and now >= self.list.valid_until

    def status(self, now: int) -> dict:
        tl = self.list
        return {
            "installed": not self.missing,
            "signed": self.signed,
            "version": tl.version if tl else 0,
            "issued_at": tl.issued_at if tl else 0,
            "valid_until": tl.valid_until if tl else 0,
            "stale": self.stale(now),
            "keys": sorted(self.keys),
            "load_error": self.load_error,
        }
