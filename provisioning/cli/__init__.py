"""The `faregate` command: its entry point (main), shared CLI kit, errors and exit codes, and
one module per subcommand group. The top layer: nothing outside this package imports it."""
