"""Maintenance: the service console, flashing, the update agent and A/B boot shim, the trial
self-test an image must pass, the technician's hardware self-test, the wall clock the console sets.
Portable."""
