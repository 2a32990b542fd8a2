"""firmware/compose/app.py's Syncer with a link that takes time to open (an opener, as the Linux
gate's TCP and TLS hand out: drivers/linux/link_opener.py) and with one that is ready at once (a
UART on an MCU gate): the gate serves riders while the link opens, a link that never opens is given
up, and a ready link starts the session at once. Both interpreters."""

from firmware.compose import app
from protocol import denylist, service, trustlist
from protocol import messages as m
from tests.portable import codes
from tests.portable.device_kit import HOST_PUB, Clock, Hardware, _provision, _scan, _walk
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.sync_kit import MiniHost

NOW = codes.NOW
ROOT = codes.ROOT
RID = trustlist.root_key_id(ROOT.public_key)


class HostLink:
    """A link whose other end is MiniHost, answering at once."""

    def __init__(self, host):
        self.host = host
        self.inbox = b""
        self.closed = False

    def send(self, data):
        self.inbox += self.host.receive(data)

    def recv(self, timeout_s):
        data, self.inbox = self.inbox, b""
        return data or None

    def close(self):
        self.closed = True


class Opener:
    """An opener that is ready when the test says so."""

    def __init__(self):
        self.link = None
        self.error = None
        self.polls = 0
        self.cancelled = False

    def poll(self):
        self.polls += 1
        if self.error is not None:
            raise self.error
        return self.link

    def cancel(self):
        self.cancelled = True


def _gate(d):
    hw, clock = Hardware(), Clock()
    dev, _tech = _provision(d, hw, clock, host_key=HOST_PUB.hex())
    return dev, hw, clock


def _with(fn):
    d = mkdtemp("syncer")
    try:
        fn(d)
    finally:
        rmtree(d)


def test_riders_pass_while_the_link_opens_then_the_session_runs():
    def body(d):
        dev, hw, clock = _gate(d)
        opener, lines = Opener(), []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: opener, lines.append, ticks_ms=clock.ticks_ms
        )
        clock.ms += app.FIRST_SYNC_S * 1000
        syncer.poll()
        assert syncer.busy and not syncer.pumping and syncer.opening is opener
        for i in range(3):  # the link is still opening: the loop goes on, riders pass
            syncer.poll()
            code = codes.code(codes.credential(account_id=100 + i))
            assert _scan(dev, hw, code)["accepted"] == i + 1
            _walk(dev, hw, clock)
        assert opener.polls == 3 and hw.barrier.opened == 3 and syncer.busy
        host = MiniHost(device_pub=dev.store.signer().public_key)
        opener.link = HostLink(host)
        syncer.poll()  # ready: the session starts and sends its HELLO
        assert syncer.pumping and syncer.opening is None
        while syncer.busy:
            syncer.poll()
        assert lines[-1].startswith("sync: ") and "acknowledged" in lines[-1], lines
        assert len(host.held) == dev.journal.last_seq and dev.journal.pending_count() == 0
        dev.close()

    _with(body)


def test_a_link_that_never_opens_is_given_up_and_tried_again_later():
    def body(d):
        dev, _hw, clock = _gate(d)
        opener, lines = Opener(), []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: opener, lines.append, ticks_ms=clock.ticks_ms
        )
        clock.ms += app.FIRST_SYNC_S * 1000
        syncer.poll()
        clock.ms += app.CONNECT_LIMIT_S * 1000 - 1
        syncer.poll()
        assert syncer.busy and not opener.cancelled
        clock.ms += 1
        syncer.poll()
        assert not syncer.busy and opener.cancelled
        assert lines == [
            "sync: failed (timeout): the link to the back office did not open in %d s; "
            "again in 5 s" % app.CONNECT_LIMIT_S
        ]
        # the next try fails while opening (refused): one line, and the back-off doubles
        opener2 = Opener()
        opener2.error = OSError("connection refused")
        syncer.connect = lambda _dev, _endpoint: opener2
        clock.ms += 5000
        syncer.poll()
        syncer.poll()
        assert not syncer.busy and syncer.sessions == 2
        assert lines[-1] == (
            "sync: failed (connect): cannot reach the back office: connection refused; "
            "again in 10 s"
        )
        dev.close()

    _with(body)


def test_a_link_ready_at_once_starts_the_session_in_the_same_poll():
    def body(d):
        dev, _hw, clock = _gate(d)
        host = MiniHost(device_pub=dev.store.signer().public_key)
        link, lines = HostLink(host), []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: link, lines.append, ticks_ms=clock.ticks_ms
        )
        clock.ms += app.FIRST_SYNC_S * 1000
        syncer.poll()
        assert syncer.pumping and link.inbox  # the HELLO went out, the CHALLENGE is back
        while syncer.busy:
            syncer.poll()
        assert link.closed and lines == ["sync: 0 records acknowledged, 0 pending"]
        dev.close()

    _with(body)


def test_a_gate_entering_service_on_site_syncs_at_once_and_its_status_says_how_it_went():
    """Provisioned over the console (blank -> in service): the lifecycle's sync_now starts the
    first session at the next poll, no interval later; the console's STATUS has a sync section
    (host, last good session, last error, queue) from the Syncer."""

    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock, host="127.0.0.1", host_key=HOST_PUB.hex())
        link, lines = HostLink(MiniHost(device_pub=dev.store.signer().public_key)), []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: link, lines.append, ticks_ms=clock.ticks_ms
        )
        st = tech.ok_json(service.STATUS)["sync"]
        assert st["sessions"] == 0 and st["last_ok"] is None and st["blocked"] == ""
        assert st["host"] == "127.0.0.1:7700"  # from its config, before any session
        syncer.poll()  # no ticks went by: entering service asked for it
        assert syncer.pumping, lines
        while syncer.busy:
            syncer.poll()
        assert lines == ["sync: 0 records acknowledged, 0 pending"]
        st = tech.ok_json(service.STATUS)["sync"]
        assert st["host"] == "127.0.0.1:7700" and st["last_ok"] == dev.clock.now()
        assert st["last_error"] is None and st["pending"] == 0 and st["sessions"] == 1
        assert st["last"]["acked"] == 0 and st["next_in_s"] == 60  # sync.interval_s
        # the back office goes away: the next session's failure shows with its reason
        syncer.connect = lambda _dev, _endpoint: _raise(OSError("connection refused"))
        clock.ms += 60_000
        syncer.poll()
        st = tech.ok_json(service.STATUS)["sync"]
        assert st["last_error"]["reason"] == "connect", st
        assert "connection refused" in st["last_error"]["message"] and st["failures"] == 1
        assert st["last_ok"] is not None and st["next_in_s"] == 5
        dev.close()

    _with(body)


def test_a_refused_blob_is_reported_in_the_sessions_status():
    """A deny delta that does not follow the gate's version (published with a wrong base) is
    refused by its store; the STATUS of that session tells the back office which and why."""

    def body(d):
        dev, _hw, clock = _gate(d)
        bad = denylist.build_delta(2, 3, NOW, [denylist.account_key(1, 42)], [], ROOT)
        host = MiniHost({(m.KIND_DENY_DELTA, 2): bad}, device_pub=dev.store.signer().public_key)
        lines = []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: HostLink(host), lines.append, ticks_ms=clock.ticks_ms
        )
        syncer.poll()
        while syncer.busy:
            syncer.poll()
        assert dev.validator.deny.version == 1
        ((kind, version, reason, text),) = host.status.refused
        assert (kind, version, reason) == (m.KIND_DENY_DELTA, 2, "deny_gap"), text
        assert "does not follow" in text
        assert lines == [
            "sync: 0 records acknowledged, 0 pending; refused deny_delta v2 (deny_gap)"
        ]
        assert syncer.state()["last"]["refused"] == [["deny_delta", 2, "deny_gap"]]
        dev.close()

    _with(body)


def _raise(e):
    raise e


def test_a_failed_front_end_is_left_for_the_next_at_once_and_the_good_one_is_kept():
    """sync.hosts names two front ends: the first refuses the connection, the Syncer tries the
    second in the same turn of the loop (no back-off), syncs there and stays there; when both
    fail in a row it backs off."""

    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock, hosts="bo1:7700,bo2:7701", host_key=HOST_PUB.hex())
        host = MiniHost(device_pub=dev.store.signer().public_key)
        tried, lines = [], []

        def connect(_dev, endpoint):
            tried.append(endpoint)
            if endpoint == ("bo1", 7700):
                raise OSError("connection refused")
            return HostLink(host)

        syncer = app.Syncer(dev, connect, lines.append, ticks_ms=clock.ticks_ms)
        assert tech.ok_json(service.STATUS)["sync"]["host"] == "bo1:7700"
        syncer.poll()  # entering service: sync now; bo1 refuses
        assert tried == [("bo1", 7700)] and not syncer.busy
        assert lines == [
            "sync: failed (connect) at bo1:7700: cannot reach the back office: connection "
            "refused; trying bo2:7701 now"
        ]
        syncer.poll()  # no time went by: bo2 at once
        assert tried[-1] == ("bo2", 7701) and syncer.pumping
        while syncer.busy:
            syncer.poll()
        assert lines[-1] == "sync: 0 records acknowledged, 0 pending"
        clock.ms += 60_000
        syncer.poll()
        assert tried[-1] == ("bo2", 7701)  # the last good one, not the first of the list
        while syncer.busy:
            syncer.poll()
        syncer.connect = lambda _dev, endpoint: _raise(OSError("down: %s" % (endpoint,)))
        clock.ms += 60_000
        syncer.poll()  # bo2 fails: bo1 now
        assert "trying bo1:7700 now" in lines[-1], lines
        syncer.poll()  # bo1 fails too: every one failed in a row, back off (status: where the
        # last session went; the next round begins with bo2)
        assert lines[-1].endswith("again in 10 s"), lines
        st = tech.ok_json(service.STATUS)["sync"]
        assert (st["host"], st["next_in_s"], st["failures"]) == ("bo1:7700", 10, 2), st
        dev.close()

    _with(body)


def test_a_blob_that_cannot_be_stored_on_a_full_disk_ends_nothing_and_comes_again():
    """A deny delta arriving while the gate's disk is full cannot be written: the session goes
    on without it (no exception escapes the sync), the old list stays, and the next session
    (disk free again) installs it."""
    from tests.portable.test_storage_faults import FaultyStorage

    def body(d):
        hw, clock = Hardware(), Clock()
        hw.disk = FaultyStorage()
        dev, _tech = _provision(d, hw, clock, host_key=HOST_PUB.hex())
        delta = denylist.build_delta(1, 2, NOW, [denylist.account_key(1, 42)], [], ROOT)
        host = MiniHost({(m.KIND_DENY_DELTA, 2): delta}, device_pub=dev.store.signer().public_key)
        lines = []
        syncer = app.Syncer(
            dev, lambda _dev, _endpoint: HostLink(host), lines.append, ticks_ms=clock.ticks_ms
        )
        hw.disk.full = True
        syncer.poll()
        while syncer.busy:
            syncer.poll()
        assert hw.disk.refused and dev.validator.deny.version == 1
        st = syncer.state()
        assert st["last_error"] is None and st["last_ok"] is not None, st
        assert syncer.sessions == 1
        hw.disk.full = False
        syncer.due = clock.ticks_ms()  # the next session, now
        syncer.poll()
        while syncer.busy:
            syncer.poll()
        assert dev.validator.deny.version == 2
        dev.close()

    _with(body)
