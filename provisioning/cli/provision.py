"""`faregate provision --port PORT --site SITE.toml`: a gate from blank to in service.

Steps, each idempotent (a re-run after an unplug or a failure continues safely: what is
already right is read back and left alone, a half-sent file resumes where it stopped):

    1 connect      open the port, HELLO: which gate, which state
    2 session      claim a blank gate for the operator root, or authenticate
    3 clock        set the gate's clock from this laptop, read it back
    4 device_key   the gate makes its key (it never leaves the gate); check its proof
    5 certificate  the operator root certifies the key (kept if already valid); with a
                   [sync] host, also an X.509 TLS client certificate for it from ca.pem
    6 register     the gate's key goes into the back office's registry ([sync] registry),
                   without which the back office refuses its sync sessions
    7 config       the gate's config from the site file; read back by SHA-256
    8 trust_list   \\
    9 deny_list     } the station's files, uploaded in chunks; read back by SHA-256
   10 fare_table   /
   11 selftest     storage, clock, crypto, scanner (hold up the test card), barrier, sensors
   12 verify       the gate reports itself in service, nothing missing

Then it waits (up to FIRST_SYNC_WAIT_S) for the gate's first sync session, which a gate starts
as soon as it enters service, and shows how it went: the back office it reached and what went
up, or why it failed (the gate retries by itself; `faregate device status` shows it later).
"""

import argparse
import json
import os
from typing import Any

from provisioning.cli.main import (
    EXIT_AUTH,
    EXIT_DEVICE,
    EXIT_FAILED,
    EXIT_TAIL,
    EXIT_USAGE,
    CliError,
)

STEPS = (
    "connect",
    "session",
    "clock",
    "device_key",
    "certificate",
    "register",
    "config",
    "trust_list",
    "deny_list",
    "fare_table",
    "selftest",
    "verify",
)
CERT_DAYS = 5 * 365
MAX_CLOCK_ERROR_S = 2
FIRST_SYNC_WAIT_S = 30  # the gate gives up opening a link after 10 s, a silent peer after 10 s


def register(sub: Any) -> None:
    from provisioning.cli.connect import add_port_args

    p = sub.add_parser(
        "provision",
        help="take a gate from blank to in service over its service port",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 in service, 1 a step or the self-test failed, 2 bad site file "
        "or credential, 3 port or gate problem (not found, not answering, unplugged, wrong "
        "gate), 4 the gate refused the credential, 5 a bug (report it), %s." % EXIT_TAIL,
    )
    p.add_argument("--site", required=True, help="the station's site file (TOML)")
    p.add_argument(
        "--gate",
        default=None,
        help="which [[gate]] of the site file this is (needed when it lists several and "
        "none has this gate's device_id)",
    )
    add_port_args(p)
    p.set_defaults(func=cmd_provision)


def cmd_provision(args: argparse.Namespace) -> int:
    from provisioning.cli.connect import run
    from provisioning.cli.events import Events

    events = Events.for_args(args)
    return run(events, lambda: Provisioning(args, events).run())


class Provisioning:
    def __init__(self, args: argparse.Namespace, events: Any) -> None:
        self.args = args
        self.events = events
        self.of = len(STEPS)

    def step(self, name: str, status: str, message: str, **data: Any) -> None:
        self.events.step(STEPS.index(name) + 1, self.of, name, status, message, **data)

    def run(self) -> int:
        from protocol import certs
        from provisioning import operator_keys, site
        from provisioning.cli import connect

        now = connect.now()
        # everything local is checked before the gate is touched
        st = site.load(self.args.site)
        cred = connect.load_credential(self.args, now)
        root = operator_keys.load_signer(st.ca_key)
        if root.public_key != cred.anchor:
            raise CliError(
                "%s (ca_key) is operator root %08x, but the credential is for %08x"
                % (st.ca_key, certs.key_id(root.public_key), certs.key_id(cred.anchor)),
                "point ca_key at the root key that issued your credential",
                EXIT_USAGE,
            )
        self.site, self.root, self.cred = st, root, cred
        with connect.session(self.args, on_hello=self._hello) as client:
            self.client = client
            ident = client.ident
            self.gate = st.select_gate(self.args.gate, ident.device_id)
            if self.gate.device_id is not None and self.gate.device_id != ident.device_id:
                raise CliError(
                    "the gate on %s is device %d, but [[gate]] %s in %s is device %d"
                    % (self.port, ident.device_id, self.gate.name, st.path, self.gate.device_id),
                    "plug into the right gate, or correct device_id on line %d" % self.gate.line,
                    EXIT_DEVICE,
                )
            self._session(ident)
            self._clock()
            pub = self._key()
            self._certificate(ident.device_id, pub)
            self._register(ident.device_id, pub)
            self._config(ident.device_id)
            self._lists()
            self._selftest()
            return self._verify(ident.device_id)

    def _hello(self, ident: Any, port: str) -> None:
        self.port = port
        info = ident.info
        self.step(
            "connect",
            "done",
            "gate %d on %s (%s %s, %s)"
            % (ident.device_id, port, info.get("model"), info.get("firmware"), ident.state),
            device_id=ident.device_id,
            port=port,
            state=ident.state,
        )

    def _session(self, ident: Any) -> None:
        from protocol import certs

        claim = ident.state == "blank"
        if ident.anchor_id and ident.anchor_id != certs.key_id(self.cred.anchor):
            raise CliError(
                "gate %d belongs to operator root %08x, not ours (%08x)"
                % (ident.device_id, ident.anchor_id, certs.key_id(self.cred.anchor)),
                "only the operator that owns it can reset it",
                EXIT_AUTH,
            )
        out = self.client.authenticate(self.cred.signer, self.cred.raw, self.cred.anchor, claim)
        who = "%s (technician %d)" % (out["label"], out["technician"])
        if out["claimed"]:
            msg = "claimed for operator root %08x as %s" % (certs.key_id(self.cred.anchor), who)
            self.step("session", "done", msg, technician=out["technician"])
        else:
            self.step("session", "unchanged", "authenticated as %s" % who)

    def _clock(self) -> None:
        from provisioning.cli import connect

        t = connect.now()
        out = self.client.set_time(t)
        back = self.client.status()["time"]
        if abs(back - connect.now()) > MAX_CLOCK_ERROR_S:
            raise CliError(
                "the gate's clock reads %s right after being set" % connect.fmt_time(back),
                "its RTC may be faulty: run `faregate device selftest`",
                EXIT_FAILED,
            )
        off = out["was"] - t
        status = "done" if abs(off) > MAX_CLOCK_ERROR_S else "unchanged"
        self.step(
            "clock",
            status,
            "%s (was %s)" % (connect.fmt_time(back), _offset(off)),
            time=back,
            was_off_s=off,
        )

    def _key(self) -> bytes:
        new, pub = self.client.gen_key()
        self.step(
            "device_key",
            "done" if new else "unchanged",
            "%s %s (proof of possession checked)" % ("generated" if new else "kept", pub.hex()),
            public_key=pub.hex(),
        )
        return pub

    def _certificate(self, device_id: int, pub: bytes) -> None:
        from protocol import certs, service
        from provisioning.cli import connect
        from provisioning.console import check_device_cert

        now = connect.now()
        tls = self._tls_cert(device_id, pub, now) if self.site.data.get("sync") else ""
        have = (self.client.status().get("cert") or {}).get("raw") or ""
        why = check_device_cert(have, self.root.public_key, device_id, pub, now) if have else "none"
        if not why:
            until = certs.parse(bytes.fromhex(have)).valid_until
            if tls in ("", "unchanged"):
                self.step("certificate", "unchanged", "kept (valid until %s)" % _day(until))
            else:
                msg = "kept (valid until %s); TLS certificate %s" % (_day(until), tls)
                self.step("certificate", "done", msg)
            return
        cert = certs.Cert(
            certs.KIND_DEVICE,
            device_id,
            certs.key_id(self.root.public_key),
            now - 300,
            now + CERT_DAYS * 86400,
            pub,
            0,
            self.gate.name,
        )
        raw = certs.sign(cert, self.root)
        self.client.put_blob(service.BLOB_CERT, raw)
        saved = self._save_cert(device_id, raw)
        self.step(
            "certificate",
            "done",
            "issued by root %08x, valid until %s%s%s"
            % (
                certs.key_id(self.root.public_key),
                _day(cert.valid_until),
                "; TLS certificate " + tls if tls else "",
                saved,
            ),
            valid_until=cert.valid_until,
        )

    def _tls_cert(self, device_id: int, pub: bytes, now: int) -> str:
        """The gate's X.509 client certificate for sync over TLS (its device key, from the
        operator CA), then the CA's: installed as the tls_cert blob. A copy is kept in the
        operator's devices/ and used again while it is for this key and valid 30 more days,
        so a re-run changes nothing. Returns what was done ("unchanged", "installed", ...)."""
        import datetime

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from protocol import service
        from provisioning import pki

        op_dir = os.path.dirname(self.site.ca_key)
        ca_path = os.path.join(op_dir, "ca.pem")
        if not os.path.exists(ca_path):
            raise CliError(
                "%s not found: the gate needs the operator CA for TLS" % ca_path,
                "run `faregate keys init --dir %s`" % op_dir,
                EXIT_USAGE,
            )
        ca = pki.load_cert(ca_path)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
        copy = os.path.join(op_dir, "devices", "%d-tls.pem" % device_id)
        when = datetime.datetime.fromtimestamp(now, datetime.UTC)
        cert = None
        if os.path.exists(copy):
            old = pki.load_cert(copy)
            if (
                old.public_key() == key
                and old.issuer == ca.subject
                and old.not_valid_after_utc > when + datetime.timedelta(days=30)
            ):
                cert = old
        if cert is None:
            cert = pki.issue_cert(self.root.key, ca, key, "gate-%d" % device_id, when, False)
            if os.path.isdir(os.path.dirname(copy)):
                pki.save_cert(cert, copy)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        with open(ca_path, "rb") as f:
            return self.client.put_blob(service.BLOB_TLS, pem + f.read())

    def _register(self, device_id: int, pub: bytes) -> None:
        from host_sim.backoffice.store import Store
        from provisioning.cli import connect

        path = self.site.registry
        if path is None:
            self.step("register", "skipped", "no [sync] registry in the site file")
            return
        store = Store(path)
        try:
            have = store.device(device_id)
            if have is not None and bytes(have.pubkey) == pub:
                self.step("register", "unchanged", "already in %s" % os.path.relpath(path))
                return
            store.add_device(device_id, pub, connect.now(), self.gate.name)
        finally:
            store.close()
        self.step(
            "register",
            "done",
            "%s in the back office's %s"
            % ("re-keyed" if have is not None else "registered", os.path.relpath(path)),
        )

    def _save_cert(self, device_id: int, raw: bytes) -> str:
        """Keep a copy next to the operator keys, for the back office's device registry."""
        d = os.path.join(os.path.dirname(self.site.ca_key), "devices")
        if not os.path.isdir(d):
            return ""
        path = os.path.join(d, "%d.cert" % device_id)
        with open(path, "wb") as f:
            f.write(raw)
        return "; copy in %s" % os.path.relpath(path)

    def _config(self, device_id: int) -> None:
        from protocol import service

        cfg = self.site.config_for(self.gate, device_id)
        data = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        action = self.client.put_blob(service.BLOB_CONFIG, data)
        self.step(
            "config",
            "unchanged" if action == "unchanged" else "done",
            "%s: gate %s, station %d, lane %d, %s %s (%d bytes, read back)"
            % (
                action,
                cfg["name"],
                cfg["station"],
                cfg["lane"],
                cfg["mode"],
                cfg["direction"],
                len(data),
            ),
        )

    def _lists(self) -> None:
        import hashlib

        from protocol import service

        for step, kind in (
            ("trust_list", service.BLOB_TRUST),
            ("deny_list", service.BLOB_DENY),
            ("fare_table", service.BLOB_FARES),
        ):
            path = self.site.lists.get(step)
            if path is None:
                self.step(step, "skipped", "not in the site file")
                continue
            with open(path, "rb") as f:
                data = f.read()

            def progress(done: int, total: int, step: str = step) -> None:
                self.events.progress(step, done, total)

            action = self.client.put_blob(kind, data, progress)
            self.step(
                step,
                "unchanged" if action == "unchanged" else "done",
                "%s %s (%d bytes, sha256 %s, read back)"
                % (
                    action,
                    os.path.basename(path),
                    len(data),
                    hashlib.sha256(data).hexdigest()[:16],
                ),
                bytes=len(data),
            )

    def _selftest(self) -> None:
        from provisioning.cli import connect

        timeout = float(self.site.data.get("selftest", {}).get("scan_timeout_s", 15)) + 10
        result = self.client.selftest(connect.now(), timeout)
        failed = [c for c in result["checks"] if not c["ok"]]
        if failed:
            self.step("selftest", "failed", ", ".join(c["name"] for c in failed))
        else:
            self.step("selftest", "done", "passed")
        for c in result["checks"]:
            self.events.check(c["name"], c["ok"], c["detail"])
        if failed:
            raise CliError(
                "self-test failed: %s"
                % "; ".join("%s: %s" % (c["name"], c["detail"]) for c in failed),
                "fix that, then run the same command again",
                EXIT_FAILED,
            )

    def _verify(self, device_id: int) -> int:
        status = self.client.status()
        if status["state"] != "in_service":
            self.step("verify", "failed", "gate still misses: %s" % ", ".join(status["missing"]))
            raise CliError(
                "gate %d is not in service: missing %s" % (device_id, ", ".join(status["missing"])),
                "run the same command again; if it repeats, run `faregate device status`",
                EXIT_FAILED,
            )
        self.step("verify", "done", "read back: in service, nothing missing")
        first = self._first_sync(status)
        self.events.result(
            True,
            "gate %d (%s) is in service." % (device_id, self.gate.name),
            device_id=device_id,
            gate=self.gate.name,
            state=status["state"],
            first_sync=first,
        )
        return 0

    def _first_sync(self, status: dict[str, Any]) -> dict[str, Any] | None:
        """Wait for the gate's first sync session and say how it went (one line); returns it
        as values (None: this gate's firmware does not say)."""
        import time

        deadline = time.monotonic() + FIRST_SYNC_WAIT_S
        while True:
            sync = status.get("sync")
            if sync is None or sync["blocked"] or sync["sessions"] or time.monotonic() > deadline:
                break
            time.sleep(0.25)
            status = self.client.status()
        if "sync" not in status:
            return None
        line, values = _first_sync_line(sync)
        self.events.say("first sync: " + line)
        return values


def _first_sync_line(sync: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The first sync in one line, and as values for the result event."""
    from provisioning.cli.connect import fmt_time
    from provisioning.cli.timearg import iso

    if sync is None:
        return "off: this gate has no sync link", {"status": "off"}
    if sync["blocked"]:
        return (
            "none: %s (the site file's [sync] table sets it)" % sync["blocked"],
            {"status": "blocked", "reason": sync["blocked"]},
        )
    if not sync["sessions"]:
        return (
            "none yet after %d s (the gate keeps trying: `faregate device status` shows it)"
            % FIRST_SYNC_WAIT_S,
            {"status": "none", "host": sync["host"]},
        )
    err, last = sync["last_error"], sync["last"]
    if last is None or (err is not None and err["time"] >= sync["last_ok"]):
        line = "FAILED (%s): %s; the gate tries again in %d s" % (
            err["reason"],
            err["message"],
            sync["next_in_s"],
        )
        values = {"status": "failed", "host": sync["host"], "time": iso(err["time"])}
        return line, dict(values, reason=err["reason"], message=err["message"])
    line = "%s at %s, %d records acknowledged, %d waiting%s" % (
        sync["host"] or "the back office",
        fmt_time(last["time"]),
        last["acked"],
        sync["pending"],
        "".join("; refused %s v%d (%s)" % (k, v, why) for k, v, why in last["refused"]),
    )
    values = {"status": "ok", "host": sync["host"], "time": iso(last["time"])}
    return line, dict(values, acknowledged=last["acked"], refused=last["refused"])


def _offset(seconds: int) -> str:
    if abs(seconds) <= MAX_CLOCK_ERROR_S:
        return "within %d s" % MAX_CLOCK_ERROR_S
    days, rest = divmod(abs(seconds), 86400)
    sign = "behind" if seconds < 0 else "ahead"
    if days:
        return "%d days %s" % (days, sign)
    return "%d s %s" % (rest, sign)


def _day(t: int) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(t))
