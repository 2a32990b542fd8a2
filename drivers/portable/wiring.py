"""A gate's hardware from its configuration: the one place that turns URLs into devices.

The same code wires a Linux gate (pyserial, OpenCV, sysfs GPIO) and an MCU gate (machine.UART,
machine.Pin); only the URLs differ. Portable. A hardware configuration (a dict: the "hardware"
entry of the gate's device.json):

    {
      "readers":   [{"url": "serial:/dev/ttyACM0?suffix=%0D", "direction": 1}],
      "barrier":   "serial:/dev/ttyUSB1",        # or "gpio:relay=17&closed=19"
      "beams":     "gpio:a=4&b=5&active_low=1",  # metro; "loops" for parking
      "inputs":    {"fire_alarm": "gpio:pin=12", "door": "gpio:pin=13",
                    "exit_button": "gpio:pin=14&active_low=1", "service": "gpio:pin=15"},
      "display":   "serial:/dev/ttyUSB2",
      "indicator": "gpio:green=21&red=22&buzzer=23",
      "rtc":       "machine:",                   # the board's RTC (MCU gates); default: the
                                                 # platform's clock (maintenance/wallclock.py)
      "disk":      "sim:station/metro-1/disk",   # the file layer; default: firmware.platform's
                                                 # (only the simulator's disks so far)
      "gnss":      "uart:2?baudrate=9600",       # bus validators: the GNSS receiver (no
    }                                            # barrier needed then)

`build(spec)` opens every device and returns a `Hardware`: what firmware/compose/device.py composes
a gate from (the station simulator too, from `sim:` URLs; tests and benchmarks may hand in
objects of the same shape). Each input name maps to the events its contact raises (INPUTS).
Readers open at their first read, and again after they fail: a QR engine unplugged at boot
fails scans and the technician's self-test with the reason, instead of stopping the gate (and
its service console) from starting.
"""

import time

from drivers.portable import registry
from firmware.gate.gate import NullDisplay

# input name -> (event when active, event when released)
INPUTS = {
    "fire_alarm": ("fire_alarm", "fire_clear"),
    "door": ("door_opened", "door_closed"),
    "exit_button": ("exit_request", None),
    "service": ("service_off", "service_on"),  # a key switch: on = out of service
}
KNOWN = (
    "readers",
    "barrier",
    "beams",
    "loops",
    "inputs",
    "display",
    "indicator",
    "rtc",
    "disk",
    "gnss",
    "anpr",
    "basket",
)
REOPEN_S = 1.0  # a reader that failed to open is tried again this much later


class Hardware:
    """The devices of one gate (drivers/portable/interfaces.py has each one's methods):

    barrier, display, indicator (or None)     the actuator and what the rider sees and hears
    beams, loops (or None)                    passage beams / vehicle loops: .read() -> (a, b)
    readers() -> [(reader, direction)]        direction None: the gate's own
    inputs() -> [(input, on_event, off_event)]
    gnss (or None)                            a bus validator's receiver: .fixes() -> [Fix]
    anpr (or None)                            a plate lane's camera: .poll() -> [PlateRead]
    basket (or None)                          a store door's basket source: .lines(), .send()
    rtc (or None), disk (optional)            the board's clock (`.now()`, `.set(t)`) and file
                                              layer, when they are not the platform's (an
                                              MCU's machine.RTC; simulators)
    """

    def __init__(
        self,
        barrier=None,
        display=None,
        indicator=None,
        readers=(),
        beams=None,
        loops=None,
        inputs=(),
        rtc=None,
        disk=None,
        gnss=None,
        anpr=None,
        basket=None,
    ):
        self.barrier = barrier
        self.gnss = gnss
        self.anpr = anpr
        self.basket = basket
        self.rtc = rtc
        self.disk = disk
        self.display = display if display is not None else NullDisplay()  # read by tests
        self.indicator = indicator
        self.beams = beams
        self.loops = loops
        self._readers = list(readers)
        self._inputs = list(inputs)

    def readers(self) -> list:
        return list(self._readers)

    def inputs(self) -> list:
        return list(self._inputs)

    def close(self) -> None:
        for dev, _d in self._readers:
            if hasattr(dev, "close"):
                dev.close()


class LazyReader:
    """A reader opened by `opener()` at its first read (and again, at most every REOPEN_S,
    after it failed). Until it opens, a read waits its timeout and raises OSError, which the
    gate loop counts and the self-test reports."""

    def __init__(self, name: str, opener, clock=time.time):
        self.name = name
        self.opener = opener
        self.clock = clock
        self.dev = None
        self._tried = None

    def read(self, timeout_s: float):
        if self.dev is None:
            now = self.clock()
            if self._tried is not None and now - self._tried < REOPEN_S:
                if timeout_s:
                    time.sleep(timeout_s)
                raise OSError("reader %s is not available" % self.name)
            self._tried = now
            try:
                self.dev = self.opener()
            except (OSError, ValueError) as e:
                raise OSError("reader %s: %s" % (self.name, e)) from None
        dev = self.dev
        try:
            return dev.read(timeout_s)  # type: ignore[attr-defined]
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        dev, self.dev = self.dev, None
        if dev is not None and hasattr(dev, "close"):
            try:
                dev.close()
            except OSError:
                pass


def build(hardware: dict, machine=None, ticks=None) -> Hardware:
    """Open every device of `hardware`. Unknown keys are an error (a typo must not leave a
    fire-alarm input unwired)."""
    for key in hardware:
        if key not in KNOWN:
            raise ValueError("unknown hardware key %r (known: %s)" % (key, ", ".join(KNOWN)))
    if "barrier" not in hardware and "gnss" not in hardware:
        raise ValueError("hardware needs a barrier (or door lock) URL, or a bus's gnss URL")

    def dev(kind, url):
        return registry.open_device(kind, url, machine=machine, ticks=ticks)

    def reader(url):
        return LazyReader(url, lambda: dev("reader", url))

    inputs = []
    for name, url in hardware.get("inputs", {}).items():
        if name not in INPUTS:
            raise ValueError("unknown input %r (known: %s)" % (name, ", ".join(sorted(INPUTS))))
        on, off = INPUTS[name]
        inputs.append((dev("input", url), on, off))
    return Hardware(
        barrier=dev("barrier", hardware["barrier"]) if "barrier" in hardware else None,
        display=dev("display", hardware["display"]) if "display" in hardware else None,
        indicator=dev("indicator", hardware["indicator"]) if "indicator" in hardware else None,
        readers=[(reader(r["url"]), r.get("direction")) for r in hardware.get("readers", ())],
        beams=dev("pair", hardware["beams"]) if "beams" in hardware else None,
        loops=dev("pair", hardware["loops"]) if "loops" in hardware else None,
        inputs=inputs,
        rtc=dev("rtc", hardware["rtc"]) if "rtc" in hardware else None,
        disk=dev("disk", hardware["disk"]) if "disk" in hardware else None,
        gnss=dev("gnss", hardware["gnss"]) if "gnss" in hardware else None,
        anpr=dev("anpr", hardware["anpr"]) if "anpr" in hardware else None,
        basket=dev("basket", hardware["basket"]) if "basket" in hardware else None,
    )
