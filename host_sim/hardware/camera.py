"""A simulated camera: a `cv2.VideoCapture` look-alike that films phones at the reader.

`present(text, frames)` holds a phone showing `text` in front of the lens for that many
frames (each drawn afresh from host_sim/hardware/frames.py: the rider's hand moves, the light
changes); otherwise the camera sees the empty reader (the same scene with fresh sensor
noise). Seeded: the same seed films the same pixels. drivers/linux/camera.CameraSource reads it as
it reads a real camera, and `simcam:` URLs open it through drivers/portable/registry.
"""

from typing import Any

import numpy as np

from host_sim.hardware import frames


class SimCamera:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.empty = frames.frame(None, self.rng).image.astype(np.int16)
        self.showing: list[str] = []
        self.opened = True

    def present(self, text: str, frames_: int = 3) -> None:
        self.showing.extend([text] * frames_)

    def isOpened(self) -> bool:  # noqa: N802 - VideoCapture's spelling
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if not self.opened:
            return False, None
        if self.showing:
            return True, frames.frame(self.showing.pop(0), self.rng).image
        noise = self.rng.normal(0, 1.5, self.empty.shape)
        return True, np.clip(self.empty + noise, 0, 255).astype(np.uint8)

    def release(self) -> None:
        self.opened = False


def from_url(url: str, machine: Any = None, ticks: Any = None) -> Any:
    """simcam:SEED -> a CameraSource reading a SimCamera."""
    from drivers.linux.camera import CameraSource

    seed = url.partition(":")[2] or "0"
    return CameraSource(SimCamera(int(seed)), ticks=ticks)


def register() -> None:
    from drivers.portable import registry

    registry.register("reader", "simcam", from_url)
