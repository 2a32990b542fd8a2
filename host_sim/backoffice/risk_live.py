"""The risk engine on arrival: the back office's own service runs it as records come in.

    live = RiskLive(store, cfg, signer, clock, log)
    session = HostSession(..., arrived=live.arrived)   # told after each batch is committed
    live.run()          # one scan, then one publish, now (never raises: errors are logged)

    worker = RiskWorker(open_store, cfg, signer, log=log, every_s=30)
    ... arrived() from any thread wakes it ...
    worker.close()

`RiskLive` is the engine's service: `arrived(n)` says n records were just committed and runs
the engine at once (the simulator's, whose time does not move while it runs, and the tests');
`RiskWorker` is the same in a thread of its own with its own store connection
(`faregate backoffice serve`): `arrived` only wakes it, so a session's ACK never waits on a
scan, and arrivals during a run make one more run, not one each. It also runs every `every_s`
without arrivals: expiries, the refresh delta before the list's valid_until, and records
another front end (`serve --workers`) stored.

One run is risk.scan (one transaction: findings, wanted deny entries and the scan cursor move
together, or nothing does) then risk.publish (one more: the signed delta every gate fetches
at its next sync). A failed run (the store's error, a RiskError such as no deny list
published yet, or a bug) is one `risk_error` event and changes nothing it did not commit: a
scan that failed leaves the cursor, so the same records are scanned by the next run; findings
a failed publish leaves wanted are published by the next. Records are never touched: they
were committed and acknowledged before the engine heard of them.

Events to `log` (dicts, as the sync server's): `{"event": "risk_finding", "id", "rule",
"account_id", "cred_no", "score", "state", "detail"}` per new finding,
`{"event": "risk_published", "version", "adds", "removes"}` per delta (adds and removes as
counts) and `{"event": "risk_error", "reason", "msg"}`. `last` holds the newest run's
summary (time, findings, published) and `last_error` the newest failure, for the dashboard's
Risk page (host_sim/backoffice/dashboard.py); `findings`/`published` the totals;
`on_run(summary)` is told each (the simulator's report keeps them).
"""

import threading
from collections.abc import Callable
from typing import Any

from host_sim.backoffice import risk

Log = Callable[[dict[str, Any]], None]


def _quiet(event: dict[str, Any]) -> None:
    pass


class RiskLive:
    """Runs the risk engine when records arrive, in the caller's thread."""

    def __init__(
        self,
        store: Any,
        cfg: dict[str, Any],
        signer: Any,
        clock: Any = None,
        log: Log = _quiet,
        on_run: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store  # the simulator swaps it when its back office restarts
        self.on_run = on_run  # told each run's summary (the simulator's report)
        self.cfg = cfg
        self.signer = signer  # the lists role's key, or a list of them (risk.publish)
        self.clock = clock
        self.log = log
        self.runs = 0
        self.errors = 0
        self.findings = 0  # new findings, all runs
        self.published = 0  # deltas, all runs
        self.last: dict[str, Any] | None = None
        self.last_error: dict[str, Any] | None = None  # {"time", "reason", "msg"} of the newest

    def arrived(self, records: int = 1) -> None:
        """`records` were committed (and acknowledged): run the engine over them."""
        if records:
            self.run()

    def now(self) -> int:
        if self.clock is not None:
            return int(self.clock.now())
        import time

        return int(time.time())

    def run(self) -> dict[str, Any] | None:
        """One scan and one publish; their summary {"time", "findings": [...], "published":
        {...} or None}, or None when the run failed (said in a risk_error event)."""
        now = self.now()
        self.runs += 1
        try:
            out = risk.scan(self.store, self.cfg, now)
        except Exception as e:  # noqa: BLE001 - the service outlives any run (module doc)
            self._failed("scan", e)
            return None
        for f in out["findings"]:
            self.findings += 1
            self.log(
                {
                    "event": "risk_finding",
                    **{
                        k: f[k]
                        for k in (
                            "id",
                            "rule",
                            "account_id",
                            "cred_no",
                            "score",
                            "state",
                            "detail",
                        )
                    },
                }
            )
        summary: dict[str, Any] = {"time": now, "findings": out["findings"], "published": None}
        try:
            pub = risk.publish(self.store, self.cfg, self.signer, now)
        except Exception as e:  # noqa: BLE001 - what it found stays wanted: the next publishes
            self._failed("publish", e)
            return self._ran(summary)
        if pub is not None:
            self.published += 1
            summary["published"] = pub
            self.log(
                {
                    "event": "risk_published",
                    "version": pub["version"],
                    "adds": len(pub["adds"]),
                    "removes": len(pub["removes"]),
                    "msg": "deny_delta version %d (+%d -%d) offered to every gate"
                    % (pub["version"], len(pub["adds"]), len(pub["removes"])),
                }
            )
        return self._ran(summary)

    def _ran(self, summary: dict[str, Any]) -> dict[str, Any]:
        self.last = summary
        if self.on_run is not None:
            self.on_run(summary)
        return summary

    def _failed(self, step: str, e: BaseException) -> None:
        self.errors += 1
        reason = getattr(e, "reason", None) or type(e).__name__
        event = {"event": "risk_error", "reason": str(reason), "msg": "%s: %s" % (step, e)}
        self.last_error = {"time": self.now(), "reason": event["reason"], "msg": event["msg"]}
        self.log(event)


class RiskWorker(RiskLive):
    """RiskLive in a thread of its own, with its own store (serve's): `arrived` wakes it."""

    def __init__(
        self,
        open_store: Callable[[], Any],
        cfg: dict[str, Any],
        signer: Any,
        clock: Any = None,
        log: Log = _quiet,
        every_s: float = 30.0,
    ) -> None:
        super().__init__(None, cfg, signer, clock, log)
        self.every_s = every_s
        self._open = open_store
        self._cv = threading.Condition()
        self._asked = 0  # arrivals told so far
        self._done = 0  # arrivals the newest finished run took in
        self._stop = False
        self._ready = threading.Event()
        self._failed_open: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="risk", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed_open is not None:
            raise self._failed_open

    def arrived(self, records: int = 1) -> None:
        if records:
            with self._cv:
                self._asked += 1
                self._cv.notify_all()

    def settled(self, timeout_s: float = 10.0) -> bool:
        """Wait until a run began after every arrival told so far and ended (tests)."""
        with self._cv:
            want = self._asked
            return self._cv.wait_for(lambda: self._done >= want, timeout_s)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(30)

    def _main(self) -> None:
        try:
            self.store = self._open()
        except BaseException as e:  # StoreUnavailable: said by the constructor
            self._failed_open = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._stop or self._asked > self._done, self.every_s)
                    if self._stop:
                        break
                    taking = self._asked  # arrivals from now on make one more run
                self.run()
                with self._cv:
                    self._done = taking
                    self._cv.notify_all()
        finally:
            self.store.close()
