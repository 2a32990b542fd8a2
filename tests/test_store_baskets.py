"""A store door with a basket source (firmware/gate/baskets.py, drivers/linux/basket_tcp.py)
against the simulated shelf system (host_sim/hardware/basket_source.py) over a real socket:
the exit scan carries the basket, a shopper who leaves by the button is closed by the source's
FINAL, bad lines and a dead source are counted and ride out; then the back office charges it."""

import pytest

from drivers.linux.basket_tcp import BasketLink, from_url
from drivers.portable.wiring import Hardware
from firmware.compose.device import gate_loop
from firmware.storage.journal import Journal
from firmware.verify.validator import Validator
from host_sim.backoffice import clearing
from host_sim.backoffice.store import Store
from host_sim.hardware.basket_source import SimBasketSource
from protocol import basketline, reasons, records
from protocol.errors import FormatError, UsageError
from tests.portable import codes
from tests.portable.fake_machine import Ticks
from tests.portable.test_gate_core import Barrier, Clock, _code


@pytest.fixture
def door(tmp_path):
    src = SimBasketSource()
    link = BasketLink("127.0.0.1", src.port)
    ticks = Ticks(0)
    (tmp_path / "j").mkdir()
    journal = Journal(str(tmp_path / "j"), device_id=6)
    loop = gate_loop(
        Hardware(barrier=Barrier(), basket=link),
        Validator(codes.VERIFIER, {1: codes.issuer_key()}),
        journal,
        Clock(ticks),
        mode=records.MODE_STORE,
        direction=records.DIR_ENTRY,
        ticks=ticks,
    )
    baskets = loop.pollers[-1]

    def settle():
        for _ in range(20):
            src.poll(0.005)
            loop.step(0.0)

    yield loop, src, baskets, journal, ticks, settle
    journal.close()
    link.close()
    src.close()


S31 = records.account_key(1, 31)  # the door's sessions and the basket line name shoppers so
S32 = records.account_key(1, 32)  # (issuer 1: tests.portable.codes)


def _recs(journal):
    return [records.decode(r) for r in journal.unsynced()]


def test_the_exit_scan_carries_the_basket_and_the_button_is_closed_by_final(door):
    loop, src, baskets, journal, ticks, settle = door
    g = loop.gate
    assert g.on_scan(_code(31, 1, ticks)).accept  # shopper 31 in
    g.on_event("door_opened")
    g.on_event("door_closed")
    assert g.on_scan(_code(32, 1, ticks)).accept  # shopper 32 in
    g.on_event("door_opened")
    g.on_event("door_closed")
    settle()
    assert [d[:2] for d in src.door] == [("OPEN", S31), ("OPEN", S32)]
    src.take(S31, 250)
    src.take(S31, 199)
    src.take(S32, 1000)
    src.put_back(S32, 1000)
    src.take(S32, 75)
    settle()
    assert baskets.totals == {S31: 449, S32: 75}
    assert g.on_scan(_code(31, 2, ticks), direction=records.DIR_EXIT).accept  # 31 scans out
    g.on_event("door_opened")
    g.on_event("door_closed")
    g.on_event("exit_request")  # 32 leaves by the button
    settle()
    assert src.door[-2:][0][:2] == ("EXIT", S31) and src.door[-1][0] == "BUTTON"
    src.leave_by_button(S32)  # the shelf system saw who left
    settle()
    recs = _recs(journal)
    final = [r for r in recs if r.reason == reasons.number("basket_final")]
    exit_scan = [r for r in recs if r.kind == records.KIND_PASSAGE and r.direction == 2][0]
    assert exit_scan.account_id == 31 and exit_scan.value == 449
    assert [(r.account_id, r.value, r.direction) for r in final] == [(32, 75, records.DIR_EXIT)]
    assert S32 not in g.policy.open
    assert baskets.counts["finals"] == 1


def test_bad_lines_and_a_late_final_are_counted_and_the_door_works_on(door):
    loop, src, baskets, journal, ticks, settle = door
    src.send_raw(b"BASKET 31 -5 1\nHELLO\nFINAL 0 1 1\n")
    src.leave_by_button(99)  # no session open for 99
    settle()
    assert baskets.counts["basket_malformed"] == 3 and baskets.counts["late"] == 1
    assert loop.gate.on_scan(_code(40, 1, ticks)).accept


def test_a_dead_source_is_counted_not_fatal(tmp_path):
    src = SimBasketSource()
    port = src.port
    src.close()
    link = BasketLink("127.0.0.1", port, retry_s=0.0)
    with pytest.raises(OSError):
        link.lines()
    with pytest.raises(UsageError):
        from_url("tcp://pos:7410?speed=9")


def test_the_line_protocol_is_strict():
    assert basketline.parse_source(b"BASKET 31 449 2") == ("BASKET", 31, 449, 2)
    assert basketline.parse_source("FINAL 5 0 0\r") == ("FINAL", 5, 0, 0)
    for bad in (b"BASKET 31 449", b"BASKET x 1 1", b"FINAL 1 100000001 1", b"\xff\xfe", b""):
        with pytest.raises(FormatError):
            basketline.parse_source(bad)
    assert basketline.door_line("OPEN", 100, 31) == b"OPEN 31 100\n"
    assert basketline.parse_door(b"BUTTON 7") == ("BUTTON", 0, 7)


def test_the_back_office_charges_the_baskets(door, tmp_path):
    loop, src, baskets, journal, ticks, settle = door
    g = loop.gate
    g.on_scan(_code(31, 1, ticks))
    g.on_event("door_opened")
    g.on_event("door_closed")
    settle()
    src.take(S31, 1234)
    settle()
    g.on_event("exit_request")
    settle()
    src.leave_by_button(S31)
    settle()
    store = Store(str(tmp_path / "bo.sqlite"))
    try:
        store.add_device(6, b"\x02" + bytes(32), codes.NOW)
        store.store_batch(6, list(journal.unsynced()), codes.NOW + 60)
        js = clearing.clear(store, clearing.load_tariff(None), codes.NOW + 3600)
        assert [(j["account_id"], j["status"], j["charged"]) for j in js] == [
            (S31, "complete", 1234)
        ]
    finally:
        store.close()
