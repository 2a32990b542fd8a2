"""The MCU gate's entry point (drivers/mcu/entry.py) as a complete gate: device.json's URLs
wired through drivers/portable/wiring onto a fake `machine` (a QR engine on UART 1, the barrier
relay and the passage beams on GPIO, the board's RTC), a rider let through, and the passage synced
to a back office over UART 2. Runs on the MicroPython unix port and on CPython, and from the .mpy
files of an MCU image (tests/test_mcu_image.py).

The test plays the world around the board from the service port: each read of it is one turn
of the gate's main loop (firmware/compose/app.serve), in which the test moves the tick counter, the
phone in front of the reader, the rider through the beams, and the bytes on the sync UART.
"""

from drivers.mcu import entry as mcu_gate
from drivers.mcu import link_uart
from firmware import platform
from firmware.maintenance import boot
from firmware.storage.journal import Journal
from protocol import image, records
from tests.portable import codes
from tests.portable.device_kit import HOST_PUB, Backend, Clock, Hardware, _provision
from tests.portable.fake_machine import (
    BEAM_A,
    BEAM_B,
    HARDWARE,
    RELAY,
    SYNC_UART,
    Board,
    BoardRTC,
    FakeMachine,
    FakeUART,
)
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, device, make

NOW = codes.NOW


class World:
    """The service port of the gate under test; each read() is one turn of its main loop."""

    def __init__(self, m, board, host, code, logs):
        self.m = m
        self.board = board
        self.host = host
        self.code = code
        self.logs = logs
        self.turns = 0
        self.shown = False
        self.walk = []  # beam levels still to go, one per turn
        self.opened_at = self.closed_at = 0
        self.sync_from = 0
        self.wire = 0  # bytes of UART 2 the back office has read

    def read(self, timeout_s=None):
        self.turns += 1
        assert self.turns < 3000, self.logs
        self.board.ms += 10
        self._back_office()
        reader = self.m.uarts.get(1)  # opened at the gate loop's first read
        relay = self.m.pins[RELAY].level if RELAY in self.m.pins else 0
        if reader is not None and not self.shown:
            reader.feed(b"\x02" + self.code.encode() + b"\r")  # a phone at the reader
            self.shown = True
        elif relay and not self.opened_at:
            self.opened_at = self.turns
            for a, b in ((1, 0), (1, 1), (0, 1), (0, 0)):  # the rider walks through
                self.walk += [(a, b)] * 3
        elif self.walk:
            a, b = self.walk.pop(0)
            self.m.pins[BEAM_A].level = a
            self.m.pins[BEAM_B].level = b
        elif self.opened_at and not relay and not self.closed_at:
            self.closed_at = self.turns
            self.board.ms += 2000  # the first sync is due (app.FIRST_SYNC_S after boot)
            self.sync_from = len(self.logs)
        elif any(line.startswith("sync: ") for line in self.logs[self.sync_from :]):
            return b""  # the service port closes: the gate halts
        return None

    def _back_office(self):
        uart = self.m.uarts.get(2)
        if uart is None:
            return
        sent = uart.sent[self.wire :]
        self.wire = len(uart.sent)
        if sent:
            uart.feed(self.host.receive(sent))

    def write(self, data):
        pass


def test_an_mcu_gate_lets_a_rider_through_and_syncs_over_a_uart():
    # the back office, loaded here: the MCU suite's other modules take the rig above from this
    # module and count every byte of their heap
    from tests.portable.sync_kit import MiniHost

    d = mkdtemp("mcu-gate")
    platform.set_crypto(Backend)
    try:
        dev, _tech = _provision(d, Hardware(), Clock(), host_key=HOST_PUB.hex())
        device_pub = dev.store.signer().public_key
        dev.close()
        del dev, _tech  # the provisioning console's gate: its memory is the MCU gate's now
        gate = device("mcu")
        a = agent(d, gate)
        a.stage(make(profile=image.PROFILE_MCU, mpy=(6, 3)))  # its running image, confirmed
        a.request_test()
        assert boot.choose(d) == ("a", True) and agent(d, gate, running="a").confirm()
        gate["hardware"] = HARDWARE
        gate["sync_serial"] = SYNC_UART
        m, board, logs = FakeMachine(), Board(), []
        m.rtc = BoardRTC(board, NOW + 60)
        host = MiniHost(device_pub=device_pub)
        world = World(m, board, host, codes.code(time=NOW + 60), logs)
        ctx = {"state_dir": d, "slot": "a", "trial": False, "device": gate}
        code = mcu_gate.main(ctx, machine=m, link=world, clock=board, logger=logs.append)
        assert code == boot.EXIT_HALT, logs
        ready = [line for line in logs if line.startswith("console: ready ")]
        assert ready and '"in_service"' in ready[0], logs
        # the relay opened for the rider and closed behind them
        assert m.pins[RELAY].history[-2:] == [1, 0] and world.opened_at > 0
        assert "gate: accepted account 42" in logs
        # UART 2 carried the session: the back office holds the passage, the gate trimmed it
        assert m.uarts[2].baudrate == 115200 and m.uarts[2].kw == {"tx": 25, "rx": 26}
        [raw] = list(host.held.values())
        rec = records.decode(raw)
        assert (rec.kind, rec.account_id, rec.time) == (records.KIND_PASSAGE, 42, NOW + 60)
        assert "sync: 1 records acknowledged, 0 pending" in logs, logs
        j = Journal(d, 1)
        try:
            assert j.pending_count() == 0
        finally:
            j.close()
        assert not [line for line in logs if "not trusted" in line]  # RTC and ticks agree
    finally:
        platform.set_crypto(None)
        rmtree(d)


def test_hardware_that_cannot_be_opened_leaves_the_console_running():
    logs = []

    class NoPins:  # the unix port's machine: no Pin, no UART
        pass

    spec = {"hardware": {"barrier": "gpio:relay=17"}}
    assert mcu_gate.hardware(spec, NoPins(), log=logs.append) is None
    assert logs and logs[0].startswith("app: hardware not available")
    assert mcu_gate.hardware({}, NoPins()) is None  # no hardware: the console only
    assert mcu_gate.connector({}) is None  # no sync_serial: no sync


def test_uart_link_sends_all_receives_what_came_and_drops_leftovers_on_close():
    uart = FakeUART(2)
    link = link_uart.UartLink(uart, sleep=lambda ms: None)
    big = b"\x01" * (4 * link_uart.MAX_READ)  # more than one read's worth
    link.send(big)
    assert uart.sent == big
    assert link.recv(0) is None  # nothing came: no wait at all
    uart.feed(b"frame")
    assert link.recv(0) == b"frame"
    uart.feed(b"late answer")
    link.close()
    assert uart.any() == 0 and link.recv(0) is None
    m = FakeMachine()
    link = link_uart.from_url("uart:3?baudrate=57600", machine=m)
    assert m.uarts[3].baudrate == 57600
    try:
        link_uart.from_url("uart:3?suffix=%0D", machine=m)
        raise AssertionError("an unknown option must be refused")
    except ValueError:
        pass
