"""The gate application: validation, gate modes, journal, lists, time, sync, service, updates.

Portable: runs on CPython (Linux gates) and MicroPython (MCU gates). Hardware is reached only
through objects handed in by the entry point (see drivers/ and host_sim/); nothing here imports
an implementation from drivers/.
"""
