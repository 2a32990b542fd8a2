"""The MCU profile runs from an MCU firmware image: the .mpy bytecode of protocol/, firmware/
and the portable drivers (drivers.PORTABLE), with no .py beside it, runs the gate modes on the
MicroPython unix port against the fake `machine` module, and its entry point
(drivers/mcu_gate.py) runs a whole gate: UART QR engine, GPIO barrier and beams, sync over a
UART (tests/portable/test_mcu_gate.py)."""

import os
import shutil
import subprocess

from drivers import PORTABLE
from host_sim.sim_device import micropython_binary
from protocol import image
from provisioning import image_build
from tests.imagekit import BUILD_TIME, ROOT


def test_mcu_image_holds_the_portable_drivers_and_runs_the_modes(tmp_path):
    data = image_build.build(ROOT, "mcu", "1.0.0", 1, BUILD_TIME)
    _h, manifest, off = image.parse(data)
    paths = [f.path for f in manifest.files]
    for name in PORTABLE:
        assert "drivers/" + name[:-3] + ".mpy" in paths
    assert "drivers/qrengine_serial.mpy" not in paths  # pyserial: Linux only
    assert "drivers/mcu_gate.mpy" in paths and "drivers/link_serial.mpy" not in paths
    for f, start, end in image.file_spans(manifest, off):
        dest = tmp_path / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data[start:end])
    assert not list(tmp_path.rglob("*.py"))
    # the test side: the portable harness and the MCU profile's tests, as source
    shutil.copytree(os.path.join(ROOT, "tests", "portable"), tmp_path / "tests" / "portable")
    (tmp_path / "tests" / "__init__.py").write_text("")
    r = subprocess.run(
        [
            micropython_binary(),
            "-X",
            "heapsize=16M",
            "tests/portable/run.py",
            "test_mcu_profile",
            "test_mcu_gate",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 passed, 0 failed" in r.stdout
