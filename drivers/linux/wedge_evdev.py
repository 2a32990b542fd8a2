"""A USB keyboard-wedge scanner on the Linux gate, read as input events through `evdev`.

Most USB scanners present as a keyboard (HID keyboard, "KBW"): each code they read is typed, then
Enter. The gate reads the scanner's event device directly and grabs it (EVIOCGRAB), so its
keystrokes never reach a console or a login prompt, and turns key codes back into text with the
layout the scanner is set to (drivers/linux/keymap.py). URL (docs/drivers.md):

    evdev:/dev/input/by-id/usb-SCANNER-event-kbd?layout=us
    evdev:?name=Honeywell%20Scanner&layout=de    the first device whose name contains this
    evdev:?vendor=0c2e&product=0b61              the first device with this USB vendor/product
    evdev:recorded.events                        a recording (raw struct input_event records,
                                                 what `cat /dev/input/eventN > f` saves),
                                                 replayed: for tests and for a technician's
                                                 "what did the scanner type" questions

Options: layout (us), grab (1), prefix, aim, max_line, gap_ms (as the serial engines':
drivers/portable/qrengine.py; a scan whose keys stop for gap_ms without Enter is dropped).
"""

import os
import select
import struct
from typing import Any

from drivers.linux.keymap import KeyDecoder
from drivers.portable import qrengine

# struct input_event of a 64-bit Linux: struct timeval (two longs), u16 type, u16 code, s32 value
EVENT = struct.Struct("<qqHHi")
OPTIONS = ("layout", "grab", "name", "vendor", "product", "prefix", "aim", "max_line", "gap_ms")


class EvdevSource:
    """Events from a live input device, grabbed (no other reader, no console gets them)."""

    def __init__(self, device: Any, grab: bool = True) -> None:
        self.device = device
        self.grabbed = False
        if grab:
            device.grab()  # OSError (EBUSY) when another process holds the scanner
            self.grabbed = True

    def events(self, timeout_s: float) -> list[tuple[int, int, int, int]]:
        ready, _, _ = select.select([self.device.fd], [], [], timeout_s)
        if not ready:
            return []
        out = []
        try:
            for e in self.device.read():
                out.append((e.type, e.code, e.value, e.sec * 1000 + e.usec // 1000))
        except BlockingIOError:
            pass
        return out

    def close(self) -> None:
        if self.grabbed:
            try:
                self.device.ungrab()
            except OSError:
                pass  # unplugged: the kernel dropped the grab with the device
        self.device.close()


class RecordedSource:
    """Events from a recording of raw input_event records, in order, then nothing."""

    def __init__(self, data: bytes) -> None:
        if len(data) % EVENT.size:
            raise ValueError("a recording holds whole %d-byte input events" % EVENT.size)
        self.records = [EVENT.unpack_from(data, i) for i in range(0, len(data), EVENT.size)]
        self.at = 0

    def events(self, timeout_s: float) -> list[tuple[int, int, int, int]]:
        out = []
        for sec, usec, etype, code, value in self.records[self.at : self.at + 4096]:
            out.append((etype, code, value, sec * 1000 + usec // 1000))
        self.at += len(out)
        return out

    @property
    def ended(self) -> bool:
        return self.at >= len(self.records)

    def close(self) -> None:
        pass


def record(events: list[tuple[int, int, int, int]]) -> bytes:
    """(type, code, value, ms) events as a recording RecordedSource replays."""
    out = bytearray()
    for etype, code, value, ms in events:
        out += EVENT.pack(ms // 1000, (ms % 1000) * 1000, etype, code, value)
    return bytes(out)


class WedgeReader:
    """A reader (`read(timeout_s) -> text | None`) over an event source and a KeyDecoder."""

    def __init__(
        self,
        source: Any,
        layout: str = "us",
        prefix: bytes = b"",
        aim: int = 0,
        max_line: int = 1024,
        gap_ms: int = 200,
    ) -> None:
        self.source = source
        self.keys = KeyDecoder(layout, max_line, gap_ms)
        self.prefix = prefix
        self.aim = aim
        self.stats = self.keys.stats
        self.stats.update(lines=0, garbage=0, no_aim=0, symbology=0)
        self._texts: list[str] = []
        self._last_ms = 0

    def read(self, timeout_s: float = 1.0) -> str | None:
        """The next scan's text, or None when none finished within timeout_s."""
        if not self._texts:
            events = self.source.events(timeout_s)
            for etype, code, value, ms in events:
                self._last_ms = ms
                for line in self.keys.feed(etype, code, value, ms):
                    text = qrengine.line_text(line, self.prefix, self.aim, self.stats)
                    if text is not None:
                        self._texts.append(text)
        return self._texts.pop(0) if self._texts else None

    def close(self) -> None:
        self.source.close()


def find_device(name: str = "", vendor: int | None = None, product: int | None = None) -> Any:
    """The first input device matching the name (a substring) and USB ids; OSError if none."""
    import evdev

    for path in sorted(evdev.list_devices()):
        dev = evdev.InputDevice(path)
        ok = (
            (not name or name in dev.name)
            and (vendor is None or dev.info.vendor == vendor)
            and (product is None or dev.info.product == product)
        )
        if ok:
            return dev
        dev.close()
    raise OSError("no input device matches name=%r vendor=%r product=%r" % (name, vendor, product))


def from_url(url: str, machine: Any = None, ticks: Any = None) -> WedgeReader:
    rest = url[len("evdev:") :] if url.startswith("evdev:") else url
    target, _, query = rest.partition("?")
    opts = qrengine.parse_options(query)
    for key in opts:
        if key not in OPTIONS:
            raise ValueError(
                "unknown evdev reader option %r (known: %s)" % (key, ", ".join(OPTIONS))
            )
    reader_opts = {k: opts[k] for k in ("prefix", "aim", "max_line", "gap_ms") if k in opts}
    layout = str(opts.get("layout", "us"))
    source: Any
    if target and os.path.isfile(target):
        with open(target, "rb") as f:
            source = RecordedSource(f.read())
    else:
        import evdev

        if target:
            device = evdev.InputDevice(target)
        else:
            device = find_device(
                str(opts.get("name", "")),
                int(str(opts["vendor"]), 16) if "vendor" in opts else None,
                int(str(opts["product"]), 16) if "product" in opts else None,
            )
        source = EvdevSource(device, grab=str(opts.get("grab", "1")) != "0")
    return WedgeReader(source, layout, **reader_opts)
