"""Everything that stands in for the world around a gate: back office, wallet, simulated
hardware, and the scenario runner. CPython only."""
