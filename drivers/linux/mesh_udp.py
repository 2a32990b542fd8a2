"""The station mesh's socket on a Linux gate: one non-blocking UDP socket (docs/mesh.md).

    link = open_link(settings)   # settings: firmware.settings.section("mesh", cfg)
    link.broadcast(data)         # to every address of mesh.peers (or the multicast group)
    link.send(data, addr)        # to one peer: a catch-up answer or an ASK
    link.recv() -> (data, addr) or None      never blocks
    link.close()

`mesh.peers` is "host:port,host:port" (a port left out is mesh.port); names are looked up
once, when the link opens. A single IPv4 multicast address (224.0.0.0/4) is a group: the
socket joins it on the interface of `mesh.bind` and one send reaches every gate. OSError goes
to the caller (firmware/mesh/node.py counts it).
"""

import socket
from typing import Any

from firmware.sync import failover

MAX_PEERS = 64
RECV_BYTES = 2048  # a mesh message is at most 1,329 bytes


def is_multicast(host: str) -> bool:
    try:
        first = int(host.split(".")[0])
    except ValueError:
        return False
    return host.count(".") == 3 and 224 <= first <= 239


class UdpMeshLink:
    def __init__(self, bind: str, port: int, peers: list[tuple[str, int]]) -> None:
        self.peers = [_resolve(h, p) for h, p in peers]
        self.group = (
            self.peers[0][0] if len(self.peers) == 1 and is_multicast(peers[0][0]) else None
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.group is not None:  # every gate binds the group's port
                self.sock.bind(("", port))
                iface = socket.inet_aton(bind)
                req = socket.inet_aton(self.group) + iface
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, req)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                if bind != "0.0.0.0":
                    self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
            else:
                self.sock.bind((bind, port))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.address = self.sock.getsockname()

    def broadcast(self, data: bytes) -> None:
        for addr in self.peers:
            self.sock.sendto(data, addr)

    def send(self, data: bytes, addr: Any) -> None:
        self.sock.sendto(data, addr)

    def recv(self) -> tuple[bytes, Any] | None:
        try:
            return self.sock.recvfrom(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None

    def close(self) -> None:
        self.sock.close()


def _resolve(host: str, port: int) -> tuple[str, int]:
    info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    return str(info[0][4][0]), port


def open_link(settings: dict[str, Any]) -> UdpMeshLink:
    """The link for a gate's mesh.* settings (OSError if it cannot bind or a peer's name does
    not resolve; EndpointError, a FormatError, if mesh.peers is malformed)."""
    port = int(settings["port"])
    peers = (
        failover.parse_hosts(settings["peers"] or "", port, MAX_PEERS) if settings["peers"] else []
    )
    return UdpMeshLink(settings["bind"] or "0.0.0.0", port, peers)
