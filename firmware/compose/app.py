"""What a gate does right after the boot shim hands over (firmware.maintenance.boot.launch).

    code = app.run(ctx, link, hw, rng, log, clock=None, connect=None, key=None)
    # ctx from the shim: state_dir, slot, trial, device

The entry module of each profile (drivers/linux/entry.py, drivers/mcu/entry.py) builds for its
board: `link`, the service port (`.read(timeout_s)` -> bytes, None when nothing came in time,
b"" when the port closed; `.write(bytes)`); `hw`, the hardware (drivers/portable/wiring.Hardware,
None for none); `rng(n)` (default os.urandom); `log(text)` for the console log; `clock`, the board's
real-time clock (default firmware.maintenance.wallclock.RTC on the state directory);
`connect(device, endpoint)`, which opens the sync link to the back office at endpoint (host, port),
the sync front end firmware.sync.failover chose from `sync.hosts` or `sync.host` (None when the
config names none: a serial link needs none) (drivers/linux/link_tcp.py with
TLS, drivers/linux/link_serial.py, drivers/mcu/link_uart.py), or hands back an opener of it (see
Syncer), or raises OSError (None: this gate does not sync); `key`, the device key's holder when
it is not the file device.key (a PKCS#11 token: drivers/linux/key_pkcs11.py).
`hw.mesh_link(settings)`, if the entry point sets it, opens the station mesh's socket when the
config sets mesh.enabled (drivers/linux/mesh_udp.py, docs/mesh.md). Signatures come from
firmware.platform.crypto(): OpenSSL when the entry point set it, else protocol/p256.py.

1. Trial check: the image's self-test (firmware.maintenance.trial_selftest), and the gate
   (firmware.compose.device.Device,
   with its service console) must open. On a trial boot: pass -> confirm the slot; fail ->
   revert and reboot into the confirmed one. A crash before this point is caught by the shim
   at the next boot (the trial's boot counter is already spent).
2. The main loop, in one thread, that bad input never ends:
   - the service console (firmware.maintenance.console): bytes from the service port, answers back;
     flashing happens inside its authenticated sessions only;
   - the gate loop (Device.step: scans, sensors, barrier), once the gate is in service;
   - sync every `sync.interval_s` of the config (Syncer), a few milliseconds per turn
     (firmware.sync.client.Pump) so that riders never wait for it; opening the link never
     blocks the loop either (`connect` may hand back an opener that works elsewhere, as the
     Linux gate's TCP and TLS do: drivers/linux/link_opener.py); a failed session is logged in one
     line and tried again at the next sync front end at once (`sync.hosts`, several of one back
     office: firmware.sync.failover), and once every one failed in a row, after 5 s, 10 s,
     20 s ... (at most 320 s, or the interval). A gate
     that enters service on site (the lifecycle's `sync_now`: provisioned, claimed, configured)
     syncs at once, not an interval later; the console's status shows the Syncer's `state()`.
   It returns EXIT_REBOOT when an update was activated (over the console, or a firmware offer
   that came by sync: once the gate is idle and the session over), EXIT_HALT when the service
   port closes.

Once it serves, the app logs one line `console: ready {json}` (device id, lifecycle state,
slot, version): the simulator waits for it (host_sim/hardware/sim_device.py).
"""

import json
import os

from firmware import platform
from firmware.compose import gate_config
from firmware.compose.device import Device
from firmware.maintenance import boot
from firmware.maintenance import trial_selftest as selftest
from firmware.maintenance.update_agent import UpdateAgent
from firmware.maintenance.wallclock import RTC
from firmware.storage.fs import DISK
from firmware.sync.failover import EndpointError, Failover, endpoints
from protocol import service
from protocol.errors import FaregateError

SCAN_WAIT_S = 0.02  # one turn of the main loop waits this long for a scan or a console byte
FIRST_SYNC_S = 2  # after boot
SYNC_IDLE_TIMEOUT_S = 10.0
CONNECT_LIMIT_S = 10  # an opening link (lookup, TCP, TLS) not ready by then is given up
MAX_ERROR_LOGS = 20


def run(ctx: dict, link, hw=None, rng=None, log=print, clock=None, connect=None, key=None) -> int:
    verifier = platform.crypto().verifier()
    d = ctx["state_dir"]
    fs = getattr(hw, "disk", None) or DISK  # the one storage object, as Device uses it
    agent = UpdateAgent(d, verifier, ctx["device"], ctx["slot"], fs=fs)
    log(
        "app: slot %s, version %s%s"
        % (ctx["slot"], agent.status()["version"], " (trial)" if ctx.get("trial") else "")
    )
    failures = selftest.run(ctx, verifier)
    dev = None
    try:
        if clock is None:
            clock = RTC(d, ctx["device"].get("rtc_reset_time"), fs=fs)
        dev = Device.open(
            d,
            hw,
            clock,
            log=log,
            rng=rng or os.urandom,
            slot=ctx["slot"],
            device=ctx["device"],
            key=key,
        )
    except Exception as e:  # a gate that cannot open fails the trial like any check
        failures.append("service console: %r" % (e,))
    if ctx.get("trial"):
        if failures:
            agent.revert("self_test_failed: " + "; ".join(failures))
            log("app: self-test FAILED, reverting: %s" % "; ".join(failures))
            if dev is not None:
                dev.close()
            return boot.EXIT_REBOOT
        agent.confirm()
        log("app: self-test passed, slot %s confirmed" % ctx["slot"])
    elif failures:
        log("app: self-test failures on the confirmed slot: %s" % "; ".join(failures))
    if dev is None:
        return boot.EXIT_HALT  # the confirmed image cannot serve: nothing better to run
    try:
        image = dev.agent.status()
        info = {
            "device_id": dev.device_id,
            "state": service.STATE_NAMES[dev.console.lifecycle()],
            "slot": image["slot"],
            "version": image["version"],
        }
        log("console: ready " + json.dumps(info))
        return serve(link, dev, log, connect)
    finally:
        dev.close()


def serve(link, dev, log=print, connect=None) -> int:
    """The main loop (see the module's docstring). Returns the exit code."""
    syncer = Syncer(dev, connect, log, ticks_ms=dev.ticks)
    errors = 0
    while True:
        scanning = dev.in_service and dev.loop.readers
        data = link.read(0 if scanning else SCAN_WAIT_S)
        if data == b"":
            return boot.EXIT_HALT
        # no data: the console may still drop a frame past buffers.console_frame_ms and
        # answer what was buffered behind its header
        out = dev.console.feed(data) if data else dev.console.poll()
        if out:
            link.write(out)
        if data:
            if dev.console.flash_service is not None and dev.console.flash_service.reboot:
                return boot.EXIT_REBOOT
        try:
            dev.step(SCAN_WAIT_S if scanning and not data and not syncer.pumping else 0)
        except Exception as e:  # a driver failing: logged, and the loop goes on
            errors += 1
            if errors <= MAX_ERROR_LOGS:
                log("app: gate loop error: %r" % (e,))
        syncer.poll()
        if dev.reboot and not syncer.busy and (dev.gate is None or dev.gate.state == "idle"):
            log("app: rebooting into the firmware staged by sync")
            return boot.EXIT_REBOOT


class Syncer:
    """Sync with the back office every `sync.interval_s`, one session at a time, pumped from
    the main loop. `connect(device, endpoint)` returns the link (or raises OSError), or, where
    opening it blocks (TCP and TLS on a Linux gate), an opener that does that elsewhere:
    `.poll()` -> the link once ready, None until then (raises OSError when it failed),
    `.cancel()`. The loop goes on serving riders while it opens; after CONNECT_LIMIT_S it is
    given up. `endpoint` is the sync front end `self.failover` chose (firmware/sync/failover.py)."""

    def __init__(self, dev, connect, log, ticks_ms=platform.ticks_ms):
        self.dev = dev
        self.connect = connect
        self.log = log
        self.ticks = ticks_ms
        self.pump = None
        self.link = None
        self.opening = None  # the opener of the next session's link, while it opens
        self.client = None
        self.failures = 0
        self.sessions = 0
        self.due = ticks_ms() + FIRST_SYNC_S * 1000
        self._opened_at = 0
        self._why_not = ""
        self.host = None  # where the last session went ("host:port", or the serial port)
        self.failover = Failover([])  # the config's sync front ends, the one in use
        self.last_ok = None  # gate time of the last session that ended well
        self.last_error = None  # {"time", "reason", "message"} of the last failed one
        self.last = None  # {"time", "acked", "installed", "refused"} of the last good one
        if connect is not None:
            dev.sync = self.state

    def state(self) -> dict:
        """What the console's status shows of sync: plain values (gate times in unix s)."""
        return {
            "host": self.host or self._host(),
            "blocked": self._blocked(),
            "sessions": self.sessions,
            "failures": self.failures,
            "busy": self.busy,
            "last_ok": self.last_ok,
            "last": self.last,
            "last_error": self.last_error,
            "pending": self.dev.journal.pending_count(),
            "next_in_s": max(0, platform.ticks_diff(self.due, self.ticks()) // 1000),
        }

    @property
    def busy(self) -> bool:
        """A session is opening or running."""
        return self.pump is not None or self.opening is not None

    @property
    def pumping(self) -> bool:
        """A session is running: the main loop turns quickly to move its bytes."""
        return self.pump is not None

    def _interval_s(self) -> int:
        return int(gate_config.get(self.dev.console.config, "sync.interval_s"))

    def poll(self) -> None:
        if self.opening is not None:
            self._poll_opening()
            return
        if self.pump is not None:
            from firmware.sync.client import SyncError  # loaded with the session (sync_client)

            try:
                if self.pump.poll(0):
                    return
            except (SyncError, OSError) as e:
                self._end(getattr(e, "reason", "") or repr(e), str(e))
                return
            self._end("", "")
            return
        if self.dev.sync_wanted:  # it just entered service: sync now
            self.dev.sync_wanted = False
            self.due = self.ticks()
        if self.connect is None or platform.ticks_diff(self.ticks(), self.due) < 0:
            return
        self.due = self.ticks() + self._interval_s() * 1000
        try:
            self.client = self.dev.sync_client()
        except FaregateError as e:
            claimed = self.dev.validator is not None
            if claimed and str(e) != self._why_not:
                self._why_not = str(e)
                self.log("sync: not yet: %s" % e)
            return
        self._why_not = ""
        self.host = self._host()
        try:
            got = self.connect(self.dev, self.failover.current())
        except (OSError, FaregateError) as e:
            self._unreachable(e)
            return
        if hasattr(got, "recv"):  # a link, ready at once (a serial line)
            self.host = getattr(got, "name", None) or self.host
            self._start(got)
        else:
            self.opening = got
            self._opened_at = self.ticks()

    def _blocked(self) -> str:
        """Why this gate cannot start a session now ("" when it can)."""
        dev = self.dev
        if dev.validator is None:
            return "no operator root"
        if dev.host_key() is None:
            return "no sync.host_key in its config"
        if dev.store.signer() is None:
            if dev.store.key_error is not None:  # a token missing or refusing its PIN
                return "device key: %s" % dev.store.key_error
            return "no device key"
        return ""

    def _host(self):
        """ "host:port" of the front end the next session goes to (None: the config names none;
        the failover follows the config as it changes)."""
        cfg = self.dev.console.config
        try:
            eps = endpoints(
                gate_config.get(cfg, "sync.host"),
                int(gate_config.get(cfg, "sync.port")),
                gate_config.get(cfg, "sync.hosts"),
            )
        except EndpointError:  # the config's check refuses it; an old config may hold it
            eps = []
        self.failover.set_endpoints(eps)
        here = self.failover.current()
        return "%s:%d" % here if here else None

    def _poll_opening(self) -> None:
        try:
            link = self.opening.poll()
        except (OSError, FaregateError) as e:
            self.opening = None
            self._unreachable(e)
            return
        if link is not None:
            self.opening = None
            self._start(link)
        elif platform.ticks_diff(self.ticks(), self._opened_at) >= CONNECT_LIMIT_S * 1000:
            self.opening.cancel()
            self.opening = None
            self._end(
                "timeout", "the link to the back office did not open in %d s" % CONNECT_LIMIT_S
            )

    def _start(self, link) -> None:
        from firmware.sync.client import Pump  # loaded with the session's client (sync_client)

        self.link = link
        try:
            self.pump = Pump(self.client, link, SYNC_IDLE_TIMEOUT_S)
        except (OSError, FaregateError) as e:
            self._unreachable(e)

    def _unreachable(self, e) -> None:
        self._end(getattr(e, "reason", "") or "connect", "cannot reach the back office: %s" % e)

    def _end(self, reason: str, message: str) -> None:
        pump, self.pump = self.pump, None
        if self.link is not None:
            try:
                self.link.close()
            except OSError:
                pass
            self.link = None
        self.sessions += 1
        now = self.dev.clock.now()
        if not reason and pump is not None:
            self.failures = 0
            self.failover.succeeded()
            c = pump.client
            self.last_ok = now
            self.last = {
                "time": now,
                "acked": c.acked,
                "installed": [[_kind(k), v] for k, v in c.applied],
                "refused": [[_kind(k), v, why] for k, v, why, _text in c.refused],
            }
            applied = ", ".join("%s v%d" % (_kind(k), v) for k, v in c.applied)
            refused = ", ".join(
                "%s v%d (%s)" % (_kind(k), v, why) for k, v, why, _text in c.refused
            )
            self.log(
                "sync: %d records acknowledged, %d pending%s%s"
                % (
                    c.acked,
                    self.dev.journal.pending_count(),
                    "; installed " + applied if applied else "",
                    "; refused " + refused if refused else "",
                )
            )
            return
        self.failures += 1
        self.last_error = {"time": now, "reason": reason, "message": message}
        where = self.host
        if self.failover.current() is not None and self.failover.failed():
            # another front end of the back office has not failed yet: go there now
            self.due = self.ticks()
            self.host = self._host()
            self.log(
                "sync: failed (%s) at %s: %s; trying %s now" % (reason, where, message, self.host)
            )
            return
        retry = min(5 << min(self.failures - 1, 6), self._interval_s())
        self.due = self.ticks() + retry * 1000
        self.log("sync: failed (%s): %s; again in %d s" % (reason, message, retry))


def _kind(kind: int) -> str:
    from protocol import messages

    return messages.KINDS.get(kind, str(kind))
