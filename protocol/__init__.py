"""Every wire and file format of faregate: pure functions and sans-IO state machines.

Runs unchanged on CPython and MicroPython: no I/O, no clock reads, no imports from the
other top-level folders, and only modules the MicroPython unix port has.
"""
