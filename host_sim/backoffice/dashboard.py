"""The back office's dashboard: server-rendered HTML pages on the back office's HTTP port.

`add_routes(app, store)` adds these GET routes to an aiohttp application (http.py's make_app
calls it; the pages read the store, they never write):

    /                       the fleet: one row per gate (fleet.py): last sync, queue depth,
                            oldest unsynced record, firmware and slot, trust and deny list
                            versions and staleness, anomalies, alarms
    /gates/{id}             one gate: its figures, plots of its queue depth and sync lag over
                            time (svgplot.py), its latest sessions and its anomalies
    /anomalies              sequence gaps, chain breaks, replays, sequence resets (?kind=, ?device=)
    /accounts               every account with journeys, and what it is charged
    /accounts/{id}          one account's journeys and charges (clearing.py, the tariff given)
    /risk                   the risk engine's findings (?state=, ?account=) with their scores,
                            explanations and decisions, and its deny entries (risk.py;
                            decisions are taken with `faregate backoffice risk`); with
                            serve's engine (`risk_live`, risk_live.py), its runs: how many,
                            the newest one's findings and delta, its errors

Plain HTML with one inline style sheet and inline SVG: no JavaScript, nothing loaded from the
network, so it works on a back-office machine with no internet and prints well. Every value
is escaped. Times are UTC; amounts are minor units shown as units.cents.

Sync lag, per session of a gate: how long the back office had gone without a successful
session of that gate when this one started (the first session has none).
"""

import datetime
import time
from html import escape
from typing import Any

from aiohttp import web

from host_sim.backoffice import clearing, fleet, svgplot
from host_sim.backoffice.store import Store

SESSIONS_SHOWN = 50

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
nav a { margin-right: 1.2em; font-weight: bold; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 14px; }
th { background: #eef2f7; }
td.num { text-align: right; }
.alarm { color: #b00020; font-weight: bold; }
.ok { color: #1b7a2e; }
.plot { margin: 0.5em 1em 0.5em 0; }
"""


class _WallClock:
    def now(self) -> int:
        return int(time.time())


def add_routes(
    app: web.Application,
    store: Store,
    tariff: dict[str, Any] | None = None,
    clock: Any = None,
    risk_live: Any = None,
) -> None:
    """Serve the dashboard's pages from `store` on `app`. `tariff` prices journeys (default:
    clearing's demo tariff); `clock.now()` is "now" for staleness and open journeys;
    `risk_live` the risk engine serve runs on arrival (None: not in this process)."""
    pages = _Pages(store, tariff or clearing.DEFAULT_TARIFF, clock or _WallClock())
    pages.risk_live = risk_live
    app.router.add_get("/", pages.fleet)
    app.router.add_get(r"/gates/{device_id:\d+}", pages.gate)
    app.router.add_get("/anomalies", pages.anomalies)
    app.router.add_get("/accounts", pages.accounts)
    app.router.add_get(r"/accounts/{account_id:\d+}", pages.account)
    app.router.add_get("/risk", pages.risk)


# -- formatting ------------------------------------------------------------------------------
def when(t: int | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def money(v: int) -> str:
    return "%d.%02d" % divmod(v, 100)


def age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return "%.1f h" % (seconds / 3600)


def _cell(v: Any) -> str:
    return "-" if v is None or v == "" else escape(str(v))


def table(cols: list[str], rows: list[list[str]], empty: str, num: tuple[int, ...] = ()) -> str:
    """An HTML table (no header row without `cols`); cells are HTML already (escape values
    with _cell)."""
    if not rows:
        return "<p>%s</p>" % escape(empty)
    head = "<tr>%s</tr>" % "".join("<th>%s</th>" % escape(c) for c in cols) if cols else ""
    body = "".join(
        "<tr>%s</tr>"
        % "".join(
            '<td class="num">%s</td>' % c if i in num else "<td>%s</td>" % c
            for i, c in enumerate(r)
        )
        for r in rows
    )
    return "<table>%s%s</table>" % (head, body)


def page(title: str, body: str) -> web.Response:
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>%s - faregate back office</title><style>%s</style></head><body>"
        '<nav><a href="/">Fleet</a><a href="/anomalies">Anomalies</a>'
        '<a href="/accounts">Accounts</a><a href="/risk">Risk</a></nav><h1>%s</h1>%s</body></html>'
        % (escape(title), STYLE, escape(title), body)
    )
    return web.Response(text=html, content_type="text/html")


def _gate_link(device_id: int | None) -> str:
    if device_id is None:
        return "-"
    return '<a href="/gates/%d">%d</a>' % (device_id, device_id)


def _trust(g: dict[str, Any]) -> str:
    if g["trust_version"] is None:
        return "-"
    state = g["trust_state"] or "?"
    text = "v%s %s" % (g["trust_version"], state)
    if g["trust_valid_until"]:
        text += " until %s" % when(g["trust_valid_until"])[:10]
    return '<span class="%s">%s</span>' % ("ok" if state == "fresh" else "alarm", escape(text))


def _firmware(g: dict[str, Any]) -> str:
    if g["firmware"] is None:
        return "-"
    text = "%s slot %s" % (g["firmware"], g["slot"]) + (" ON TRIAL" if g["trial"] else "")
    return escape(text)


def _alarms(items: list[str]) -> str:
    if not items:
        return '<span class="ok">none</span>'
    return '<span class="alarm">%s</span>' % "<br>".join(escape(a) for a in items)


def _lags(sessions: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """Sync lag in minutes at each session after the gate's first successful one."""
    out, last_ok = [], None
    for s in sessions:
        if last_ok is not None:
            out.append((s["started"], (s["started"] - last_ok) / 60))
        if s["outcome"] == "ok":
            last_ok = s["started"]
    return out


# -- pages -----------------------------------------------------------------------------------
class _Pages:
    def __init__(self, store: Store, tariff: dict[str, Any], clock: Any) -> None:
        self.store = store
        self.tariff = tariff
        self.clock = clock

    async def fleet(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        gs = fleet.gates(self.store, now)
        rows = [
            [
                _gate_link(g["device_id"]),
                _cell(g["label"]),
                _cell(when(g["last_sync"])),
                _cell(g["queue_depth"]),
                _cell(when(g["oldest_unsynced"]))
                + (" (%s)" % age(g["oldest_unsynced_age_s"]) if g["oldest_unsynced"] else ""),
                _firmware(g),
                _trust(g),
                _cell("v%s" % g["deny_version"] if g["deny_version"] is not None else None),
                '<a href="/anomalies?device=%d">%d</a>'
                % (g["device_id"], sum(g["anomalies"].values())),
                _alarms(g["alarms"]),
            ]
            for g in gs
        ]
        alarmed = sum(1 for g in gs if g["alarms"])
        summary = "<p>%d gates, %d with alarms, %d records stored. As of %s UTC.</p>" % (
            len(gs),
            alarmed,
            self.store.count(),
            when(now),
        )
        cols = ["gate", "label", "last sync", "queue", "oldest unsynced", "firmware"]
        cols += ["trust list", "deny list", "anomalies", "alarms"]
        body = summary + table(
            cols, rows, "No gates registered (faregate backoffice devices add).", (3, 8)
        )
        return page("Fleet", body)

    async def gate(self, request: web.Request) -> web.Response:
        device_id = int(request.match_info["device_id"])
        now = self.clock.now()
        found = [g for g in fleet.gates(self.store, now) if g["device_id"] == device_id]
        if not found:
            raise web.HTTPNotFound(text="gate %d is not registered" % device_id)
        g = found[0]
        sessions = self.store.sessions(device_id, limit=1000)
        depth = [(s["started"], s["queue_depth"]) for s in sessions if s["queue_depth"] is not None]
        facts = [
            ("label", _cell(g["label"])),
            ("records stored up to seq", _cell(g["stored_up_to"])),
            ("last sync", _cell(when(g["last_sync"]))),
            ("queue depth", _cell(g["queue_depth"])),
            ("oldest unsynced record", _cell(when(g["oldest_unsynced"]))),
            ("firmware", _firmware(g)),
            ("trust list", _trust(g)),
            ("alarms", _alarms(g["alarms"])),
        ]
        body = table([], [[escape(k), v] for k, v in facts], "")
        body += "<h2>Over time</h2><div>%s%s</div>" % (
            svgplot.time_plot(depth, "Queue depth (records waiting on the gate)", "rec"),
            svgplot.time_plot(_lags(sessions), "Sync lag (since the last good session)", "min"),
        )
        shown = sessions[-SESSIONS_SHOWN:][::-1]
        rows = [
            [
                _cell(when(s["started"])),
                _cell(s["peer"]),
                '<span class="%s">%s</span>'
                % ("ok" if s["outcome"] == "ok" else "alarm", _cell(s["outcome"])),
                _cell(s["reason"]),
                _cell(s["records"]),
                _cell(s["queue_depth"]),
                "%.2f s" % s["duration_s"],
            ]
            for s in shown
        ]
        body += "<h2>Latest sessions (%d of %d)</h2>" % (len(shown), len(sessions))
        cols = ["started", "peer", "outcome", "reason", "records", "queue", "duration"]
        body += table(cols, rows, "No sessions recorded.", (4, 5, 6))
        body += "<h2>Anomalies</h2>" + _anomaly_table(
            [a for a in self.store.anomalies() if a["device_id"] == device_id]
        )
        return page("Gate %d" % device_id, body)

    risk_live: Any = None

    def _engine(self) -> str:
        """What serve's risk engine did (its runs on arrival), or where findings come from."""
        live = self.risk_live
        if live is None:
            return (
                '<p id="engine">Risk engine: not running in this service; findings come from '
                "<code>faregate backoffice risk run</code> (or start serve with "
                "<code>--risk-key</code>).</p>"
            )
        text = "Risk engine: runs as records arrive: %d run(s), %d finding(s), %d delta(s)" % (
            live.runs,
            live.findings,
            live.published,
        )
        last = live.last
        if last is not None:
            pub = last["published"]
            text += "; the newest at %s: %d new finding(s), %s" % (
                when(last["time"]),
                len(last["findings"]),
                "published deny_delta v%d (+%d -%d)"
                % (pub["version"], len(pub["adds"]), len(pub["removes"]))
                if pub
                else "nothing to publish",
            )
        out = '<p id="engine">%s.</p>' % escape(text)
        err = live.last_error
        if live.errors and err is not None:
            out += '<p class="alarm" id="engine-error">%s</p>' % escape(
                "%d failed run(s); the newest at %s: %s (%s)"
                % (live.errors, when(err["time"]), err["msg"], err["reason"])
            )
        return out

    async def risk(self, request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        account = request.query.get("account")
        acc = int(account) if account and account.isdigit() else None
        counts = self.store.risk_summary()
        links = " ".join(
            '<a href="/risk?state=%s">%s: %d</a>' % (escape(k), escape(k), n)
            for k, n in counts.items()
        )
        body = "<p>%s %s</p>" % (links or "No findings yet.", '<a href="/risk">all</a>')
        body += self._engine()
        body += (
            "<p>Decide with <code>faregate backoffice risk accept|undo|dismiss ID "
            "--operator NAME --reason TEXT</code>; <code>risk publish</code> sends the "
            "change to every gate (docs/fraud.md).</p>"
        )
        rows = [
            [
                _cell(f["id"]),
                _cell(when(f["time"])),
                _cell(f["rule"]),
                '<a href="/accounts/%d">%d</a>' % (f["account_id"], f["account_id"]),
                _cell(f["cred_no"] or "all"),
                _cell(f["score"]),
                '<span class="%s">%s</span>'
                % ("alarm" if f["state"] in ("denied", "review") else "ok", _cell(f["state"])),
                _cell(f["detail"]),
                _cell(f["operator"] or None) + (" (%s)" % escape(f["note"]) if f["note"] else ""),
                _cell(when(f["expires"]) if f["state"] == "denied" else None),
            ]
            for f in self.store.risk_findings(state, acc)
        ]
        cols = ["id", "found", "rule", "account", "credential", "score", "state", "why"]
        cols += ["decided by", "deny until"]
        body += "<h2>Findings</h2>" + table(cols, rows, "No findings.", (0, 5))
        entries = [
            [
                _cell(e["issuer"]),
                _cell(e["deny_key"] >> 24),
                _cell((e["deny_key"] & 0xFFFFFF) or "all"),
                _cell(e["reason"]),
                _cell(e["finding_id"]),
                _cell("yes" if e["want"] else "no"),
                _cell("v%d" % e["version"] if e["listed"] else "no"),
                _cell(when(e["expires"])),
            ]
            for e in self.store.risk_deny_entries()
        ]
        cols = ["issuer", "account", "credential", "reason", "finding", "wanted", "on the list"]
        cols.append("expires")
        body += "<h2>Deny entries</h2>" + table(cols, entries, "No deny entries.", (4,))
        title = "Risk" + (": %s" % state if state else "")
        return page(title, body)

    async def anomalies(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind") or None
        device = request.query.get("device")
        rows = self.store.anomalies(kind)
        if device and device.isdigit():
            rows = [a for a in rows if a["device_id"] == int(device)]
        counts = self.store.anomaly_counts()
        links = " ".join(
            '<a href="/anomalies?kind=%s">%s: %d</a>' % (escape(k), escape(k), n)
            for k, n in counts.items()
        )
        body = "<p>%s %s</p>" % (links or "No anomalies logged.", '<a href="/anomalies">all</a>')
        title = "Anomalies" + (": %s" % kind if kind else "")
        return page(title, body + _anomaly_table(rows))

    def _journeys(self) -> list[dict[str, Any]]:
        return clearing.clear(self.store, self.tariff, self.clock.now())

    async def accounts(self, request: web.Request) -> web.Response:
        per: dict[int, list[dict[str, Any]]] = {}
        for j in self._journeys():
            per.setdefault(j["account_id"], []).append(j)
        rows = [
            [
                '<a href="/accounts/%d">%d</a>' % (a, a),
                _cell(len(js)),
                _cell(sum(j["status"] == "open" for j in js)),
                money(sum(j["charged"] for j in js)),
            ]
            for a, js in sorted(per.items())
        ]
        body = table(["account", "journeys", "open", "charged"], rows, "No journeys.", (1, 2, 3))
        return page("Accounts", body)

    async def account(self, request: web.Request) -> web.Response:
        account_id = int(request.match_info["account_id"])
        js = [j for j in self._journeys() if j["account_id"] == account_id]
        if not js:
            raise web.HTTPNotFound(text="no journeys of account %d" % account_id)

        def tap(t: dict[str, Any] | None) -> str:
            if t is None:
                return "-"
            return "station %d at %s (gate %s)" % (
                t["station"],
                escape(when(t["time"])),
                _gate_link(t["device_id"]),
            )

        rows = [
            [
                _cell(j["mode"]),
                tap(j["entry"]),
                tap(j["exit"]),
                _cell(j["status"]),
                money(j["fare"]),
                money(j["charged"]),
            ]
            for j in js
        ]
        cols = ["mode", "entry", "exit", "status", "fare", "charged"]
        body = "<h2>Journeys</h2>" + table(cols, rows, "", (4, 5))
        rows = [
            [
                _cell(when(c["day"] * 86400)[:10]),
                _cell(c["mode"]),
                _cell(c["journeys"]),
                _cell(c["open"]),
                money(c["fares"]),
                money(c["charged"]),
            ]
            for c in clearing.charges(js)
        ]
        cols = ["service day", "mode", "journeys", "open", "fares", "charged"]
        body += "<h2>Charges</h2>" + table(cols, rows, "", (2, 3, 4, 5))
        return page("Account %d" % account_id, body)


def _anomaly_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["time", "kind", "gate", "seq", "detail"],
        [
            [
                _cell(when(a["time"])),
                _cell(a["kind"]),
                _gate_link(a["device_id"]),
                _cell(a["seq"]),
                _cell(a["detail"]),
            ]
            for a in rows
        ],
        "No anomalies.",
        (3,),
    )
