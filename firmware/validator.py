"""The verification pipeline: ride-code text in, a Decision out. Never raises on bad input.

Checks run in the order of docs/ridecode.md; the first failure names the reason:
parse -> issuer key known and in scope -> issuer signature -> credential validity ->
rider signature -> presentation time window -> replay -> deny list.
Mode policy (entry/exit state, anti-passback, offline limits) is the gate mode's job, after this.
"""

from protocol import ridecode
from protocol.errors import FormatError


class Decision:
    __slots__ = ("accept", "reason", "code")

    def __init__(self, accept: bool, reason: str, code=None):
        self.accept = accept
        self.reason = reason
        self.code = code

    def __repr__(self):
        return "Decision(%s, %s)" % (self.accept, self.reason)


class IssuerKey:
    __slots__ = ("key_id", "pub", "scope", "valid_from", "valid_until")

    def __init__(
        self,
        key_id: int,
        pub: bytes,
        scope: int = 0xFFFF,
        valid_from: int = 0,
        valid_until: int = 0xFFFFFFFF,
    ):
        self.key_id = key_id
        self.pub = pub
        self.scope = scope
        self.valid_from = valid_from
        self.valid_until = valid_until


class ValidatorConfig:
    def __init__(self, gate_scope: int = 1, window_s: int = 60, skew_s: int = 10):
        self.gate_scope = gate_scope  # the scope bit(s) this gate serves
        self.window_s = window_s  # how old a presentation may be
        self.skew_s = skew_s  # how far ahead of the gate's clock a presentation may be


class Validator:
    def __init__(self, verifier, trust: dict, deny=None, config=None):
        self.verifier = verifier  # .verify(pub_sec1, message, sig_rs) -> bool
        self.trust = trust  # key_id -> IssuerKey
        self.deny = deny if deny is not None else set()
        self.config = config or ValidatorConfig()
        self.last_counter: dict = {}  # (account_id, cred_no) -> newest accepted counter

    def check(self, text, now: int) -> Decision:
        try:
            code = ridecode.parse_text(text)
        except FormatError as e:
            return Decision(False, e.reason)
        cred = code.credential
        key = self.trust.get(cred.issuer_key_id)
        if key is None:
            return Decision(False, "unknown_issuer", code)
        if not key.valid_from <= cred.valid_from < key.valid_until:
            return Decision(False, "issuer_key_expired", code)
        if cred.scope & ~key.scope:
            return Decision(False, "issuer_out_of_scope", code)
        if not self.verifier.verify(key.pub, code.issuer_signed_bytes(), cred.issuer_sig):
            return Decision(False, "bad_issuer_signature", code)
        if now < cred.valid_from:
            return Decision(False, "credential_not_yet_valid", code)
        if now >= cred.valid_until:
            return Decision(False, "credential_expired", code)
        if not cred.scope & self.config.gate_scope:
            return Decision(False, "out_of_scope", code)
        if not self.verifier.verify(cred.rider_pub, code.rider_signed_bytes(), code.rider_sig):
            return Decision(False, "bad_rider_signature", code)
        if code.time > now + self.config.skew_s:
            return Decision(False, "presentation_future", code)
        if code.time + self.config.window_s < now:
            return Decision(False, "presentation_stale", code)
        last = self.last_counter.get(cred.credential_id())
        if last is not None and code.counter <= last:
            return Decision(False, "replayed", code)
        if cred.account_id in self.deny or cred.credential_id() in self.deny:
            return Decision(False, "denied", code)
        return Decision(True, "accepted", code)

    def committed(self, code) -> None:
        """Call once the passage for `code` is durably journaled: later showings are replays."""
        self.last_counter[code.credential.credential_id()] = code.counter
