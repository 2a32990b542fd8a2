"""A parking lane by plate (firmware/gate/plates.py) and store groups and baskets' gate side,
on both interpreters: a known plate opens the arm, a misread or a low confidence falls back
to a QR scan, every outcome journaled; a voided plate passage is undone."""

from firmware.gate import modes
from firmware.gate.gate import Gate
from firmware.gate.plates import PlateLane
from firmware.storage.journal import Journal
from firmware.verify.platestore import PlateStore
from firmware.verify.validator import Validator
from protocol import platelist, reasons, records
from tests.portable import codes
from tests.portable.fake_machine import Ticks
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.test_gate_core import Barrier, Clock, Display, _code

CRED = (1001 << 24) | 1
ISSUER = 7  # the plate's account is issuer key 7's: its passages are charged there


def _lane(d, ticks, direction=1, cfg=None):
    v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
    j = Journal(d, device_id=9)
    conf = {"plates": True}
    conf.update(cfg or {})
    g = Gate(
        v,
        j,
        Barrier(),
        Display(),
        Clock(ticks),
        mode=records.MODE_PARKING,
        direction=direction,
        config=conf,
        ticks=ticks,
    )
    store = PlateStore(None, codes.ROOTS, codes.VERIFIER)
    blob = platelist.build(
        platelist.KIND_SNAPSHOT,
        0,
        1,
        codes.NOW,
        [(platelist.plain_key("BAB1234"), ISSUER, CRED)],
        (),
        codes.ROOT,
    )
    store.install(blob)
    return g, PlateLane(g, store)


def _records(g):
    return [records.decode(raw) for raw in g.journal.unsynced()]


def test_a_known_plate_opens_the_arm_and_is_journaled_first():
    d = mkdtemp("plates")
    ticks = Ticks(0)
    try:
        g, lane = _lane(d, ticks)
        assert lane.on_read("BAB1234", 97, 77) == "ignored"  # no vehicle yet
        g.on_event("vehicle_arrived")
        assert g.state == "reading" and g.display.last == modes.PROMPTS["reading_plate"]
        assert lane.on_read("b-ab 1234", 97, 77) == "plate_accepted"
        assert g.state == "authorized" and g.barrier.cmds == ["open"]
        (rec,) = _records(g)
        assert (rec.kind, reasons.by_number(rec.reason), rec.account_id, rec.cred_no) == (
            records.KIND_PASSAGE,
            "plate_accepted",
            1001,
            1,
        )
        assert rec.counter == 77 and rec.mode == records.MODE_PARKING
        assert rec.issuer == ISSUER and rec.version == records.VERSION
        g.on_event("vehicle_on_safety")
        g.on_event("vehicle_cleared")
        g.on_event("barrier_closed")
        assert g.state == "idle"
        g.on_event("vehicle_arrived")  # the same car again inside the passback window
        assert lane.on_read("BAB1234", 97, 78) == "anti_passback"
        g.journal.close()
    finally:
        rmtree(d)


def test_a_misread_or_low_confidence_falls_back_to_a_qr_scan():
    d = mkdtemp("plates")
    ticks = Ticks(0)
    try:
        g, lane = _lane(d, ticks)
        g.on_event("vehicle_arrived")
        assert lane.on_read("BAB1284", 95, 5) == "plate_unknown"  # one character wrong
        assert g.state == "present"
        assert g.display.last == reasons.display_text("plate_unknown")
        assert g.on_scan(_code(1001, 1, ticks)).accept  # the driver scans at the barrier
        assert g.state == "authorized"
        g.on_event("vehicle_on_safety")
        g.on_event("vehicle_cleared")
        g.on_event("barrier_closed")
        g.on_event("vehicle_arrived")
        assert lane.on_read("CD56", 40, 6) == "plate_low_confidence"
        g.on_event("vehicle_left")
        g.on_event("vehicle_arrived")
        assert lane.on_read("", 0, 7) == "plate_unknown"  # the camera saw no plate
        g.on_event("vehicle_left")
        g.on_event("vehicle_arrived")
        ticks.advance(g.spec.timers["plate"])
        g.tick()
        assert g.state == "present" and g.display.last == modes.PROMPTS["drive_up"]
        recs = _records(g)
        names = [reasons.by_number(r.reason) for r in recs]
        assert names == ["plate_unknown", "accepted", "plate_low_confidence", "plate_unknown"]
        miss = recs[0]
        assert miss.kind == records.KIND_EVENT
        assert (miss.account_id, miss.cred_no, miss.counter) == (
            platelist.plain_key("BAB1284"),
            5,
            95,
        )
        assert lane.counts == {"reads": 3, "accepted": 0, "unknown": 2, "low": 1, "ignored": 0}
        g.journal.close()
    finally:
        rmtree(d)


def test_a_plate_passage_not_taken_is_voided_with_its_account():
    d = mkdtemp("plates")
    ticks = Ticks(0)
    try:
        g, lane = _lane(d, ticks)
        g.on_event("vehicle_arrived")
        lane.on_read("BAB1234", 99, 12)
        g.on_event("vehicle_left")  # drove away before the arm
        void = _records(g)[-1]
        assert reasons.by_number(void.reason) == "passage_not_taken"
        assert (void.account_id, void.cred_no, void.counter) == (1001, 1, 12)
        g.on_event("vehicle_arrived")
        assert lane.on_read("BAB1234", 99, 13) == "plate_accepted"  # may come again
        g.journal.close()
    finally:
        rmtree(d)


def test_store_groups_admit_up_to_group_max_on_one_code():
    d = mkdtemp("groups")
    ticks = Ticks(0)
    try:
        v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
        j = Journal(d, device_id=3)
        g = Gate(
            v,
            j,
            Barrier(),
            Display(),
            Clock(ticks),
            mode=records.MODE_STORE,
            direction=1,
            config={"group_max": 3},
            ticks=ticks,
        )
        got = [g.on_scan(_code(50, n, ticks)).reason for n in range(1, 5)]
        assert got == ["accepted", "group_member", "group_member", "group_full"]
        g.on_event("door_opened")
        g.on_event("door_closed")
        g.on_event("exit_request")  # someone leaves by the button
        assert g.state == "egress"
        names = [reasons.by_number(records.decode(r).reason) for r in j.unsynced()]
        assert names[-1] == "exit_button" and names[-2] == "group_full"
        j.close()
    finally:
        rmtree(d)


class _Link:
    def __init__(self):
        self.out = []
        self.inbox = []

    def send(self, line):
        self.out.append(line)

    def lines(self):
        got, self.inbox = self.inbox, []
        return got


def test_a_basket_source_sets_the_exit_value_and_final_closes_a_session():
    from firmware.gate.baskets import Baskets

    d = mkdtemp("baskets")
    ticks = Ticks(0)
    try:
        v = Validator(codes.VERIFIER, {1: codes.issuer_key()})
        j = Journal(d, device_id=3)
        g = Gate(
            v,
            j,
            Barrier(),
            Display(),
            Clock(ticks),
            mode=records.MODE_STORE,
            direction=1,
            ticks=ticks,
        )
        link = _Link()
        b = Baskets(g, link)
        g.on_scan(_code(60, 1, ticks))
        g.on_scan(_code(61, 1, ticks))
        k60 = records.account_key(1, 60)  # the line names the door's account keys (issuer 1)
        k61 = records.account_key(1, 61)
        link.inbox = [b"BASKET %d 300 2" % k60, b"BASKET %d 80 1" % k61, b"junk"]
        b.poll()
        g.on_scan(_code(60, 2, ticks), direction=2)
        link.inbox = [b"FINAL %d 95 2" % k61]
        b.poll()
        recs = [records.decode(r) for r in j.unsynced()]
        exits = [
            (r.issuer, r.account_id, r.value, reasons.by_number(r.reason))
            for r in recs
            if r.direction == 2
        ]
        assert exits == [(1, 60, 300, "accepted"), (1, 61, 95, "basket_final")]
        assert link.out[:2] == [
            b"OPEN %d %d\n" % (k60, codes.NOW),
            b"OPEN %d %d\n" % (k61, codes.NOW),
        ]
        assert link.out[2] == b"EXIT %d %d\n" % (k60, codes.NOW)
        assert b.counts["basket_malformed"] == 1 and not g.policy.open
        j.close()
    finally:
        rmtree(d)
