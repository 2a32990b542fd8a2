"""Drivers that run on CPython and MicroPython: the interfaces firmware talks to, the URL registry
and wiring, the serial QR engine core, GPIO, RTC, displays."""
