"""`sim:` URLs: the station simulator's hardware as drivers/portable/registry backends.

python-can's virtual bus is just another interface, and its channels are shared by name; here a
simulated station is a `Bus` registered by name, holding each gate's simulated devices
(host_sim/hardware/simhw.SimHardware: the physical side the riders, cars and faults act on).
A gate is then wired exactly as a real one is: `drivers.portable.wiring.build(spec)` over a
hardware spec whose URLs name devices on the bus, and `firmware/compose/device.Device.open`
over the `Hardware` it returns.

    bus = simbus.Bus("station")             # registers the `sim` scheme, and the bus by name
    bus.add(sim_hardware)                   # a gate's devices, under sim_hardware.name
    spec = bus.spec("metro-1")              # {"barrier": "sim:station/metro-1/barrier", ...}
    hw = wiring.build(spec)                 # through the registry, as a real gate's device.json

URL form: `sim:BUS/GATE/PART`. PART, by kind:

    kind        part                 device (host_sim/hardware)
    reader      reader, exit_reader  simhw.ScanReader
    barrier     barrier              simhw.Barrier
    pair        beams, loops         passage.Beams, passage.Loops
    input       door, button         passage.Door, devices.SimInput
    display     display              devices.SimDisplay
    indicator   indicator            devices.SimIndicator
    rtc         rtc                  devices.SimRTC (drifts; clock-jump faults set it)
    disk        disk                 powerdisk.PowerDisk (power cuts, disk-full faults)

`sim:` URLs take no options: any `?...` is refused (pyserial refuses unknown URL options too),
as are an unknown bus, gate or part and a part opened as the wrong kind. Opening the same URL
twice gives the same device: the hardware outlives the firmware (a power cut drops only the
device object; the next boot wires the same barrier again).
"""

import weakref
from typing import Any

from drivers.portable import registry
from host_sim.errors import SimError

SCHEME = "sim"
PARTS = {
    "reader": ("reader", "exit_reader"),
    "barrier": ("barrier",),
    "pair": ("beams", "loops"),
    "input": ("door", "button"),
    "display": ("display",),
    "indicator": ("indicator",),
    "rtc": ("rtc",),
    "disk": ("disk",),
}

_BUSES: "weakref.WeakValueDictionary[str, Bus]" = weakref.WeakValueDictionary()


class SimURLError(SimError, ValueError):
    """A `sim:` URL that names nothing on a registered bus, or carries options."""


class Bus:
    """A simulated station's hardware, shared by name like a python-can virtual channel. The
    bus is held weakly: it goes away with the simulation that made it. Two live buses cannot
    share a name (a gate must never be wired to another run's devices)."""

    def __init__(self, name: str) -> None:
        if "/" in name or "?" in name or not name:
            raise SimURLError("a bus name cannot be empty or hold '/' or '?': %r" % name)
        if _BUSES.get(name) is not None:
            raise SimURLError("a simulated bus %r is already running" % name)
        register()
        self.name = name
        self.gates: dict[str, Any] = {}
        _BUSES[name] = self

    def add(self, hw: Any) -> None:
        """Put a gate's devices (a simhw.SimHardware) on the bus under `hw.name`."""
        if "/" in hw.name or "?" in hw.name:
            raise SimURLError("a gate name on a bus cannot hold '/' or '?': %r" % hw.name)
        self.gates[hw.name] = hw

    def url(self, gate: str, part: str) -> str:
        return "%s:%s/%s/%s" % (SCHEME, self.name, gate, part)

    def spec(self, gate: str) -> dict[str, Any]:
        """The hardware spec (drivers/portable/wiring.build's dict) of `gate`'s devices."""
        hw = self.gates[gate]
        spec: dict[str, Any] = {"readers": [{"url": self.url(gate, "reader")}]}
        if hw.exit_reader is not None:
            spec["readers"].append({"url": self.url(gate, "exit_reader"), "direction": 2})
        for key in ("barrier", "display", "indicator", "rtc", "disk"):
            spec[key] = self.url(gate, key)
        for key in ("beams", "loops"):
            if getattr(hw, key) is not None:
                spec[key] = self.url(gate, key)
        inputs = {"door": "door", "exit_button": "button"}  # wiring.INPUTS name -> part
        wired = {
            name: self.url(gate, part)
            for name, part in inputs.items()
            if getattr(hw, part) is not None
        }
        if wired:
            spec["inputs"] = wired
        return spec


def bus(name: str) -> Bus:
    """The registered bus called `name` (SimURLError if there is none)."""
    found = _BUSES.get(name)
    if found is None:
        raise SimURLError("no simulated bus %r (known: %s)" % (name, ", ".join(sorted(_BUSES))))
    return found


def open_part(kind: str, url: str) -> Any:
    """The device `url` (sim:BUS/GATE/PART) names, checked against `kind`."""
    rest = url.partition(":")[2]
    path, sep, query = rest.partition("?")
    if sep:
        raise SimURLError("sim: URLs take no options, got %r in %r" % (query, url))
    names = path.split("/")
    if len(names) != 3 or not all(names):
        raise SimURLError("a sim URL is sim:BUS/GATE/PART, not %r" % url)
    bus_name, gate, part = names
    if part not in PARTS[kind]:
        raise SimURLError(
            "%r is not a %s (a %s is one of: %s)" % (url, kind, kind, ", ".join(PARTS[kind]))
        )
    hw = bus(bus_name).gates.get(gate)
    if hw is None:
        raise SimURLError("no gate %r on simulated bus %r" % (gate, bus_name))
    dev = getattr(hw, part)
    if dev is None:
        raise SimURLError("gate %r has no %s (%r)" % (gate, part, url))
    return dev


def _factory(kind: str):
    def from_url(url: str, machine: Any = None, ticks: Any = None) -> Any:
        return open_part(kind, url)

    return from_url


def register() -> None:
    """Register the `sim` scheme for every kind of device the simulator provides."""
    for kind in PARTS:
        registry.register(kind, SCHEME, _factory(kind))
