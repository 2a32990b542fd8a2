"""The simulated board around a gate's firmware: its peripherals, as the gate image sees them.

The gate image runs unchanged (drivers/linux/entry.py reads `device.json`'s "hardware"), so the
board offers what a real one does, in the state directory's `board/` folder:
- `board/scanner`: a symlink to a QR engine on a real pty (host_sim.hardware.devices.PtyQREngine),
  read
  by the gate through pyserial;
- `board/phone`: a named pipe in front of that QR engine: every line written to it is a phone
  held up to the reader (`faregate wallet mint ... > STATE/board/phone`), and the engine sends
  its text to the gate as a QR engine in continuous mode does;
- the technician's test card: `hold_card()` holds it up and `lower_card()` takes it away (the
  simulator does when a technician's self-test request goes to the gate, and when its answer
  comes back; at most `CARD_HOLD_S`): while held, the engine sends its text every
  `CARD_EVERY_S` once the gate has read the last one;
- `board/barrier-relay`, `board/barrier-opened`, `board/beam-a`, `board/beam-b`: GPIO pins as
  sysfs-style value files (drivers/linux/gpio_sysfs.py). The opened limit switch is wired to the
  relay (a symlink: the barrier follows at once) unless the barrier is jammed; a blocked beam
  reads "1". `opened()` says whether the relay drives the barrier open.

HARDWARE is the "hardware" entry of device.json that describes this board to the gate, in the
device URLs of drivers/portable/wiring.py.
"""

import fcntl
import os
import select
import struct
import termios
import threading
import time

from host_sim.hardware.devices import PtyQREngine

CARD_EVERY_S = 0.25
CARD_HOLD_S = 30.0
HARDWARE = {
    "readers": [{"url": "serial:board/scanner"}],
    "barrier": "gpio:relay=board/barrier-relay&opened=board/barrier-opened",
    "beams": "gpio:a=board/beam-a&b=board/beam-b",
}


def _write(path: str, text: str) -> None:
    if os.path.islink(path):
        os.remove(path)
    with open(path, "w") as f:
        f.write(text)


class Board:
    def __init__(
        self,
        state_dir: str,
        card: str | None,
        barrier_jammed: bool = False,
        beam_blocked: bool = False,
    ) -> None:
        self.dir = os.path.join(state_dir, "board")
        os.makedirs(self.dir, exist_ok=True)
        self.card = card
        self.shown: list[str] = []  # what phones showed through board/phone
        relay = os.path.join(self.dir, "barrier-relay")
        position = os.path.join(self.dir, "barrier-opened")
        _write(relay, "0")
        if os.path.lexists(position):
            os.remove(position)
        if barrier_jammed:
            _write(position, "0")
        else:
            os.symlink("barrier-relay", position)
        _write(os.path.join(self.dir, "beam-a"), "1" if beam_blocked else "0")
        _write(os.path.join(self.dir, "beam-b"), "0")
        self.engine = PtyQREngine()
        link = os.path.join(self.dir, "scanner")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(self.engine.path, link)
        self.phone = os.path.join(self.dir, "phone")
        if os.path.lexists(self.phone):
            os.remove(self.phone)
        os.mkfifo(self.phone, 0o600)
        # read and write: the pipe stays open between writers, so reads never see an end
        self._phone_fd = os.open(self.phone, os.O_RDWR | os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._card_until = 0.0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._hold_card, daemon=True),
            threading.Thread(target=self._read_phone, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def unread(self) -> int:
        """Bytes the QR engine sent that the gate has not read yet."""
        out = fcntl.ioctl(self.engine.slave, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", out)[0])

    def opened(self) -> bool:
        with open(os.path.join(self.dir, "barrier-relay")) as f:
            return f.read().strip() == "1"

    def hold_card(self) -> None:
        """A technician holds the test card up to the reader (nothing, if there is none)."""
        with self._lock:
            self._card_until = time.monotonic() + CARD_HOLD_S

    def lower_card(self) -> None:
        with self._lock:
            self._card_until = 0.0

    def show(self, text: str) -> None:
        """A phone held up to the reader."""
        with self._lock:
            self.shown.append(text)
            self.engine.show(text)

    def _hold_card(self) -> None:
        while not self._stop.wait(CARD_EVERY_S):
            with self._lock:
                card = self.card if time.monotonic() < self._card_until else None
                if card and self.unread() == 0:
                    self.engine.show(card)

    def _read_phone(self) -> None:
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._phone_fd], [], [], 0.1)
            if not ready:
                continue
            try:
                buf += os.read(self._phone_fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            *lines, buf = buf.split(b"\n")
            for line in lines:
                text = line.strip().decode("ascii", "replace")
                if text:
                    self.show(text)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        os.close(self._phone_fd)
        try:
            os.remove(self.phone)
        except OSError:
            pass
        self.engine.close()
