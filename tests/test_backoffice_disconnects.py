"""A gate that vanishes mid-session (power cut, reset connection) is one log event at the back
office, never a traceback: over plain TCP and over TLS, at each step of a session, and for the
connection errors the event loop catches itself."""

import asyncio
import json
import logging
import socket
import struct
import time

import pytest

from drivers.linux.link_tcp import TcpLink, client_context
from host_sim.backoffice.sync_server import BackOfficeThread, quiet_disconnects, server_context
from tests.synclab import Lab


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def _reset(link: TcpLink) -> None:
    """Close with an RST, as a gate losing power mid-conversation looks to the server."""
    link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    link.sock.close()


@pytest.mark.parametrize("tls", [False, True])
def test_a_gate_reset_mid_session_is_one_line(lab, tls, caplog):
    lab.passages(3000)
    ca, srv, cli = lab.tls_files()
    lines: list[dict] = []
    bo = BackOfficeThread(
        lab.db,
        lab.keys,
        server_context(srv[0], srv[1], ca) if tls else None,
        lab.clock,
        lines.append,
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            for answers in (0, 1, 2):  # after HELLO, after AUTH, while batches go up
                client = lab.client()
                link = TcpLink.connect(
                    "127.0.0.1", bo.port, client_context(ca, cli[0], cli[1]) if tls else None
                )
                link.send(client.start())
                for _ in range(answers):
                    out = client.receive(link.recv(5) or b"")
                    if out:
                        link.send(out)
                _reset(link)
                deadline = time.monotonic() + 5
                while len(lines) <= answers and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert len(lines) == answers + 1, lines
    finally:
        bo.stop()
    for line in lines:
        assert line["event"] == "session" and line["peer"].startswith("127.0.0.1:"), line
        assert line["outcome"] == "dropped" and "mid-session" in line["msg"], line
        assert "\n" not in json.dumps(line)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert lab.store.count() <= 3000  # whatever was stored was stored once


def test_connection_errors_the_event_loop_catches_are_one_line_too(caplog):
    lines: list[dict] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(quiet_disconnects(lines.append))
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler(
                {
                    "message": "Unhandled exception in client_connected_cb",
                    "exception": ConnectionResetError(104, "Connection reset by peer"),
                }
            )
            assert caplog.records == []
            # anything else still gets the default treatment, traceback and all: a bug
            loop.call_exception_handler({"message": "boom", "exception": ValueError("bug")})
            assert len(caplog.records) == 1
    finally:
        loop.close()
    assert lines == [
        {
            "event": "connection_error",
            "msg": "Unhandled exception in client_connected_cb "
            "(ConnectionResetError: Connection reset by peer)",
        }
    ]
