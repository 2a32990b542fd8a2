"""The back office as an operator's service: certificates naming the host gates connect to
(a back office on 127.0.0.2, reached by name and by address), a logged error when they do not,
the TOML config with line-numbered errors, JSON-lines session logs, /healthz and Prometheus
/metrics over real HTTP from the event loop the sync server runs in."""

import asyncio
import datetime
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from drivers.linux.link_tcp import TcpLink, client_context
from firmware.sync.client import SyncError, run_session
from host_sim.backoffice import config, http
from host_sim.backoffice.metrics import Metrics
from host_sim.backoffice.sync_server import BackOfficeThread, server_context
from provisioning import pki
from provisioning.cli.main import build_parser
from tests.synclab import DEVICE_ID, NOW, Lab
from tests.test_backoffice_cli import faregate_argv, run


@pytest.fixture
def lab(tmp_path, store_target):  # the sync service on SQLite and on PostgreSQL
    lab = Lab(tmp_path, db=store_target)
    yield lab
    lab.close()


def _certs(d, dns: tuple[str, ...], ips: tuple[str, ...]):
    """An operator CA, a back-office certificate naming `dns` and `ips`, a gate's certificate."""
    now = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    os.makedirs(d, exist_ok=True)
    ca_key = pki.new_key()
    ca = pki.make_ca(ca_key, "test CA", now)
    pki.save_cert(ca, os.path.join(d, "ca.pem"))
    files = {}
    for name, server in (("bo", True), ("gate", False)):
        k = pki.new_key()
        cert = pki.issue_cert(ca_key, ca, k.public_key(), name, now, server, dns, ips)
        files[name] = (os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
        pki.save_key(k, files[name][1])
        pki.save_cert(cert, files[name][0])
    return os.path.join(d, "ca.pem"), files["bo"], files["gate"]


def _metrics(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _wait(pred, what: str, timeout_s: float = 5):
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("no %s in %d s" % (what, timeout_s))
        time.sleep(0.02)


def test_keys_tls_names_the_hosts_and_addresses_given(tmp_path):
    run("init", "--dir", str(tmp_path / "op"), group="keys")
    p = run(
        "tls", "--dir", str(tmp_path / "op"), "--server", "--out", str(tmp_path / "bo"),
        "--name", "bo.metro.example", "--name", "bo", "--ip", "10.20.0.5", "--ip", "fd00::5",
        group="keys",
    )  # fmt: skip
    assert (
        "gates may connect to: DNS bo.metro.example, DNS bo, IP 10.20.0.5, IP fd00::5" in p.stdout
    )
    cert = pki.load_cert(str(tmp_path / "bo.pem"))
    assert pki.cert_names(cert) == ["bo.metro.example", "bo", "10.20.0.5", "fd00::5"]
    cn = cert.subject.get_attributes_for_oid(pki.NameOID.COMMON_NAME)[0].value
    assert cn == "bo.metro.example"
    bad = run(
        "tls", "--dir", str(tmp_path / "op"), "--server", "--out", str(tmp_path / "x"),
        "--name", "bo", "--ip", "bo.metro.example", ok=False, group="keys",
    )  # fmt: skip
    assert bad.returncode == 2 and "--ip bo.metro.example is not an IP address" in bad.stderr
    assert not (tmp_path / "x.pem").exists()


@pytest.mark.parametrize("by", ["address", "name"])
def test_gates_sync_with_a_back_office_on_another_address(lab, by):
    ca, srv, cli = _certs(os.path.join(lab.tmp, "tls"), ("bo.station.example",), ("127.0.0.2",))
    events: list[dict] = []
    bo = BackOfficeThread(
        lab.db, lab.keys, server_context(srv[0], srv[1], ca), lab.clock, events.append,
        host="127.0.0.2",
    )  # fmt: skip
    try:
        assert bo.server.sockets[0].getsockname()[0] == "127.0.0.2"
        lab.passages(5)
        name = "bo.station.example" if by == "name" else None
        link = TcpLink.connect("127.0.0.2", bo.port, client_context(ca, *cli), name)
        with link:
            run_session(lab.client(), link, 5)
        _wait(lambda: events, "session event")
    finally:
        bo.stop()
    assert lab.store.count() == 5 and lab.journal.pending_count() == 0
    [ev] = events
    assert ev["event"] == "session" and ev["outcome"] == "ok" and ev["reason"] == ""
    assert ev["device_id"] == DEVICE_ID and ev["records"] == 5 and ev["peer"].startswith("127.")


def test_a_certificate_that_does_not_name_the_host_is_a_clear_logged_error(lab):
    # the certificate `keys tls` used to write whatever the host: localhost and 127.0.0.1
    ca, srv, cli = _certs(os.path.join(lab.tmp, "tls"), ("localhost",), ("127.0.0.1",))
    events: list[dict] = []
    metrics = Metrics(lab.store)
    bo = BackOfficeThread(
        lab.db, lab.keys, server_context(srv[0], srv[1], ca), lab.clock, events.append,
        host="127.0.0.2", metrics=metrics,
    )  # fmt: skip
    try:
        lab.passages(2)
        with pytest.raises(ssl.SSLCertVerificationError) as e:
            TcpLink.connect("127.0.0.2", bo.port, client_context(ca, *cli))
        assert "IP address mismatch" in str(e.value) and "does not name 127.0.0.2" in str(e.value)
        assert "faregate keys tls --server --name HOST --ip ADDR" in str(e.value)
        _wait(lambda: events, "tls_error event")
    finally:
        bo.stop()
    [ev] = events
    assert ev["outcome"] == "tls_error" and ev["device_id"] is None and ev["records"] == 0
    assert ev["reason"] in ("sslv3_alert_bad_certificate", "sslv3_alert_certificate_unknown")
    assert "must name the host or address the gate connects to" in ev["msg"]
    assert "--name HOST --ip ADDR" in ev["msg"]
    [row] = lab.store.sessions()
    assert (row["outcome"], row["reason"], row["device_id"]) == ("tls_error", ev["reason"], None)
    assert metrics.refusals.labels(ev["reason"])._value.get() == 1
    assert lab.journal.pending_count() == 2 and lab.store.count() == 0


def test_healthz_and_metrics_over_http_in_the_sync_servers_loop(lab):
    metrics = Metrics(lab.store)
    ca, srv, cli = lab.tls_files()
    events: list[dict] = []
    bo = BackOfficeThread(
        lab.db, lab.keys, server_context(srv[0], srv[1], ca), lab.clock, events.append,
        metrics=metrics,
    )  # fmt: skip
    app = http.make_app(bo.store, metrics)
    runner = asyncio.run_coroutine_threadsafe(http.start_http(app, "127.0.0.1", 0), bo.loop).result(
        10
    )
    port = http.bound_port(runner)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            health = json.loads(r.read())
        assert r.status == 200 and health["status"] == "ok"
        assert (health["devices"], health["records"]) == (1, 0)
        before = _metrics(port)
        assert before[("faregate_backoffice_records_ingested_total", ())] == 0
        assert before[("faregate_backoffice_ack_latency_seconds_count", ())] == 0
        lab.passages(450)  # three batches of 200
        with TcpLink.connect("127.0.0.1", bo.port, client_context(ca, *cli)) as link:
            run_session(lab.client(), link, 5)
        # a gate the back office does not know: refused, counted by reason
        lab.store.revoke_device(DEVICE_ID, NOW)
        lab.passages(1)
        with TcpLink.connect("127.0.0.1", bo.port, client_context(ca, *cli)) as link:
            with pytest.raises(SyncError):
                run_session(lab.client(), link, 5)
        _wait(lambda: len(events) == 2, "two session events")
        after = _metrics(port)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), bo.loop).result(10)
        bo.stop()
    ok = ("outcome", "ok")
    assert after[("faregate_backoffice_sessions_total", (ok,))] == 1
    assert after[("faregate_backoffice_sessions_total", (("outcome", "refused"),))] == 1
    assert after[("faregate_backoffice_refusals_total", (("reason", "unknown_device"),))] == 1
    assert after[("faregate_backoffice_records_ingested_total", ())] == 450
    assert after[("faregate_backoffice_ack_latency_seconds_count", ())] == 3
    assert 0 < after[("faregate_backoffice_ack_latency_seconds_sum", ())] < 5
    # the revoked gate is no longer in the fleet's gauges; before, its queue was empty
    assert ("faregate_backoffice_queue_depth", (("device_id", str(DEVICE_ID)),)) not in after
    assert after[("faregate_backoffice_stale_lists", ())] == 0
    assert [e["outcome"] for e in events] == ["ok", "refused"]
    assert events[1]["reason"] == "unknown_device" and events[0]["records"] == 450
    rows = lab.store.sessions(DEVICE_ID)
    assert [(r["outcome"], r["records"], r["queue_depth"]) for r in rows] == [
        ("ok", 450, 450),  # waiting on the gate as the session began
        ("refused", 0, 1),
    ]


def test_queue_depth_per_gate_comes_from_its_last_status(lab):
    metrics = Metrics(lab.store)
    lab.store.note_status(DEVICE_ID, NOW, {"unsynced": 12, "oldest_age_s": 340, "extra": {
        "trust": {"version": 3, "state": "trust_list_stale"}}})  # fmt: skip
    text = http.generate_latest(metrics.registry).decode()
    got = {
        (s.name, tuple(s.labels.values())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert got[("faregate_backoffice_queue_depth", (str(DEVICE_ID),))] == 12
    assert got[("faregate_backoffice_oldest_unsynced_seconds", (str(DEVICE_ID),))] == 340
    assert got[("faregate_backoffice_last_sync_timestamp_seconds", (str(DEVICE_ID),))] == NOW
    assert got[("faregate_backoffice_stale_lists", ())] == 1


CONFIG = """\
# the back office of a test
[sync]
listen = ["127.0.0.1:0"]
sync_key = "op/sync.key"
idle_timeout_s = 30

[store]
path = "bo.sqlite"

[http]
listen = "127.0.0.1:0"

[log]
file = "bo.log"
"""


def test_a_config_file_sets_every_setting_relative_to_itself(tmp_path):
    path = tmp_path / "bo.toml"
    path.write_text(CONFIG)
    values = config.load(str(path))
    assert values == {
        "sync.listen": ["127.0.0.1:0"],
        "sync.sync_key": str(tmp_path / "op/sync.key"),
        "sync.idle_timeout_s": 30,
        "store.path": str(tmp_path / "bo.sqlite"),
        "http.listen": "127.0.0.1:0",
        "log.file": str(tmp_path / "bo.log"),
    }
    assert config.parse_addr("[::1]:7700") == ("::1", 7700)


@pytest.mark.parametrize(
    "change, line, problem",
    [
        (("idle_timeout_s = 30", "idle_timeout_s = 0"), 5, "sync.idle_timeout_s: must be a whole"),
        (('listen = ["127.0.0.1:0"]', 'listen = ["0.0.0.0"]'), 3, "sync.listen: '0.0.0.0' is not"),
        (('path = "bo.sqlite"', 'path = "bo.sqlite"\nfile = "x"'), 9, "store.file: unknown key"),
        (('path = "bo.sqlite"', 'url = "bo.sqlite"'), 8, "store.url: must be a postgresql://"),
        (
            ('path = "bo.sqlite"', 'path = "a"\nurl = "postgresql://a@/b"'),
            9,
            "store.url: set path (SQLite) or url",
        ),
        (("[log]", "[logs]"), 13, "logs: unknown section"),
        (("[http]", "[tls]\ncert = 'a.pem'\n[http]"), 10, "tls: needs cert, key and ca together"),
        (("idle_timeout_s = 30", "idle_timeout_s = "), 5, "syntax: "),
    ],
)
def test_config_errors_name_the_line(tmp_path, change, line, problem):
    path = tmp_path / "bo.toml"
    path.write_text(CONFIG.replace(*change))
    with pytest.raises(config.ConfigError) as e:
        config.load(str(path))
    assert str(e.value).startswith("%s:%d: %s" % (path, line, problem)), str(e.value)
    assert e.value.exit_code == 2


def test_serve_with_a_bad_config_exits_2_naming_the_line(tmp_path):
    (tmp_path / "bo.toml").write_text(CONFIG.replace("idle_timeout_s = 30", "idle_timeout_s = -1"))
    p = run("serve", "--config", "bo.toml", ok=False, cwd=tmp_path)
    assert p.returncode == 2
    assert "bo.toml:5: sync.idle_timeout_s: must be a whole number of seconds" in p.stderr


def test_serve_from_its_config_logs_json_lines_and_answers_healthz(tmp_path):
    run("init", "--dir", str(tmp_path / "op"), group="keys")
    (tmp_path / "bo.toml").write_text(CONFIG)
    argv = faregate_argv("backoffice", "serve", "--config", "bo.toml")
    srv = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        log = tmp_path / "bo.log"
        _wait(lambda: log.exists() and log.read_text().endswith("\n"), "start line", 30)
        start = json.loads(log.read_text().splitlines()[0])
        assert start["event"] == "start" and start["store"] == "bo.sqlite"
        assert start["tls"] is False and start["listen"][0].startswith("127.0.0.1:")
        port = int(start["http"].rsplit(":", 1)[1])
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            assert json.loads(r.read())["status"] == "ok"
        assert _metrics(port)[("faregate_backoffice_stale_lists", ())] == 0
    finally:
        srv.send_signal(signal.SIGTERM)
        out, err = srv.communicate(timeout=10)
    assert srv.returncode == 0 and err == b"", err
    assert out.decode() == "backoffice: %s; log in bo.log\n" % start["msg"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    # the log's first head, signed at start (an empty log: the root of nothing)
    assert [x["event"] for x in lines] == ["start", "tree_head", "stop"]
    assert lines[1]["tree_size"] == 0 and lines[1]["root_hash"].startswith("e3b0c442")
    assert lines[2]["msg"] == "stopped by SIGTERM" and lines[2]["time"].endswith("Z")


def test_flags_override_the_config_file(tmp_path):
    from provisioning.cli.backoffice import _serve_settings

    (tmp_path / "bo.toml").write_text(CONFIG)
    args = build_parser().parse_args(
        ["backoffice", "serve", "--config", str(tmp_path / "bo.toml"), "--port", "7800",
         "--db", "other.sqlite", "--http", "127.0.0.1:9200"]
    )  # fmt: skip
    cfg = _serve_settings(args)
    assert cfg["sync.listen"] == [("127.0.0.1", 7800)] and cfg["store.path"] == "other.sqlite"
    assert cfg["http.listen"] == ("127.0.0.1", 9200) and cfg["sync.idle_timeout_s"] == 30


def test_sessions_over_a_serial_line_are_logged_one_by_one(lab):
    import threading
    import tty

    from drivers.linux.link_serial import SerialLink
    from host_sim.backoffice.sync_server import Sessions, serve_link
    from tests.synclab import FdLink

    master, slave = os.openpty()
    tty.setraw(slave)
    events: list[dict] = []
    sessions = Sessions(lab.store, lab.keys, clock=lab.clock, log=events.append)
    stop = threading.Event()
    t = threading.Thread(
        target=serve_link,
        args=(lab.store, lab.keys, FdLink(master), stop, lab.clock, sessions),
        daemon=True,
    )
    t.start()
    link = SerialLink(os.ttyname(slave))
    try:
        for i, n in enumerate((3, 2)):
            lab.passages(n)
            run_session(lab.client(), link, 5)
            _wait(lambda i=i: len(events) == i + 1, "serial session event")
    finally:
        stop.set()
        t.join(5)
        link.close()
        os.close(master)
        os.close(slave)
    assert [(e["outcome"], e["records"], e["device_id"]) for e in events] == [
        ("ok", 3, DEVICE_ID),
        ("ok", 2, DEVICE_ID),
    ]
    assert [r["records"] for r in lab.store.sessions(DEVICE_ID)] == [3, 2]


def test_healthz_says_503_when_the_store_does_not_answer(tmp_path):
    import aiohttp

    from host_sim.backoffice.store import Store

    store = Store(str(tmp_path / "bo.sqlite"))

    async def main() -> tuple[int, dict, int]:
        runner = await http.start_http(http.make_app(store, Metrics(store)), "127.0.0.1", 0)
        url = "http://127.0.0.1:%d/healthz" % http.bound_port(runner)
        try:
            async with aiohttp.ClientSession() as client:
                async with client.get(url) as r:
                    before = r.status
                store.close()  # as a database gone away looks to a query
                async with client.get(url) as r:
                    return before, await r.json(), r.status
        finally:
            await runner.cleanup()

    before, body, status = asyncio.run(main())
    assert before == 200 and status == 503 and body["status"] == "store_failed", body
