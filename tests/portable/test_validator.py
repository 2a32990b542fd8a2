"""The verification pipeline with real ES256 (protocol/p256), on CPython and MicroPython."""

from firmware.verify.denystore import DenyStore
from firmware.verify.replay import ReplayCache
from firmware.verify.truststore import TrustStore
from firmware.verify.validator import Validator, ValidatorConfig
from protocol import base45, denylist, ridecode
from tests.portable import codes
from tests.portable.codes import NOW
from tests.portable.harness import mkdtemp, rmtree


def _validator(trust=None, deny=None, clock=None, **cfg):
    if trust is None:
        trust = {1: codes.issuer_key()}
    config = ValidatorConfig(**cfg)
    return Validator(codes.VERIFIER, trust, deny, config, clock=clock)


def _signed_trust(valid_until=NOW + 86400, keys=None):
    store = TrustStore(codes.ROOTS, codes.VERIFIER)
    store.install(codes.trust_blob(valid_until=valid_until, keys=keys))
    return store


class FlagClock:
    def __init__(self, untrusted):
        self.untrusted = untrusted
        self.marked = 0

    def mark_good(self):
        self.marked += 1


def test_valid_code_accepted():
    d = _validator().check(codes.code(), NOW)
    assert d.accept and d.reason == "accepted", d.reason
    assert d.code.credential.account_id == 42
    assert d.offline_limit == 5000 and d.flags == ()


def test_text_form_fits_qr_version_10_m():
    text = codes.code()
    assert len(text) == ridecode.TEXT_LEN == 298 <= 311  # alphanumeric capacity of 10-M
    assert text.startswith("FG1:")


def test_parse_reasons():
    v = _validator()
    good = codes.code()
    assert v.check("hello", NOW).reason == "bad_prefix"
    assert v.check(good[:-3], NOW).reason == "bad_length"
    assert v.check(good[:-3] + "###", NOW).reason == "bad_base45"
    assert v.check(good.encode(), NOW).accept  # bytes from a serial engine work too
    assert v.check(None, NOW).reason == "malformed"
    raw = bytearray(ridecode.parse_text(good).raw)
    raw[0] = 2
    assert v.check(ridecode.encode_bytes(raw), NOW).reason == "bad_version"
    raw[0], raw[1] = 1, 7
    assert v.check(ridecode.encode_bytes(raw), NOW).reason == "unknown_alg"


def test_trust_reasons_in_order():
    v = _validator()
    assert v.check(codes.code(codes.credential(key_id=9)), NOW).reason == "unknown_issuer"
    wide = codes.credential(scope=0x100)
    assert v.check(codes.code(wide), NOW).reason == "issuer_out_of_scope"
    forged = codes.credential(issuer=codes.FORGER)
    assert v.check(codes.code(forged), NOW).reason == "bad_issuer_signature"


def test_issuer_key_validity_and_rotation_overlap():
    old = codes.issuer_key(1, codes.ISSUER, valid_from=NOW - 30 * 86400, valid_until=NOW + 3600)
    new = codes.issuer_key(2, codes.ISSUER2, valid_from=NOW - 3600, valid_until=NOW + 90 * 86400)
    v = _validator(_signed_trust(keys=[old, new]))
    by_old = codes.credential(key_id=1, valid_until=NOW + 3000)
    by_new = codes.credential(key_id=2, issuer=codes.ISSUER2, account_id=43)
    assert v.check(codes.code(by_old), NOW).accept  # both keys work during the overlap
    assert v.check(codes.code(by_new, counter=2), NOW).accept
    assert v.check(codes.code(by_old, counter=3), NOW + 3600).reason == "issuer_key_expired"
    late = codes.credential(key_id=2, issuer=codes.ISSUER2, valid_from=NOW - 7200)
    assert v.check(codes.code(late), NOW).reason == "credential_outlives_key"
    longer = codes.credential(key_id=1, valid_until=NOW + 7200)
    assert v.check(codes.code(longer), NOW).reason == "credential_outlives_key"
    future = codes.issuer_key(3, codes.ISSUER2, valid_from=NOW + 60)
    v2 = _validator({3: future})
    c3 = codes.credential(key_id=3, issuer=codes.ISSUER2, valid_from=NOW + 60)
    assert v2.check(codes.code(c3), NOW).reason == "issuer_key_not_yet_valid"


def test_credential_and_presentation_reasons():
    v = _validator()
    assert v.check(codes.code(), NOW - 7200).reason == "credential_not_yet_valid"
    assert v.check(codes.code(), NOW + 86400).reason == "credential_expired"
    assert v.check(codes.code(codes.credential(scope=2)), NOW).reason == "out_of_scope"
    assert v.check(codes.code(rider=codes.RIDER2), NOW).reason == "bad_rider_signature"
    assert v.check(codes.code(time=NOW + 11), NOW).reason == "presentation_future"
    assert v.check(codes.code(time=NOW + 10), NOW).accept  # skew is inclusive
    assert v.check(codes.code(time=NOW - 61), NOW).reason == "presentation_stale"
    assert v.check(codes.code(time=NOW - 60), NOW).accept


def test_swapped_presentation_fails_rider_signature():
    v = _validator()
    a = ridecode.parse_text(codes.code(counter=1))
    b = ridecode.parse_text(codes.code(codes.credential(account_id=43), counter=2))
    swapped = ridecode.PREFIX + base45.encode(
        a.raw[: ridecode.CRED_LEN] + b.raw[ridecode.CRED_LEN :]
    )
    assert v.check(swapped, NOW).reason == "bad_rider_signature"


def _refill(deny, entries):
    fresh = DenyStore.from_keys(entries)
    deny.keys, deny.sections = fresh.keys, fresh.sections


def test_replay_and_deny():
    deny = DenyStore()
    v = _validator(deny=deny)
    first = v.check(codes.code(counter=5), NOW)
    assert first.accept
    v.committed(first.code)
    assert v.check(codes.code(counter=5), NOW).reason == "replayed"
    assert v.check(codes.code(counter=4), NOW).reason == "replayed"
    assert v.check(codes.code(counter=6), NOW).accept
    _refill(deny, [denylist.account_key(2, 42)])  # issuer 2's account 42: not this rider
    assert v.check(codes.code(counter=7), NOW).accept
    _refill(deny, [denylist.account_key(1, 42)])
    assert v.check(codes.code(counter=7), NOW).reason == "denied"
    _refill(deny, [denylist.credential_key(1, 42, 2)])
    assert v.check(codes.code(counter=7), NOW).accept  # another credential of the account
    _refill(deny, [denylist.credential_key(1, 42, 1)])
    assert v.check(codes.code(counter=7), NOW).reason == "denied"


def test_replay_survives_reboot():
    d = mkdtemp()
    try:
        v = Validator(codes.VERIFIER, {1: codes.issuer_key()}, replay=ReplayCache(d + "/r.log"))
        ok = v.check(codes.code(counter=9), NOW)
        v.committed(ok.code)
        v.replay.close()
        again = Validator(codes.VERIFIER, {1: codes.issuer_key()}, replay=ReplayCache(d + "/r.log"))
        assert again.check(codes.code(counter=9), NOW + 1).reason == "replayed"
        assert again.check(codes.code(counter=10), NOW + 1).accept
        again.replay.close()
    finally:
        rmtree(d)


def test_missing_and_stale_trust_list_policies():
    empty = TrustStore(codes.ROOTS, codes.VERIFIER)
    assert _validator(empty).check(codes.code(), NOW).reason == "trust_list_missing"
    stale = _signed_trust(valid_until=NOW - 10)
    refuse = _validator(stale, stale_policy="refuse")
    assert refuse.check(codes.code(), NOW).reason == "trust_list_stale"
    assert refuse.notice(NOW).startswith("Trust list expired")
    grace = _validator(stale, stale_policy="grace", stale_grace_s=3600)
    d = grace.check(codes.code(), NOW)
    assert d.accept and d.flags == ("trust_stale",) and d.offline_limit == 5000
    assert grace.status(NOW)["trust"]["state"] == "stale"
    assert grace.check(codes.code(time=NOW + 3600), NOW + 3600).reason == "trust_list_stale"
    limit = _validator(stale, stale_policy="limit", stale_offline_limit=500)
    d = limit.check(codes.code(), NOW)
    assert d.accept and d.offline_limit == 500
    assert limit.notice(NOW).startswith("Trust list out of date")
    assert limit.status(NOW)["trust"]["stale"] is True


def test_untrusted_clock_policies():
    clock = FlagClock(untrusted=True)
    d = _validator(clock=clock, clock_offline_limit=100).check(codes.code(), NOW)
    assert d.accept and d.flags == ("clock_untrusted",) and d.offline_limit == 100
    refuse = _validator(clock=clock, clock_policy="refuse")
    assert refuse.check(codes.code(), NOW).reason == "clock_untrusted"
    ok = _validator(clock=FlagClock(untrusted=False))
    d = ok.check(codes.code(), NOW)
    ok.committed(d.code)
    assert ok.clock.marked == 1  # the anchor is persisted on every passage


def test_cache_skips_issuer_signature_but_not_the_rest():
    calls = []

    class Counting:
        def verify(self, pub, msg, sig):
            calls.append(bytes(pub))
            return codes.VERIFIER.verify(pub, msg, sig)

    trust = {1: codes.issuer_key()}
    v = Validator(Counting(), trust)
    assert v.check(codes.code(counter=1), NOW).accept
    assert len(calls) == 2
    assert v.check(codes.code(counter=2), NOW).accept
    assert len(calls) == 3 and calls[-1] == codes.RIDER_PUB  # issuer check came from the cache
    # A cached credential still meets every other check.
    assert v.check(codes.code(counter=3), NOW + 86400).reason == "credential_expired"
    assert v.check(codes.code(rider=codes.RIDER2), NOW).reason == "bad_rider_signature"
    # A change of trust empties the cache.
    v.trust._prepare()
    assert v.check(codes.code(counter=4), NOW).accept
    assert calls[-2] == codes.ISSUER_PUB


def test_bad_input_never_raises():
    v = _validator()
    good = codes.code()
    for bad in ("", "FG1:", good + "A", good[:-1] + "~", b"\xff" * 298, 12, [good], good.lower()):
        d = v.check(bad, NOW)
        assert not d.accept and d.reason in ("malformed", "bad_prefix", "bad_length", "bad_base45")


def test_status_summary():
    v = _validator(_signed_trust())
    s = v.status(NOW)
    assert s["trust"]["version"] == 1 and s["trust"]["stale"] is False
    assert s["trust"]["state"] == "fresh" and s["deny"]["version"] == 0
    assert s["clock"]["untrusted"] is False and s["notice"] == ""


def test_config_from_the_provisioned_gate_config():
    from firmware.verify.gatestate import config_from_gate_config

    c = config_from_gate_config(
        {"scope": 6, "validation": {"window_s": 30, "stale_trust": "accept_flagged"}}
    )
    assert (c.gate_scope, c.window_s, c.skew_s, c.stale_policy) == (6, 30, 10, "grace")
    c = config_from_gate_config({"validation.skew_s": 3, "validation.stale_trust": "refuse"})
    assert (c.gate_scope, c.skew_s, c.stale_policy) == (1, 3, "refuse")


def _deny_until(valid_until):
    store = DenyStore(None, codes.ROOTS, codes.VERIFIER)
    store.install(codes.deny_snapshot(1, [denylist.account_key(1, 99)], valid_until=valid_until))
    return store


def test_stale_deny_list_policies():
    fresh = _validator(deny=_deny_until(NOW + 60))
    d = fresh.check(codes.code(), NOW)
    assert d.accept and d.flags == () and d.offline_limit == 5000
    assert fresh.status(NOW)["deny"]["state"] == "fresh"
    # past valid_until: "limit" (the default) accepts, flagged, with the lowered limit
    limited = _validator(deny=_deny_until(NOW - 1))
    d = limited.check(codes.code(), NOW)
    assert d.accept and d.flags == ("deny_stale",) and d.offline_limit == 0
    st = limited.status(NOW)
    assert st["deny"]["state"] == "stale" and st["deny"]["policy"] == "limit"
    assert st["deny"]["valid_until"] == NOW - 1
    assert st["notice"] == "Deny list out of date - limited service"
    accept = _validator(deny=_deny_until(NOW - 1), stale_deny_policy="accept")
    d = accept.check(codes.code(), NOW)
    assert d.accept and d.flags == ("deny_stale",) and d.offline_limit == 5000
    refuse = _validator(deny=_deny_until(NOW - 1), stale_deny_policy="refuse")
    d = refuse.check(codes.code(), NOW)
    assert not d.accept and d.reason == "deny_list_stale"
    assert refuse.status(NOW)["notice"] == "Deny list expired - see staff"
    # a denied account is still "denied", whatever the freshness
    denied = codes.credential(account_id=99)
    assert refuse.check(codes.code(denied), NOW).reason == "denied"
    # a format-1 list (no valid_until) never goes stale
    plain = DenyStore.from_keys([])
    d = _validator(deny=plain, stale_deny_policy="refuse").check(codes.code(), NOW + 10**6)
    assert d.reason != "deny_list_stale"


def test_risk_class_caps_the_offline_limit_and_refuses_a_first_ride():
    risky = codes.credential(risk_class=2, valid_from=NOW - 600)
    v = _validator(class_offline_limits=[5000, 3000, 1000])
    assert v.check(codes.code(risky), NOW).offline_limit == 1000
    other = codes.credential(risk_class=3, valid_from=NOW - 600)  # past the list: its own
    assert v.check(codes.code(other), NOW).offline_limit == 5000
    v = _validator(no_first_ride=[2], first_ride_s=3600)
    d = v.check(codes.code(risky), NOW)
    assert not d.accept and d.reason == "first_ride_refused"
    assert v.check(codes.code(other), NOW).accept  # class 3 may
    older = codes.credential(risk_class=2, valid_from=NOW - 3600)
    assert v.check(codes.code(older), NOW).accept  # issued an hour ago: no longer a first ride


def test_a_denied_credential_is_refused_on_the_way_in_and_let_out_on_the_way_out():
    """The deny list refuses service, not the end of a journey already admitted: at an exit
    the rider is let out (the journey is charged its true fare; docs/fraud.md, "Denied on
    the way out")."""
    deny = DenyStore.from_keys([denylist.credential_key(1, 99, 1)])
    owner = codes.code(codes.credential(account_id=99), time=NOW)
    v = _validator(deny=deny)
    assert v.check(owner, NOW).reason == "denied"
    d = v.check(owner, NOW, leaving=True)
    assert d.accept and d.reason == "accepted" and d.flags == ()
    assert d.offline_limit == 5000
    # an exit does not skip any other check: a stale presentation is still stale
    assert v.check(owner, NOW + 3600, leaving=True).reason == "presentation_stale"
    other = codes.code(codes.credential(account_id=98), time=NOW)
    assert v.check(other, NOW, leaving=True).flags == ()
