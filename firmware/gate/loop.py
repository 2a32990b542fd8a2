"""The gate's main loop: poll the hardware, turn levels into events, feed the gate.

Everything is handed in (drivers/portable/interfaces.py): readers yield code texts, beams and loops
report two levels, inputs one, and anything with `poll()` (barrier, indicator) reports events.
One `step()` polls each once; the MCU runs `while True: loop.step(0.01)`, the simulator calls
`step()` after each tick of its virtual clock.

    readers  [(reader, direction or None)]   .read(timeout_s) -> text | None
    beams    reader of passage beams         .read() -> (a, b)   -> sensors.BeamTracker
    loops    reader of vehicle loops         .read() -> (a, b)   -> sensors.LoopTracker
    inputs   [(input, on_event, off_event)]  .value() -> bool    -> sensors.EdgeInput
             e.g. (fire, "fire_alarm", "fire_clear"), (door, "door_opened", "door_closed"),
             (button, "exit_request", None), (key, "service_off", "service_on")
    pollers  [device]                        .poll() -> [events]  (barrier, indicator)
"""

from firmware.gate.sensors import BeamTracker, EdgeInput, LoopTracker


class GateLoop:
    def __init__(self, gate, readers=(), beams=None, loops=None, inputs=(), pollers=None):
        self.gate = gate
        self.ticks = gate.ticks
        self.readers = list(readers)
        self.sensors: list = []
        if beams is not None:
            self.sensors.append((beams, BeamTracker(int(gate.config["loiter_ms"]))))
        if loops is not None:
            self.sensors.append((loops, LoopTracker()))
        debounce = int(gate.config["debounce_ms"])
        self.inputs = [(dev, EdgeInput(on, off, debounce)) for dev, on, off in inputs]
        if pollers is None:
            pollers = [d for d in (gate.barrier, gate.indicator) if hasattr(d, "poll")]
        self.pollers = list(pollers)
        self.steps = 0
        self.read_errors = 0  # reader I/O failures (an engine unplugged): counted, not fatal
        self.on_decision = None  # optional callable(decision) after each scan (logging)
        gate.resync = self.resync

    def step(self, wait_s: float = 0.0) -> None:
        self.steps += 1
        gate = self.gate
        now = self.ticks()
        for dev, tracker in self.sensors:
            a, b = dev.read()
            for event in tracker.update(a, b, now):
                gate.on_event(event)
        for dev, edge in self.inputs:
            for event in edge.update(dev.value(), now):
                gate.on_event(event)
        for dev in self.pollers:
            for event in dev.poll():
                gate.on_event(event)
        first = True
        for reader, direction in self.readers:
            try:
                text = reader.read(wait_s if first else 0)
            except OSError:
                self.read_errors += 1
                text = None
            first = False
            if text:
                d = gate.on_scan(text, direction)
                if self.on_decision is not None:
                    self.on_decision(d)
        gate.tick()

    def resync(self) -> list:
        """Events re-announcing what the sensors see now (after the machine reset its state)."""
        out = []
        for _dev, tracker in self.sensors:
            out.extend(tracker.resync())
        return out

    def run(self, steps: int = -1, wait_s: float = 0.01) -> None:
        """Loop forever (or `steps` times). Bad input never ends it: the gate turns every
        scan into a Decision and every unknown event into a logged no-op."""
        while steps != 0:
            self.step(wait_s)
            if steps > 0:
                steps -= 1
