"""The back office's HTTP side port: /healthz, Prometheus /metrics and the dashboard.

    app = make_app(store, metrics)
    runner = await start_http(app, "127.0.0.1", 9108)   # in the sync server's event loop
    ...
    await runner.cleanup()

aiohttp runs in the same asyncio loop as the sync server (no second server stack). The port is
separate from the gates' sync port: it speaks plain HTTP, so keep it on an address only the
operator's monitoring reaches. /healthz answers 200 with {"status": "ok", ...} while the store
answers a query, else 503; /metrics is host_sim/backoffice/metrics.py's registry.
The transparency log's heads and proofs (host_sim/backoffice/logview.py, docs/settlement.md):
GET /log/heads[?since_ms=T], /log/prove?device=D&seq=S[&size=N], /log/consistency?old=M[&size=N]
answer JSON (404 with {"error", "reason"} when there is no such proof yet).
"""

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from host_sim.backoffice import dashboard, logview
from host_sim.backoffice.metrics import Metrics
from host_sim.backoffice.store import Store

STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
STARTED = web.AppKey("started", float)


async def healthz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    body = {"status": "ok", "uptime_s": int(time.monotonic() - request.app[STARTED])}
    try:
        body["devices"] = store.device_count()
        body["records"] = store.count()
    except store.errors as e:
        return web.json_response({"status": "store_failed", "error": str(e)}, status=503)
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[METRICS].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None:
        if default is None and name in ("device", "seq", "old"):
            raise web.HTTPBadRequest(text="missing ?%s=" % name)
        return default
    try:
        return int(v)
    except ValueError:
        raise web.HTTPBadRequest(text="?%s= is not a number" % name) from None


async def log_answer(request: web.Request) -> web.Response:
    store = request.app[STORE]
    what = request.match_info["what"]
    try:
        if what == "heads":
            body: object = logview.heads(store, _int(request, "since_ms"))
        elif what == "prove":
            dev, seq = _int(request, "device"), _int(request, "seq")
            assert dev is not None and seq is not None
            body = logview.prove(store, dev, seq, _int(request, "size"))
        elif what == "consistency":
            old = _int(request, "old")
            assert old is not None
            body = logview.consistency(store, old, _int(request, "size"))
        else:
            raise web.HTTPNotFound()
    except logview.NoProof as e:
        return web.json_response({"error": str(e), "reason": e.reason}, status=404)
    return web.json_response(body)


def make_app(store: Store, metrics_: Metrics, risk_live: Any = None) -> web.Application:
    """The side port's app; `risk_live`: serve's risk engine (risk_live.RiskWorker), whose
    runs the dashboard's Risk page shows."""
    app = web.Application()
    app[STORE] = store
    app[METRICS] = metrics_
    app[STARTED] = time.monotonic()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/log/{what}", log_answer)
    dashboard.add_routes(app, store, risk_live=risk_live)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port in the running loop; `bound_port(runner)` tells a port 0."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])
