"""The dashboard in a real browser: Debian's chromium, headless, driven by playwright.

Three simulated gates (firmware/compose/device.py over gate directories, as a provisioned gate
runs) take passages for an hour and sync through the real sync path (HostSession, the same
application the TCP and serial servers run) every ten minutes, each session recorded in the
store's history; one gate is offline for half an hour, a copied ride code passes at two gates
(a replay), and a gate revoked at the end is refused. The dashboard is served from that store
on 127.0.0.1 by aiohttp's AppRunner; the test reads each page as a user would, follows links
by clicking, checks the plots have their points, and writes a screenshot of each page to
build/screenshots/ for review.
"""

import asyncio
import os
import threading
import time

import pytest
from aiohttp import web

from drivers.linux import crypto_openssl as es256
from firmware.compose.device import Device
from firmware.maintenance import boot
from firmware.sync.client import SyncError
from host_sim.backoffice import dashboard, fleet
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostSession
from host_sim.hardware.devices import ManualClock
from host_sim.station import gatedir
from protocol import denylist, messages, records, trustlist
from protocol.records import DIR_ENTRY, DIR_EXIT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.path.join(ROOT, "build", "screenshots")
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOW = 1_767_254_400  # 2026-01-01 08:00 UTC
ROUNDS = 7  # sessions every 10 minutes: 0 .. 60 min
# device id -> (label, station, direction, (running slot, firmware version, on trial))
GATES = {
    301: ("Central entry 1", 1, DIR_ENTRY, ("a", "0.4.2", False)),
    302: ("Harbour exit 1", 7, DIR_EXIT, ("b", "0.5.0", True)),
    303: ("Harbour entry 2", 7, DIR_ENTRY, ("a", "0.4.2", False)),
}
OFFLINE = {303: range(1, 4)}  # rounds in which the gate cannot reach the back office
REPLAYED = 7777  # the account whose copied code passes at 301 and 303


def _sync(dev, store, keys, clock, peer):
    """One session over an in-memory pipe to a HostSession; recorded in the store's history."""
    started, t0 = clock.now(), time.monotonic()
    held = store.device(dev.device_id).high_seq
    depth = dev.journal.last_seq - held  # what the sync server sees at HELLO
    assert depth == dev.journal.pending_count()
    session = HostSession(store, keys[0], keys[1], clock, peer)
    client = dev.sync_client()
    outcome, reason = "ok", ""
    try:
        out = client.start()
        while out and not client.done:
            out = client.receive(session.receive(out))
    except SyncError as e:
        outcome, reason = "refused", e.reason
    store.record_session(
        dev.device_id, peer, started, time.monotonic() - t0, outcome, session.stored, reason, depth
    )


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash")
    root = es256.OpenSSLSigner(es256.generate_key())
    host = es256.OpenSSLSigner(es256.generate_key())
    issuer = es256.OpenSSLSigner(es256.generate_key())
    rid = trustlist.root_key_id(root.public_key)
    key = trustlist.IssuerKey(1, issuer.public_key, 0xFFFF, NOW - 86400, NOW + 86400)
    clock = ManualClock(NOW)
    store = Store(str(tmp / "bo.sqlite"))
    devs = {}
    for dev_id, (label, station, direction, (slot, version, trial)) in GATES.items():
        secret = es256.OpenSSLSigner(es256.generate_key()).secret_bytes()
        config = {
            "version": 1,
            "device_id": dev_id,
            "name": label,
            "station": station,
            "lane": 1,
            "mode": "metro",
            "direction": "entry" if direction == DIR_ENTRY else "exit",
            "scope": 1,
            "sync": {"host_key": host.public_key.hex(), "interval_s": 600},
        }
        d = str(tmp / str(dev_id))
        gatedir.provision(
            d,
            dev_id,
            root,
            secret,
            config,
            trustlist.build(1, NOW - 3600, NOW + 7 * 86400, [key], root.sign, rid),
            denylist.build_snapshot(1, NOW, [], root),
            NOW,
        )
        st = boot.empty_state()  # the slot the gate booted, as its boot shim left boot.json
        st["trial" if trial else "active"] = slot
        st["slots"][slot] = {"state": "trial" if trial else "confirmed", "version": version}
        boot.save_state(d, st)
        devs[dev_id] = Device.open(
            d, None, clock, crypto=es256, slot=slot, device={"profile": "linux"}
        )
        store.add_device(dev_id, es256.signer(secret).public_key, NOW, label)
    keys = (host, es256.verifier())

    def passage(dev_id, account, n):  # n: the ride code's presentation counter
        _label, station, direction, _image = GATES[dev_id]
        devs[dev_id].journal.append(
            records.Record(
                records.KIND_PASSAGE, 0, 0, 0, clock.now(), 1, direction, station, account, 1, n
            )
        )

    for rnd in range(ROUNDS):
        for i in range(3 + rnd):  # riders enter at Central, and leave at Harbour 6 min later
            passage(301, 5000 + 10 * rnd + i, 1)
        clock.advance(360)
        for i in range(3 + rnd):  # a fresh ride code: its counter moved on
            passage(302, 5000 + 10 * rnd + i, 2)
        for i in range(2):
            passage(303, 6000 + 10 * rnd + i, 1)
        if rnd == 2:
            passage(301, REPLAYED, 9)
            passage(303, REPLAYED, 9)
        clock.advance(225)  # with 3 x 5 s below: a round every 10 minutes
        for dev_id in GATES:
            if rnd not in OFFLINE.get(dev_id, ()):
                _sync(devs[dev_id], store, keys, clock, "10.0.0.%d:40000" % (dev_id - 300))
            clock.advance(5)
    store.revoke_device(303, clock.now())
    passage(303, 6999, 1)
    _sync(devs[303], store, keys, clock, "10.0.0.3:40000")
    clock.advance(60)
    yield store, clock
    for dev in devs.values():
        dev.close()
    store.close()


def test_the_fleet_seen_from_the_store(fleet_store):
    store, clock = fleet_store
    gates = {g["device_id"]: g for g in fleet.gates(store, clock.now())}
    assert sorted(gates) == [301, 302, 303]
    assert gates[301]["alarms"] == [] and gates[301]["queue_depth"] == 0
    assert [gates[301][k] for k in ("firmware", "slot", "trial")] == ["0.4.2", "a", False]
    assert gates[302]["alarms"] == ["firmware on trial"]
    assert gates[301]["trust_version"] == 1 and gates[301]["trust_state"] == "fresh"
    assert gates[303]["alarms"] == ["revoked", "last session refused: unknown_device"]
    history = store.sessions(303)
    assert [s["outcome"] for s in history] == ["ok"] * (ROUNDS - 3) + ["refused"]
    # three rounds offline: 2 + 3 * 2 passages and the replayed code
    assert [s["queue_depth"] for s in history][:2] == [2, 9]
    assert len(store.sessions(limit=5)) == 5 and store.sessions(since=clock.now()) == []
    assert store.anomaly_counts() == {"replay": 1}  # found when 303 uploads the copy


@pytest.fixture(scope="module")
def site(fleet_store):
    store, clock = fleet_store
    app = web.Application()
    dashboard.add_routes(app, store, clock=clock)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(tcp.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), "no %s: `make install` installs Debian's chromium" % (
        CHROMIUM
    )
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        requests = []
        ctx.on("request", lambda r: requests.append(r.url))
        page = ctx.new_page()
        yield page, requests
        ctx.close()


def _shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def _cells(page, row_text):
    return page.locator("tr", has_text=row_text).first.locator("td").all_inner_texts()


def test_a_gate_that_refused_a_published_blob_raises_an_alarm(store_target):
    store = Store(store_target)
    store.add_device(401, es256.public_bytes(es256.generate_key()), 1000, "A1")
    store.note_refusal(401, 1050, "trust_list", 2, "list_stale", "an older version, since replaced")
    store.publish(messages.KIND_TRUST_LIST, 3, b"trust list v3", 1090)
    store.note_refusal(401, 1100, "trust_list", 3, "list_bad_signature", "not signed by the root")
    store.note_refusal(401, 1200, "trust_list", 3, "list_bad_signature", "not signed by the root")
    (gate,) = fleet.gates(store, 1300)  # only the refusal of what is offered now counts
    assert [(r["kind"], r["version"], r["count"]) for r in gate["refused"]] == [
        ("trust_list", 3, 2)
    ]
    assert "refused trust_list v3: list_bad_signature" in gate["alarms"]
    store.close()


def test_the_dashboard_in_a_browser(site, browser_page):
    page, requests = browser_page
    page.goto(site + "/")
    assert page.title() == "Fleet - faregate back office"
    assert "3 gates, 2 with alarms, 100 records stored" in page.inner_text("body")
    central = _cells(page, "Central entry 1")
    assert central[0] == "301" and central[3] == "0" and central[9] == "none"
    assert central[5] == "0.4.2 slot a"
    harbour = _cells(page, "Harbour exit 1")
    assert harbour[5] == "0.5.0 slot b ON TRIAL" and harbour[9] == "firmware on trial"
    assert central[6].startswith("v1 fresh until 2026-01-08") and central[7] == "v1"
    harbour2 = _cells(page, "Harbour entry 2")
    assert "revoked" in harbour2[9] and "last session refused: unknown_device" in harbour2[9]
    assert harbour2[8] == "1"  # its replay
    _shot(page, "fleet")

    page.click("text=302")
    assert page.title() == "Gate 302 - faregate back office"
    plots = page.locator("svg.plot")
    assert plots.count() == 2
    assert plots.nth(0).locator("circle").count() == ROUNDS  # queue depth at every session
    assert plots.nth(1).locator("circle").count() == ROUNDS - 1  # lag from the second on
    depth = plots.nth(0).locator("circle title").all_text_contents()
    assert depth[0].endswith(": 3 rec") and depth[-1].endswith(": 9 rec")  # 3 + round riders
    lag = plots.nth(1).locator("circle title").all_text_contents()
    assert all(t.endswith(": 10 min") for t in lag)
    assert page.locator("h2", has_text="Latest sessions (%d of %d)" % (ROUNDS, ROUNDS)).count()
    _shot(page, "gate-302")

    page.goto(site + "/gates/303")
    lag = page.locator("svg.plot").nth(1).locator("circle title").all_text_contents()
    assert lag[0].endswith(": 40 min")  # offline for three rounds
    refused = page.locator("tr", has_text="10.0.0.3:40000").filter(has_text="unknown_device")
    assert refused.locator("td").all_inner_texts()[2:5] == ["refused", "unknown_device", "0"]
    _shot(page, "gate-303")

    page.click("nav >> text=Anomalies")
    assert page.title() == "Anomalies - faregate back office"
    replays = page.locator("tr", has_text="replay")
    assert replays.count() == 1
    assert "303" in replays.first.inner_text()
    assert "presentation 7777/1/9 also passed at device 301" in replays.first.inner_text()
    _shot(page, "anomalies")
    page.click("text=replay: 1")
    assert page.title() == "Anomalies: replay - faregate back office"

    page.click("nav >> text=Accounts")
    assert page.title() == "Accounts - faregate back office"
    assert _cells(page, "5000") == ["5000", "1", "0", "4.00"]
    _shot(page, "accounts")
    page.click("text=5000")
    assert page.title() == "Account 5000 - faregate back office"
    journey = _cells(page, "complete")
    assert journey[0] == "metro" and "station 1 at 2026-01-01 08:00:00" in journey[1]
    assert "station 7 at 2026-01-01 08:06:00" in journey[2] and journey[4:] == ["4.00", "4.00"]
    charges = page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts()
    assert charges == ["2026-01-01", "metro", "1", "0", "4.00", "4.00"]
    _shot(page, "account-5000")

    assert page.goto(site + "/gates/999").status == 404
    assert all(u.startswith(site) for u in requests), "the dashboard loaded from elsewhere"


def test_plots_scale_to_a_round_maximum_and_escape_their_text():
    from host_sim.backoffice import svgplot

    svg = svgplot.time_plot([(NOW, 3), (NOW + 600, 7), (NOW + 1200, 0)], "depth <&>", "rec")
    assert svg.count("<circle") == 3 and "depth &lt;&amp;&gt;" in svg and "<&>" not in svg
    assert ">10 rec</text>" in svg and ">5 rec</text>" in svg  # 7 rounds up to 10
    assert "2026-01-01 08:00 UTC: 3 rec" in svg and "2026-01-01 08:20 UTC" in svg
    assert [svgplot._round_up(v) for v in (0, 1, 1.5, 3, 20, 21)] == [1, 1, 2, 5, 20, 50]
    empty = svgplot.time_plot([], "lag", "min")
    assert "no data" in empty and "<circle" not in empty
    html = dashboard.table(["a"], [[dashboard._cell("<b>")]], "none")
    assert "&lt;b&gt;" in html and "<b>" not in html


def test_the_risk_page_shows_findings_and_deny_entries(fleet_store, site, browser_page):
    """The copied code of the fleet (7777 at 301 and 303) found by the risk engine, its deny
    entry published, then an operator's undo: each as the page shows it."""
    from host_sim.backoffice import risk

    store, clock = fleet_store
    cfg = risk.load_config()
    out = risk.scan(store, cfg, clock.now())
    found = [(f["rule"], f["account_id"], f["state"]) for f in out["findings"]]
    assert found == [  # the copy passed at stations 1 and 7 at one moment: impossible too
        ("copied_code", REPLAYED, "denied"),
        ("impossible_journey", REPLAYED, "review"),
    ]
    fid = out["findings"][0]["id"]
    signer = es256.OpenSSLSigner(es256.generate_key())
    first = denylist.build_snapshot(1, NOW, [], signer)  # what the site files gave
    store.publish(messages.KIND_DENY_DELTA, 1, first, clock.now())
    assert risk.publish(store, cfg, signer, clock.now())["version"] == 2
    page, requests = browser_page
    page.goto(site + "/")
    page.click("nav >> text=Risk")
    assert page.title() == "Risk - faregate back office"
    assert "denied: 1 review: 1" in page.inner_text("body")
    journey = _cells(page, "impossible_journey")
    assert journey[6] == "review" and "the fastest ride takes" in journey[7]
    row = _cells(page, "copied_code")
    assert row[0] == str(fid) and row[3] == str(REPLAYED) and row[6] == "denied"
    assert "presentation 9 passed 2 times" in row[7] and "gate 303 (station 7)" in row[7]
    assert row[8] == "auto"
    entry = page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts()
    assert entry[:7] == ["0", str(REPLAYED), "1", "copied_code", str(fid), "yes", "v2"]
    _shot(page, "risk")
    risk.undo(store, fid, "ana", "the rider's own two phones", clock.now())
    page.goto(site + "/risk?state=undone")
    assert page.title() == "Risk: undone - faregate back office"
    row = _cells(page, "copied_code")
    assert row[6] == "undone" and row[8] == "ana (the rider's own two phones)"
    page.click("text=%d" % REPLAYED)
    assert page.title() == "Account %d - faregate back office" % REPLAYED
    assert all(u.startswith(site) for u in requests), "the dashboard loaded from elsewhere"


def test_the_risk_page_shows_the_engine_serve_runs_on_arrival(tmp_path, browser_page):
    """serve's engine (risk_live) on the page: a copied code committed at two gates is found
    and published as it arrives, then a run that fails is shown as an alarm."""
    from host_sim.backoffice import http, risk
    from host_sim.backoffice.metrics import Metrics
    from host_sim.backoffice.risk_live import RiskLive

    store = Store(str(tmp_path / "bo.sqlite"))
    clock = ManualClock(NOW + 120)
    signer = es256.OpenSSLSigner(es256.generate_key())
    for dev in (301, 303):
        store.add_device(dev, b"\x02" + bytes(32), NOW)
    store.publish(messages.KIND_DENY_DELTA, 1, denylist.build_snapshot(1, NOW, [], signer), NOW)
    live = RiskLive(store, risk.load_config(), signer, clock=clock)
    for dev, t in ((301, NOW), (303, NOW + 20)):
        raw = records.Record(
            records.KIND_PASSAGE, 0, dev, 1, t, 1, DIR_ENTRY, 1, 4242, 1, 3, 0, 0,
            records.ZERO_HASH,
        ).to_bytes()  # fmt: skip
        store.store_batch(dev, [raw], t)
        live.arrived(1)  # as a host session does after the batch's commit
    loop = asyncio.new_event_loop()  # in a thread: playwright's sync API holds this one's
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(http.make_app(store, Metrics(store), live))

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    site = "http://127.0.0.1:%d" % runner.addresses[0][1]
    try:
        page, requests = browser_page
        seen = len(requests)  # (the page's requests of earlier tests are the module's)
        page.goto(site + "/risk")
        engine = page.inner_text("#engine")
        assert engine.startswith("Risk engine: runs as records arrive: 2 run(s), 1 finding(s)")
        # the first batch alone was one passage; the second made the copy, found and published
        assert "the newest at 2026-01-01 08:02:00: 1 new finding(s), published" in engine
        assert engine.endswith("published deny_delta v2 (+1 -0).")
        row = _cells(page, "copied_code")
        assert row[3] == "4242" and row[6] == "denied" and row[8] == "auto"
        assert page.locator("#engine-error").count() == 0
        store.b.execute("DELETE FROM publications")  # the next publish has no list to add to
        store.b.execute("DELETE FROM risk_denials")  # (so that it has something to publish)
        store.risk_want(
            denylist.credential_key(0, 4242, 1), 1, "copied_code", NOW + 9999, True, NOW
        )
        clock.advance(60)
        live.run()
        page.goto(site + "/risk")
        err = page.inner_text("#engine-error")
        assert err.startswith("1 failed run(s); the newest at 2026-01-01 08:03:00: publish: ")
        assert "no deny list is published yet" in err and err.endswith("(bad_risk)")
        _shot(page, "risk-live")
        mine = requests[seen:]
        assert all(u.startswith(site) for u in mine), "the dashboard loaded from elsewhere"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
