"""Build a running gate from its configuration: the one place that turns URLs into devices.

The same code wires a Linux gate (pyserial, OpenCV) and an MCU gate (machine.UART, GPIO); only
the URLs differ. Portable. A hardware configuration (a dict, e.g. from the gate's TOML):

    {
      "readers":   [{"url": "serial:/dev/ttyACM0?suffix=%0D", "direction": 1}],
      "barrier":   "serial:/dev/ttyUSB1",        # or "gpio:relay=17&closed=19"
      "beams":     "gpio:a=4&b=5&active_low=1",  # metro; "loops" for parking
      "inputs":    {"fire_alarm": "gpio:pin=12", "door": "gpio:pin=13",
                    "exit_button": "gpio:pin=14&active_low=1", "service": "gpio:pin=15"},
      "display":   "serial:/dev/ttyUSB2",
      "indicator": "gpio:green=21&red=22&buzzer=23",
    }

Each input name maps to the events its contact raises (INPUTS). The gate itself (validator,
journal, clock, mode, direction, settings) is made by the caller, who owns the keys and files.
"""

from drivers import registry
from firmware.gate import Gate
from firmware.loop import GateLoop

# input name -> (event when active, event when released)
INPUTS = {
    "fire_alarm": ("fire_alarm", "fire_clear"),
    "door": ("door_opened", "door_closed"),
    "exit_button": ("exit_request", None),
    "service": ("service_off", "service_on"),  # a key switch: on = out of service
}


class NullDisplay:
    """For gates without a display: remembers the last line (for status and self-test)."""

    last = ""

    def show(self, text: str) -> None:
        self.last = text


def build(
    hardware: dict,
    validator,
    journal,
    clock,
    mode: int = 0,
    direction: int = 0,
    station: int = 0,
    settings=None,
    limits=None,
    policy=None,
    machine=None,
    ticks=None,
) -> GateLoop:
    """Open every device of `hardware`, make the Gate and its loop. Unknown keys are an error
    (a typo must not leave a fire-alarm input unwired)."""
    known = ("readers", "barrier", "beams", "loops", "inputs", "display", "indicator")
    for key in hardware:
        if key not in known:
            raise ValueError("unknown hardware key %r (known: %s)" % (key, ", ".join(known)))
    if "barrier" not in hardware:
        raise ValueError("hardware needs a barrier (or door lock) URL")

    def dev(kind, url):
        return registry.open_device(kind, url, machine=machine, ticks=ticks)

    barrier = dev("barrier", hardware["barrier"])
    display = dev("display", hardware["display"]) if "display" in hardware else NullDisplay()
    indicator = dev("indicator", hardware["indicator"]) if "indicator" in hardware else None
    gate = Gate(
        validator,
        journal,
        barrier,
        display,
        clock,
        station=station,
        mode=mode,
        direction=direction,
        config=settings,
        policy=policy,
        limits=limits,
        indicator=indicator,
        ticks=ticks,
    )
    readers = []
    for r in hardware.get("readers", ()):
        readers.append((dev("reader", r["url"]), r.get("direction")))
    inputs = []
    for name, url in hardware.get("inputs", {}).items():
        if name not in INPUTS:
            raise ValueError("unknown input %r (known: %s)" % (name, ", ".join(sorted(INPUTS))))
        on, off = INPUTS[name]
        inputs.append((dev("input", url), on, off))
    beams = dev("pair", hardware["beams"]) if "beams" in hardware else None
    loops = dev("pair", hardware["loops"]) if "loops" in hardware else None
    return GateLoop(gate, readers, beams=beams, loops=loops, inputs=inputs)
