"""Storage on the gate: the passage journal, the provisioned device store, the service event log.
Portable."""
