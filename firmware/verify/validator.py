"""The verification pipeline: ride-code text in, a Decision out. Never raises on bad input.

Checks run in the order of docs/ridecode.md ("Verification order"); the first failure names
the reason (protocol/reasons.py):

    parse            malformed, bad_prefix, bad_length, bad_base45, bad_version, unknown_alg
    trust list       trust_list_missing, trust_list_stale (stale policy "refuse", or grace over)
    issuer key       unknown_issuer, issuer_alg_mismatch, issuer_key_not_yet_valid,
                     issuer_key_expired, credential_outlives_key, issuer_out_of_scope
    issuer sig       bad_issuer_signature
    credential       credential_not_yet_valid, credential_expired, out_of_scope (gate scope)
    rider sig        bad_rider_signature
    presentation     presentation_future (beyond skew), presentation_stale (beyond window)
    replay           replayed
    deny list        deny_list_damaged (deny.base failed its check: fail closed), denied
                     (not when `leaving`: an exit lets it out), deny_list_stale (past its
                     valid_until, stale_deny policy "refuse")
    risk class       first_ride_refused (risk.no_first_ride: a credential too new to ride offline)
    gate clock       clock_untrusted (clock policy "refuse")

An accepted Decision carries the offline limit that applies (the credential's, capped by its
risk_class (risk.class_offline_limits), lowered while the trust list or the deny list is stale
under policy "limit" or the clock is untrusted under policy "limit") and `flags` naming those
conditions. Mode policy (entry/exit, anti-passback, offline limits)
is the gate mode's job, after this.

Credentials whose issuer signature verified are cached by their exact text (base45 here is
canonical, so equal text is equal bytes): a phone shows the same credential many times, and a
cached one costs one signature check instead of two. The cache empties when the trust list
changes.
"""

from firmware import settings
from firmware.verify.denystore import DenyStore
from firmware.verify.replay import ReplayCache, presentation_key
from firmware.verify.truststore import TrustStore
from protocol import base45, ridecode
from protocol.errors import FormatError
from protocol.trustlist import IssuerKey  # noqa: F401 (re-exported: callers build trust dicts)

STALE_REFUSE = "refuse"  # stale trust list: refuse every code
STALE_GRACE = "grace"  # accept as usual for stale_grace_s, then refuse
STALE_LIMIT = "limit"  # accept for stale_grace_s with the offline limit lowered, then refuse
CLOCK_REFUSE = "refuse"  # untrusted clock: refuse every code
CLOCK_LIMIT = "limit"  # untrusted clock: accept with the offline limit lowered

DENY_ACCEPT = "accept"  # stale deny list: accept as usual (flagged)
DENY_LIMIT = "limit"  # stale deny list: accept with the offline limit lowered (flagged)
DENY_REFUSE = "refuse"  # stale deny list: refuse every code

FLAG_TRUST_STALE = "trust_stale"
FLAG_DENY_STALE = "deny_stale"
FLAG_CLOCK_UNTRUSTED = "clock_untrusted"


def _replay_key(cred) -> int:
    """Each issuer's credentials in their own scope of the replay cache."""
    return presentation_key(cred.issuer_key_id, cred.credential_id())


class Decision:
    __slots__ = ("accept", "reason", "code", "offline_limit", "flags")

    def __init__(self, accept: bool, reason: str, code=None, offline_limit=None, flags=()):
        self.accept = accept
        self.reason = reason
        self.code = code
        self.offline_limit = offline_limit  # for an accept: the limit the mode policy applies
        self.flags = flags  # names of degraded conditions an accept was made under

    def __repr__(self):
        return "Decision(%s, %s)" % (self.accept, self.reason)


class ValidatorConfig:
    """Every tunable of the pipeline, in one place: keyword -> setting (firmware/settings.py,
    which holds their bounds and defaults). The keywords are validator.json's keys; a gate's
    config sets them under the settings' names (`settings.build(ValidatorConfig, cfg)`)."""

    SETTINGS = (
        ("gate_scope", "scope"),  # the scope bit(s) this gate serves
        ("window_s", "validation.window_s"),  # how old a presentation may be
        ("skew_s", "validation.skew_s"),  # how far ahead of the gate's clock it may be
        ("stale_policy", "validation.stale_trust"),
        ("stale_grace_s", "validation.stale_grace_s"),
        ("stale_offline_limit", "validation.stale_offline_limit"),
        ("clock_policy", "validation.clock_policy"),
        ("clock_offline_limit", "validation.clock_offline_limit"),
        ("cache_size", "validation.cache_size"),
        ("stale_deny_policy", "validation.stale_deny"),
        ("stale_deny_offline_limit", "validation.stale_deny_offline_limit"),
        ("class_offline_limits", "risk.class_offline_limits"),
        ("no_first_ride", "risk.no_first_ride"),
        ("first_ride_s", "risk.first_ride_s"),
    )
    FIELDS = tuple(k for k, _ in SETTINGS)
    gate_scope: int
    window_s: int
    skew_s: int
    stale_policy: str
    stale_grace_s: int
    stale_offline_limit: int
    clock_policy: str
    clock_offline_limit: int
    cache_size: int
    stale_deny_policy: str
    stale_deny_offline_limit: int
    class_offline_limits: list
    no_first_ride: list
    first_ride_s: int

    def __init__(self, **values):
        """Keywords of SETTINGS; a missing one takes the schema's default; SettingError if
        one is unknown or out of its bounds."""
        settings.assign(self, self.SETTINGS, values)

    @classmethod
    def from_dict(cls, d: dict):
        """From validator.json; unknown keys are an error, so typos do not pass silently."""
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.FIELDS}


class Validator:
    def __init__(
        self,
        verifier,
        trust,
        deny=None,
        config=None,
        replay=None,
        clock=None,
    ):
        """
        verifier  .verify(pub_sec1, msg, sig_rs) -> bool (firmware.platform.crypto().verifier())
        trust     a TrustStore, or a dict key_id -> IssuerKey (an unsigned store, never stale)
        deny      a DenyStore (default: empty)
        replay    a ReplayCache (default: in memory)
        clock     the gate's clock if it can be untrusted (TimeAnchor: .untrusted, .mark_good)

        Rejects are not recorded here: the gate journals them (firmware/gate/gate.py).
        """
        self.verifier = verifier
        self.config = config or ValidatorConfig()
        if isinstance(trust, dict):
            trust = TrustStore.unsigned(trust, verifier)
        self.trust = trust
        self.deny = deny if deny is not None else DenyStore()
        if replay is None:
            replay = ReplayCache(None, self.config.window_s + self.config.skew_s)
        self.replay = replay
        self.clock = clock
        self._cache: dict = {}  # credential text -> Credential whose issuer signature verified
        self._cache_epoch = -1
        self._last_now = 0
        self._commits = 0

    def _trust_state(self, now):
        """-> (reject reason or None, trust_stale flag, lower the offline limit?)"""
        trust = self.trust
        if trust.missing:
            return "trust_list_missing", False, False
        if not trust.stale(now):
            return None, False, False
        cfg = self.config
        if cfg.stale_policy == STALE_REFUSE or now >= trust.list.valid_until + cfg.stale_grace_s:
            return "trust_list_stale", True, False
        return None, True, cfg.stale_policy == STALE_LIMIT

    def check(self, text, now: int, leaving: bool = False) -> Decision:
        self._last_now = now
        trust = self.trust
        if trust.epoch != self._cache_epoch:
            self._cache.clear()
            self._cache_epoch = trust.epoch
        try:
            cred_text, pres_text = ridecode.split_text(text)
            verified = self._cache.get(cred_text)  # its issuer signature already checked
            cred = verified or ridecode.parse_credential(base45.decode(cred_text))
            code = ridecode.parse_presentation(cred, base45.decode(pres_text))
        except FormatError as e:
            return Decision(False, e.reason)
        refuse, stale, stale_limit = self._trust_state(now)
        if refuse:
            return Decision(False, refuse, code)
        key = trust.get(cred.issuer_key_id)
        if key is None:
            return Decision(False, "unknown_issuer", code)
        if key.alg != cred.alg:
            return Decision(False, "issuer_alg_mismatch", code)
        if now < key.valid_from:
            return Decision(False, "issuer_key_not_yet_valid", code)
        if now >= key.valid_until:
            return Decision(False, "issuer_key_expired", code)
        if cred.valid_from < key.valid_from or cred.valid_until > key.valid_until:
            return Decision(False, "credential_outlives_key", code)
        if cred.scope & ~key.scope:
            return Decision(False, "issuer_out_of_scope", code)
        verifier = self.verifier
        if verified is None:
            if not verifier.verify(key.pub, code.issuer_signed_bytes(), cred.issuer_sig):
                return Decision(False, "bad_issuer_signature", code)
            size = self.config.cache_size
            if size:
                cache = self._cache
                if len(cache) >= size:
                    cache.clear()
                cache[cred_text] = cred
        if now < cred.valid_from:
            return Decision(False, "credential_not_yet_valid", code)
        if now >= cred.valid_until:
            return Decision(False, "credential_expired", code)
        cfg = self.config
        if not cred.scope & cfg.gate_scope:
            return Decision(False, "out_of_scope", code)
        if not verifier.verify(cred.rider_pub, code.rider_signed_bytes(), code.rider_sig):
            return Decision(False, "bad_rider_signature", code)
        if code.time > now + cfg.skew_s:
            return Decision(False, "presentation_future", code)
        if code.time + cfg.window_s < now:
            return Decision(False, "presentation_stale", code)
        if self.replay.is_replay(_replay_key(cred), code.counter, code.time):
            return Decision(False, "replayed", code)
        if getattr(self.deny, "damaged", False):
            return Decision(False, "deny_list_damaged", code)
        if not leaving and self.deny.is_denied(cred.issuer_key_id, cred.account_id, cred.cred_no):
            return Decision(False, "denied", code)
        deny_stale = self._deny_stale(now)
        if deny_stale and cfg.stale_deny_policy == DENY_REFUSE:
            return Decision(False, "deny_list_stale", code)
        risk = cred.risk_class
        if cfg.no_first_ride and risk in cfg.no_first_ride:
            if now < cred.valid_from + cfg.first_ride_s:
                return Decision(False, "first_ride_refused", code)
        limit = cred.offline_limit
        caps = cfg.class_offline_limits
        if caps and risk < len(caps) and caps[risk] < limit:
            limit = caps[risk]
        flags = ()
        if stale:
            flags = (FLAG_TRUST_STALE,)
            if stale_limit and cfg.stale_offline_limit < limit:
                limit = cfg.stale_offline_limit
        if deny_stale:
            flags = flags + (FLAG_DENY_STALE,)
            if cfg.stale_deny_policy == DENY_LIMIT and cfg.stale_deny_offline_limit < limit:
                limit = cfg.stale_deny_offline_limit
        if self.clock is not None and getattr(self.clock, "untrusted", False):
            if cfg.clock_policy == CLOCK_REFUSE:
                return Decision(False, "clock_untrusted", code)
            flags = flags + (FLAG_CLOCK_UNTRUSTED,)
            if cfg.clock_offline_limit < limit:
                limit = cfg.clock_offline_limit
        return Decision(True, "accepted", code, limit, flags)

    def _deny_stale(self, now: int) -> bool:
        stale = getattr(self.deny, "stale", None)
        return stale is not None and stale(now)

    def committed(self, code, now=None) -> None:
        """Call once the passage for `code` is durably journaled: later showings are replays.

        Persists the replay entry and, if the clock is a TimeAnchor, the anchor's good time.
        """
        if now is None:
            now = self._last_now
        self.replay.commit(_replay_key(code.credential), code.counter, code.time, now)
        mark_good = getattr(self.clock, "mark_good", None)
        if mark_good is not None:
            mark_good()
        self._commits += 1
        if self._commits % 64 == 0:
            self.replay.prune(now)

    def notice(self, now: int) -> str:
        """A line for the gate's idle display when it works degraded, else ""."""
        refuse, stale, _ = self._trust_state(now)
        if refuse == "trust_list_missing":
            return "No trust list - see staff"
        if refuse:
            return "Trust list expired - see staff"
        if getattr(self.deny, "damaged", False):
            return "Deny list damaged - see staff"
        if self._deny_stale(now) and self.config.stale_deny_policy == DENY_REFUSE:
            return "Deny list expired - see staff"
        if self.clock is not None and getattr(self.clock, "untrusted", False):
            return "Clock not trusted - limited service"
        if stale:
            return "Trust list out of date - limited service"
        if self._deny_stale(now):
            return "Deny list out of date - limited service"
        return ""

    def status(self, now: int) -> dict:
        """What the sync client reports and the service console shows."""
        refuse, stale, limited = self._trust_state(now)
        trust = self.trust.status(now)
        trust["policy"] = self.config.stale_policy
        trust["state"] = refuse or ("stale_limited" if limited else "stale" if stale else "fresh")
        clock_status = getattr(self.clock, "status", None)
        clock = clock_status() if clock_status is not None else {"untrusted": False}
        clock["policy"] = self.config.clock_policy
        deny = self.deny.status()
        deny["policy"] = self.config.stale_deny_policy
        deny["state"] = "stale" if self._deny_stale(now) else "fresh"
        return {
            "trust": trust,
            "deny": deny,
            "replay": self.replay.status(),
            "clock": clock,
            "cached_credentials": len(self._cache),
            "notice": self.notice(now),
        }
