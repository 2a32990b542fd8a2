"""The duck types firmware talks to. Firmware never imports an implementation; the entry point
(drivers/portable/wiring.build from a gate's config, or host_sim for simulated gates) builds them
and hands them in. Every kind has a real backend, an MCU backend where an MCU gate has one,
and a simulated one; drivers/portable/registry.py picks them by URL (docs/drivers.md).

    Verifier    .verify(pub_sec1, message, sig_rs) -> bool       crypto_openssl (p256: issue 3)
    Clock       .now() -> int      unix seconds, the gate's anchored time (issue 3's anchor)
    RTC         .now() -> int, .set(t)          rtc.SystemRTC, rtc.MachineRTC, hardware.SimRTC
    Reader      .read(timeout_s) -> str | None  one scanned ride-code text
                    qrengine_serial (pyserial), qrengine_uart (machine.UART), camera (OpenCV),
                    hardware.PtyQREngine + qrengine_serial, hardware.SimReader, camera.SimCamera
    Barrier     .open(), .close(), .poll() -> [events]   also a door lock (open = unlock)
                    events: barrier_opened, barrier_closed, barrier_jam, barrier_ok
                    barrier_serial, gpio.GpioBarrier, hardware.SimBarrier / PtyBarrierController
    Pair        .read() -> (a, b)   passage beams or vehicle loops, True = interrupted/occupied
                    gpio.GpioPair, passage.Beams, passage.Loops
    Input       .value() -> bool    fire alarm, door contact, exit button, service key
                    gpio.GpioInput, hardware.SimInput, passage.Door
    Display     .show(text)         a short line for the rider
                    display.LineDisplay / StreamDisplay, gate.NullDisplay, hardware.SimDisplay
    Indicator   .signal(name), .poll() -> []   LEDs and buzzer: accept, reject, alarm,
                    alarm_off, emergency, closed, ready     gpio.GpioIndicator, SimIndicator
    Decoder     .decode(gray ndarray) -> [texts]   decode.Pipeline and the raw libraries

Levels become events in firmware/gate/sensors.py; events drive the mode tables
(firmware/gate/modes.py).
"""
