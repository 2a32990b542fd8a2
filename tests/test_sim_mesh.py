"""The station mesh in the simulator: the hostile scenario's copiers show screenshots of codes
another gate just accepted. Without the mesh those pass and only the back office flags them
(the `replay` anomaly); with it, over the station LAN model (delay, loss, a partition), the
neighbouring gate refuses them as `replayed`, and every invariant still holds."""

import os

from host_sim.station import scenario
from host_sim.station.report import summary
from host_sim.station.simulation import Simulation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTILE = os.path.join(ROOT, "host_sim", "scenarios", "hostile_day.toml")


def _run(tmp_path, name, mesh, **lan):
    sc = scenario.load(HOSTILE)
    sc["duration_s"] = 1200
    sc["drain_s"] = 60
    sc["mix"]["screenshot"] = 0.3  # more copiers in a short run
    sc["mesh"]["enabled"] = mesh
    sc["mesh"].update(lan)
    return Simulation(sc, 5, str(tmp_path / name)).run()


def test_copies_are_refused_next_door_with_the_mesh_and_pass_without(tmp_path):
    off = _run(tmp_path, "off", False)
    on = _run(tmp_path, "on", True, drop_rate=0.05, partitions=1, partition_s=[120, 240])
    assert off["ok"] and on["ok"], [i for i in on["invariants"] if not i["ok"]]
    assert "mesh" not in off
    me = on["mesh"]
    admitted_off = off["fraud"]["kinds"]["copier"]["passages"]
    assert me["copies_shown"] > 20
    # without the mesh, copies pass at the next gate; with it only one across the partition may
    assert me["copies_admitted"] <= 3 and admitted_off >= 10 * max(1, me["copies_admitted"])
    assert me["copies_refused_replayed"] > 2 * me["copies_admitted"]
    assert off["backoffice"]["anomalies"].get("replay", 0) > on["backoffice"]["anomalies"].get(
        "replay", 0
    )
    assert me["lan"]["lost"] > 0 and len(me["partitions"]) == 1
    # datagrams the LAN reordered are refused as replayed messages, and caught up
    assert me["nodes"]["asks_sent"] > 0 and set(me["nodes"]["refused"]) <= {"mesh_replayed"}
    assert "mesh: %d copies shown" % me["copies_shown"] in summary(on, "out", HOSTILE)


def test_same_seed_same_mesh_report(tmp_path):
    a = _run(tmp_path, "a", True, drop_rate=0.05)
    b = _run(tmp_path, "b", True, drop_rate=0.05)
    assert a["mesh"] == b["mesh"] and a["rejects"] == b["rejects"]
