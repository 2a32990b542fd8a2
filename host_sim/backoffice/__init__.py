"""The back office: its store, the sync server, clearing. Depends on protocol/ only (and the
signature backend); never on the simulator."""
