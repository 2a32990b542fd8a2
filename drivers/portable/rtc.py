"""Real-time clocks: `.now() -> unix seconds`, `.set(unix_seconds)`. Portable.

The gate never trusts an RTC alone: the time anchor (firmware, issue 3) computes
`now = max(rtc, last_good + monotonic_elapsed)` on top of one of these.

    SystemRTC    the Linux gate's system clock (set by NTP or the back office)
    MachineRTC   an MCU's machine.RTC, whose datetime() is a calendar tuple
                 (year, month, day, weekday, hours, minutes, seconds, subseconds), in UTC
"""

import time


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int):
    """(year, month, day) of a day count since 1970-01-01; the inverse of days_from_civil."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (1 if m <= 2 else 0), m, d)


def to_unix(dt) -> int:
    """machine.RTC().datetime() tuple -> unix seconds."""
    year, month, day, _wd, hh, mm, ss = dt[:7]
    return days_from_civil(year, month, day) * 86400 + hh * 3600 + mm * 60 + ss


def from_unix(t: int):
    """unix seconds -> machine.RTC datetime tuple (weekday 0 = Monday, subseconds 0)."""
    days, rem = divmod(int(t), 86400)
    y, m, d = civil_from_days(days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return (y, m, d, weekday, rem // 3600, rem % 3600 // 60, rem % 60, 0)


class SystemRTC:
    def now(self) -> int:
        return int(time.time())

    def set(self, t: int) -> None:
        raise OSError("set the Linux gate's clock through the OS (timedatectl / NTP)")


class MachineRTC:
    def __init__(self, rtc):
        self.rtc = rtc

    def now(self) -> int:
        return to_unix(self.rtc.datetime())

    def set(self, t: int) -> None:
        self.rtc.datetime(from_unix(t))


def system_from_url(url: str, machine=None, ticks=None) -> SystemRTC:
    """system:"""
    return SystemRTC()


def machine_from_url(url: str, machine=None, ticks=None) -> MachineRTC:
    """machine:"""
    if machine is None:
        import machine  # type: ignore[no-redef]
    return MachineRTC(machine.RTC())
