"""Scenario files: what `faregate sim run SCENARIO.toml` simulates, checked against one schema.

The tables below (TOP, LANE, SECTIONS, FAULT) are the whole format: every key with its type,
default, unit and meaning. docs/scenarios.md shows the same tables (`doc_table`; the test
tests/test_sim_scenarios.py keeps the two in step), and `load()` refuses unknown keys and bad
values with the file, the key and what is wrong.

    scenario = load("host_sim/scenarios/rush_hour.toml")   # defaults filled in, all checked
    scenario["faults"]["power_cuts"]                         # -> 1

Types: "str", "int" (whole, >= 0), "sint" (whole, may be negative), "float" (>= 0; an int is
fine), "bool", "range" ([low, high] of numbers, low <= high), "time" (an RFC 3339 UTC string
such as "2026-01-12T06:30:00Z", or unix seconds), and "profile" ([[hour of day, fraction],
...], hours rising from 0 to 24, linear in between).
"""

import datetime
import json
import tomllib
from typing import Any

from firmware.settings import default as _fw
from host_sim.errors import SimError

# (key, type, default, unit, meaning); a section's name "" is the top level.
TOP: list[tuple[str, str, Any, str, str]] = [
    (
        "name",
        "str",
        "",
        "",
        "name used in reports and the default output directory "
        "(default: the file name without .toml)",
    ),
    ("description", "str", "", "", "one line printed with the summary"),
    ("start", "time", "2026-01-12T06:30:00Z", "UTC", "simulated time the run starts"),
    ("duration_s", "int", 3600, "s", "simulated time during which riders arrive"),
    ("drain_s", "int", 300, "s", "after duration_s: riders already queued finish, no new ones"),
    ("station", "int", 12, "", "station number journaled in every record"),
    ("step_ms", "int", 50, "ms", "virtual time between two turns of a busy gate's main loop"),
    ("idle_step_ms", "int", 10000, "ms", "turns of a gate with nothing to do (timers still run)"),
    ("sample_s", "int", 60, "s", "interval of the time series in the report and the plots"),
    ("plots", "bool", True, "", "write the PNG plots (matplotlib) next to report.json"),
    (
        "host_fsync",
        "bool",
        False,
        "",
        "also fsync each gate's files to the host's disk when the firmware syncs them, and "
        "the back office's SQLite commits (synchronous=FULL, else OFF); the "
        "outcome is the same (a simulated power cut never loses the host's cache), only the "
        "wall time grows (true: to measure the host disk)",
    ),
]

LANE: list[tuple[str, str, Any, str, str]] = [
    ("name", "str", "", "", "gate name prefix (default: kind and direction, e.g. metro-entry)"),
    (
        "kind",
        "str",
        "metro",
        "",
        "metro (turnstile, passage beams), parking (arm, vehicle loops) "
        "or store (door lock, door contact, entry and exit readers)",
    ),
    ("direction", "str", "entry", "", "entry or exit (a store door serves both)"),
    ("gates", "int", 1, "", "how many identical gates this lane group has"),
    (
        "peak_per_hour",
        "float",
        600.0,
        "1/h",
        "arrivals per hour for the whole group at the profile's highest point",
    ),
    (
        "profile",
        "str",
        "flat",
        "",
        "name of a profile in [profiles] (built in: flat, morning_peak, evening_peak, day)",
    ),
    ("reader", "str", "qr_engine", "", "qr_engine or camera: the decode latency drawn per scan"),
    (
        "barrier_open_ms",
        "int",
        0,
        "ms",
        "barrier or lock travel time to open (0: the kind's "
        "usual, metro 300, parking 1500, store 100)",
    ),
    ("barrier_close_ms", "int", 0, "ms", "barrier or lock travel time to close (0: as above)"),
    ("stay_s", "range", [120, 1200], "s", "store only: how long a shopper stays inside"),
    (
        "station",
        "int",
        0,
        "",
        "the station these gates stand in (0: the top-level station); a line is several "
        "stations' lanes in one scenario",
    ),
]

SECTIONS: dict[str, list[tuple[str, str, Any, str, str]]] = {
    "riders": [
        (
            "issuers",
            "int",
            1,
            "",
            "issuers (1..3) whose credentials riders hold, accounts spread over them in turn; "
            "each gets a daily statement it verifies (docs/settlement.md)",
        ),
        (
            "population",
            "int",
            20000,
            "",
            "rider accounts that may show up (keys made on first use)",
        ),
        ("walk_speed", "range", [1.1, 1.5], "m/s", "walking speed of a rider (cars drive 2 m/s)"),
        (
            "give_up_ms",
            "int",
            4000,
            "ms",
            "a rider whose gate does not open in this time turns back",
        ),
        (
            "clock_off_s",
            "range",
            [5, 600],
            "s",
            "phone clock error of clock_off riders (either sign)",
        ),
        ("screenshot_age_s", "range", [3, 45], "s", "age of the screenshot a replayer shows"),
        ("tailgate_gap_m", "range", [0.5, 0.9], "m", "how close a tailgater follows"),
        ("credential_days", "int", 30, "days", "validity of riders' credentials"),
        (
            "away_s",
            "range",
            [300, 7200],
            "s",
            "a walk-in with a good code who went in through an entry lane comes back out through "
            "the same station's exit lanes of that kind: not before the low end, at the latest "
            "at the high end (the exit lanes' own arrivals bring back whoever has been away "
            "longest in between)",
        ),
    ],
    "trips": [
        (
            "commuters",
            "int",
            0,
            "riders",
            "honest riders making a round trip home -> work -> home across the line "
            "(their own accounts; the money invariant checks what each is charged)",
        ),
        ("depart_h", "range", [7.0, 9.0], "h", "hour of the day (UTC) a commuter leaves home"),
        ("work_s", "range", [21600, 32400], "s", "time between arriving at work and leaving"),
        ("ride_s", "int", 150, "s", "time on the train per station travelled"),
        (
            "transfer_share",
            "float",
            0.1,
            "",
            "share who change trains at a station in between on the way out: they exit and "
            "enter again there (two journeys)",
        ),
        (
            "park_share",
            "float",
            0.1,
            "",
            "share who drive to the home station's car park (needs parking entry and exit "
            "lanes there)",
        ),
        (
            "store_share",
            "float",
            0.1,
            "",
            "share who visit the work station's store before going home (needs a store there; "
            "they stay the store lane's stay_s)",
        ),
    ],
    "mix": [
        ("valid", "float", 0.9, "", "share of arrivals with a good code"),
        ("expired", "float", 0.02, "", "credential expired yesterday"),
        ("forged", "float", 0.02, "", "credential signed by a key that is not the issuer's"),
        ("screenshot", "float", 0.02, "", "a screenshot of a code just shown at another gate"),
        (
            "denied",
            "float",
            0.01,
            "",
            "an account on the deny list (refused once the gate has the list)",
        ),
        ("tailgating", "float", 0.02, "", "a good code, and someone without one close behind"),
        ("clock_off", "float", 0.01, "", "a good code from a phone whose clock is off"),
        (
            "cloned",
            "float",
            0.0,
            "",
            "a phone holding a key cloned from another (a small pool of accounts, each used by "
            "the original phone and by the clone, each counting on its own)",
        ),
        (
            "dodger",
            "float",
            0.0,
            "",
            "a fare dodger (a small pool of accounts): taps in at entry lanes and never taps "
            "out (at exit lanes they slip through behind someone)",
        ),
    ],
    "gate": [  # firmware settings: defaults from firmware/settings.py
        (
            "window_s",
            "int",
            _fw("validation.window_s"),
            "s",
            "how old a presentation may be (validation.window_s)",
        ),
        (
            "skew_s",
            "int",
            _fw("validation.skew_s"),
            "s",
            "how far ahead of the gate a presentation may be",
        ),
        (
            "pass_ms",
            "int",
            _fw("gate.pass_ms"),
            "ms",
            "metro: how long an opened gate waits for the rider",
        ),
        (
            "parking_pass_ms",
            "int",
            _fw("gate.parking_pass_ms"),
            "ms",
            "parking: how long the raised arm waits",
        ),
        (
            "unlock_ms",
            "int",
            _fw("gate.unlock_ms"),
            "ms",
            "store: how long the door stays unlocked",
        ),
        (
            "max_unsynced",
            "int",
            _fw("limits.max_unsynced_count"),
            "",
            "offline limit: unsynced passages per gate",
        ),
        (
            "max_unsynced_age_s",
            "int",
            _fw("limits.max_unsynced_age_s"),
            "s",
            "offline limit: age of the oldest unsynced passage",
        ),
        (
            "at_limit",
            "str",
            _fw("limits.at_limit"),
            "",
            "refuse or flag passages beyond an offline limit",
        ),
        ("rtc_drift_ppm", "range", [-20, 20], "ppm", "each gate's real-time clock drift"),
    ],
    "backoffice": [
        ("sync_interval_s", "int", 120, "s", "each gate starts a sync session this often"),
        ("retry_s", "int", 30, "s", "after a failed session the gate tries again this much later"),
        ("timeout_s", "int", 10, "s", "a session with no answer for this long is abandoned"),
        ("batch_size", "int", 500, "records", "records per BATCH"),
        ("latency_ms", "range", [2, 40], "ms", "one-way delay of each transmission"),
        ("drop_rate", "float", 0.0, "", "chance a transmission is lost"),
        ("duplicate_rate", "float", 0.0, "", "chance a transmission arrives twice"),
        ("corrupt_rate", "float", 0.0, "", "chance one byte of a transmission is flipped"),
    ],
    "denylist": [
        ("initial", "int", 20, "accounts", "accounts denied in the list provisioned on the gates"),
        (
            "publish_every_s",
            "int",
            900,
            "s",
            "the back office publishes a deny-list delta this often (0: never)",
        ),
        ("per_delta", "int", 5, "accounts", "accounts added by each delta"),
    ],
    "risk": [  # the back office's risk engine (host_sim/backoffice/risk.py, docs/fraud.md)
        ("enabled", "bool", False, "", "run the risk engine: scan, then publish deny deltas"),
        ("scan_every_s", "int", 10, "s", "how often the engine scans what arrived"),
        (
            "deny_valid_s",
            "int",
            0,
            "s",
            "valid_until of the deny deltas it publishes, from then (0: none)",
        ),
        ("refresh_before_s", "int", 0, "s", "an empty delta refreshes a list this close to it"),
        ("velocity_max", "int", 8, "passages", "the velocity rule's max (per 600 s)"),
        ("missing_taps_max", "int", 5, "", "missing_taps: journeys with a tap missing allowed"),
        (
            "missing_taps_action",
            "str",
            "auto",
            "",
            "missing_taps: auto or review (review: nothing is denied in the run)",
        ),
    ],
    "faults": [
        ("power_cuts", "int", 0, "", "power cuts, each at a seeded time on a seeded gate"),
        ("power_off_s", "range", [20, 120], "s", "how long a gate stays without power"),
        (
            "torn_write_rate",
            "float",
            0.5,
            "",
            "chance a power cut falls inside one of the gate's next storage operations (a write, "
            "fsync or rename in progress), not between two",
        ),
        (
            "backoffice_outages",
            "int",
            0,
            "",
            "back-office outages (every session refused, then "
            "the server restarts on the same SQLite file)",
        ),
        ("outage_s", "range", [300, 1200], "s", "length of an outage"),
        ("partitions", "int", 0, "", "network partitions cutting some gates off the back office"),
        ("partition_s", "range", [300, 1800], "s", "length of a partition"),
        ("partition_gates", "int", 2, "", "gates cut off by each partition"),
        ("clock_jumps", "int", 0, "", "a gate's real-time clock jumps"),
        ("clock_jump_s", "range", [-3600, 3600], "s", "size of a jump (negative: backwards)"),
        ("disk_full", "int", 0, "", "a gate's disk fills up (writes fail with ENOSPC)"),
        ("disk_full_s", "range", [60, 600], "s", "how long until someone frees space"),
        ("barrier_jams", "int", 0, "", "a barrier jams on its next movement"),
        ("jam_clear_s", "range", [60, 300], "s", "how long until a technician clears it"),
        (
            "tampering",
            "int",
            0,
            "",
            "after the run, stored records the operator alters, drops, invents or forges (the "
            "kinds in turn) and restates; every one must be caught by the issuer's verify or "
            "reconcile",
        ),
    ],
    "mesh": [  # the station mesh (firmware/mesh/, docs/mesh.md) over the station LAN model
        (
            "enabled",
            "bool",
            False,
            "",
            "gates announce accepted passages to their station's other gates (mesh.enabled; "
            "`faregate sim run --mesh` sets it for one run)",
        ),
        ("latency_ms", "range", [1, 5], "ms", "one-way delay of a datagram on the station LAN"),
        ("drop_rate", "float", 0.0, "", "chance a datagram is lost (catch-up repairs it)"),
        ("heartbeat_ms", "int", 5000, "ms", "the gates' mesh.heartbeat_ms"),
        (
            "partitions",
            "int",
            0,
            "",
            "LAN partitions, each splitting the gates into two seeded halves at a seeded time",
        ),
        ("partition_s", "range", [60, 600], "s", "length of a LAN partition"),
    ],
}

# [[fault]]: a fault at a fixed time, in addition to the seeded ones.
FAULT: list[tuple[str, str, Any, str, str]] = [
    (
        "kind",
        "str",
        "",
        "",
        "power_cut, backoffice_outage, partition, clock_jump, disk_full or barrier_jam",
    ),
    ("at_s", "int", 0, "s", "when, counted from start"),
    (
        "duration_s",
        "int",
        600,
        "s",
        "how long it lasts (power_off, outage, partition, disk_full, jam)",
    ),
    (
        "gate",
        "str",
        "",
        "",
        "the gate's name (e.g. metro-entry-2); empty: seeded (partition: "
        "empty cuts off every gate)",
    ),
    ("jump_s", "sint", 0, "s", "clock_jump only: how far the clock jumps (negative: backwards)"),
]

FAULT_KINDS = (
    "power_cut",
    "backoffice_outage",
    "partition",
    "clock_jump",
    "disk_full",
    "barrier_jam",
)
LANE_KINDS = ("metro", "parking", "store")
TRAVEL_MS = {"metro": 300, "parking": 1500, "store": 100}  # barrier travel when not given
READERS = ("qr_engine", "camera")

# Built-in demand profiles: [hour of day, fraction of the lane's peak_per_hour].
PROFILES: dict[str, list[list[float]]] = {
    "flat": [[0, 1.0], [24, 1.0]],
    "morning_peak": [
        [0, 0.02],
        [5, 0.05],
        [6, 0.25],
        [7, 0.7],
        [8, 1.0],
        [9, 0.6],
        [10, 0.25],
        [16, 0.2],
        [17, 0.25],
        [19, 0.15],
        [23, 0.05],
        [24, 0.02],
    ],
    "evening_peak": [
        [0, 0.02],
        [6, 0.05],
        [8, 0.2],
        [12, 0.2],
        [16, 0.3],
        [17, 0.7],
        [18, 1.0],
        [19, 0.6],
        [20, 0.25],
        [23, 0.05],
        [24, 0.02],
    ],
    "day": [[0, 0.0], [7, 0.0], [9, 0.6], [12, 1.0], [14, 0.7], [18, 0.9], [21, 0.2], [24, 0.0]],
}


class ScenarioError(SimError, ValueError):
    """A scenario file that cannot be run: names the file, the key and the problem."""

    reason = "bad_scenario"
    remedy = "see docs/scenarios.md for every key"


def parse_time(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a time")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime.datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("%r is not an RFC 3339 time" % value) from None
    else:
        raise ValueError("must be an RFC 3339 time or unix seconds")
    if dt.tzinfo is None:
        raise ValueError("give the time zone (e.g. a trailing Z for UTC)")
    return int(dt.timestamp())


def _check(kind: str, value: Any) -> Any:
    """The value converted to its type, or ValueError saying what is wrong."""
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind in ("int", "sint", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        if kind != "float" and not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < 0 and kind != "sint":
            raise ValueError("must not be negative")
        return value if kind == "int" else float(value)
    if kind == "range":
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or value[0] > value[1]:
            raise ValueError("must be [low, high] with low <= high")
        return [value[0], value[1]]
    if kind == "time":
        return parse_time(value)
    if kind == "profile":
        return check_profile(value)
    raise AssertionError(kind)


def check_profile(value: Any) -> list[list[float]]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError("must be a list of at least two [hour, fraction] points")
    out = []
    for p in value:
        if (
            not isinstance(p, list)
            or len(p) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        ):
            raise ValueError("each point must be [hour, fraction]")
        if p[1] < 0:
            raise ValueError("fractions must not be negative")
        out.append([float(p[0]), float(p[1])])
    hours = [p[0] for p in out]
    if hours[0] != 0 or hours[-1] != 24 or hours != sorted(hours):
        raise ValueError("hours must rise from 0 to 24")
    if max(p[1] for p in out) <= 0:
        raise ValueError("at least one fraction must be above 0")
    return out


def _table(where: str, schema: list, data: dict) -> dict:
    out = {}
    known = {k for k, *_ in schema}
    for key in data:
        if key not in known:
            raise ScenarioError(
                "%s%s: unknown key (known: %s)" % (where, key, ", ".join(sorted(known)))
            )
    for key, kind, default, _unit, _doc in schema:
        if key in data:
            try:
                out[key] = _check(kind, data[key])
            except ValueError as e:
                raise ScenarioError("%s%s: %s" % (where, key, e)) from None
        else:
            out[key] = _check(kind, default) if kind in ("time", "profile") else default
            if isinstance(default, list):
                out[key] = list(default)
    return out


def load_tariff(value: Any, base: str = "") -> dict[str, Any]:
    """The scenario's `tariff`: a path to a tariff TOML (relative to the scenario file) or an
    inline table of the same sections, laid over the back office's default tariff."""
    import os

    from host_sim.backoffice import clearing

    try:
        if value is None or isinstance(value, str):
            path = os.path.join(base, value) if value else None
            try:
                return clearing.load_tariff(path)
            except OSError as e:
                raise ScenarioError("tariff: cannot read %s: %s" % (path, e.strerror)) from None
        if not isinstance(value, dict):
            raise ScenarioError("tariff: give a path to a tariff file or an inline table")
        tariff = clearing.load_tariff(None)
        for key, v in value.items():
            if key not in tariff:
                raise ScenarioError("tariff: unknown section or key %r" % key)
            if isinstance(tariff[key], dict):
                if not isinstance(v, dict):
                    raise ScenarioError("tariff: [tariff.%s] must be a table" % key)
                unknown = set(v) - set(tariff[key])
                if unknown:
                    raise ScenarioError(
                        "tariff: unknown key(s) in [tariff.%s]: %s"
                        % (key, ", ".join(sorted(unknown)))
                    )
                tariff[key].update(v)
            else:
                tariff[key] = v
        m = tariff["metro"]
        if not m["fares"] or any(
            not isinstance(f, int) or isinstance(f, bool) or f < 0 for f in m["fares"]
        ):
            raise ScenarioError("tariff: metro fares must be a non-empty list of amounts")
        return tariff
    except clearing.TariffError as e:
        raise ScenarioError("tariff: %s" % e) from None


def stations(scenario: dict) -> list[int]:
    """The line: every station some lane stands in, in order along the line."""
    return sorted({lane["station"] for lane in scenario["lanes"]})


def _check_trips(out: dict) -> None:
    t = out["trips"]
    for key in ("transfer_share", "park_share", "store_share"):
        if t[key] > 1:
            raise ScenarioError("trips.%s: must be between 0 and 1" % key)
    lo, hi = t["depart_h"]
    if hi > 24:
        raise ScenarioError("trips.depart_h: hours of the day, 0 to 24")
    if not t["commuters"]:
        return
    line = [
        s
        for s in stations(out)
        if {("metro", "entry"), ("metro", "exit")}
        <= {(lane["kind"], lane["direction"]) for lane in out["lanes"] if lane["station"] == s}
    ]
    if len(line) < 2:
        raise ScenarioError(
            "trips.commuters: commuters need at least two stations with metro entry and "
            "exit lanes (lanes' station key)"
        )
    zones = out["tariff"]["metro"]["stations"]
    unpriced = [s for s in line if str(s) not in zones]
    if unpriced:
        raise ScenarioError(
            "tariff: metro.stations has no zone for station(s) %s of the line"
            % ", ".join(map(str, unpriced))
        )


def from_dict(data: dict, name: str = "scenario", base: str = "") -> dict:
    """Check a scenario (as TOML parses it) and fill in every default. Raises ScenarioError.
    `base`: the directory a tariff path is relative to (the scenario file's)."""
    top_keys = {k for k, *_ in TOP}
    tables = set(SECTIONS) | {"lanes", "profiles", "fault", "tariff"}
    for key in data:
        if key not in top_keys and key not in tables:
            known = ", ".join(sorted(top_keys | tables))
            raise ScenarioError("%s: unknown key (known: %s)" % (key, known))
    out = _table("", TOP, {k: v for k, v in data.items() if k in top_keys})
    if not out["name"]:
        out["name"] = name
    for section, schema in SECTIONS.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ScenarioError("[%s] must be a table" % section)
        out[section] = _table(section + ".", schema, raw)
    profiles = {k: [list(p) for p in v] for k, v in PROFILES.items()}
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise ScenarioError("[profiles] must be a table of name = [[hour, fraction], ...]")
    for pname, value in raw_profiles.items():
        try:
            profiles[pname] = check_profile(value)
        except ValueError as e:
            raise ScenarioError("profiles.%s: %s" % (pname, e)) from None
    out["profiles"] = profiles
    lanes = data.get("lanes")
    if not isinstance(lanes, list) or not lanes:
        raise ScenarioError("[[lanes]]: a scenario needs at least one lane group")
    out["lanes"] = []
    names: set[str] = set()
    for i, raw in enumerate(lanes):
        where = "lanes[%d]." % i
        if not isinstance(raw, dict):
            raise ScenarioError("%s must be a table" % where[:-1])
        lane = _table(where, LANE, raw)
        for key, allowed in (("kind", LANE_KINDS), ("reader", READERS)):
            if lane[key] not in allowed:
                raise ScenarioError(
                    "%s%s: %r is not one of %s" % (where, key, lane[key], ", ".join(allowed))
                )
        if lane["direction"] not in ("entry", "exit"):
            raise ScenarioError("%sdirection: must be entry or exit" % where)
        if lane["profile"] not in profiles:
            raise ScenarioError(
                "%sprofile: %r is not defined (known: %s)"
                % (where, lane["profile"], ", ".join(sorted(profiles)))
            )
        if lane["gates"] < 1:
            raise ScenarioError("%sgates: must be at least 1" % where)
        # a lane elsewhere on the line is named after its station: s3-metro-entry
        prefix = "s%d-" % lane["station"] if lane["station"] else ""
        if not lane["station"]:
            lane["station"] = out["station"]
        for key in ("barrier_open_ms", "barrier_close_ms"):
            if not lane[key]:
                lane[key] = TRAVEL_MS[lane["kind"]]
        if not lane["name"]:
            lane["name"] = prefix + (
                lane["kind"] if lane["kind"] == "store" else lane["kind"] + "-" + lane["direction"]
            )
        if lane["name"] in names:
            raise ScenarioError("%sname: %r is used twice" % (where, lane["name"]))
        names.add(lane["name"])
        out["lanes"].append(lane)
    out["tariff"] = load_tariff(data.get("tariff"), base)
    _check_trips(out)
    mix = out["mix"]
    if sum(mix.values()) <= 0:
        raise ScenarioError("mix: at least one share must be above 0")
    fixed = data.get("fault", [])
    if not isinstance(fixed, list):
        raise ScenarioError("[[fault]] must be an array of tables")
    out["fault"] = []
    for i, raw in enumerate(fixed):
        where = "fault[%d]." % i
        if not isinstance(raw, dict):
            raise ScenarioError("%s must be a table" % where[:-1])
        f = _table(where, FAULT, raw)
        if f["kind"] not in FAULT_KINDS:
            raise ScenarioError(
                "%skind: %r is not one of %s" % (where, f["kind"], ", ".join(FAULT_KINDS))
            )
        out["fault"].append(f)
    if out["step_ms"] < 10 or out["step_ms"] > 200:
        raise ScenarioError("step_ms: must be between 10 and 200 (beams need short steps)")
    if out["sample_s"] < 1:
        raise ScenarioError("sample_s: must be at least 1")
    return out


def load(path: str) -> dict:
    """Read and check a scenario file. Raises ScenarioError (or OSError if unreadable)."""
    import os

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError("%s: %s" % (path, e)) from None
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return from_dict(data, name, os.path.dirname(os.path.abspath(path)))
    except ScenarioError as e:
        raise ScenarioError("%s: %s" % (path, e)) from None


def gate_names(scenario: dict) -> list[str]:
    """Every gate's name, in the order the runner builds them: <lane name>-<n>, n from 1."""
    return [
        "%s-%d" % (lane["name"], n)
        for lane in scenario["lanes"]
        for n in range(1, lane["gates"] + 1)
    ]


# -- documentation -------------------------------------------------------------------------
DOC_SECTIONS = [
    "top",
    "lanes",
    "riders",
    "trips",
    "mix",
    "gate",
    "backoffice",
    "denylist",
    "risk",
    "faults",
    "fault",
    "mesh",
]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '`"%s"`' % value
    if isinstance(value, list):
        return "`[%s]`" % ", ".join(str(v) for v in value)
    return "`%s`" % value


def runner_tables(
    path: str, data: dict[str, Any], top: dict[str, Any], sections: dict[str, dict]
) -> dict[str, Any]:
    """A runner's scenario file (bus route, car park, store) with every default filled in: its
    top-level keys from `top`, its tables from `sections`; ScenarioError names a bad key."""
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ScenarioError("%s: [%s] must be a table" % (path, key))
            unknown = set(value) - set(sections[key])
            if unknown:
                raise ScenarioError("%s: unknown key(s) in [%s]: %s" % (path, key, sorted(unknown)))
        elif key not in top:
            raise ScenarioError("%s: unknown key %r" % (path, key))
    sc: dict[str, Any] = {key: data.get(key, top[key]) for key in top}
    for name, defaults in sections.items():
        sc[name] = {**defaults, **data.get(name, {})}
    return sc


def runner_doc_table(top: dict[str, Any], sections: dict, meaning: dict[str, str]) -> str:
    """The markdown table of a route or site runner's keys (host_sim/station/busroute.py,
    unattended.py): its top-level keys, then each section's, with default and meaning."""

    def shown(v: Any) -> str:
        if isinstance(v, bool):
            return "`%s`" % str(v).lower()
        return "`%s`" % json.dumps(v) if isinstance(v, (str, list)) else "`%s`" % v

    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key in top:
        lines.append("| `%s` | %s | %s |" % (key, shown(top[key]), meaning[key]))
    for section, keys in sections.items():
        for key, default in keys.items():
            name = "%s.%s" % (section, key)
            lines.append(
                "| `[%s]` `%s` | %s | %s |" % (section, key, shown(default), meaning[name])
            )
    return "\n".join(lines)


def doc_table(section: str) -> str:
    """The markdown table of one section's keys, as docs/scenarios.md shows it."""
    schema = {"top": TOP, "lanes": LANE, "fault": FAULT, **SECTIONS}[section]
    lines = ["| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for key, kind, default, unit, doc in schema:
        lines.append("| `%s` | %s | %s | %s | %s |" % (key, kind, _literal(default), unit, doc))
    return "\n".join(lines)
