"""The ANPR camera driver (drivers/linux/anpr_http.py) against the simulated camera
(host_sim/hardware/anpr_camera.py) over a real loopback socket: plate, confidence and image
reference come through; heartbeats, junk, oversized and stalled requests do not."""

import socket

import pytest

from drivers.linux import anpr_http
from drivers.portable import registry
from host_sim.hardware.anpr_camera import SimAnprCamera, alert_xml


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def gate_side():
    clock = FakeClock()
    listener = anpr_http.AnprListener("127.0.0.1", 0, clock=clock)
    reads: list = []
    cam = SimAnprCamera("127.0.0.1", listener.port, pump=lambda w: reads.extend(listener.poll(w)))
    yield listener, cam, reads, clock
    listener.close()


def test_a_plain_xml_push_gives_plate_confidence_and_image(gate_side):
    listener, cam, reads, _clock = gate_side
    assert cam.push("B AB 1234", 97, image="cam1/000017.jpg") == 200
    assert reads == [
        anpr_http.PlateRead("B AB 1234", 97, "cam1/000017.jpg", "2026-12-03T10:00:00+00:00")
    ]
    assert reads[0].image_tag != 0
    assert listener.counts["reads"] == 1


def test_a_multipart_push_takes_the_picture_parts_filename(gate_side):
    _listener, cam, reads, _clock = gate_side
    assert cam.push("KA01AB1234", 88, image="lp/2026/abc.jpg", multipart=True) == 200
    assert [(r.plate, r.confidence, r.image) for r in reads] == [
        ("KA01AB1234", 88, "lp/2026/abc.jpg")
    ]


def test_no_plate_is_an_empty_plate_and_heartbeats_are_dropped(gate_side):
    listener, cam, reads, _clock = gate_side
    assert cam.push("unknown", 0) == 200
    assert cam.heartbeat() == 200
    assert [r.plate for r in reads] == [""]
    assert listener.counts["heartbeats"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<Other/>",
        alert_xml("X1", 101, "", "t"),
        b"<EventNotificationAlert><eventType>ANPR</eventType></EventNotificationAlert>",
    ],
)
def test_junk_is_answered_400_and_counted(gate_side, body):
    listener, cam, reads, _clock = gate_side
    assert cam.push_raw(body) == 400
    assert reads == []
    assert listener.counts["anpr_malformed"] == 1


def test_a_body_over_max_body_is_refused_413(gate_side):
    listener, cam, reads, _clock = gate_side
    assert cam.push_raw(b"<" + b"x" * (anpr_http.MAX_BODY + 1)) == 413
    assert listener.counts["too_large"] == 1 and reads == []


def test_another_path_is_404(gate_side):
    listener, cam, _reads, _clock = gate_side
    cam.path = "/elsewhere"
    assert cam.push("AB12", 90) == 404


def test_a_stalled_connection_is_closed_after_the_client_timeout(gate_side):
    listener, cam, reads, clock = gate_side
    s = cam.stall()
    try:
        for _ in range(20):
            listener.poll(0.01)
        clock.t += anpr_http.CLIENT_TIMEOUT_S + 1
        listener.poll(0.0)
        assert listener.counts["timeouts"] == 1
        s.settimeout(1.0)
        assert s.recv(10) == b""  # the gate closed it
    finally:
        s.close()
    assert cam.push("AB12", 90) == 200  # and still takes the next camera
    assert [r.plate for r in reads] == ["AB12"]


def test_parse_alert_is_sans_io_and_keeps_namespaces_out():
    r = anpr_http.parse_alert(alert_xml("ZZ 9", 55, "a.jpg", "when"))
    assert r == anpr_http.PlateRead("ZZ 9", 55, "a.jpg", "when")
    assert anpr_http.parse_alert(alert_xml("", 0, "", "", event="heartBeat")) is None


def test_the_registry_opens_it_by_url_and_refuses_unknown_options():
    listener = registry.open_device("anpr", "http://127.0.0.1:0/lane1")
    try:
        assert listener.path == "/lane1"
    finally:
        listener.close()
    with pytest.raises(anpr_http.UsageError):
        anpr_http.from_url("http://127.0.0.1:0/x?fps=3")


def test_the_technician_check_prints_reads(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert anpr_http.main(["--listen", "127.0.0.1:%d" % port, "--seconds", "0.2"]) == 1
    assert "0 read(s)" in capsys.readouterr().out


def test_a_plate_lane_opens_for_a_pushed_plate_through_its_gate_loop(tmp_path):
    """The whole Linux path: camera -> socket -> AnprListener (hardware "anpr") -> the lane's
    poller -> the plate store -> a journaled passage and an open arm."""
    from drivers.portable.wiring import Hardware
    from firmware.compose.device import gate_loop
    from firmware.storage.journal import Journal
    from firmware.verify.platestore import PlateStore
    from firmware.verify.validator import Validator
    from protocol import platelist, reasons, records
    from tests.portable import codes
    from tests.portable.fake_machine import Ticks
    from tests.portable.test_gate_core import Barrier, Clock

    listener = anpr_http.AnprListener("127.0.0.1", 0)
    try:
        ticks = Ticks(0)
        hw = Hardware(barrier=Barrier(), anpr=listener)
        store = PlateStore(str(tmp_path / "plates.bin"), codes.ROOTS, codes.VERIFIER)
        store.install(
            platelist.build(
                platelist.KIND_SNAPSHOT,
                0,
                1,
                codes.NOW,
                [(platelist.plain_key("BAB1234"), 1, (1001 << 24) | 1)],
                (),
                codes.ROOT,
            )
        )
        (tmp_path / "j").mkdir()
        journal = Journal(str(tmp_path / "j"), device_id=4)
        loop = gate_loop(
            hw,
            Validator(codes.VERIFIER, {1: codes.issuer_key()}),
            journal,
            Clock(ticks),
            mode=records.MODE_PARKING,
            direction=records.DIR_ENTRY,
            settings={"plates": True},
            ticks=ticks,
            plates=store,
        )
        loop.gate.on_event("vehicle_arrived")
        cam = SimAnprCamera("127.0.0.1", listener.port, pump=lambda w: loop.step(w))
        assert cam.push("B AB 1234", 96, image="lane1/000042.jpg") == 200
        for _ in range(10):
            loop.step(0.01)
        assert loop.gate.state == "authorized" and hw.barrier.cmds == ["open"]
        (rec,) = [records.decode(r) for r in journal.unsynced()]
        assert reasons.by_number(rec.reason) == "plate_accepted" and rec.account_id == 1001
        tag = anpr_http.PlateRead("", 0, "lane1/000042.jpg", "").image_tag
        assert rec.counter == tag
        journal.close()
    finally:
        listener.close()
