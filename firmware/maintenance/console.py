"""The gate's service console: a technician's laptop on the serial port, sans-IO.

    console = ServiceConsole(store, journal, clock, hw, verifier, rng, log)
    reply = console.feed(bytes_from_uart)     # bytes to write back (maybe b"")

Everything that moves the session is in TABLE below: (state, event) -> (next state, actions),
run by protocol.fsm, refusing any event it has no row for (Illegal, answered like any internal
error: svc_internal, and the session ends). An event is a frame type or the outcome a handler
returns; an action is a key of the console's explicit dispatch dict.

    none --HELLO--> challenged --AUTH ok--> open --REQUEST...--> open
Any HELLO starts a fresh session; a failed AUTH ends it (the nonce is burned); a session idle
for `idle_timeout_ms` ends; so does a factory reset. A blank gate (no operator root) accepts
only AUTH with the CLAIM flag: the first-time flow, which installs the operator root that every
later credential must chain to. What each command does is in the console's command dict; the
permission it needs in protocol.service.COMMANDS. docs/state-machines.md shows TABLE.

Every refusal is a RESPONSE with a reason from protocol.reasons (svc_*) and a JSON body
{"reason", "message"}; bad bytes never raise out of `feed`.
"""

import binascii
import hashlib
import json
import struct

from firmware import platform
from firmware.compose import gate_config
from firmware.storage.device_store import blob_name
from firmware.storage.journal import JournalError
from protocol import certs, flash, frames, reasons, records, service
from protocol.errors import FaregateError, FormatError
from protocol.fsm import ANY, SAME, Machine

NONE = "none"
CHALLENGED = "challenged"
OPEN = "open"
FLASH = "flash"  # any frame type 0x40..0x4F (protocol.flash), when a flash service is attached

# outcomes: what a handler returns when the session must move (None: it stays)
HELLO_FRESH = "hello_fresh"  # a HELLO with a new nonce was answered with a fresh IDENTITY
AUTH_OK = "auth_ok"
AUTH_REFUSED = "auth_refused"  # the nonce is burned: a new HELLO is needed
RESET_DONE = "reset_done"  # the factory reset answered: the gate is blank again
# events the console raises itself
IDLE_TIMEOUT = "idle_timeout"
INTERNAL_ERROR = "internal_error"

# The frame types the console speaks; others (the gate's own IDENTITY and RESPONSE echoed back,
# anything unknown) are ignored before they reach the table.
FRAMES = (service.HELLO, service.AUTH, service.REQUEST, FLASH)

TABLE = {
    (ANY, service.HELLO): (SAME, ("hello",)),
    (ANY, HELLO_FRESH): (CHALLENGED, ()),
    (NONE, service.AUTH): (SAME, ("unauthenticated",)),
    (CHALLENGED, service.AUTH): (SAME, ("auth",)),
    (CHALLENGED, AUTH_OK): (OPEN, ()),
    (CHALLENGED, AUTH_REFUSED): (NONE, ("forget",)),
    (OPEN, service.AUTH): (SAME, ("auth_again",)),
    (NONE, service.REQUEST): (SAME, ("unauthenticated",)),
    (CHALLENGED, service.REQUEST): (SAME, ("unauthenticated",)),
    (OPEN, service.REQUEST): (SAME, ("request",)),
    (OPEN, RESET_DONE): (NONE, ("forget",)),
    (NONE, FLASH): (SAME, ("flash_unauthenticated",)),
    (CHALLENGED, FLASH): (SAME, ("flash_unauthenticated",)),
    (OPEN, FLASH): (SAME, ("flash",)),
    (CHALLENGED, IDLE_TIMEOUT): (NONE, ("log_timeout", "forget")),
    (OPEN, IDLE_TIMEOUT): (NONE, ("log_timeout", "forget")),
    (ANY, INTERNAL_ERROR): (NONE, ("forget",)),
}

# commands whose handler writes its own, more telling, log entry
SELF_LOGGED = (service.PUT_BLOB, service.RESET, service.JOURNAL_REPAIR, service.SET_TIME)
MAX_LOG_ENTRIES = 40
MAX_EXPORT = service.CHUNK // records.MAX_RECORD_LEN


class Refused(FaregateError):
    """A command refused; `reason` is an svc_* name from protocol.reasons."""

    reason = "svc_bad_request"


def _hex(b) -> str:
    return binascii.hexlify(bytes(b)).decode() if b else ""


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


class ServiceConsole:
    def __init__(
        self,
        store,
        journal,
        clock,
        hw,
        verifier,
        rng,
        log,
        loaders=None,
        ticks_ms=platform.ticks_ms,
        idle_timeout_ms: int = 300000,
        flash_service=None,
        on_change=None,
        gate_status=None,
        sync_status=None,
    ):
        self.store = store  # firmware.storage.device_store.DeviceStore
        # .pending_count(), .pending(n, after), .unsynced(), .acked_seq, .ack(seq)
        self.journal = journal
        self.clock = clock  # .now(), .set(t)
        self.hw = hw  # .scanner, .barrier, .sensors (see firmware.maintenance.trial_selftest)
        self.verifier = verifier  # .verify(pub, msg, sig) -> bool
        self.rng = rng  # rng(n) -> n random bytes
        self.log = log  # firmware.storage.eventlog.EventLog
        # blob kind -> fn(bytes) -> summary dict, or FormatError: checks a blob and hands it to
        # its store (firmware/compose/device.py: the trust and deny stores) before it is installed
        self.loaders = loaders or {}
        # on_change(what): the console changed the gate ("claimed", "set_time", "selftest",
        # "reset", "installed:<blob name>"); gate_status() -> dict for STATUS (the running gate)
        self.on_change = on_change
        self.gate_status = gate_status
        # sync_status() -> dict or None: the gate's sync sessions (firmware/compose/app.py Syncer)
        self.sync_status = sync_status
        self.ticks_ms = ticks_ms
        self.idle_timeout_ms = idle_timeout_ms
        # firmware.maintenance.flash_service.FlashService (or None): image frames, inside a session
        # only; it also reports the running image (status, identity)
        self.flash_service = flash_service
        self.config = gate_config.stored(store)
        self._dec = frames.FrameDecoder(self.frame_limit())
        self._last_ms = ticks_ms()
        # ticks of the first byte of the frame now buffered, or None: a frame is waited for
        # buffers.console_frame_ms from it, then dropped (a forged header's length never comes)
        self._partial_ms = None
        self.session = Machine(TABLE, NONE, log_size=16, refuse=True)
        # action -> fn(ftype, payload) -> (reply bytes, outcome event or None)
        self._actions = {
            "hello": self._on_hello,
            "unauthenticated": self._on_unauthenticated,
            "auth": self._on_auth,
            "auth_again": self._on_auth_again,
            "request": self._on_request,
            "flash_unauthenticated": self._on_flash_unauthenticated,
            "flash": self._on_flash,
            "log_timeout": self._log_timeout,
            "forget": self._forget,
        }
        # command -> fn(body) -> reply body (the permission each needs: protocol.service.COMMANDS)
        self._commands = {
            service.STATUS: self._cmd_status,
            service.LOGS: self._cmd_logs,
            service.BLOB_INFO: self._cmd_blob_info,
            service.EXPORT: self._cmd_export,
            service.SET_TIME: self._cmd_set_time,
            service.SELFTEST: self._cmd_selftest,
            service.GEN_KEY: self._cmd_gen_key,
            service.PUT_BLOB: self._cmd_put_blob,
            service.RESET: self._cmd_reset,
            service.JOURNAL_INSPECT: self._cmd_journal_inspect,
            service.JOURNAL_REPAIR: self._cmd_journal_repair,
        }
        self._forget()

    @property
    def state(self) -> str:
        return self.session.state

    @state.setter
    def state(self, value: str) -> None:  # tests that open a session by hand
        self.session.state = value

    def _forget(self, _ftype=0, _payload=b""):
        """Drop everything of the session but its state (the table moves that)."""
        self.host_nonce = b""
        self.device_nonce = b""
        self.tech = None
        self.last_seq = 0
        self._last_request = None  # (payload, reply) for exact retransmissions
        self._last_auth = None
        self._identity = b""
        self._close_after = False
        return b"", None

    def frame_limit(self) -> int:
        """The decoder's limit: buffers.console_frame, flash BEGIN (an image's header and
        manifest in one frame) included; a larger BEGIN is refused (image_head_too_large)."""
        return gate_config.get(self.config, "buffers.console_frame")

    def resize(self) -> None:
        """Apply the config's frame limit (a new config came by the console or by sync)."""
        self._dec.max_payload = self.frame_limit()

    # -- bytes in, bytes out -------------------------------------------------------------
    def feed(self, data) -> bytes:
        out = self.poll()
        for fr in self._dec.feed(data):
            out += self.handle(fr.type, fr.payload)
        if not self._dec.buffered():
            self._partial_ms = None
        elif self._partial_ms is None:
            self._partial_ms = self.ticks_ms()
        return out + self._answer_oversized()

    def poll(self) -> bytes:
        """Drop a partial frame older than buffers.console_frame_ms (from its first byte) and
        serve what was buffered behind its header. Called by feed, and by a loop with no data."""
        if self._partial_ms is None:
            return b""
        now = self.ticks_ms()
        limit = gate_config.get(self.config, "buffers.console_frame_ms")
        if platform.ticks_diff(now, self._partial_ms) <= limit:
            return b""
        pending = self._dec.pending()
        info = {"reason": "frame_timeout", "buffered": self._dec.buffered()}
        if pending is not None:
            info["type"], info["announced"] = pending[0], pending[1]
        self.log.add("frame_dropped", info)
        out = b""
        for fr in self._dec.drop_partial():
            out += self.handle(fr.type, fr.payload)
        self._partial_ms = now if self._dec.buffered() else None
        return out + self._answer_oversized()

    def _answer_oversized(self) -> bytes:
        out = b""
        over = self._dec.oversized
        if over is not None:
            self._dec.oversized = None
            out += self._oversized(*over)
        return out

    def _oversized(self, ftype: int, n: int) -> bytes:
        """A frame over the limit was skipped unread. A flash BEGIN is answered (the laptop
        would otherwise wait for READY): REFUSED image_head_too_large; others are dropped."""
        if self.flash_service is None or ftype != flash.BEGIN:
            return b""
        limit = self._dec.max_payload
        msg = "BEGIN of %d bytes is over buffers.console_frame (%d)" % (n, limit)
        self.log.add("refused", {"reason": "image_head_too_large", "command": ftype})
        return frames.encode(flash.REFUSED, flash.refused("image_head_too_large", msg))

    def handle(self, ftype: int, payload: bytes) -> bytes:
        now = self.ticks_ms()
        is_flash = self.flash_service is not None and flash.BEGIN <= ftype <= 0x4F
        event = FLASH if is_flash else ftype
        try:
            if (
                self.state != NONE
                and platform.ticks_diff(now, self._last_ms) > self.idle_timeout_ms
            ):
                self._fire(IDLE_TIMEOUT)
            self._last_ms = now
            if event not in FRAMES:
                return b""
            return self._fire(event, ftype, bytes(payload))
        except Exception as e:  # the console never takes the gate down
            self.log.add("internal_error", {"error": repr(e)})
            self._fire(INTERNAL_ERROR)
            return self._reply(0, 0, "svc_internal", "internal error: %r" % (e,))

    def _fire(self, event, ftype: int = 0, payload: bytes = b"") -> bytes:
        """Step the session by `event` and run the row's actions; an action's outcome is the
        next event. The only place the session moves."""
        out = b""
        for name in self.session.step(event):
            reply, outcome = self._actions[name](ftype, payload)
            out += reply
            if outcome is not None:
                out += self._fire(outcome)
        return out

    def _log_timeout(self, _ftype=0, _payload=b""):
        self.log.add("session_timeout", {"technician": self._tech_id()})
        return b"", None

    def _reply(self, seq, cmd, reason, message="", body=b"") -> bytes:
        if reason != reasons.ACCEPTED:
            body = _json({"reason": reason, "message": message})
        status = reasons.number(reason)
        return frames.encode(service.RESPONSE, service.response(seq, cmd, status, body))

    def _refuse(self, seq, cmd, reason, message) -> bytes:
        self.log.add("refused", {"reason": reason, "command": cmd, "technician": self._tech_id()})
        return self._reply(seq, cmd, reason, message)

    def _changed(self, what: str) -> None:
        if self.on_change is not None:
            self.on_change(what)

    def _tech_id(self):
        return self.tech.subject_id if self.tech else None

    def _firmware(self) -> str:
        """The running image's version (the factory's record when no update agent is here)."""
        if self.flash_service is not None:
            version = self.flash_service.status().get("version")
            if version:
                return version
        return self.store.firmware

    # -- lifecycle -------------------------------------------------------------------------
    def missing(self) -> list:
        """What the gate still needs before it is in service (empty: in service)."""
        out = []
        anchor = self.store.anchor()
        if anchor is None:
            out.append("operator_root")
        signer = self.store.signer()
        if signer is None:
            out.append("device_key")
        if not self._cert_ok(self.store.cert(), anchor, signer):
            out.append("cert")
        if self.config is None:
            out.append("config")
        if self.store.read_blob(service.BLOB_TRUST) is None:
            out.append("trust_list")
        if not self.store.flags.get("clock_set"):
            out.append("clock")
        if not (self.store.flags.get("selftest") or {}).get("passed"):
            out.append("selftest")
        return out

    def lifecycle(self) -> int:
        if self.store.anchor() is None:
            return service.STATE_BLANK
        return service.STATE_CLAIMED if self.missing() else service.STATE_IN_SERVICE

    def _cert_ok(self, cert, anchor, signer) -> bool:
        if cert is None or anchor is None or signer is None:
            return False
        if cert.kind != certs.KIND_DEVICE or cert.subject_id != self.store.device_id:
            return False
        if cert.public_key != bytes(signer.public_key):
            return False
        # like credentials: expiry counts, "not yet valid" (a gate clock behind) does not
        if self.store.flags.get("clock_set") and self.clock.now() >= cert.valid_until:
            return False
        if certs.verify(cert, anchor, self.verifier):  # the key it was claimed with
            return True
        if self.store.root() is None:
            return False
        # after a rotation: a technician key of its root metadata
        return any(certs.verify(cert, k, self.verifier) for k in self.store.role_keys("technician"))

    # -- session steps -------------------------------------------------------------------
    def _on_hello(self, _ftype: int, payload: bytes):
        try:
            host_nonce = service.parse_hello(payload)
        except FormatError as e:
            return self._refuse(0, 0, "svc_bad_request", str(e)), None
        if self.state == CHALLENGED and host_nonce == self.host_nonce:
            return self._identity, None  # a retransmitted HELLO: the same session, same answer
        self._forget()
        self.host_nonce = host_nonce
        self.device_nonce = bytes(self.rng(service.NONCE_LEN))
        signer = self.store.signer()
        anchor = self.store.anchor()
        flags = 0
        if signer is not None:
            flags |= service.ID_HAS_KEY
        if self.store.read_blob(service.BLOB_CERT):
            flags |= service.ID_HAS_CERT
        state = self.lifecycle()
        ident = service.Identity(
            state,
            flags,
            self.store.device_id,
            self.device_nonce,
            certs.key_id(anchor) if anchor else 0,
            bytes(signer.public_key) if signer else b"",
            b"",
            b"",
        )
        if signer is not None:
            msg = service.identity_signing_input(host_nonce, ident.head_bytes())
            ident.sig = bytes(signer.sign(msg))
        info = {
            "model": self.store.model,
            "firmware": self._firmware(),
            "state": service.STATE_NAMES[state],
            "name": self.config["name"] if self.config else "",
            "time": self.clock.now(),
        }
        self._identity = frames.encode(service.IDENTITY, service.identity(ident, _json(info)))
        return self._identity, HELLO_FRESH

    def _on_unauthenticated(self, _ftype: int, payload: bytes):
        seq, cmd = service.request_ids(payload)
        if self.store.anchor() is None:
            return self._refuse(
                seq, cmd, "svc_not_provisioned", "blank gate: only the first-time claim works"
            ), None
        return self._refuse(seq, cmd, "svc_unauthenticated", "send HELLO, then AUTH, first"), None

    def _on_auth(self, _ftype: int, payload: bytes):
        try:
            reply, label = self._authenticate(payload)
        except Refused as e:
            return self._refuse(0, 0, e.reason, e.message), AUTH_REFUSED
        self._last_auth = (payload, reply)
        self.log.add("session_open", {"technician": self._tech_id(), "label": label})
        return reply, AUTH_OK

    def _authenticate(self, payload: bytes):
        try:
            flags, anchor, cert_raw, body, sig = service.parse_auth(payload)
        except FormatError as e:
            raise Refused(str(e), "svc_bad_request") from None
        current = self.store.anchor()
        if current is None and not flags & service.AUTH_CLAIM:
            raise Refused("blank gate: claim it first (AUTH with CLAIM)", "svc_not_provisioned")
        anchor = bytes(anchor)
        held = self.store.root()  # a gate bound to root metadata: its technician keys only
        if held is not None and anchor not in self.store.role_keys("technician"):
            raise Refused(
                "key %08x is not a technician key of root version %d"
                % (certs.key_id(anchor), held.version),
                "claim_foreign" if current is None else "svc_bad_credential",
            )
        if held is None and current is not None and anchor != current:
            raise Refused(
                "gate belongs to operator root %08x, not %08x"
                % (certs.key_id(current), certs.key_id(anchor)),
                "svc_claimed",
            )
        try:
            cred = certs.parse(cert_raw)
        except FormatError as e:
            raise Refused("technician credential: %s" % e, "svc_bad_credential") from None
        if cred.kind != certs.KIND_TECHNICIAN or not certs.verify(cred, anchor, self.verifier):
            raise Refused(
                "credential is not a technician credential of this operator", "svc_bad_credential"
            )
        # Expiry is checked once the clock was set. A credential that looks not yet valid is
        # accepted: a gate whose RTC lost power reads 2000-01-01 and must not lock everyone out.
        now = self.clock.now()
        if self.store.flags.get("clock_set") and now >= cred.valid_until:
            raise Refused(
                "credential valid %d..%d, gate time %d" % (cred.valid_from, cred.valid_until, now),
                "svc_credential_expired",
            )
        revoked = gate_config.get(self.config, "revoked_technicians") or []
        if cred.subject_id in revoked:
            raise Refused("technician %d is revoked" % cred.subject_id, "svc_revoked")
        msg = service.auth_signing_input(
            self.device_nonce, self.host_nonce, self.store.device_id, body
        )
        if not self.verifier.verify(cred.public_key, msg, sig):
            raise Refused("AUTH signature does not verify", "svc_bad_signature")
        claimed = current is None
        if claimed:
            self.store.set_anchor(anchor)
            self.log.add("claimed", {"operator_root": "%08x" % certs.key_id(anchor)})
        self.tech = cred
        result = {
            "technician": cred.subject_id,
            "label": cred.label,
            "permissions": cred.permissions,
            "claimed": claimed,
        }
        if claimed:
            self._changed("claimed")
        return self._reply(0, 0, reasons.ACCEPTED, body=_json(result)), cred.label

    def _on_auth_again(self, _ftype: int, payload: bytes):
        if self._last_auth and payload == self._last_auth[0]:
            return self._last_auth[1], None  # our reply was lost: the same answer again
        return self._refuse(0, 0, "svc_replayed", "this session is already authenticated"), None

    def _on_request(self, _ftype: int, payload: bytes):
        if self._last_request and payload == self._last_request[0]:
            return self._last_request[1], None  # a retransmission: answer again, do not run again
        reply = self._request(payload)
        self._last_request = (payload, reply)
        return reply, RESET_DONE if self._close_after else None

    def _request(self, payload: bytes) -> bytes:
        try:
            seq, cmd, body, head, sig = service.parse_request(payload)
        except FormatError as e:
            return self._refuse(0, 0, "svc_bad_request", str(e))
        tech = self.tech
        if tech is None:  # cannot happen in OPEN; keeps the type checker honest
            return self._refuse(seq, cmd, "svc_unauthenticated", "no technician")
        msg = service.request_signing_input(self.device_nonce, head)
        if not self.verifier.verify(tech.public_key, msg, sig):
            return self._refuse(seq, cmd, "svc_bad_signature", "request signature does not verify")
        if seq <= self.last_seq:
            return self._refuse(
                seq, cmd, "svc_replayed", "seq %d already used (last %d)" % (seq, self.last_seq)
            )
        self.last_seq = seq
        entry = service.COMMANDS.get(cmd)
        if entry is None:
            return self._refuse(seq, cmd, "svc_bad_request", "unknown command %d" % cmd)
        name, perm = entry
        if not tech.permissions & perm:
            reply = self._refuse(seq, cmd, "svc_forbidden", "%s needs another role" % name)
        else:
            try:
                out = self._commands[cmd](body)
                reply = self._reply(seq, cmd, reasons.ACCEPTED, body=out)
                if perm != certs.PERM_READ and cmd not in SELF_LOGGED:
                    self.log.add(name, {"technician": self._tech_id()})
            except Refused as e:
                reply = self._refuse(seq, cmd, e.reason, e.message)
            except FormatError as e:
                reason = e.reason if e.reason.startswith("svc_") else "svc_bad_request"
                reply = self._refuse(seq, cmd, reason, str(e))
            except OSError as e:
                reason = getattr(e, "reason", "")  # a device-key token's own reason
                if reason in reasons.REASONS:
                    reply = self._refuse(seq, cmd, reason, str(e))
                else:
                    reply = self._refuse(seq, cmd, "svc_storage", "storage: %r" % (e,))
        return reply

    # -- firmware images -----------------------------------------------------------------
    def _on_flash_unauthenticated(self, ftype: int, payload: bytes):
        reason = "svc_not_provisioned" if self.store.anchor() is None else "svc_unauthenticated"
        self.log.add("refused", {"reason": reason, "flash": ftype})
        return frames.encode(
            flash.REFUSED, flash.refused(reason, "open a service session (HELLO, AUTH) first")
        ), None

    def _on_flash(self, ftype: int, payload: bytes):
        tech = self.tech
        if tech is None or not tech.permissions & certs.PERM_PROVISION:
            self.log.add("refused", {"reason": "svc_forbidden", "flash": ftype})
            return frames.encode(
                flash.REFUSED, flash.refused("svc_forbidden", "flashing needs the provision role")
            ), None
        if ftype in (flash.BEGIN, flash.ACTIVATE, flash.ROLLBACK):
            self.log.add("flash_" + flash.NAMES[ftype].lower(), {"technician": self._tech_id()})
        out = b""
        for rtype, rpayload in self.flash_service.handle(ftype, payload):
            out += frames.encode(rtype, rpayload)
        return out, None

    # -- commands ------------------------------------------------------------------------
    def _cmd_status(self, body: bytes) -> bytes:
        signer = self.store.signer()
        anchor = self.store.anchor()
        cert = self.store.cert()
        lists = {}
        for kind in (service.BLOB_TRUST, service.BLOB_DENY, service.BLOB_FARES):
            raw = self.store.read_blob(kind)
            lists[blob_name(kind)] = None if raw is None else {"bytes": len(raw)}
        cfg = self.config
        missing = self.missing()
        status = {
            "device_id": self.store.device_id,
            "model": self.store.model,
            "firmware": self._firmware(),
            "state": service.STATE_NAMES[self.lifecycle()],
            "missing": missing,
            "time": self.clock.now(),
            "clock_set": bool(self.store.flags.get("clock_set")),
            "operator_root": "%08x" % certs.key_id(anchor) if anchor else None,
            "root_version": self.store.root_version(),  # 0: no root metadata (docs/security.md)
            "device_key": _hex(signer.public_key) if signer else None,
            "key_store": self.store.key.kind if self.store.key else "file",
            "key_error": str(self.store.key_error) if self.store.key_error else None,
            "cert": None
            if cert is None
            else {
                "valid_from": cert.valid_from,
                "valid_until": cert.valid_until,
                "ok": "cert" not in missing,
                "raw": _hex(cert.raw),
            },
            "config": None
            if cfg is None
            else {k: cfg[k] for k in ("name", "station", "lane", "mode", "direction")},
            "lists": lists,
            "pending_passages": self.journal.pending_count(),
            # ok, damaged or unverified (firmware/storage/journal.py report; `journal inspect`)
            "journal": self.journal.report()["state"],
            "selftest": self.store.flags.get("selftest"),
            "technician": self.tech.label if self.tech else None,
            # firmware.maintenance.update_agent.UpdateAgent.status(): slot, version, trial, last
            # update
            "image": self.flash_service.status() if self.flash_service else None,
            # the running gate (firmware/compose/device.py): mode state, lists in force, clock,
            # limits
            "gate": self.gate_status() if self.gate_status is not None else None,
            # host, last_ok, last_error, pending, ... (None: this gate does not sync)
            "sync": self.sync_status() if self.sync_status is not None else None,
        }
        return _json(status)

    def _cmd_logs(self, body: bytes) -> bytes:
        first, limit = service.index_count(body, "LOGS")
        entries = self.log.since(first, min(limit, MAX_LOG_ENTRIES))
        out = []
        size = 0
        for e in entries:
            size += len(_json(e))
            if size > service.CHUNK:
                break
            out.append(e)
        nxt = out[-1]["i"] + 1 if out else max(first, self.log.next_index)
        return _json({"entries": out, "next": nxt, "last": self.log.next_index - 1})

    def _cmd_journal_inspect(self, body: bytes) -> bytes:
        if body:
            raise Refused("JOURNAL_INSPECT takes no body", "svc_bad_request")
        return _json(self.journal.report())

    def _cmd_journal_repair(self, body: bytes) -> bytes:
        """Rewrite the damaged segments (firmware/storage/journal.py repair), then journal a
        `journal_repaired` event carrying how many unacknowledged records were lost."""
        if len(body) != 8:
            raise Refused("JOURNAL_REPAIR takes a u64 seq floor", "svc_bad_request")
        floor = struct.unpack(">Q", body)[0]
        try:
            out = self.journal.repair(floor)
        except JournalError as e:
            raise Refused(str(e), e.reason) from None
        out["event_seq"] = None
        if out["before"]["state"] != "ok":
            rec = records.Record(
                records.KIND_EVENT,
                reasons.number("journal_repaired"),
                0,
                0,
                self.clock.now(),
                value=out["before"]["lost_unacked"],
            )
            try:
                out["event_seq"] = self.journal.append(rec).seq
            except JournalError:
                pass  # the repair stands; the service log has it
        self.log.add(
            "journal_repaired",
            {
                "technician": self._tech_id(),
                "lost_unacked": out["before"]["lost_unacked"],
                "state": out["after"]["state"],
            },
        )
        self._changed("journal_repaired")
        return _json(out)

    def _cmd_blob_info(self, body: bytes) -> bytes:
        kind = service.u8(body, "BLOB_INFO")
        if kind not in service.BLOBS:
            raise Refused("unknown blob kind %d" % kind, "svc_bad_request")
        return _json(self.store.blob_info(kind))

    def _cmd_export(self, body: bytes) -> bytes:
        index, count = service.index_count(body, "EXPORT")
        total = self.journal.readable_count()
        # the index-th unsynced record that can be read (a damaged journal's lost ones skipped)
        raws = self.journal.pending(min(count, MAX_EXPORT), self.journal.after_index(index))
        return service.export_reply(total, index, raws)

    def _cmd_set_time(self, body: bytes) -> bytes:
        """Set the clock. Once the gate has a time (set before, or a passage anchored one), a
        technician may move it only within clock.set_bound_s of the anchored time (all moves
        since the last trusted time counted together: flag clock_nudged); further needs the
        operator root's signature over (device id, time, this session's nonce). Every set is
        in the service log; every move of an anchored time (beyond the anchor's tolerance) and
        every refusal is journaled too (a clock_set or svc_clock_bound event)."""
        t, sig = service.parse_set_time(body)
        if t < service.EARLIEST_TIME:
            raise Refused("time %d is before 2024: refusing it" % t, "svc_bad_request")
        was = self.clock.now()
        root = False
        if sig:
            msg = service.time_signing_input(self.store.device_id, t, self.device_nonce)
            keys = self.store.role_keys("root")  # the anchor, until root metadata names keys
            if not any(self.verifier.verify(k, msg, sig) for k in keys):
                raise Refused(
                    "the root's signature over this time does not verify", "svc_bad_signature"
                )
            root = True
        bound = gate_config.get(self.config, "clock.set_bound_s")
        anchored = self.store.flags.get("clock_set") or getattr(self.clock, "last_good", 0)
        # the technicians' moves since the last trusted time add up (no stepping back 300 s
        # at a time); the back office's time or the root's clears the sum
        nudged = self.store.flags.get("clock_nudged", 0) + t - was if anchored else 0
        if not root and abs(nudged) > bound:
            self._clock_event("svc_clock_bound", was, t, root)
            self.log.add("set_time_refused", {"technician": self._tech_id(), "was": was, "time": t})
            raise Refused(
                "moving the clock %+d s (%+d s since its last trusted time) is beyond "
                "clock.set_bound_s (%d s): it needs the operator root (set-time --root-key) or "
                "a sync" % (t - was, nudged, bound),
                "svc_clock_bound",
            )
        self.clock.set(t)
        self.store.flags["clock_nudged"] = 0 if root else nudged
        self.store.set_flag("clock_set", True)
        # a gate's first time (provisioning) moves no anchored time; one that agrees with the
        # gate's within the anchor's tolerance is a check, not a change (service log only)
        if anchored and abs(t - was) > getattr(self.clock, "tolerance_s", 2):
            self._clock_event("clock_set", was, t, root)
        self.log.add(
            "set_time", {"technician": self._tech_id(), "was": was, "time": t, "root": root}
        )
        self._changed("set_time")
        return _json({"time": self.clock.now(), "was": was, "root": root})

    def _clock_event(self, reason: str, was: int, t: int, root: bool) -> None:
        """Journal a clock change or its refusal: time = the gate's time before, value = the
        time asked for, counter = 1 when the operator root signed it, account_id = the
        technician's credential id."""
        tech = self._tech_id() or 0
        rec = records.Record(
            records.KIND_EVENT,
            reasons.number(reason),
            0,
            0,
            was,
            account_id=tech,
            counter=1 if root else 0,
            value=t,
        )
        try:
            self.journal.append(rec)
        except JournalError:
            pass  # the service log has it

    def _cmd_selftest(self, body: bytes) -> bytes:
        # the self-test's code loads when a technician runs it, not with every gate (docs/mcu.md)
        from firmware.maintenance import hardware_selftest as gate_selftest

        host_time = service.u32(body, "SELFTEST")
        ctx = gate_selftest.Context(
            self.store.dir,
            self.clock,
            bool(self.store.flags.get("clock_set")),
            host_time,
            self.hw,
            gate_config.get(self.config, "selftest.scan_timeout_s"),
            self.verifier,
            self.store.fs,
        )
        result = gate_selftest.run(ctx)
        result["at"] = self.clock.now()
        self.store.set_flag("selftest", {"passed": result["passed"], "at": result["at"]})
        self._changed("selftest")
        return _json(result)

    def _cmd_gen_key(self, body: bytes) -> bytes:
        if body:
            raise Refused("GEN_KEY takes no body", "svc_bad_request")
        new = self.store.generate_key()
        signer = self.store.signer()
        pub = bytes(signer.public_key)
        msg = service.key_signing_input(
            self.store.device_id, pub, self.host_nonce, self.device_nonce
        )
        return bytes((1 if new else 0,)) + pub + bytes(signer.sign(msg))

    def _cmd_put_blob(self, body: bytes) -> bytes:
        kind, total, offset, digest, chunk = service.parse_put_blob(body)
        if kind == service.BLOB_CERT and self.store.signer() is None:
            raise Refused("generate the device key before installing its cert", "svc_no_key")
        received, data = self.store.put_chunk(kind, total, offset, digest, chunk)
        if data is None:
            return _json({"received": received, "total": total, "installed": False})
        try:
            summary = self._check_blob(kind, data)
        except Refused:
            self.store.drop_partial(kind)
            raise
        self.store.install(kind)
        if kind == service.BLOB_CONFIG:
            self.config = gate_config.parse(data, self.store.device_id)
            self.resize()
        self.log.add(
            "installed",
            {"kind": blob_name(kind), "bytes": total, "sha256": _hex(digest)[:16]},
        )
        self._changed("installed:" + blob_name(kind))
        return _json({"received": received, "total": total, "installed": True, "summary": summary})

    def _check_blob(self, kind: int, data: bytes) -> dict:
        if kind == service.BLOB_CERT:
            try:
                cert = certs.parse(data)
            except FormatError as e:
                raise Refused(str(e), "svc_bad_cert") from None
            if not self._cert_ok(cert, self.store.anchor(), self.store.signer()):
                raise Refused(
                    "certificate is not for device %d, its key and operator root, or is "
                    "outside its validity" % self.store.device_id,
                    "svc_bad_cert",
                )
            return {"valid_until": cert.valid_until, "label": cert.label}
        if kind == service.BLOB_CONFIG:
            try:
                cfg = gate_config.parse(data, self.store.device_id)
            except FormatError as e:
                raise Refused(str(e), "svc_bad_blob") from None
            return {"name": cfg["name"], "station": cfg["station"], "lane": cfg["lane"]}
        loader = self.loaders.get(kind)
        if loader is None:
            return {"bytes": len(data), "checked": "sha256"}
        try:
            return loader(data)
        except FormatError as e:
            # the roles' refusals keep their own reason (docs/security.md); others are bad blobs
            from protocol import rootmeta

            reason = e.reason if e.reason in rootmeta.REASONS else "svc_bad_blob"
            raise Refused("%s: %s" % (blob_name(kind), e), reason) from None

    def _cmd_reset(self, body: bytes) -> bytes:
        force, digest = service.parse_reset(body)
        n = self.journal.pending_count()
        if n:
            if not force:
                raise Refused(
                    "%d unsynced passages: sync first, or export them and force" % n,
                    "svc_unsynced",
                )
            # hashed as the journal streams them (buffers.journal_read records at a time):
            # up to the journal's capacity of records would not fit an MCU's heap at once
            h = hashlib.sha256()
            last = None
            for raw in self.journal.unsynced():
                h.update(raw)
                last = raw
            if last is None or h.digest() != digest:
                raise Refused(
                    "export digest does not match the %d unsynced passages" % n,
                    "svc_export_mismatch",
                )
            # dropped like acknowledged records: the journal keeps its seq and hash chain
            self.journal.ack(records.seq_of(last))
        self.store.wipe()
        self.config = None
        self.resize()
        self.log.add(
            "factory_reset", {"technician": self._tech_id(), "exported_dropped": n if n else 0}
        )
        self._close_after = True
        self._changed("reset")
        return _json({"reset": True, "exported_dropped": n})
