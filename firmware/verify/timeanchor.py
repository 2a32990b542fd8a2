"""The gate's clock: `now = max(rtc - lead, last_good + monotonic_elapsed)`, persisted, suspicious
of an RTC that goes backwards or jumps forwards.

`last_good` is the newest time the gate trusted (a passage, or a time set by the back office);
it is persisted on every passage (`mark_good`), so after a reboot with a dead RTC battery, or an
RTC rolled back by someone with a screwdriver, the gate still knows it is at least that late.
`lead` is how far the RTC is known to run ahead of the gate's time (0 unless it jumped, below).

Within one boot the anchor knows the time that really passed (the tick counter), so it judges
every RTC reading against `last_good + elapsed` (rebased to the RTC whenever the two agree, so
slow drift between them never adds up to a false alarm):
- behind by more than `tolerance_s` (or no time at all: a flat battery): the `untrusted` flag;
  the time stays the anchored one;
- ahead by more than `ahead_tolerance_s`: the RTC jumped forward. The `rtc_ahead` flag (and
  `untrusted`); the jump is added to `lead` and the time stays the anchored one, so fresh ride
  codes are not mistaken for stale ones.
Either flag makes the validator limit offline acceptance (its clock policy), is persisted (a
reboot does not clear it) and is reported at sync and on the service console; `on_flag(reason)`
is called once when one is raised (the device logs it for technicians). Only a trusted time
(`set_trusted`: the back office at sync, a technician over the console) clears them.

Across a reboot the tick count is gone and only the RTC and `anchor.bin` are known: the gate
believes `rtc - lead` (downtime and a jump while it was off look the same), never less than
`last_good`, keeping the flags and the persisted `lead` (an RTC that jumped keeps its lead
while the power is off; one corrected while off makes the gate run `lead` behind until the next
trusted time). docs/ridecode.md, section 6, says what riders see in each case.

On disk (`anchor.bin`, layout in protocol/anchorfile.py), two slots written alternately in
place, so a torn write spoils at most the slot being written. A file with no good slot at all
is damage, not a torn write: the RTC is not trusted blindly, the anchor raises `untrusted`
("anchor.bin is damaged", the `anchor_damaged` alarm, `damaged` in status) until a trusted
time. A file in the old layout (no lead) is read as lead 0 and rewritten in the new layout,
atomically, at the next write. Every file
operation goes through the storage object `fs` (firmware/storage/fs.py).

The RTC and the tick counter are handed in (`rtc.now()` -> unix seconds, `rtc.set(t)`
optional; `ticks_ms()` and `ticks_diff(a, b)` as on MicroPython), so tests drive all of it.
"""

from firmware import platform, settings
from firmware.storage.fs import DISK
from protocol import anchorfile
from protocol.anchorfile import FLAG_AHEAD, FLAG_UNTRUSTED

_REBASE_MS = 3_600_000  # fold elapsed ticks into the anchor hourly (ticks wrap on MCUs)
AHEAD_TOLERANCE_S = settings.default("clock.ahead_tolerance_s")


class TimeAnchor:
    def __init__(
        self,
        rtc,
        path=None,
        tolerance_s: int = 2,
        ticks_ms=platform.ticks_ms,
        ticks_diff=platform.ticks_diff,
        fs=DISK,
        ahead_tolerance_s: int = AHEAD_TOLERANCE_S,
        on_flag=None,
    ):
        self.rtc = rtc
        self.path = path
        self.tolerance_s = tolerance_s
        self.ahead_tolerance_s = ahead_tolerance_s
        self._ticks_ms = ticks_ms
        self._ticks_diff = ticks_diff
        self.fs = fs
        self.untrusted = False  # either flag: the validator's clock policy applies
        self.rtc_ahead = False  # the RTC jumped forward (its own flag, for status and reports)
        self.reason = ""  # why untrusted, for the display and the sync report
        self.last_good = 0
        self.lead = 0  # seconds the RTC runs ahead of the gate's time
        self.on_flag = on_flag  # callable(reason), called when a flag is raised
        self._seq = 0
        self._layout_ok = True  # anchor.bin exists in the current layout: slots go in place
        self.write_errors = 0
        self.damaged = False  # anchor.bin had no good slot at boot (the anchor_damaged alarm)
        if path:
            self._load()
        self._base_time = self.last_good
        self._base_ms = 0
        self._base_ticks = ticks_ms()
        # a new boot: the time off is unknown, so the RTC (less its known lead) is believed
        rtc_now = rtc.now()
        if rtc_now is not None and rtc_now - self.lead > self.last_good:
            self._base_time = rtc_now - self.lead
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
            self._flag(FLAG_UNTRUSTED, "the RTC has no time")
            return mono
        t = rtc - self.lead
        if t > mono + self.ahead_tolerance_s:
            # Within one boot the elapsed time is known: the RTC jumped forward. Keep the
            # anchored time and remember how far ahead the RTC runs from now on.
            self.lead += t - mono
            self._flag(
                FLAG_AHEAD, "the RTC (%d) jumped %d s ahead of the anchored time" % (rtc, t - mono)
            )
            return mono
        if t >= mono:
            # The RTC moves forward: the anchor follows it (so slow drift between the RTC and
            # the tick counter never adds up to a false alarm).
            self._base_time = t
            self._base_ms = 0
            self._base_ticks = self._ticks_ms()
            return t
        if t + self.tolerance_s < mono:
            self._flag(
                FLAG_UNTRUSTED, "the RTC (%d) went behind the anchored time (%d)" % (rtc, mono)
            )
        return mono

    def _flag(self, flag: int, reason: str) -> None:
        ahead = flag == FLAG_AHEAD
        if self.untrusted and (self.rtc_ahead or not ahead):
            if ahead:
                self._persist(self.last_good)  # the lead grew
            return
        if not self.untrusted:
            self.reason = reason
        self.untrusted = True
        self.rtc_ahead = self.rtc_ahead or ahead
        self._persist(self.last_good)
        if self.on_flag is not None:
            self.on_flag(reason)

    def mark_good(self, t=None) -> None:
        """Persist `t` (default: now) as the newest good time; call on every passage."""
        if t is None:
            t = self.now()
        if t > self.last_good:
            self._persist(t)

    def set_trusted(self, t: int) -> None:
        """A trusted time arrived (the back office, a technician): believe it, clear the flags.
        The RTC is set to it; an RTC that cannot be set keeps its offset as the lead."""
        lead = 0
        set_rtc = getattr(self.rtc, "set", None)
        try:
            if set_rtc is None:
                raise OSError("this RTC cannot be set")
            set_rtc(t)
        except OSError:  # no set(), or a clock only the OS may set: remember its offset
            rtc = self.rtc.now()
            lead = rtc - t if rtc is not None else 0
        self.untrusted = False
        self.rtc_ahead = False
        self.damaged = False  # rewritten below
        self.reason = ""
        self.lead = lead
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
        flags = (FLAG_UNTRUSTED if self.untrusted else 0) | (FLAG_AHEAD if self.rtc_ahead else 0)
        slot = anchorfile.slot(self._seq, t, flags, self.lead)
        fs = self.fs
        try:
            if not self._layout_ok:
                # a new file, the old layout, or one a write failed on: replaced whole, so a
                # power cut leaves the old file (and its last_good) or the new one
                fs.write_atomic(self.path, anchorfile.whole(self._seq, slot))
                self._layout_ok = True
                return
            f = fs.open_file(self.path, "r+b")
            try:
                f.seek(anchorfile.slot_offset(self._seq))
                f.write(slot)
                fs.sync_file(f)
            finally:
                f.close()
        except OSError:
            self.write_errors += 1  # keeps time in memory; status() reports it
            self._layout_ok = False

    def _load(self) -> None:
        data = self.fs.read_file(self.path, None)
        if data is None:
            self._layout_ok = False  # no file yet: the first write creates it whole
            return
        best, self._layout_ok = anchorfile.parse(data)
        if best is None and data:
            # Both slots bad: last_good (and any flag) is unknown, so the RTC cannot be judged.
            # Flagged like an RTC that went back (the clock policy limits offline acceptance),
            # rewritten whole at the next write, cleared by the next trusted time.
            self.damaged = True
            self._layout_ok = False
            self._flag(FLAG_UNTRUSTED, "anchor.bin is damaged (both slots bad)")
            return
        if best is not None:
            self._seq, self.last_good, flags, self.lead = best
            if flags & (FLAG_UNTRUSTED | FLAG_AHEAD):
                self.untrusted = True
                self.rtc_ahead = bool(flags & FLAG_AHEAD)
                self.reason = "flagged before restart" + (
                    " (the RTC ran %d s ahead)" % self.lead if self.rtc_ahead else ""
                )

    def status(self) -> dict:
        return {
            "now": self.now(),
            "last_good": self.last_good,
            "untrusted": self.untrusted,
            "reason": self.reason,
            "rtc_ahead": self.rtc_ahead,
            "rtc_lead_s": self.lead,
            "write_errors": self.write_errors,
            "damaged": self.damaged,
        }
