"""The station simulator end to end: one seed, one outcome; faults of every kind take effect
and the invariants still hold; `faregate sim run` (what `make run` does) prints its summary
and writes the JSON, JUnit and PNG reports."""

import json
import os
import subprocess

from PIL import Image

from host_sim.station import report as reports
from provisioning.cli.sim import run_scenario
from tests.conftest import faregate_argv
from tests.test_sim_invariants import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOISY = """
[backoffice]
sync_interval_s = 30
drop_rate = 0.03
duplicate_rate = 0.03
corrupt_rate = 0.02

[faults]
power_cuts = 2
torn_write_rate = 1.0
backoffice_outages = 1
outage_s = [60, 120]
partitions = 1
partition_s = [60, 120]
clock_jumps = 1
disk_full = 1
disk_full_s = [60, 120]
barrier_jams = 1
jam_clear_s = [30, 60]
"""


def _scenario(tmp_path, text: str, name: str = "s.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _files(out: str) -> tuple[bytes, bytes]:
    with (
        open(os.path.join(out, "report.json"), "rb") as f,
        open(os.path.join(out, "junit.xml"), "rb") as g,
    ):
        return f.read(), g.read()


def test_one_seed_gives_byte_identical_reports_another_seed_does_not(tmp_path, capsys):
    path = _scenario(tmp_path, SMALL.replace("[backoffice]\nsync_interval_s = 30\n", "") + NOISY)
    outs = []
    for n, seed in enumerate((11, 11, 12)):
        out = str(tmp_path / ("out%d" % n))
        assert run_scenario(path, seed, out, plots=False) == 0, capsys.readouterr().out
        outs.append(_files(out))
    assert outs[0] == outs[1]
    assert outs[0][0] != outs[2][0]
    report = json.loads(outs[0][0])
    # every fault kind happened, and the link noise did its worst
    assert {f["kind"] for f in report["faults"]} == {
        "power_cut",
        "backoffice_outage",
        "partition",
        "clock_jump",
        "disk_full",
        "barrier_jam",
    }
    net = report["network"]
    assert net["lost"] and net["duplicated"] and net["corrupted"]
    assert report["sync_failures"].get("unreachable", 0) > 0
    assert report["totals"]["records_committed"] == report["backoffice"]["records"]
    # wall-clock figures stay out of the reproducible files
    assert "wall" not in report and b"wall" not in outs[0][1]
    with open(str(tmp_path / "out0" / "wall.json")) as f:
        assert json.load(f)["wall_s"] > 0


FIXED = """
[[fault]]
kind = "power_cut"
at_s = 200
duration_s = 30
gate = "metro-entry-1"

[[fault]]
kind = "disk_full"
at_s = 100
duration_s = 240
gate = "metro-entry-2"

[[fault]]
kind = "clock_jump"
at_s = 150
jump_s = -3600
gate = "metro-exit-1"

[[fault]]
kind = "barrier_jam"
at_s = 60
duration_s = 120
gate = "parking-entry-1"

[[fault]]
kind = "backoffice_outage"
at_s = 300
duration_s = 300

[[fault]]
kind = "partition"
at_s = 600
duration_s = 200
gate = "store-1"

[faults]
torn_write_rate = 1.0
"""


def test_faults_at_fixed_times_take_effect_and_nothing_is_lost(tmp_path, capsys):
    path = _scenario(tmp_path, SMALL + FIXED)
    out = str(tmp_path / "out")
    code = run_scenario(path, 5, out, plots=False)
    printed = capsys.readouterr().out
    assert code == 0, printed
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    gates = {g["name"]: g for g in report["gates"]}
    assert [(f["t_s"], f["kind"]) for f in report["faults"]] == [
        (60, "barrier_jam"),
        (100, "disk_full"),
        (150, "clock_jump"),
        (200, "power_cut"),
        (300, "backoffice_outage"),
        (600, "partition"),
    ]
    # the power failed inside a storage operation (torn_write_rate 1); the disk lost what was
    # not durable, and the invariants below hold: nothing committed was lost
    cut = gates["metro-entry-1"]
    assert cut["power_cuts"] == cut["cuts_mid_operation"] == 1
    # the full disk refused passages (and journaled nothing it could not write)
    assert gates["metro-entry-2"]["rejects"].get("journal_full", 0) > 0
    # the jammed arm took the lane out of use until the technician came
    assert gates["parking-entry-1"]["jams"] == 1
    assert report["events"].get("barrier_jam") == 1
    assert report["events"].get("barrier_recovered") == 1
    # the backwards clock was flagged, then cleared by the back office's time at a sync
    assert gates["metro-exit-1"]["clock_untrusted"] is False
    assert report["sync_failures"].get("unreachable", 0) > 0
    check = report["backoffice"]["check"]
    assert check["missing"] == check["unexpected"] == check["altered"] == 0
    assert report["ok"]


def test_sim_run_prints_its_summary_and_writes_every_report(tmp_path):
    """What `make run` does, on the shipped default scenario."""
    out = tmp_path / "run"
    proc = subprocess.run(
        faregate_argv(
            "sim", "run", "host_sim/scenarios/default.toml", "--seed", "1", "--out", str(out)
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("station default, seed 1: 6 gates, 1.5 simulated hours")
    assert any(line.startswith("  invariants: 11 checked, all hold") for line in lines)
    assert "  report: %s" % (out / "report.json") in proc.stdout
    plots = [line for line in lines if line.startswith("  plots: ")]
    assert len(plots) == 1
    paths = plots[0][len("  plots: ") :].split(", ")
    assert [os.path.basename(p) for p in paths] == [name for name, _ in reports.PLOTS]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] >= 600
    with open(out / "junit.xml") as f:
        junit = f.read()
    assert 'tests="11" failures="0"' in junit
    with open(out / "report.json") as f:
        report = json.load(f)
    assert report["totals"]["accepted"] > 3000 and report["ok"]
    assert (out / "summary.txt").read_text().splitlines()[0] == lines[0]
    assert os.path.exists(out / "work" / "backoffice.sqlite")


def test_json_output_is_the_report(tmp_path, capsys):
    path = _scenario(tmp_path, SMALL.replace("duration_s = 900", "duration_s = 240"))
    out = str(tmp_path / "out")
    assert run_scenario(path, 2, out, as_json=True, plots=False) == 0
    printed, result = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with open(os.path.join(out, "report.json")) as f:
        assert printed == json.load(f)
    assert (result["event"], result["command"], result["ok"]) == ("result", "sim run", True)
    assert result["report"] == os.path.join(out, "report.json") and result["seed"] == 2
