"""Entry point of a Linux gate image: the boot shim (firmware/maintenance/boot.py) imports this
module from the slot it chose and calls `main(ctx)`. It wires the CPython implementations into
firmware.compose.app: the OpenSSL signature backend (for ride codes, images, the device key), the
service port, the board's hardware and the sync link.

From the gate's `device.json`:
    "console": "stdio"     the service port: "stdio" (the simulator relays the launcher's
                           stdin/stdout to a pty, host_sim/hardware/sim_device.py) or a pyserial URL
                           such as "/dev/ttyS1"
    "hardware": {          device URLs (drivers/portable/wiring.py, docs/drivers.md); GPIO pins
                           are sysfs value files (drivers/linux/gpio_sysfs.py); relative paths are
                           relative to the state directory, the gate's working directory
      "readers": [{"url": "serial:/dev/ttyACM0"}],    the first one reads the test card
      "barrier": "gpio:relay=17&opened=18",           position feedback for the self-test
      "beams": "gpio:a=22&b=23"                       passage beams A and B
    }
    "sync_serial": URL     sync over this serial port (drivers/linux/link_serial.py) instead of TCP
    "device_key": URL      where the device key lives when not in the owner-only file device.key:
                           "pkcs11:token=gate;object=device?module-path=...&pin-source=file:pin"
                           (drivers/linux/key_pkcs11.py: a PKCS#11 token, the key made inside it)
    "rtc_reset_time": T    what an unset clock reads (firmware/maintenance/wallclock.py)

Sync over TCP goes to the sync front end the Syncer chose (firmware/sync/failover.py: the config's
sync.hosts in order, or sync.host and sync.port) inside TLS: the gate presents the
X.509 certificate provisioning installed for its device key (tls_cert.bin: the gate's
certificate, then the operator CA's, which is the only CA it trusts for the back office).
Plain TCP is used only to a back office on this machine (127.0.0.1, localhost) and only when
no certificate is installed. The TCP connect and the TLS handshake run in a worker thread
(drivers/linux/link_opener.py), never in the main loop that serves riders. A gate whose device key
is in a token has no key file for OpenSSL: it syncs over `sync_serial` or to a back office on this
machine, and refuses (OSError) to open TLS to another (docs/security.md "Device key in a token").
"""

import os
import select
import sys
from typing import Any

from drivers.linux import crypto_openssl, gpio_sysfs
from drivers.portable import registry, wiring
from firmware import platform
from firmware.compose import app, gate_config
from firmware.sync import failover
from protocol.errors import FaregateError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONNECT_TIMEOUT_S = 2.0


class StdioLink:
    """The service port on file descriptors 0 and 1."""

    def __init__(self, rfd: int = 0, wfd: int = 1) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def read(self, timeout_s: float | None = None) -> bytes | None:
        if timeout_s is not None:
            ready, _, _ = select.select([self.rfd], [], [], timeout_s)
            if not ready:
                return None
        return os.read(self.rfd, 65536)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]


class SerialLink:
    """The service port on a UART through pyserial (any URL pyserial opens)."""

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        import serial

        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=None)

    def read(self, timeout_s: float | None = None) -> bytes | None:
        self.port.timeout = timeout_s
        first = self.port.read(1)
        if not first:
            return None
        return first + self.port.read(self.port.in_waiting)

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()


def tls_context(state_dir: str, secret: bytes) -> Any:
    """The gate's TLS client context from tls_cert.bin and its device key, or None when no
    certificate is installed. The key goes to tls_key.pem (mode 0600) for OpenSSL to load."""
    from cryptography.hazmat.primitives import serialization

    from drivers.linux.link_tcp import client_context

    chain = os.path.join(state_dir, "tls_cert.bin")
    if not os.path.exists(chain):
        return None
    key = crypto_openssl.signer(secret).key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = os.path.join(state_dir, "tls_key.pem")
    if platform.read_file(key_path) != key:
        platform.write_secret(key_path, key)
    return client_context(chain, chain, key_path)


def connector(device: dict[str, Any]) -> Any:
    """`connect(dev, endpoint)` for firmware.compose.app: the gate's sync link, as device.json and
    its config say (a serial link, ready; or a LinkOpener that is opening the TCP one to
    endpoint, (host, port); None: the config's first front end)."""

    def connect(dev: Any, endpoint: tuple[str, int] | None = None) -> Any:
        if device.get("sync_serial"):
            return registry.open_device("link", device["sync_serial"])
        from drivers.linux.link_opener import LinkOpener
        from drivers.linux.link_tcp import TcpLink

        cfg = dev.console.config
        if endpoint is None:
            eps = failover.endpoints(
                gate_config.get(cfg, "sync.host"),
                int(gate_config.get(cfg, "sync.port")),
                gate_config.get(cfg, "sync.hosts"),
            )
            endpoint = eps[0] if eps else None
        if endpoint is None:
            raise OSError("no sync.host (or sync.hosts) in the gate's config")
        host, port = endpoint
        state_dir = dev.dir
        if dev.store.key is not None:
            if host not in LOOPBACK:
                raise OSError(
                    "the device key is in a token (%s): TLS needs a key file, so sync over "
                    "sync_serial or to a back office on this machine" % dev.store.key.kind
                )
            return LinkOpener(
                lambda: TcpLink.connect(host, port, None, timeout_s=CONNECT_TIMEOUT_S)
            )
        secret = platform.read_file(os.path.join(state_dir, "device.key"))
        certified = secret is not None and os.path.exists(os.path.join(state_dir, "tls_cert.bin"))
        if not certified and host not in LOOPBACK:
            raise OSError("no TLS certificate installed: provision with a [sync] host")

        def open_link() -> Any:
            # in a worker thread: loading the TLS context (it may write tls_key.pem), the name
            # lookup, the connect and the TLS handshake all block; riders are served meanwhile
            # and the Syncer takes the link once it is ready
            tls = tls_context(state_dir, secret) if certified else None
            return TcpLink.connect(host, port, tls, timeout_s=CONNECT_TIMEOUT_S)

        return LinkOpener(open_link)

    return connect


def device_key(device: dict[str, Any]) -> Any:
    """The device key's holder that device.json's "device_key" URL names (None: the file
    device.key). A URL that cannot be opened gives a holder that says why at every use, so the
    service console still starts and the technician sees the reason."""
    url = device.get("device_key")
    if not url:
        return None
    try:
        return registry.open_device("key", url)
    except FaregateError as e:
        log("app: device key %s: %s" % (url.split("?")[0], e))
        from drivers.linux.key_pkcs11 import UnusableKey

        return UnusableKey(e)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(ctx: dict[str, Any]) -> int:
    device = ctx["device"]
    console = device.get("console", "stdio")
    link = StdioLink() if console == "stdio" else SerialLink(console)
    os.chdir(ctx["state_dir"])
    platform.set_crypto(crypto_openssl)
    hw = None
    if device.get("hardware"):
        try:
            hw = wiring.build(device["hardware"], machine=gpio_sysfs)
        except (OSError, ValueError) as e:  # the console still starts: a technician can look
            log("app: hardware not available: %s" % e)
    if hw is not None:  # the station mesh's socket, opened only under mesh.enabled
        from drivers.linux import mesh_udp

        hw.mesh_link = mesh_udp.open_link  # type: ignore[attr-defined]
    key = device_key(device)
    return app.run(ctx, link, hw, os.urandom, log, connect=connector(device), key=key)
