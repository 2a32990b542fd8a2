"""Several sync front ends of one back office (firmware/sync/failover.py): the `sync.hosts`
setting, the order they are tried in, the one remembered, when the gate backs off."""

from firmware import settings
from firmware.settings import SettingError
from firmware.sync.failover import EndpointError, Failover, endpoints, parse_hosts
from tests.portable.harness import raises


def test_hosts_parse_with_the_default_port_and_ipv6_brackets():
    got = parse_hosts("bo1.metro:7701, bo2.metro", 7700)
    assert got == [("bo1.metro", 7701), ("bo2.metro", 7700)]
    assert parse_hosts("[fd00::5]:7702,10.0.0.5", 7700) == [("fd00::5", 7702), ("10.0.0.5", 7700)]
    assert parse_hosts("[::1]", 9) == [("::1", 9)]
    for bad, why in (
        ("a,,b", "empty"),
        ("a:x", "not a number"),
        ("a:0", "between 1 and 65535"),
        ("[::1", "no closing ]"),
        ("[::1]7700", "expected :PORT"),
        ("a:7700,a:7700", "listed twice"),
        ("bad host", "not a host"),
        (",".join("h%d" % i for i in range(9)), "at most 8"),
    ):
        e = raises(EndpointError, parse_hosts, bad, 7700)
        assert why in str(e), (bad, str(e))


def test_the_setting_is_checked_like_every_other():
    assert settings.check("sync.hosts", "a:1,b:2") == "a:1,b:2"
    e = raises(SettingError, settings.check, "sync.hosts", "a:1,a:1")
    assert e.setting == "sync.hosts" and "listed twice" in str(e)
    assert raises(SettingError, settings.check, "sync.hosts", "").setting == "sync.hosts"


def test_sync_hosts_replaces_sync_host_which_alone_is_a_list_of_one():
    assert endpoints("bo", 7700, None) == [("bo", 7700)]
    assert endpoints("bo", 7700, "x:1,y") == [("x", 1), ("y", 7700)]
    assert endpoints(None, 7700, None) == []


def test_failover_tries_each_then_backs_off_and_stays_with_the_last_good_one():
    fo = Failover([("a", 1), ("b", 1), ("c", 1)])
    assert fo.current() == ("a", 1)
    assert fo.failed() is True and fo.current() == ("b", 1)  # b at once
    fo.succeeded()
    assert fo.current() == ("b", 1)  # remembered: the next session goes to b again
    assert fo.failed() is True and fo.current() == ("c", 1)
    assert fo.failed() is True and fo.current() == ("a", 1)
    assert fo.failed() is False and fo.current() == ("b", 1)  # all three failed: back off
    assert fo.failed() is True  # a new round after the back-off
    single = Failover([("a", 1)])
    assert single.failed() is False and single.current() == ("a", 1)
    assert Failover([]).current() is None and Failover([]).failed() is False


def test_a_config_change_keeps_the_front_end_in_use_if_still_listed():
    fo = Failover([("a", 1), ("b", 1)])
    fo.failed()
    fo.set_endpoints([("c", 1), ("b", 1)])
    assert fo.current() == ("b", 1)
    fo.set_endpoints([("d", 1)])
    assert fo.current() == ("d", 1)
