"""Hardware interfaces and their implementations per platform (see drivers/interfaces.py)."""
