"""The station mesh's settings: rows of firmware/settings.py's SCHEMA (same format), which adds
them on Linux gates only. An MCU gate has no mesh socket and so no mesh.* settings: its 512 KB
heap does not pay for them (docs/mcu.md); a config that sets them there is refused as an
unknown setting."""

DAY = 86400

# fmt: off
ROWS = (
    ("mesh.enabled", "bool", (), False, "",
     "announce accepted passages to the station's other gates and refuse theirs as replayed "
     "(station-wide replay and anti-passback; Linux gates; docs/mesh.md)"),
    ("mesh.port", "int", (1, 65535), 7790, "", "the UDP port the gate's mesh socket binds"),
    ("mesh.bind", "str", (1, 253), None, "",
     "the address the mesh socket binds (the station LAN's interface; none: every interface)"),
    ("mesh.peers", "str", (1, 2047), None, "",
     "where announcements go: the station's gates, \"host:port,host:port\" (a port left out "
     "is mesh.port; a gate skips its own), or one IPv4 multicast group \"239.x.y.z:port\""),
    ("mesh.heartbeat_ms", "int", (100, 60000), 1000, "ms",
     "an empty announcement carrying the gate's newest seq this often: peers see what they "
     "missed"),
    ("mesh.max_age_s", "int", (1, 3600), 30, "s",
     "a mesh message further than this from the gate's time is refused (mesh_stale)"),
    ("mesh.keep_s", "int", (60, DAY), 1200, "s",
     "how long a gate keeps its own announcements for peers' catch-up (at least the replay "
     "window and gate.passback_s)"),
    ("mesh.outbox", "int", (16, 1000000), 8192, "entries",
     "most announcements kept for catch-up"),
)
# fmt: on
