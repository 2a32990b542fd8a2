"""The station simulator: scenarios, demand, faults, lanes, the simulated network, invariants and
reports."""
