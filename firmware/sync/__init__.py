"""The gate's side of sync with the back office (protocol/sync.py drives the exchange). Portable."""
