"""Helpers for tests that drive `faregate sim device` and the technician CLI as subprocesses.

Each test gets its own simulator directory (FAREGATE_SIM_DIR under tmp_path), so parallel
tests never see each other's gates.
"""

import json
import os
import subprocess
import time
from typing import Any

from tests.conftest import faregate_argv

SITE = """\
[operator]
ca_key = "{ca_key}"
revoked_technicians = {revoked}

[station]
id = 12
name = "Central"
mode = "metro"
scope = 1

[lists]
trust_list = "lists/trust.bin"
deny_list = "lists/deny.bin"

[selftest]
scan_timeout_s = 1

[[gate]]
name = "A1"
lane = 1
direction = "entry"
"""


class SimGate:
    """One `faregate sim device` process; `port` is its pty."""

    count = 0

    def __init__(
        self, tmp_path, state, env, device_id=1017, faults=(), passages=0, extra=()
    ) -> None:
        SimGate.count += 1
        self.out_path = str(tmp_path / ("sim-%d.out" % SimGate.count))
        argv = faregate_argv(
            "sim",
            "device",
            "--state",
            str(state),
            "--device-id",
            str(device_id),
            "--passages",
            str(passages),
            "--json",
            *["--fault=%s" % f for f in faults],
            *extra,
        )
        self._out = open(self.out_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self.ready = self._wait_ready()
        self.port = self.ready["port"]
        self.link = self.ready["link"]

    def lines(self) -> list[dict[str, Any]]:
        out = []
        with open(self.out_path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def console(self) -> list[str]:
        """The gate's console log lines printed since it was ready (boots, self-tests)."""
        return [e["line"] for e in self.lines() if e.get("event") == "console"]

    def log_events(self, ev: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The gate's service-log entries named `ev`, once `count` of them arrived (the
        simulator prints them just after it answered)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = [e for e in self.lines() if e.get("event") == "log" and e.get("ev") == ev]
            if len(logs) >= count or time.monotonic() > deadline:
                return logs
            time.sleep(0.02)

    def _wait_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for obj in self.lines():
                if obj.get("event") == "ready":
                    return obj
            if self.proc.poll() is not None:
                raise AssertionError("sim device exited: " + open(self.out_path).read())
            time.sleep(0.02)
        raise AssertionError("sim device not ready: " + open(self.out_path).read())

    def wait_exit(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def signed_lists(operator_dir: str, deny_entries: int = 8000) -> tuple[bytes, bytes]:
    """A trust list (the operator's issuer key) and a deny-list snapshot (16 upload chunks),
    signed by the operator root as the back office would."""
    from host_sim.wallet import Operator
    from protocol import denylist
    from protocol.trustlist import IssuerKey, root_key_id
    from provisioning.operator_keys import load_signer, read_pub

    root = load_signer(os.path.join(operator_dir, "root.key"))
    issuer = read_pub(os.path.join(operator_dir, "issuer.pub"))
    op = Operator(root, root_key_id(root.public_key))
    now = int(time.time())
    key = IssuerKey(1, issuer, 0xFFFF, now - 86400, now + 365 * 86400)
    trust = op.trust_list(1, [key], now, now + 30 * 86400)
    keys = [denylist.account_key(1, a) for a in range(1, deny_entries + 1)]
    return trust, op.deny_snapshot(1, keys, now)


class Field:
    """A technician's world in tmp_path: operator keys, credentials, a site file, gates."""

    def __init__(self, tmp_path, operator_dir: str, creds: dict[str, str]) -> None:
        self.tmp = tmp_path
        self.operator = operator_dir
        self.creds = creds
        self.sim_dir = str(tmp_path / "simdir")
        self.env = dict(os.environ)
        self.env.pop("FAREGATE_PORT", None)
        self.env["FAREGATE_SIM_DIR"] = self.sim_dir
        self.env["FAREGATE_CRED"] = creds["alice"]
        self.gates: list[SimGate] = []
        lists = tmp_path / "lists"
        lists.mkdir()
        trust, deny = signed_lists(operator_dir)
        (lists / "trust.bin").write_bytes(trust)
        (lists / "deny.bin").write_bytes(deny)
        self.deny_bytes = len(deny)
        self.site = self.write_site()

    def write_site(self, text: str | None = None, revoked: str = "[]", name="site.toml") -> str:
        path = self.tmp / name
        ca_key = os.path.relpath(os.path.join(self.operator, "root.key"), self.tmp)
        path.write_text(text if text is not None else SITE.format(ca_key=ca_key, revoked=revoked))
        return str(path)

    def gate(self, state="gate", **kw: Any) -> SimGate:
        g = SimGate(self.tmp, self.tmp / state, self.env, **kw)
        self.gates.append(g)
        return g

    def run(self, *args: str, cred: str | None = None, timeout: float = 60):
        env = dict(self.env)
        if cred:
            env["FAREGATE_CRED"] = self.creds[cred]
        return subprocess.run(
            faregate_argv(*args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.tmp),
        )

    def events(self, proc) -> list[dict[str, Any]]:
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def close(self) -> None:
        for g in self.gates:
            g.stop()
