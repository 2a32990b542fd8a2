"""GPIO on a Linux gate through sysfs value files, as a stand-in for MicroPython's `machine`,
so the portable GPIO drivers (drivers/portable/gpio.py: barrier relay and limit switches, passage
beams, contact inputs, LEDs) run on Linux from the same URLs (docs/drivers.md):

    registry.open_device("barrier", "gpio:relay=17&opened=18", machine=gpio_sysfs)

A pin named by a number N is `/sys/class/gpio/gpioN/value` (exported, with its direction, by
the gate's setup); a pin named by a path is that file, holding "0" or "1" (the simulated
board wires plain files this way, host_sim/hardware/board.py).
"""


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, ident: int | str, mode: int = IN) -> None:
        self.path = ident if isinstance(ident, str) else "/sys/class/gpio/gpio%d/value" % ident
        self.mode = mode

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            with open(self.path) as f:
                return 1 if f.read(1) == "1" else 0
        with open(self.path, "w") as f:
            f.write("1" if v else "0")
        return None
