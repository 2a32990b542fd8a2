"""The simulated board around a gate's firmware: its peripherals, as the gate image sees them.

The gate image runs unchanged (drivers/linux_gate.py reads `device.json`'s "hardware"), so the
board offers what a real one does, in the state directory's `board/` folder:
- `board/scanner`: a symlink to a QR engine on a real pty (host_sim.hardware.PtyQREngine), read
  by the gate through pyserial. While `card` is set, a technician holds the test card up: the
  engine sends its text every `CARD_EVERY_S`, as a QR engine in continuous mode does, unless
  the gate has not read the last few yet (then they are waiting for it, as on a UART's FIFO);
- `board/barrier-relay`, `board/barrier-opened`, `board/beam-a`, `board/beam-b`: GPIO pins as
  sysfs-style value files (drivers/gpio_sysfs.py). The opened limit switch is wired to the
  relay (a symlink: the barrier follows at once) unless the barrier is jammed; a blocked beam
  reads "1".

HARDWARE is the "hardware" entry of device.json that describes this board to the gate, in the
device URLs of drivers/wiring.py.
"""

import fcntl
import os
import struct
import termios
import threading

from host_sim.hardware import PtyQREngine

CARD_EVERY_S = 0.25
MAX_UNREAD = 64  # bytes of cards the gate has not read: hold back beyond that
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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hold_card, daemon=True)
        self._thread.start()

    def unread(self) -> int:
        """Bytes the QR engine sent that the gate has not read yet."""
        out = fcntl.ioctl(self.engine.slave, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", out)[0])

    def _hold_card(self) -> None:
        while not self._stop.wait(CARD_EVERY_S):
            if self.card and self.unread() < MAX_UNREAD:
                self.engine.show(self.card)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.engine.close()
