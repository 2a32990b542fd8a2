"""What a gate does right after the boot shim hands over (firmware.boot.launch).

    code = app.run(ctx, link, hw, rng, log)   # ctx from the shim: state_dir, slot, trial, device

`link` is the service port: `.read() -> bytes` (blocking; b"" when the port closed) and
`.write(bytes)`. The entry module of each profile (drivers/linux_gate.py, drivers/mcu_gate.py)
builds it and the rest for its board: `hw` (.scanner, .barrier, .sensors for the technician's
self-test), `rng(n)` (default os.urandom), and `log(text)` for the console log. Signatures
(images, credentials, the device key) come from firmware.platform.crypto(): OpenSSL when the
entry point set it, else protocol/p256.py. The clock is firmware.rtc.RTC on the state
directory.

1. Trial check: the image's self-test (firmware.selftest), and the service console must start.
   On a trial boot: pass -> confirm the slot; fail -> revert and reboot into the confirmed one.
   A crash before this point is caught by the shim at the next boot (the trial's boot counter
   is already spent).
2. Serve the service console (firmware.service) on the link. Flashing (firmware.flash_service)
   happens inside its authenticated sessions only. When an update was activated, return
   EXIT_REBOOT so the device restarts into its trial.

Once it serves, the app logs one line `console: ready {json}` (device id, lifecycle state,
slot, version): the simulator waits for it (host_sim/sim_device.py).
"""

import json
import os

from firmware import boot, platform, selftest
from firmware.device_store import DeviceStore, Keys
from firmware.eventlog import EventLog
from firmware.flash_service import FlashService
from firmware.journal import Journal
from firmware.rtc import RTC
from firmware.service import ServiceConsole
from firmware.update_agent import UpdateAgent
from protocol import service


def run(ctx: dict, link, hw=None, rng=None, log=print) -> int:
    backend = platform.crypto()
    verifier = backend.verifier()
    rng = rng or os.urandom
    agent = UpdateAgent(ctx["state_dir"], verifier, ctx["device"], ctx["slot"])
    st = agent.status()
    log(
        "app: slot %s, version %s%s"
        % (ctx["slot"], st["version"], " (trial)" if ctx.get("trial") else "")
    )
    failures = selftest.run(ctx, verifier)
    console = None
    try:
        console = open_console(ctx, agent, verifier, Keys(backend, rng), hw, rng)
    except Exception as e:  # a console that cannot start fails the trial like any check
        failures.append("service console: %r" % (e,))
    if ctx.get("trial"):
        if failures:
            agent.revert("self_test_failed: " + "; ".join(failures))
            log("app: self-test FAILED, reverting: %s" % "; ".join(failures))
            if console is not None:
                console.journal.close()
            return boot.EXIT_REBOOT
        agent.confirm()
        log("app: self-test passed, slot %s confirmed" % ctx["slot"])
    elif failures:
        log("app: self-test failures on the confirmed slot: %s" % "; ".join(failures))
    if console is None:
        return boot.EXIT_HALT  # the confirmed image cannot serve: nothing better to run
    try:
        ready = agent.status()
        info = {
            "device_id": console.store.device_id,
            "state": service.STATE_NAMES[console.lifecycle()],
            "slot": ready["slot"],
            "version": ready["version"],
        }
        log("console: ready " + json.dumps(info))
        return serve(link, console)
    finally:
        console.journal.close()


def open_console(ctx: dict, agent, verifier, keys, hw, rng) -> ServiceConsole:
    d = ctx["state_dir"]
    clock = RTC(d, ctx["device"].get("rtc_reset_time"))
    store = DeviceStore(d, keys)
    journal = Journal(d, store.device_id)
    return ServiceConsole(
        store,
        journal,
        clock,
        hw,
        verifier,
        rng,
        EventLog(d, clock),
        flash_service=FlashService(agent),
    )


def serve(link, console) -> int:
    while True:
        data = link.read()
        if not data:
            return boot.EXIT_HALT
        out = console.feed(data)
        if out:
            link.write(out)
        if console.flash_service.reboot:
            return boot.EXIT_REBOOT
