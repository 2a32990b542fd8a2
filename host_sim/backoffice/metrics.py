"""The back office's Prometheus metrics, in a CollectorRegistry of its own (one per back office,
so two in one process, as in tests, do not mix).

Counted as sessions end (`Metrics.session`, called by the sync server):
    faregate_backoffice_sessions_total{outcome}    sessions by how they ended (sync_server.OUTCOMES)
    faregate_backoffice_refusals_total{reason}     sessions refused and TLS handshakes failed
    faregate_backoffice_records_ingested_total     records acknowledged to gates
    faregate_backoffice_ack_latency_seconds        a batch's arrival to its ACK (durable first)
Read from the store at each scrape (each gate's last STATUS):
    faregate_backoffice_queue_depth{device_id}       records waiting on the gate
    faregate_backoffice_oldest_unsynced_seconds{device_id}  age of the oldest of them
    faregate_backoffice_last_sync_timestamp_seconds{device_id}
    faregate_backoffice_stale_lists                  gates whose trust list is not fresh
"""

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "faregate_backoffice_"
# SQLite with synchronous=FULL: a batch is durable in milliseconds, a slow disk in a second
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Fleet(Collector):
    """Per-gate gauges from the store, read when Prometheus scrapes."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            PREFIX + "queue_depth",
            "records waiting on the gate (its last status)",
            labels=["device_id"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "oldest_unsynced_seconds",
            "age of the oldest record waiting on the gate (its last status)",
            labels=["device_id"],
        )
        last = GaugeMetricFamily(
            PREFIX + "last_sync_timestamp_seconds",
            "unix time of the gate's last upload or status",
            labels=["device_id"],
        )
        stale = 0
        for d in self.store.devices(revoked=False):
            dev, seen, st = d["device_id"], d["last_seen"], d["status"]
            label = [str(dev)]
            if st.get("unsynced") is not None:
                depth.add_metric(label, st["unsynced"])
                oldest.add_metric(label, st.get("oldest_age_s") or 0)
            if seen is not None:
                last.add_metric(label, seen)
            trust = (st.get("extra") or {}).get("trust") or {}
            stale += bool(trust) and trust.get("state") != "fresh"
        yield depth
        yield oldest
        yield last
        yield GaugeMetricFamily(
            PREFIX + "stale_lists", "gates whose trust list is not fresh (their last status)", stale
        )


class Metrics:
    def __init__(self, store: Any) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Counter(
            PREFIX + "sessions", "sync sessions by how they ended", ["outcome"], registry=r
        )
        self.refusals = Counter(
            PREFIX + "refusals",
            "sessions refused and TLS handshakes failed, by reason",
            ["reason"],
            registry=r,
        )
        self.records = Counter(
            PREFIX + "records_ingested", "records acknowledged to gates", registry=r
        )
        self.ack = Histogram(
            PREFIX + "ack_latency_seconds",
            "from a batch's arrival to its acknowledgement (stored durably first)",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        r.register(_Fleet(store))

    def session(self, outcome: str, reason: str, records: int, ack_s: list[float]) -> None:
        self.sessions.labels(outcome).inc()
        if outcome in ("refused", "tls_error"):
            self.refusals.labels(reason or "unknown").inc()
        self.records.inc(records)
        for s in ack_s:
            self.ack.observe(s)
