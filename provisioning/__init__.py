"""The operator's and technician's tools: provision, inspect, build/sign/flash, and the `faregate`
command itself (provisioning.cli.main). CPython only."""
