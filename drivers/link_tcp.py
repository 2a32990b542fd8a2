"""Run the gate's sync client over a TCP socket (the station network)."""

import socket

from firmware.sync_client import SyncClient


def sync_once(client: SyncClient, host: str, port: int, timeout_s: float = 5.0) -> int:
    """Upload pending records and wait for the acknowledgement. Returns records trimmed."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(client.start())
        while not client.done:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("back office closed the link before acknowledging")
            client.receive(data)
    return client.acked
