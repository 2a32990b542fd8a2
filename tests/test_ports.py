"""--port auto-detection (provisioning.ports) and the transport's retry and errors."""

import os
import subprocess
import sys

import pytest

from protocol import frames
from provisioning import ports
from provisioning.transport import Disconnected, NotAnswering, PortOpenError, Transport


class FakePort:
    def __init__(self, device, vid=None):
        self.device = device
        self.vid = vid


def _lister(*items):
    return lambda: list(items)


def test_usb_adapters_count_and_legacy_uarts_do_not():
    lister = _lister(
        FakePort("/dev/ttyS0"),
        FakePort("/dev/ttyUSB0"),
        FakePort("/dev/ttyACM1"),
        FakePort("/dev/ttyAMA0", vid=0x0403),
    )
    assert ports.usb_ports(lister) == ["/dev/ttyACM1", "/dev/ttyAMA0", "/dev/ttyUSB0"]


def test_choose_explicit_env_one_none_several(tmp_path, monkeypatch):
    monkeypatch.delenv(ports.PORT_ENV, raising=False)
    d = str(tmp_path)
    assert ports.choose("/dev/x", _lister(FakePort("/dev/ttyUSB0")), d) == "/dev/x"
    monkeypatch.setenv(ports.PORT_ENV, "/dev/from-env")
    assert ports.choose(None, _lister(), d) == "/dev/from-env"
    monkeypatch.delenv(ports.PORT_ENV)
    assert ports.choose(None, _lister(FakePort("/dev/ttyUSB0")), d) == "/dev/ttyUSB0"
    with pytest.raises(ports.PortChoiceError, match="no gate found") as e:
        ports.choose(None, _lister(), d)
    assert "pass --port" in e.value.remedy and d in e.value.message
    # a live simulated gate (this process's pid) next to a USB adapter: two, no guessing
    target = tmp_path / "pty"
    target.write_text("")
    os.symlink(str(target), str(tmp_path / ("gate-1017-%d" % os.getpid())))
    with pytest.raises(ports.PortChoiceError, match="2 possible gates") as e:
        ports.choose(None, _lister(FakePort("/dev/ttyUSB0")), d)
    assert e.value.candidates == ["/dev/ttyUSB0", str(tmp_path / ("gate-1017-%d" % os.getpid()))]


def test_stale_simulator_links_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    target = tmp_path / "pty"
    target.write_text("")
    stale = tmp_path / ("gate-1-%s" % dead)
    gone = tmp_path / ("gate-2-%d" % os.getpid())
    live = tmp_path / ("gate-3-%d" % os.getpid())
    os.symlink(str(target), str(stale))
    os.symlink(str(tmp_path / "no-such-pty"), str(gone))
    os.symlink(str(target), str(live))
    (tmp_path / "README").write_text("not a link of ours")
    assert ports.sim_ports(str(tmp_path)) == [str(live)]
    assert not os.path.lexists(str(stale)) and not os.path.lexists(str(gone))
    assert os.path.exists(str(tmp_path / "README"))


class ScriptedPort:
    """A pyserial-like port: answers each write from a script, or goes silent/away."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.pending = b""
        self.writes = []
        self.timeout = 0
        self.in_waiting = 0

    def reset_input_buffer(self):
        pass

    def write(self, data):
        self.writes.append(data)
        ans = self.answers.pop(0) if self.answers else b""
        if isinstance(ans, Exception):
            raise ans
        self.pending += ans

    def flush(self):
        pass

    def read(self, n):
        if isinstance(self.pending, Exception):
            raise self.pending
        out, self.pending = self.pending, b""
        return out

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 0.05  # every look at the clock costs 50 ms: timeouts pass quickly
        return self.t


def _link(answers):
    port = ScriptedPort(answers)
    return Transport("fake", opener=lambda *a, **k: port, clock=Clock()), port


def test_retry_after_silence_and_late_duplicates_dropped():
    ok = frames.encode(7, b"answer")
    link, port = _link([b"", ok])  # the first try is lost
    fr = link.exchange(5, b"q", lambda f: f.type == 7, timeout=0.5, retries=2)
    assert fr.payload == b"answer" and len(port.writes) == 2 and port.writes[0] == port.writes[1]
    # a stale frame (type 9) before the wanted one is skipped
    link, port = _link([frames.encode(9, b"old") + ok])
    assert link.exchange(5, b"q", lambda f: f.type == 7).payload == b"answer"


def test_silence_and_garbage_and_unplug_are_typed_errors():
    link, port = _link([])
    with pytest.raises(NotAnswering, match="not answering \\(3 tries, 0.5 s each\\)") as e:
        link.exchange(5, b"q", lambda f: True, timeout=0.5, retries=2)
    assert isinstance(e.value, TimeoutError) and "SERVICE port" in e.value.remedy
    link, port = _link([b"\r\nFG1:ABC\r\n"] * 3)
    with pytest.raises(NotAnswering, match="not faregate frames"):
        link.exchange(5, b"q", lambda f: True, timeout=0.5)
    link, port = _link([OSError(5, "Input/output error")])
    with pytest.raises(Disconnected) as e:
        link.exchange(5, b"q", lambda f: True)
    assert isinstance(e.value, ConnectionError) and "run the same command again" in e.value.remedy


def test_open_errors_name_the_fix(tmp_path):
    with pytest.raises(PortOpenError, match="does not exist"):
        Transport(str(tmp_path / "ttyNOPE"))
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(PortOpenError, match="is not a serial port"):
        Transport(str(plain))

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    with pytest.raises(PortOpenError) as e:
        Transport("/dev/ttyUSB0", opener=denied)
    assert "dialout" in e.value.remedy
