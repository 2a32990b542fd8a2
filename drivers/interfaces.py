"""The duck types firmware talks to. Firmware never imports an implementation; the entry point
(host_sim for simulated gates, drivers.linux_gate for real ones) builds and hands them in.

    Verifier      .verify(pub_sec1: bytes, message: bytes, sig_rs: bytes) -> bool
    Clock         .now() -> int            unix seconds (the gate's anchored time)
    Barrier       .open() -> None          open for one passage
    Display       .show(text: str) -> None  a short line for the rider
    CodeSource    .read(timeout_s) -> str | None   one scanned ride-code text (QR engine, camera)

Implementations are chosen by URL, the way pyserial picks a backend from `serial_for_url`:
a QR engine on "/dev/ttyUSB0" or "loop://", a camera on "cam:0" or "file:frames/*.png".
"""
