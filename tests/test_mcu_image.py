"""The MCU profile runs from an MCU firmware image: the .mpy bytecode of protocol/, firmware/
and the portable drivers (drivers/portable/, as drivers/manifest.py says), with no .py beside it,
runs the gate modes on the MicroPython unix port against the fake `machine` module, and its entry
point (drivers/mcu/entry.py) runs a whole gate: UART QR engine, GPIO barrier and beams, sync over a
UART (tests/portable/test_mcu_gate.py), each in a 512 KB heap."""

import os
import shutil
import subprocess

from host_sim.hardware.sim_device import micropython_binary
from protocol import image
from provisioning import image_build
from provisioning.image_build import source_files
from tests.imagekit import BUILD_TIME, ROOT


def test_mcu_image_holds_the_portable_drivers_and_runs_the_modes(tmp_path):
    data = image_build.build(ROOT, "mcu", "1.0.0", 1, BUILD_TIME)
    _h, manifest, off = image.parse(data)
    paths = [f.path for f in manifest.files]
    portable = [r for r in source_files(ROOT, "linux") if r.startswith("drivers/portable/")]
    assert len(portable) >= 7
    for rel in portable:
        assert rel[:-3] + ".mpy" in paths
    assert "drivers/linux/qrengine_serial.mpy" not in paths  # pyserial: Linux only
    assert "drivers/mcu/entry.mpy" in paths and "drivers/linux/link_serial.mpy" not in paths
    for f, start, end in image.file_spans(manifest, off):
        dest = tmp_path / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data[start:end])
    assert not list(tmp_path.rglob("*.py"))
    # the test side: the portable harness and the MCU profile's tests, as source
    shutil.copytree(os.path.join(ROOT, "tests", "portable"), tmp_path / "tests" / "portable")
    (tmp_path / "tests" / "__init__.py").write_text("")
    # each module is one gate in its own interpreter, in an MCU's heap (docs/mcu.md)
    for module, n in (("test_mcu_profile", 9), ("test_mcu_gate", 3)):
        r = subprocess.run(
            [micropython_binary(), "-X", "heapsize=512K", "tests/portable/run.py", module],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "%d passed, 0 failed" % n in r.stdout
