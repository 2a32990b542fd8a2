"""Composition: one gate built from its state directory (device), its config (gate_config) and
what runs after the boot shim hands over (app). Portable."""
