"""A simulation's report: JSON, JUnit XML, a human summary and PNG plots.

    report = Simulation(...).run()            # build() below makes the dict
    paths = write(report, out_dir, path)      # report.json, junit.xml, summary.txt, PNGs

Reproducibility: report.json and junit.xml hold only what the seed decides (virtual times,
counts, the scenario), so two runs with one seed give byte-identical files. Wall-clock figures
(how long the run took, passages per wall second) go to wall.json only, which is not part of
that promise. The plots are drawn from report.json alone.
"""

import json
import os
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from host_sim.station.invariants import INVARIANTS
from protocol import denylist

FORMAT = 1
PLOTS = (
    ("passages_per_minute.png", "passages per minute"),
    ("scan_to_open_latency.png", "scan-to-open latency"),
    ("queue_depth.png", "queue depth"),
    ("sync_lag.png", "sync lag"),
    ("rejects_by_reason.png", "rejects by reason"),
    ("charges_by_kind.png", "charges by kind"),
)
PENALTY_STATUSES = ("missing_exit", "missing_entry", "unknown_station", "open_session")


def money(sim: Any) -> dict[str, Any]:
    """Revenue of the run's clearing: charged in total and by mode and journey kind (status),
    the penalties among them, refunds and adjustments (journeys charged less than nothing),
    and what the money invariant checked."""
    journeys = sim.clearing.get("journeys", [])
    by_kind: dict[str, dict[str, int]] = {}
    by_mode: dict[str, int] = {}
    revenue = penalties = refunds = 0
    for j in journeys:
        c = int(j["charged"])
        kind = "%s %s" % (j["mode"], j["status"])
        k = by_kind.setdefault(kind, {"journeys": 0, "charged": 0})
        k["journeys"] += 1
        k["charged"] += c
        by_mode[j["mode"]] = by_mode.get(j["mode"], 0) + c
        revenue += c
        if c < 0:
            refunds -= c
        elif j["status"] in PENALTY_STATUSES:
            penalties += c
    return {
        "revenue": revenue,
        "penalties": penalties,
        "refunds": refunds,
        "by_mode": dict(sorted(by_mode.items())),
        "by_kind": dict(sorted(by_kind.items())),
        "journeys": len(journeys),
        "check": sim.clearing.get("check", {}),
        "commuters_home": sim.truth.finished,
        "walkin_trips": sim.truth.walkins,
        "walkins_none_away": sim.walkins_none_away,
        "taps_missing": sim.truth.missing,
        "taps_recorded_not_passed": sim.truth.recorded_not_passed,
    }


def percentile(values: list[int], p: int) -> int:
    """The p-th percentile (nearest rank) of `values`, 0 for none."""
    if not values:
        return 0
    v = sorted(values)
    i = min(len(v) - 1, (len(v) * p + 99) // 100 - 1)
    return int(v[max(i, 0)])


def build(sim: Any, bo: dict[str, int], held: int, anomalies: dict[str, int]) -> dict[str, Any]:
    """The report dict of a finished Simulation (only seed-determined values)."""
    sc = sim.sc
    gates = []
    rejects: dict[str, int] = {}
    accepted = 0
    for s in sim.slots:
        acc = s.counts.get("accepted", 0)
        accepted += acc
        gate_rejects = {k: v for k, v in sorted(s.counts.items()) if k != "accepted"}
        for k, v in gate_rejects.items():
            rejects[k] = rejects.get(k, 0) + v
        st = s.dev.status() if s.dev is not None else {}
        gates.append(
            {
                "name": s.name,
                "device_id": s.device_id,
                "kind": s.kind,
                "direction": "both" if s.kind == "store" else s.lane_cfg["direction"],
                "accepted": acc,
                "rejects": gate_rejects,
                "openings": s.hw.barrier.openings,
                "jams": s.hw.barrier.jams,
                "deny_version": st.get("deny_version", 0),
                "clock_untrusted": bool(st.get("clock_untrusted", False)),
                "deny_applied_s": {str(k): v for k, v in sorted(s.deny_applied.items())},
                **s.stats,
            }
        )
    lat = [v for _t, v in sim.latencies]
    inv = sim.monitor.results()
    scans = sum(s.stats["scans"] for s in sim.slots)
    passed = sum(s.stats["passed"] for s in sim.slots)
    return {
        "format": FORMAT,
        "scenario": sc["name"],
        "description": sc["description"],
        "seed": sim.seed,
        "start": sim.start,
        "duration_s": int(sc["duration_s"]),
        "ended_s": sim.recovered_at_s,
        "ok": all(i["ok"] for i in inv),
        "totals": {
            "gates": len(sim.slots),
            "arrivals": sim.visitors,
            "scans": scans,
            "accepted": accepted,
            "rejected": sum(rejects.values()),
            "passed": passed,
            "turned_back": sum(s.stats["turned_back"] for s in sim.slots),
            "openings": sum(s.hw.barrier.openings for s in sim.slots),
            "records_committed": sum(len(v) for v in sim.monitor.committed_raw.values()),
            "backoffice_records": held,
            "sessions_ok": sum(s.stats["sessions_ok"] for s in sim.slots),
            "sessions_failed": sum(s.stats["sessions_failed"] for s in sim.slots),
            "codes_minted": sim.population.minted,
        },
        "rejects": dict(sorted(rejects.items())),
        "events": dict(sorted(sim.monitor.events.items())),
        "outcomes_by_behaviour": {
            k: dict(sorted(v.items())) for k, v in sorted(sim.outcomes.items())
        },
        "latency_ms": {
            "count": len(lat),
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "max": max(lat) if lat else 0,
            "histogram": _histogram(lat),
        },
        "backoffice": {
            "records": held,
            "anomalies": anomalies,
            "check": bo,
            "deny_versions_published_s": {str(k): v for k, v in sorted(sim.deny_published.items())},
        },
        "fraud": fraud(sim),
        **({"mesh": mesh(sim)} if sim.lan is not None else {}),
        "network": dict(sim.net.stats),
        "sync_failures": dict(sorted(sim.sync_failures.items())),
        "faults": sim.faults_log,
        "invariants": inv,
        "money": money(sim),
        "settlement": sim.settlement,
        "checked": dict(sim.monitor.checked),
        "gates": gates,
        "timeline": sim.timeline,
        "config": sim.sc,
    }


def _deny_everywhere_s(sim: Any, version: int) -> int | None:
    """When the last gate held deny version >= `version` (virtual s), None if one never did."""
    worst = 0
    for slot in sim.slots:
        seen = [t for v, t in slot.deny_applied.items() if v >= version]
        if not seen:
            return None
        worst = max(worst, min(seen))
    return worst


def mesh(sim: Any) -> dict[str, Any]:
    """The station mesh (docs/mesh.md): the LAN's datagrams, its partitions, the copiers'
    screenshots shown and those a gate refused as replayed, copies still admitted (a gate
    across a partition, or before the announcement arrived), and the gates' nodes' figures
    since their last boot."""
    nodes: dict[str, Any] = {"applied": 0, "asks_sent": 0, "answered": 0, "refused": {}}
    for s in sim.slots:
        node = s.dev.mesh if s.dev is not None else None
        if node is None:
            continue
        st = node.status()
        for k in ("applied", "asks_sent", "answered"):
            nodes[k] += st[k]
        for reason, n in st["refused"].items():
            nodes["refused"][reason] = nodes["refused"].get(reason, 0) + n
    names = {s.index: s.name for s in sim.slots}
    parts = [
        {
            "t_s": (p["t_ms"] - sim.t0_ms) // 1000,
            "duration_s": p["duration_s"],
            "sides": [[names[g] for g in side] for side in p["sides"]],
        }
        for p in sim.lan.partitions
    ]
    admitted = sum(1 for use in sim.fraud_uses if use[1] == "copier")  # (t, kind, ...)
    return {
        "lan": dict(sim.lan.stats),
        "partitions": parts,
        "copies_shown": sim.copies["shown"],
        "copies_refused_replayed": sim.copies["replayed"],
        "copies_admitted": admitted,
        "nodes": nodes,
    }


def fraud(sim: Any) -> dict[str, Any]:
    """Per fraud kind (copier, cloned, dodger): the credentials used, those the risk engine
    denied, the time from a credential's first fraudulent passage to a deny entry at every
    gate, the time from detection (the finding) to that, the fraudulent passages admitted after
    detection (at entries; those let out at an exit, docs/fraud.md section 6, apart); and the
    false positives: deny entries the engine made for an account no fraud
    used (an honest rider)."""
    denied_at: dict[int, tuple[int, int]] = {}  # deny key -> (found s, version published)
    keys_version: dict[int, int] = {}
    for version, (_t, adds) in sorted(sim.risk_published.items()):
        for k in adds:
            keys_version.setdefault(k, version)
    for f in sim.risk_findings:
        k = denylist.entry(f["issuer"], f["deny_key"])
        if f["state"] == "denied" and k in keys_version:
            if k not in denied_at or f["t_s"] < denied_at[k][0]:
                denied_at[k] = (f["t_s"], keys_version[k])
    fraud_accounts = {a for _t, _k, a, _c, _out in sim.fraud_uses}
    uses: dict[tuple[str, int, int], list[tuple[int, bool]]] = {}
    for t, kind, account, cred_no, out in sim.fraud_uses:
        uses.setdefault((kind, account, cred_no), []).append((t, out))
    interval = int(sim.sc["backoffice"]["sync_interval_s"])
    kinds: dict[str, Any] = {}
    for (kind, account, cred_no), ts in sorted(uses.items()):
        k = kinds.setdefault(
            kind,
            {
                "credentials": 0,
                "passages": 0,
                "denied": 0,
                "use_to_deny_everywhere_s": [],
                "detect_to_deny_everywhere_s": [],
                "admitted_after_detection": 0,
                "let_out_after_detection": 0,
            },
        )
        k["credentials"] += 1
        k["passages"] += len(ts)
        issuer = sim.population.issuer_of(account).key_id
        hits = [
            denied_at[key]
            for key in (
                denylist.credential_key(issuer, account, cred_no),
                denylist.account_key(issuer, account),
            )
            if key in denied_at
        ]
        if not hits:
            continue
        found_s, version = min(hits)
        k["denied"] += 1
        k["admitted_after_detection"] += sum(1 for t, out in ts if t > found_s and not out)
        k["let_out_after_detection"] += sum(1 for t, out in ts if t > found_s and out)
        everywhere = _deny_everywhere_s(sim, version)
        if everywhere is not None:
            k["use_to_deny_everywhere_s"].append(everywhere - min(t for t, _out in ts))
            k["detect_to_deny_everywhere_s"].append(everywhere - found_s)
    for k in kinds.values():
        for name in ("use_to_deny_everywhere_s", "detect_to_deny_everywhere_s"):
            v = sorted(k.pop(name))
            k[name] = {
                "count": len(v),
                "p50": percentile(v, 50),
                "p95": percentile(v, 95),
                "max": max(v) if v else 0,
            }
        k["detect_to_deny_everywhere_intervals_max"] = round(
            k["detect_to_deny_everywhere_s"]["max"] / interval, 2
        )
    false = sorted(
        {
            f["account_id"]
            for f in sim.risk_findings
            if f["state"] == "denied" and f["account_id"] not in fraud_accounts
        }
    )
    by_rule: dict[str, int] = {}
    for f in sim.risk_findings:
        by_rule[f["rule"]] = by_rule.get(f["rule"], 0) + 1
    return {
        "enabled": bool(sim.sc["risk"]["enabled"]),
        "kinds": kinds,
        "findings_by_rule": dict(sorted(by_rule.items())),
        "deny_versions_by_risk": len(sim.risk_published),
        "false_positives": len(false),
        "false_positive_accounts": false[:20],
        "engine_errors": len(sim.risk_errors),
    }


def _histogram(values: list[int], width: int = 50) -> dict[str, int]:
    out: dict[int, int] = {}
    for v in values:
        b = v // width * width
        out[b] = out.get(b, 0) + 1
    return {str(k): out[k] for k in sorted(out)}


def runner_tail(rep: dict[str, Any]) -> list[str]:
    """The closing lines of a bus route's or an unattended site's summary: what the back office
    holds and charged, the riders checked, and the invariants (each broken one named)."""
    bad = [i for i in rep["invariants"] if not i["ok"]]
    lines = [
        "  back office holds %d records; clearing: %d journeys, revenue %s"
        % (rep["records_held"], rep["clearing"]["journeys"], rep["clearing"]["revenue"]),
        "  riders checked %d, charged wrong %d"
        % (rep["money"]["riders_checked"], rep["money"]["riders_charged_wrong"]),
        "  invariants: %d checked, %s"
        % (len(rep["invariants"]), "all hold" if not bad else "%d BROKEN" % len(bad)),
    ]
    for i in bad:
        lines.append("    %s: %d, first %s" % (i["name"], i["violations"], i["first"][:1]))
    return lines


def command(scenario_path: str, seed: int) -> str:
    return "faregate sim run %s --seed %d" % (scenario_path, seed)


def failure_lines(report: dict[str, Any], scenario_path: str) -> list[str]:
    """What a broken run prints: each broken invariant, its first violation, the seed and the
    command that reproduces it."""
    out = []
    for inv in report["invariants"]:
        if inv["ok"]:
            continue
        first: dict[str, Any] = inv["first"][0] if inv["first"] else {}
        first = {"t_s": 0, "gate": "", "detail": "", **first}
        out.append(
            "INVARIANT BROKEN: %s (%d violation%s); first at t=%ds%s: %s"
            % (
                inv["name"],
                inv["violations"],
                "" if inv["violations"] == 1 else "s",
                first["t_s"],
                " on " + first["gate"] if first["gate"] else "",
                first["detail"],
            )
        )
    if out:
        out.append(
            "seed %d; reproduce with: %s" % (report["seed"], command(scenario_path, report["seed"]))
        )
    return out


def junit(report: dict[str, Any], scenario_path: str) -> str:
    """JUnit XML: one test case per invariant, so an operator's CI shows which one broke."""
    cases = []
    failures = 0
    cmd = command(scenario_path, report["seed"])
    for inv in report["invariants"]:
        name = quoteattr(inv["name"])
        if inv["ok"]:
            cases.append('    <testcase classname="faregate.sim" name=%s time="0"/>' % name)
            continue
        failures += 1
        lines = ["seed %d; reproduce with: %s" % (report["seed"], cmd)]
        for v in inv["first"]:
            lines.append("t=%ds %s: %s" % (v["t_s"], v["gate"], v["detail"]))
        msg = "%s: %d violations" % (inv["description"], inv["violations"])
        cases.append(
            '    <testcase classname="faregate.sim" name=%s time="0">\n'
            "      <failure message=%s>%s</failure>\n"
            "    </testcase>" % (name, quoteattr(msg), escape("\n".join(lines)))
        )
    t = report["totals"]
    props = [
        ("scenario", report["scenario"]),
        ("seed", str(report["seed"])),
        ("command", cmd),
        ("scans", str(t["scans"])),
        ("accepted", str(t["accepted"])),
        ("backoffice_records", str(t["backoffice_records"])),
    ]
    prop_xml = "\n".join(
        "      <property name=%s value=%s/>" % (quoteattr(k), quoteattr(v)) for k, v in props
    )
    suite = quoteattr("faregate.sim.%s.seed%d" % (report["scenario"], report["seed"]))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<testsuites>\n"
        '  <testsuite name=%s tests="%d" failures="%d" errors="0" skipped="0" time="0">\n'
        "    <properties>\n%s\n    </properties>\n"
        "%s\n"
        "  </testsuite>\n"
        "</testsuites>\n" % (suite, len(INVARIANTS), failures, prop_xml, "\n".join(cases))
    )


def summary(report: dict[str, Any], out_dir: str, scenario_path: str) -> str:
    t = report["totals"]
    hours = report["duration_s"] / 3600.0
    lines = [
        "station %s, seed %d: %d gates, %.1f simulated hours%s"
        % (
            report["scenario"],
            report["seed"],
            t["gates"],
            hours,
            " - " + report["description"] if report["description"] else "",
        ),
        "  riders and cars: %d arrived, %d scans, %d accepted, %d rejected, %d turned back"
        % (t["arrivals"], t["scans"], t["accepted"], t["rejected"], t["turned_back"]),
    ]
    for reason, n in report["rejects"].items():
        lines.append("    %-26s %d" % (reason, n))
    if report["events"]:
        lines.append(
            "  alarms and events journaled: "
            + ", ".join("%d %s" % (n, k) for k, n in report["events"].items())
        )
    lat = report["latency_ms"]
    lines.append(
        "  scan to open: median %d ms, p95 %d ms, max %d ms (virtual time, incl. decode and "
        "barrier travel)" % (lat["p50"], lat["p95"], lat["max"])
    )
    if report["faults"]:
        kinds: dict[str, int] = {}
        for f in report["faults"]:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        lines.append("  faults: " + ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())))
    net = report["network"]
    lines.append(
        "  sync: %d sessions ok, %d failed; %d transmissions, %d lost, %d duplicated, "
        "%d corrupted"
        % (
            t["sessions_ok"],
            t["sessions_failed"],
            net["sent"],
            net["lost"],
            net["duplicated"],
            net["corrupted"],
        )
    )
    bo = report["backoffice"]
    anomalies = ", ".join("%d %s" % (n, k) for k, n in bo["anomalies"].items()) or "none"
    lines.append(
        "  back office holds %d records (gates committed %d), anomalies: %s"
        % (bo["records"], t["records_committed"], anomalies)
    )
    mo = report["money"]
    lines.append(
        "  clearing: %d journeys, revenue %d (penalties %d, refunds %d); %s"
        % (
            mo["journeys"],
            mo["revenue"],
            mo["penalties"],
            mo["refunds"],
            ", ".join("%s %d" % kv for kv in mo["by_mode"].items()) or "nothing charged",
        )
    )
    if mo["check"].get("riders_checked"):
        lines.append(
            "  riders: %d checked against their true journeys (%d commuters home, %d walk-ins' "
            "trips done), %d charged wrong, %d taps missing"
            % (
                mo["check"]["riders_checked"],
                mo["commuters_home"],
                mo["walkin_trips"],
                mo["check"]["riders_charged_wrong"],
                mo["taps_missing"],
            )
        )
    fr = report.get("fraud") or {}
    if fr.get("enabled"):
        lines.append(
            "  risk: %d findings (%s), %d deny deltas; false positives among honest riders: %d"
            % (
                sum(fr["findings_by_rule"].values()),
                ", ".join("%d %s" % (n, r) for r, n in fr["findings_by_rule"].items()) or "none",
                fr["deny_versions_by_risk"],
                fr["false_positives"],
            )
        )
        for kind, k in fr["kinds"].items():
            use, det = k["use_to_deny_everywhere_s"], k["detect_to_deny_everywhere_s"]
            lines.append(
                "    %-8s %d credentials, %d denied; first use to deny at every gate median %d s "
                "max %d s (detection to it max %d s); %d passages admitted after detection, "
                "%d let out"
                % (
                    kind,
                    k["credentials"],
                    k["denied"],
                    use["p50"],
                    use["max"],
                    det["max"],
                    k["admitted_after_detection"],
                    k["let_out_after_detection"],
                )
            )
    me = report.get("mesh")
    if me:
        lan = me["lan"]
        lines.append(
            "  mesh: %d copies shown at a gate next to the one that accepted the code: %d refused "
            "as replayed, %d admitted; LAN %d datagrams, %d lost, %d cut by %d partition(s); "
            "%d catch-up asks"
            % (
                me["copies_shown"],
                me["copies_refused_replayed"],
                me["copies_admitted"],
                lan["sent"],
                lan["lost"],
                lan["cut"],
                len(me["partitions"]),
                me["nodes"]["asks_sent"],
            )
        )
    broken = [i for i in report["invariants"] if not i["ok"]]
    lines.append(
        "  invariants: %d checked, %s"
        % (len(report["invariants"]), "all hold" if not broken else "%d BROKEN" % len(broken))
    )
    lines.append("  report: %s (and junit.xml, summary.txt)" % os.path.join(out_dir, "report.json"))
    lines.extend(failure_lines(report, scenario_path))
    return "\n".join(lines)


def write(
    report: dict[str, Any],
    out_dir: str,
    scenario_path: str,
    wall: dict[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Write every file; returns {"report", "junit", "summary", "wall", "plots": [...]}."""
    os.makedirs(out_dir, exist_ok=True)
    paths: dict[str, Any] = {}
    paths["report"] = os.path.join(out_dir, "report.json")
    with open(paths["report"], "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    paths["junit"] = os.path.join(out_dir, "junit.xml")
    with open(paths["junit"], "w") as f:
        f.write(junit(report, scenario_path))
    paths["summary"] = os.path.join(out_dir, "summary.txt")
    with open(paths["summary"], "w") as f:
        f.write(summary(report, out_dir, scenario_path) + "\n")
    if wall is not None:
        paths["wall"] = os.path.join(out_dir, "wall.json")
        with open(paths["wall"], "w") as f:
            json.dump(wall, f, indent=1, sort_keys=True)
            f.write("\n")
    paths["plots"] = plot(report, out_dir) if plots else []
    return paths


def plot(report: dict[str, Any], out_dir: str) -> list[str]:
    """The PNG plots, drawn from the report alone (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = report["timeline"]
    t = tl["t_min"]
    sample_min = (t[1] - t[0]) if len(t) > 1 else 1.0
    title = "%s, seed %d" % (report["scenario"], report["seed"])
    faults = report["faults"]
    out = []

    def mark_faults(ax: Any) -> None:
        for f in faults:
            x0 = f["t_s"] / 60.0
            x1 = x0 + max(f.get("duration_s", 0) / 60.0, 0.3)
            ax.axvspan(x0, x1, color="red", alpha=0.08)
            label = f["kind"].replace("_", " ")
            ax.annotate(
                label,
                (x0, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                rotation=90,
                va="top",
                ha="right",
                color="darkred",
                xytext=(0, -2),
                textcoords="offset points",
            )

    def below(ax: Any, handles: Any = None, labels: Any = None) -> None:
        """The legend under the axes, where it hides no curve and no fault label."""
        if handles is None:
            handles, labels = ax.get_legend_handles_labels()
        ax.legend(
            handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8
        )

    def save(fig: Any, name: str) -> None:
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        out.append(path)

    fig, ax = plt.subplots(figsize=(9, 4))
    per_min = [p / sample_min for p in tl["passages"]]
    rej_min = [r / sample_min for r in tl["rejects"]]
    ax.plot(t, per_min, label="accepted")
    ax.plot(t, rej_min, label="rejected")
    mark_faults(ax)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("per minute (whole station)")
    ax.set_title("Passages per minute - " + title)
    below(ax)
    save(fig, PLOTS[0][0])

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    hist = report["latency_ms"]["histogram"]
    if hist:
        xs = [int(k) for k in hist]
        a1.bar(xs, list(hist.values()), width=45, align="edge")
    a1.set_xlabel("scan to open, ms (virtual)")
    a1.set_ylabel("accepted scans")
    a1.set_title("Scan-to-open latency")
    nan = float("nan")
    a2.plot(t, [nan if v is None else v for v in tl["latency_p50_ms"]], label="median")
    a2.plot(t, [nan if v is None else v for v in tl["latency_p95_ms"]], label="p95")
    a2.set_xlabel("minutes since start")
    a2.set_ylabel("ms")
    a2.set_title("over time - " + title)
    below(a2)
    save(fig, PLOTS[1][0])

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, tl["queue_total"], label="waiting, all gates")
    ax.plot(t, tl["queue_max"], label="longest queue at one gate")
    ax.plot(t, tl["gates_down"], label="gates without power", linestyle=":")
    mark_faults(ax)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("people or cars")
    ax.set_title("Queue depth - " + title)
    below(ax)
    save(fig, PLOTS[2][0])

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, tl["pending_total"], label="records not yet acknowledged (all gates)")
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("records")
    ax2 = ax.twinx()
    ax2.plot(
        t,
        [s / 60.0 for s in tl["oldest_unsynced_s"]],
        color="tab:red",
        label="oldest unacknowledged record",
    )
    ax2.set_ylabel("age, minutes", color="tab:red")
    mark_faults(ax)
    ax.set_title("Sync lag - " + title)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    below(ax, lines[0] + lines2[0], lines[1] + lines2[1])
    save(fig, PLOTS[3][0])

    fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(report["rejects"]) + 1.5)))
    items = sorted(report["rejects"].items(), key=lambda kv: kv[1])
    ax.barh([k for k, _v in items], [v for _k, v in items])
    for i, (_k, v) in enumerate(items):
        ax.text(v, i, " %d" % v, va="center")
    ax.set_xlabel("refusals")
    ax.set_title("Rejects by reason - " + title)
    save(fig, PLOTS[4][0])

    kinds = sorted(report["money"]["by_kind"].items(), key=lambda kv: kv[1]["charged"])
    fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(kinds) + 1.5)))
    ax.barh([k for k, _v in kinds], [v["charged"] for _k, v in kinds])
    for i, (_k, v) in enumerate(kinds):
        ax.text(v["charged"], i, " %d (%d journeys)" % (v["charged"], v["journeys"]), va="center")
    ax.set_xlabel("charged, minor units")
    ax.set_title(
        "Charges by kind - revenue %d, penalties %d - %s"
        % (report["money"]["revenue"], report["money"]["penalties"], title)
    )
    save(fig, PLOTS[5][0])
    return out
