"""The gate's clock: `now = max(rtc, last_good + monotonic_elapsed)`, persisted, suspicious of
an RTC that goes backwards.

`last_good` is the newest time the gate trusted (a passage, or a time set by the back office);
it is persisted on every passage (`mark_good`), so after a reboot with a dead RTC battery, or an
RTC rolled back by someone with a screwdriver, the gate still knows it is at least that late.
An RTC reading more than `tolerance_s` behind the anchor (at start, or while running) raises the
`untrusted` flag: the validator then limits offline acceptance (its clock policy), the flag is
persisted (a reboot does not clear it) and reported at sync. Only a trusted time from the back
office (`set_trusted`) clears it.

On disk (`anchor.bin`), two 16-byte slots written alternately in place, so a torn write
spoils at most the slot being written:
    u32 seq | u32 last_good | u32 flags (bit 0 untrusted) | u32 crc32(first 12)

The RTC and the tick counter are handed in (`rtc.now()` -> unix seconds; `ticks_ms()` and
`ticks_diff(a, b)` as on MicroPython), so tests drive all of it.
"""

import struct
from binascii import crc32

from firmware import platform

FLAG_UNTRUSTED = 1
_SLOT = ">III"
SLOT_LEN = 16
_REBASE_MS = 3_600_000  # fold elapsed ticks into the anchor hourly (ticks wrap on MCUs)


class TimeAnchor:
    def __init__(
        self,
        rtc,
        path=None,
        tolerance_s: int = 2,
        ticks_ms=platform.ticks_ms,
        ticks_diff=platform.ticks_diff,
        sync=platform.sync_file,
    ):
        self.rtc = rtc
        self.path = path
        self.tolerance_s = tolerance_s
        self._ticks_ms = ticks_ms
        self._ticks_diff = ticks_diff
        self._sync = sync
        self.untrusted = False
        self.reason = ""  # why untrusted, for the display and the sync report
        self.last_good = 0
        self._seq = 0
        self.write_errors = 0
        if path:
            self._load()
        self._base_time = self.last_good
        self._base_ms = 0
        self._base_ticks = ticks_ms()
        self.now()  # checks the RTC against the persisted anchor at once

    def _mono(self) -> int:
        t = self._ticks_ms()
        ms = self._ticks_diff(t, self._base_ticks) + self._base_ms
        if ms >= _REBASE_MS:
            self._base_time += ms // 1000
            self._base_ms = ms % 1000
            self._base_ticks = t
            ms = self._base_ms
        return self._base_time + ms // 1000

    def now(self) -> int:
        mono = self._mono()
        rtc = self.rtc.now()
        if rtc is None:  # no RTC, or it lost its time (a flat backup battery)
            self._flag("the RTC has no time")
            return mono
        if rtc >= mono:
            # The RTC moves forward: the anchor follows it (so slow drift between the RTC and
            # the tick counter never adds up to a false alarm).
            self._base_time = rtc
            self._base_ms = 0
            self._base_ticks = self._ticks_ms()
            return rtc
        if rtc + self.tolerance_s < mono:
            self._flag("the RTC (%d) went behind the anchored time (%d)" % (rtc, mono))
        return mono

    def _flag(self, reason: str) -> None:
        if not self.untrusted:
            self.untrusted = True
            self.reason = reason
            self._persist(self.last_good)

    def mark_good(self, t=None) -> None:
        """Persist `t` (default: now) as the newest good time; call on every passage."""
        if t is None:
            t = self.now()
        if t > self.last_good:
            self._persist(t)

    def set_trusted(self, t: int) -> None:
        """A trusted time arrived (the back office, a technician): believe it, clear the flag."""
        set_rtc = getattr(self.rtc, "set", None)
        if set_rtc is not None:
            set_rtc(t)
        self.untrusted = False
        self.reason = ""
        self._base_time = t
        self._base_ms = 0
        self._base_ticks = self._ticks_ms()
        self._persist(t)  # may go backwards: the trusted source wins

    def set(self, t: int) -> None:
        """The service console's clock interface: a technician's time is a trusted one."""
        self.set_trusted(t)

    def _persist(self, t: int) -> None:
        self.last_good = t
        if not self.path:
            return
        self._seq += 1
        body = struct.pack(_SLOT, self._seq, t, FLAG_UNTRUSTED if self.untrusted else 0)
        slot = body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)
        try:
            if not platform.path_exists(self.path):
                platform.write_atomic(self.path, bytes(2 * SLOT_LEN))
            with open(self.path, "r+b") as f:
                f.seek((self._seq % 2) * SLOT_LEN)
                f.write(slot)
                self._sync(f)
        except OSError:
            self.write_errors += 1  # keeps time in memory; status() reports it

    def _load(self) -> None:
        data = platform.read_file(self.path, b"")
        best = None
        for i in (0, 1):
            s = data[i * SLOT_LEN : (i + 1) * SLOT_LEN]
            if len(s) != SLOT_LEN:
                continue
            seq, t, flags = struct.unpack(_SLOT, s[:12])
            if crc32(s[:12]) & 0xFFFFFFFF != struct.unpack(">I", s[12:])[0] or seq == 0:
                continue
            if best is None or seq > best[0]:
                best = (seq, t, flags)
        if best is not None:
            self._seq, self.last_good, flags = best
            if flags & FLAG_UNTRUSTED:
                self.untrusted = True
                self.reason = "flagged before restart"

    def status(self) -> dict:
        return {
            "now": self.now(),
            "last_good": self.last_good,
            "untrusted": self.untrusted,
            "reason": self.reason,
            "write_errors": self.write_errors,
        }
