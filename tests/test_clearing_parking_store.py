"""Clearing's rules for no-sense parking and store baskets and groups, on SQLite and PostgreSQL
through the real ingest path: plate passages priced by the parking tariff (flagged by_plate),
paired with scans of the same account, voided, never taken for copies; store sessions charged
their basket (exit scan or basket_final), group members joined to the session."""

import pytest

from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from protocol import reasons, records
from protocol.records import DIR_ENTRY, DIR_EXIT, MODE_PARKING, MODE_STORE
from tests.test_clearing import DAY0, Gate

T = clearing.load_tariff(None)
PLATE = reasons.number("plate_accepted")
GROUP = reasons.number("group_member")
BASKET = reasons.number("basket_final")


@pytest.fixture
def store(store_target):
    s = Store(store_target)
    s.add_device(1, b"\x02" + bytes(32), DAY0)
    yield s
    s.close()


def _rows(store, tariff=T, as_of=DAY0 + 86400 * 3):
    js = clearing.clear(store, tariff, as_of)
    keys = [tuple(k) for j in js for k in j["records"]]
    assert len(keys) == len(set(keys)), "a passage was charged twice"
    return sorted((j["account_id"], j["status"], j["charged"], j["flags"]) for j in js)


def test_plate_passages_are_priced_by_the_parking_tariff(store):
    g = Gate(store)
    # in by plate, out by plate: 2 h 1 s = three started hours of 200
    g.tap(5, DAY0, 50, DIR_ENTRY, MODE_PARKING, reason=PLATE, counter=0xA1)
    g.tap(5, DAY0 + 2 * 3600 + 1, 50, DIR_EXIT, MODE_PARKING, reason=PLATE, counter=0xA1)
    # in by plate, the exit camera misread: out by QR scan (same account)
    g.tap(6, DAY0, 50, DIR_ENTRY, MODE_PARKING, reason=PLATE, counter=0xB2)
    g.tap(6, DAY0 + 600, 50, DIR_EXIT, MODE_PARKING, counter=9)  # inside the 15 min grace
    # out by plate with no entry: the lost-ticket charge, as for a scan
    g.tap(7, DAY0, 50, DIR_EXIT, MODE_PARKING, reason=PLATE, counter=0xC3)
    assert _rows(store) == [
        (5, "complete", 600, ["by_plate"]),  # same image tag twice: not a copy
        (6, "complete", 0, ["by_plate"]),
        (7, "missing_entry", 2000, []),
    ]


def test_a_voided_plate_passage_is_not_charged_and_the_next_one_is(store):
    g = Gate(store)
    g.tap(5, DAY0, 50, DIR_ENTRY, MODE_PARKING, reason=PLATE, counter=0x11)
    g.tap(
        5,
        DAY0 + 30,
        50,
        DIR_ENTRY,
        MODE_PARKING,
        counter=0x11,
        kind=records.KIND_EVENT,
        reason=reasons.number("passage_not_taken"),
    )  # the car backed away from the arm
    g.tap(5, DAY0 + 90, 50, DIR_ENTRY, MODE_PARKING, reason=PLATE, counter=0x12)
    g.tap(5, DAY0 + 90 + 3600, 50, DIR_EXIT, MODE_PARKING, reason=PLATE, counter=0x13)
    assert _rows(store) == [
        (5, "complete", 200, ["by_plate"]),
        (5, "voided", 0, []),
    ]


def test_store_baskets_groups_and_the_exit_button(store):
    tariff = clearing.load_tariff(None)
    tariff["store"]["group_member_charge"] = 50
    g = Gate(store)
    # a shopper and two companions on one code; the exit scan carries the basket total
    g.tap(3, DAY0, 70, DIR_ENTRY, MODE_STORE)
    g.tap(3, DAY0 + 5, 70, DIR_ENTRY, MODE_STORE, reason=GROUP)
    g.tap(3, DAY0 + 9, 70, DIR_ENTRY, MODE_STORE, reason=GROUP)
    g.tap(3, DAY0 + 600, 70, DIR_EXIT, MODE_STORE, value=1234)
    # a shopper who left by the exit button: the basket source's final basket closes it
    g.tap(4, DAY0, 70, DIR_ENTRY, MODE_STORE)
    g.tap(0, DAY0 + 300, 70, 0, MODE_STORE, kind=records.KIND_EVENT, reason=335)  # exit_button
    g.tap(4, DAY0 + 302, 70, DIR_EXIT, MODE_STORE, value=899, reason=BASKET, counter=0)
    # a second entry on a code without a group policy: the old session is left open
    g.tap(8, DAY0, 70, DIR_ENTRY, MODE_STORE)
    g.tap(8, DAY0 + 100, 70, DIR_ENTRY, MODE_STORE)
    g.tap(8, DAY0 + 200, 70, DIR_EXIT, MODE_STORE, value=100)
    assert _rows(store, tariff, as_of=DAY0 + 10 * 3600) == [
        (3, "complete", 1234 + 2 * 50, []),
        (4, "complete", 899, []),
        (8, "complete", 100, []),
        (8, "open_session", 0, []),
    ]
