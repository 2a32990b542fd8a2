"""What a gate does right after the boot shim hands over (firmware.boot.launch).

    code = app.run(ctx, link, verifier)   # ctx from the shim: state_dir, slot, trial, device

1. Self-test (firmware.selftest). On a trial boot: pass -> confirm the slot; fail -> revert
   and reboot into the confirmed slot. A crash before this point is caught by the shim at the
   next boot (the trial's boot counter is already spent).
2. Serve the service port: flash frames go to firmware.flash_service. When an update was
   activated, return EXIT_REBOOT so the device restarts into its trial.

The entry module of each profile (drivers/linux_gate.py, drivers/mcu_gate.py) builds the link
and the verifier and calls `run`. `link` has `.read() -> bytes` (blocking; b"" when the port
closed) and `.write(bytes)`. `log(text)` goes to the gate's console log.
"""

from firmware import boot, selftest
from firmware.flash_service import FlashService
from firmware.update_agent import UpdateAgent
from protocol import frames


def run(ctx: dict, link, verifier, log=print) -> int:
    agent = UpdateAgent(ctx["state_dir"], verifier, ctx["device"], ctx["slot"])
    st = agent.status()
    log(
        "app: slot %s, version %s%s"
        % (ctx["slot"], st["version"], " (trial)" if ctx.get("trial") else "")
    )
    failures = selftest.run(ctx, verifier)
    if ctx.get("trial"):
        if failures:
            agent.revert("self_test_failed: " + "; ".join(failures))
            log("app: self-test FAILED, reverting: %s" % "; ".join(failures))
            return boot.EXIT_REBOOT
        agent.confirm()
        log("app: self-test passed, slot %s confirmed" % ctx["slot"])
    elif failures:
        log("app: self-test failures on the confirmed slot: %s" % "; ".join(failures))
    if verifier is None:
        log("app: no signature verifier: images will be refused (no_verifier)")
    return serve(link, FlashService(agent))


def serve(link, service) -> int:
    dec = frames.FrameDecoder()
    while True:
        data = link.read()
        if not data:
            return boot.EXIT_HALT
        for fr in dec.feed(data):
            out = b""
            for ftype, payload in service.handle(fr.type, fr.payload):
                out += frames.encode(ftype, payload)
            link.write(out)
        if service.reboot:
            return boot.EXIT_REBOOT
