"""The gate's wall clock as the service console reads and sets it (`faregate device set-time`).

    clock = RTC(state_dir, reset_time=None, fs=DISK)
    clock.now()      # unix seconds: the board's time plus the offset a technician set
    clock.set(t)     # durable: the offset goes to <state_dir>/rtc.json

The offset is kept instead of setting the system clock, which needs privileges a gate
application should not have. `reset_time` models a real-time clock whose backup battery is
flat: until a technician sets it, it reads `reset_time` plus the time since the gate started
(the simulator uses 2000-01-01, what such an RTC shows). Without `reset_time` an unset clock
is the board's own. The file goes through the storage object `fs` (firmware/storage/fs.py).
"""

import json
import time

from firmware.storage.fs import DISK

FILE = "rtc.json"


def _board_time() -> int:
    return int(time.time())


class RTC:
    def __init__(self, state_dir: str, reset_time=None, board_time=_board_time, fs=DISK):
        self.path = state_dir + "/" + FILE
        self.fs = fs
        self.board_time = board_time
        self.offset = 0
        raw = fs.read_file(self.path)
        if raw:
            try:
                self.offset = int(json.loads(raw)["offset"])
                return
            except (ValueError, KeyError, TypeError):
                pass  # an unreadable file: the clock is unset, as after a flat battery
        if reset_time:
            self.offset = int(reset_time) - board_time()

    def now(self) -> int:
        return self.board_time() + self.offset

    def set(self, t: int) -> None:
        self.offset = int(t) - self.board_time()
        self.fs.write_atomic(self.path, json.dumps({"offset": self.offset}).encode())
