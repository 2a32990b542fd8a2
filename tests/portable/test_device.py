"""firmware/compose/device.py: one gate composed from its state directory, on both interpreters.

A technician provisions it through its service console (the lists go to the validator's
stores), riders' codes come through its reader, the power is cut (the Device dropped without
close) and it opens again with nothing committed lost, and a sync session installs a deny
delta that then refuses a rider. Ride codes, lists and the operator root use real ES256
(protocol/p256.py); the technician's and the device's keys the stand-in scheme of
tests/portable/codes.py.
"""

import hashlib
import json
import struct

from firmware import settings
from firmware.gate import modes
from protocol import denylist, flash, frames, image, reasons, records, service
from protocol import messages as m
from protocol.fsm import Illegal
from tests.portable import codes, images
from tests.portable import console_kit as kit
from tests.portable.device_kit import (  # noqa: F401 (other tests import the kit here too)
    HOST_PUB,
    NOW,
    RID,
    ROOT,
    Backend,
    Barrier,
    Beams,
    Clock,
    Display,
    Hardware,
    Reader,
    Verifier,
    _config,
    _open,
    _provision,
    _scan,
    _trust,
    _walk,
    _with,
)
from tests.portable.harness import raises
from tests.portable.sync_kit import MiniHost


def test_provisioned_gate_admits_a_rider_journaled_before_the_barrier_opens():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock)
        st = tech.ok_json(service.STATUS)
        assert st["state"] == "in_service" and st["gate"]["trust"]["version"] == 1
        assert st["gate"]["mode_state"] == "idle" and st["gate"]["deny"]["version"] == 1
        _scan(dev, hw, codes.code(time=NOW))
        assert hw.barrier.opened == 1 and dev.gate.state == "authorized"
        [raw] = dev.journal.pending()
        rec = records.decode(raw)
        assert (rec.kind, rec.account_id, rec.station, rec.direction) == (1, 42, 12, 1)
        _walk(dev, hw, clock)
        assert dev.gate.state == modes.IDLE and not hw.barrier.state
        # a forged code is refused, journaled as a reject, and the barrier stays shut
        forged = codes.code(codes.credential(account_id=7, issuer=codes.FORGER), time=NOW)
        assert _scan(dev, hw, forged)["bad_issuer_signature"] == 1
        assert hw.barrier.opened == 1
        kinds = [records.decode(r).kind for r in dev.journal.pending()]
        assert kinds == [records.KIND_PASSAGE, records.KIND_REJECT]
        # a technician's test card is acknowledged, nothing journaled
        _scan(dev, hw, "FGTEST:card-1")
        assert hw.display.lines[-1] == "Test card read" and dev.journal.pending_count() == 2
        dev.close()

    _with(body)


def test_a_power_cut_loses_nothing_committed():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, _tech = _provision(d, hw, clock)
        first = codes.code(time=NOW, counter=1)
        _scan(dev, hw, first)
        _walk(dev, hw, clock)
        other = codes.code(codes.credential(account_id=43), time=NOW, counter=1)
        _scan(dev, hw, other)  # accepted, journaled, barrier open: then the power goes
        before = dev.journal.pending()
        dev = None  # the power cut: no close(), nothing flushed on purpose
        clock.advance(5)
        hw.barrier.state = False
        dev = _open(d, hw, clock)
        assert dev.in_service and dev.journal.pending() == before
        assert dev.status()["pending"] == 2 and not dev.clock.untrusted
        # the replay cache and anti-passback came back: a second showing, an entry again
        assert _scan(dev, hw, first)["replayed"] == 1
        again = codes.code(time=NOW + 5, counter=2)
        assert _scan(dev, hw, again)["anti_passback"] == 1
        assert hw.barrier.opened == 2  # only the two accepted before the cut
        dev.close()

    _with(body)


def test_sync_uploads_reports_and_installs_a_deny_delta_that_then_refuses():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, _tech = _provision(d, hw, clock, host="127.0.0.1", host_key=HOST_PUB.hex())
        _scan(dev, hw, codes.code(time=NOW))
        _walk(dev, hw, clock)
        delta = denylist.build_delta(1, 2, NOW, [denylist.account_key(1, 42)], [], ROOT)
        host = MiniHost({(m.KIND_DENY_DELTA, 2): delta}, device_pub=dev.store.signer().public_key)
        client = dev.sync_client(random_bytes=lambda n: b"\x07" * n)
        data = client.start()
        while not client.done:
            data = client.receive(host.receive(data))
        assert sorted(host.held) == [1] and dev.journal.pending_count() == 0
        assert client.applied == [(m.KIND_DENY_DELTA, 2)] and dev.validator.deny.version == 2
        assert dev.clock.last_good == NOW + 5  # the back office's time went to the anchor
        report = json.loads(host.status.extra)
        assert report["deny"] == {"version": 1, "entries": 0, "valid_until": 0, "state": "fresh"}
        assert report["counts"] == {"accepted": 1} and report["state"] == "in_service"
        assert len(host.status.extra) < 4096
        # the same rider, a minute later at the exit... here an entry gate: denied first
        clock.advance(60)
        code = codes.code(time=NOW + 60, counter=2)
        assert _scan(dev, hw, code)["denied"] == 1 and hw.barrier.opened == 1
        dev.close()

    _with(body)


def test_a_stale_trust_list_shows_on_the_idle_display():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock)
        assert hw.display.lines[-1] == "Scan your code"
        clock.advance(7 * 86400 + 60)  # past the list's valid_until: grace, flagged
        dev.step(0)
        assert hw.display.lines[-1] == "Trust list out of date - limited service"
        tech.login(claim=False)
        assert tech.put(service.BLOB_TRUST, _trust(2, NOW + 30 * 86400))[2] == "accepted"
        clock.ms += 2000
        dev.step(0)
        assert hw.display.lines[-1] == "Scan your code"
        dev.close()

    _with(body)


def _flash(dev, ftype, payload=b""):
    out = frames.FrameDecoder(1 << 20).feed(dev.console.feed(frames.encode(ftype, payload)))
    assert len(out) == 1, out
    return out[0]


def test_the_config_sizes_flashing_and_the_journal_reads():
    def body(d):
        hw, clock = Hardware(), Clock()
        images.confirmed_gate(d)
        kit.write_atomic(d + "/device.json", json.dumps(images.device()).encode())
        dev, tech = _provision(d, hw, clock)
        fl = dev.console.flash_service
        reads = settings.default("buffers.journal_read")  # 16; 8 on an MCU (MicroPython)
        assert (fl.max_chunk, fl.window, dev.journal.read_records) == (4096, 8, reads)
        cfg = json.loads(_config())
        cfg["buffers"] = {"flash_chunk": 512, "flash_window": 2, "journal_read": 3}
        assert tech.put(service.BLOB_CONFIG, json.dumps(cfg).encode())[2] == "accepted"
        assert (fl.max_chunk, fl.window, dev.journal.read_records) == (512, 2, 3)
        dev.close()
        dev = _open(d, hw, clock)  # after a restart, from the stored config
        fl = dev.console.flash_service
        assert (fl.max_chunk, fl.window, dev.journal.read_records) == (512, 2, 3)
        tech.console = dev.console
        tech.login(claim=False)
        data = images.make(version=(1, 2, 0), counter=2, files={"firmware/x.py": b"x" * 3000})
        head = image.parse_header(data).head_len
        sha = hashlib.sha256(data).digest()
        fr = _flash(dev, flash.BEGIN, flash.begin(len(data), sha, data[:head]))
        offset, _crc, chunk, window = flash.parse_ready(fr.payload)
        assert (chunk, window) == (512, 2)
        fr = _flash(dev, flash.DATA, flash.data(offset, data[offset : offset + 513]))
        assert flash.parse_refused(fr.payload)[0] == "bad_message"  # over the advertised chunk
        while offset < len(data):
            fr = _flash(dev, flash.DATA, flash.data(offset, data[offset : offset + chunk]))
            offset = flash.parse_ack(fr.payload)
        fr = _flash(dev, flash.END)
        assert fr.type == flash.DONE and flash.parse_done(fr.payload)[0] == sha
        dev.close()

    _with(body)


def test_a_factory_reset_forgets_the_lists_with_the_operator():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock)
        tech.ok(service.RESET, service.reset_body(False, b"\x00" * 32))
        assert not dev.in_service and dev.validator is None
        dev.close()
        dev = _open(d, hw, clock)
        assert dev.status()["trust_version"] == 0 and dev.status()["deny_version"] == 0
        dev.close()

    _with(body)


def test_the_lifecycle_table_moves_the_device_and_refuses_an_event_it_has_no_row_for():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock)
        steps = [entry[1:] for entry in dev.lifecycle.log]
        assert steps[:2] == [("closed", "open", "blank"), ("blank", "claim", "claimed")], steps
        assert ("claimed", "config", "claimed") in steps
        assert steps[-1] == ("claimed", "change", "in_service"), steps  # the self-test
        e = raises(Illegal, dev._changed, "claimed")
        assert e.reason == "illegal_event" and dev.lifecycle.state == "in_service"
        assert dev.in_service
        dev.close()
        dev = _open(d, hw, clock)
        assert dev.lifecycle.log[-1][1:] == ("closed", "open", "in_service") and dev.in_service
        tech.console = dev.console
        tech.login()
        tech.ok(service.RESET, service.reset_body(False, b"\x00" * 32))
        assert dev.lifecycle.log[-1][1:] == ("in_service", "reset", "blank")
        assert not dev.in_service and dev.validator is None
        dev.close()

    _with(body)


def test_an_rtc_that_jumps_ahead_is_flagged_and_fresh_codes_still_open():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech = _provision(d, hw, clock, host_key=HOST_PUB.hex())
        lines = []
        dev.log = lines.append
        clock.t += 1033  # the RTC jumps 17 minutes ahead while 1 s passes (the back office is away)
        clock.ms += 1000
        assert dev.clock.now() == NOW + 1 and dev.clock.rtc_ahead
        assert lines == ["device: clock not trusted: " + dev.clock.reason]
        # a rider's code from a phone with the right time opens, flagged (limited service)
        _scan(dev, hw, codes.code(time=NOW + 1))
        assert hw.barrier.opened == 1
        rec = records.decode(dev.journal.pending()[-1])
        assert rec.kind == records.KIND_PASSAGE and rec.flags & records.FLAG_CLOCK_UNTRUSTED
        _walk(dev, hw, clock)
        clock.ms += 1000
        dev.step(0)
        assert hw.display.lines[-1] == "Clock not trusted - limited service"
        # the technician sees it: the console's STATUS and the service log
        tech.login(claim=False)
        st = tech.ok_json(service.STATUS)["gate"]["clock"]
        assert st["rtc_ahead"] is True and st["rtc_lead_s"] == 1032 and st["untrusted"] is True
        logged = [e for e in dev.events.since(1, 100) if e["ev"] == "clock_untrusted"]
        assert len(logged) == 1 and logged[0]["rtc_ahead"] is True
        # the sync reports it up, and the back office's time clears it
        host = MiniHost(device_pub=dev.store.signer().public_key)
        client = dev.sync_client(random_bytes=lambda n: b"\x07" * n)
        data = client.start()
        while not client.done:
            data = client.receive(host.receive(data))
        report = json.loads(host.status.extra)  # the gate's state as the session began
        assert report["clock"]["rtc_ahead"] is True and report["clock"]["rtc_lead_s"] == 1032
        assert not dev.clock.untrusted and clock.t == NOW + 5  # the RTC was set right
        dev.close()

    _with(body)


def _segment(d):
    import os

    return d + "/" + sorted(n for n in os.listdir(d) if n.startswith("seg-"))[-1]


def _flip(path, offset):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def _two_riders_synced(d, hw, clock):
    """An in-service gate with two passages journaled and acknowledged, then a power cut."""
    dev, tech = _provision(d, hw, clock)
    _scan(dev, hw, codes.code(time=NOW, counter=1))
    _walk(dev, hw, clock)
    _scan(dev, hw, codes.code(codes.credential(account_id=43), time=NOW, counter=1))
    _walk(dev, hw, clock)
    last = dev.journal.last_seq
    dev.journal.ack(last)  # every record is safe at the back office
    return dev, tech, last


def test_a_flipped_byte_in_the_journal_boots_with_the_console_and_a_repair_holes_it():
    # issue 19: a damaged entry with good ones after it halted the gate at boot, no console
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech, last = _two_riders_synced(d, hw, clock)
        dev = None  # power cut
        path = _segment(d)
        with open(path, "rb") as f:
            size = len(f.read())
        _flip(path, (size // last) * (last // 2) + 20)  # one byte inside a middle record
        dev = _open(d, hw, clock)
        assert dev.in_service  # the console is up and the gate serves
        tech = kit.Tech(dev.console, tech.signer, tech.cert, ROOT)
        tech.login(claim=False)
        st = tech.ok_json(service.STATUS)
        assert st["journal"] == "damaged" and st["gate"]["journal"]["state"] == "damaged"
        rep = tech.ok_json(service.JOURNAL_INSPECT)
        # one copy an entry: the record is lost (acknowledged already: nothing is missing)
        assert rep["lost_acked"] == 1 and rep["lost_unacked"] == 0 and rep["vouched"]
        assert any(e["ev"] == "journal_damaged" for e in dev.events.since(1, 100))
        out = tech.ok_json(service.JOURNAL_REPAIR, struct.pack(">Q", 0))
        assert out["after"]["state"] == "ok" and out["event_seq"] == last + 1
        [raw] = dev.journal.pending()
        rec = records.decode(raw)
        assert (rec.kind, rec.reason, rec.value) == (
            records.KIND_EVENT,
            reasons.number("journal_repaired"),
            0,
        )
        rider = codes.code(codes.credential(account_id=44), time=NOW, counter=1)
        assert _scan(dev, hw, rider)["accepted"] == 1
        assert dev.journal.last_seq == last + 2
        dev.close()

    _with(body)


def test_a_gate_that_cannot_vouch_for_its_seq_refuses_until_repaired_with_a_floor():
    def body(d):
        hw, clock = Hardware(), Clock()
        dev, tech, last = _two_riders_synced(d, hw, clock)
        dev = None  # power cut
        for name in ("journal.meta", "journal.meta.b"):
            _flip(d + "/" + name, 4)
        dev = _open(d, hw, clock)
        assert dev.in_service
        rider = codes.code(codes.credential(account_id=44), time=NOW, counter=1)
        opened = hw.barrier.opened
        assert _scan(dev, hw, rider)["journal_unverified"] == 1 and hw.barrier.opened == opened
        assert hw.display.lines[-1] == "Gate closed - see staff"
        tech = kit.Tech(dev.console, tech.signer, tech.cert, ROOT)
        tech.login(claim=False)
        assert tech.ok_json(service.STATUS)["journal"] == "unverified"
        reply = tech.request(service.JOURNAL_REPAIR, struct.pack(">Q", 0))
        assert reply[2] == "journal_unverified"  # it needs the back office's high seq
        out = tech.ok_json(service.JOURNAL_REPAIR, struct.pack(">Q", last + 5))
        assert out["after"]["state"] == "ok" and out["event_seq"] == last + 6
        rider = codes.code(codes.credential(account_id=44), time=NOW, counter=2)
        assert _scan(dev, hw, rider)["accepted"] == 1
        assert hw.barrier.opened == opened + 1 and dev.journal.last_seq == last + 7
        dev.close()

    _with(body)
