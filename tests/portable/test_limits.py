from firmware.settings import SettingError
from firmware.storage.journal import Journal
from firmware.verify.limits import CHUNK, FLAG, LimitsConfig, OfflineLimits
from protocol import records
from tests.portable.harness import mkdtemp, raises, rmtree

NOW = 1767254400


def _passage(account, value=100, t=NOW, kind=records.KIND_PASSAGE):
    return records.Record(kind, 0, 0, 0, t, account_id=account, value=value)


def _limits(d, **cfg):
    j = Journal(d, device_id=7)
    lim = OfflineLimits(LimitsConfig(**cfg))
    lim.load(j)
    j.listeners.append(lim)
    return j, lim


def test_count_bound_refuses_until_synced():
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_unsynced=3)
        for a in range(3):
            assert lim.check(a, 100, NOW) is None
            j.append(_passage(a))
        j.append(_passage(9, kind=records.KIND_REJECT))  # rejects don't count
        assert lim.check(4, 100, NOW) == "offline_limit"
        assert lim.bound_reached(4, 100, NOW) == "count"
        j.ack(1)
        assert lim.check(4, 100, NOW) is None and lim.unsynced() == 2
        j.close()
    finally:
        rmtree(d)


def test_age_bound_uses_the_oldest_unsynced_passage():
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_age_s=3600)
        j.append(_passage(1, t=NOW))
        j.append(_passage(2, t=NOW + 3000))
        assert lim.check(3, 0, NOW + 3600) is None
        assert lim.check(3, 0, NOW + 3601) == "offline_limit"
        j.ack(1)
        assert lim.check(3, 0, NOW + 3601) is None and lim.oldest_time() == NOW + 3000
        j.close()
    finally:
        rmtree(d)


def test_value_bound_is_per_account():
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_value_per_account=500)
        j.append(_passage(1, 300))
        j.append(_passage(2, 300))
        assert lim.check(1, 200, NOW) is None
        assert lim.check(1, 201, NOW) == "offline_limit"
        assert lim.bound_reached(1, 201, NOW) == "value"
        assert lim.check(2, 200, NOW) is None
        j.ack(2)
        assert lim.unsynced_value(1) == 0 and lim.check(1, 500, NOW) is None
        j.close()
    finally:
        rmtree(d)


def test_flag_policy_accepts_and_flags():
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_unsynced=1, policy=FLAG)
        j.append(_passage(1))
        assert lim.check(2, 100, NOW) is None
        assert lim.flags(2, 100, NOW) == records.FLAG_OVER_LIMIT
        assert lim.flags(2, 100, NOW - 10**6) == records.FLAG_OVER_LIMIT
        j.ack(1)
        assert lim.flags(2, 100, NOW) == 0
        j.close()
    finally:
        rmtree(d)


def test_tally_survives_a_reboot():
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_value_per_account=1000)
        for _ in range(5):
            j.append(_passage(1, 150))
        j.append(_passage(2, 50, kind=records.KIND_REJECT))
        j.ack(2)
        j.close()
        j, lim = _limits(d, max_value_per_account=1000)
        assert lim.unsynced() == 3 and lim.unsynced_value(1) == 450
        assert lim.status(NOW + 10)["oldest_age_s"] == 10
        j.close()
    finally:
        rmtree(d)


def test_the_queue_across_its_chunks_matches_a_plain_list():
    # OfflineLimits keeps passages in chunks of CHUNK array entries (the value columns only where
    # a passage has a value); acks that stop mid-chunk, drain a chunk, or empty the queue must
    # leave the same count, oldest time and per-account values as a list of the passages.
    d = mkdtemp()
    try:
        j, lim = _limits(d, max_unsynced=10 * CHUNK, max_value_per_account=10**6)
        model = []  # (seq, time, account, value) of unsynced passages
        n = 0

        def check():
            assert lim.unsynced() == len(model)
            assert lim.oldest_time() == (model[0][1] if model else None)
            for a in range(4):
                assert lim.unsynced_value(a) == sum(v for _s, _t, acc, v in model if acc == a)
            assert lim.status(NOW)["accounts_with_value"] == len({p[2] for p in model if p[3]})

        # a first stretch with no values (no value columns), then values from the middle of a chunk
        for burst, ack_back, valued in (
            (CHUNK + 7, 3, False),
            (2 * CHUNK + 1, CHUNK, True),
            (5, 0, True),
            (CHUNK - 5, None, False),
            (1, 0, True),
        ):
            for _ in range(burst):
                n += 1
                value = (n % 7) * 10 if valued else 0
                account = n % 4
                if n % 5 == 0:
                    j.append(_passage(account, value, kind=records.KIND_REJECT))
                    continue
                rec = j.append(_passage(account, value, t=NOW + n))
                model.append((rec.seq, NOW + n, account, value))
            check()
            upto = j.last_seq if ack_back is None else j.last_seq - ack_back
            j.ack(upto)
            model = [p for p in model if p[0] > upto]
            check()
        j.close()
        j, lim = _limits(d, max_unsynced=10 * CHUNK, max_value_per_account=10**6)
        check()  # and the same after a reboot, rebuilt from the journal
        j.ack(j.last_seq)
        model = []
        check()
        j.close()
    finally:
        rmtree(d)


def test_bad_config_is_refused():
    raises(SettingError, LimitsConfig, max_unsynced=-1)
    raises(SettingError, LimitsConfig, policy="open")
    raises(SettingError, LimitsConfig.from_dict, {"max_unsyncd": 3})
    assert LimitsConfig.from_dict({"policy": "flag"}).policy == "flag"
