"""A provisioned gate's state directory, written directly: what `faregate provision` leaves on a
gate (firmware/storage/device_store.py's files, the lists installed in the validator's stores),
without a service console, for simulators, benchmarks and tests that open gates with
firmware/compose/device.Device.

    provision(state_dir, device_id, root, device_secret, config, trust_list, deny_list, now)

`root` is the operator root's signer (it certifies the device key and is the gate's anchor);
`config` a gate config (firmware/compose/gate_config.py; it is checked); the lists are signed blobs
(protocol/trustlist.py, protocol/denylist.py) under `root_key_id(root.public_key)`.
"""

import json
import os
from typing import Any

from drivers.linux import crypto_openssl
from firmware import platform
from firmware.compose import gate_config
from firmware.verify import gatestate
from firmware.verify.denystore import DenyStore
from firmware.verify.truststore import TrustStore
from protocol import certs, trustlist

CERT_YEARS = 5


def provision(
    state_dir: str,
    device_id: int,
    root: Any,
    device_secret: bytes,
    config: dict[str, Any],
    trust_list: bytes,
    deny_list: bytes,
    now: int,
    model: str = "sim",
) -> None:
    gate_config.validate(config, device_id)
    os.makedirs(state_dir, exist_ok=True)
    device = crypto_openssl.signer(device_secret)
    cert = certs.Cert(
        certs.KIND_DEVICE,
        device_id,
        certs.key_id(root.public_key),
        now - 300,
        now + CERT_YEARS * 365 * 86400,
        device.public_key,
        0,
        str(config["name"]),
    )

    def put(name: str, data: bytes) -> None:
        platform.write_atomic(os.path.join(state_dir, name), data)

    put("factory.json", json.dumps({"device_id": device_id, "model": model}).encode())
    put("anchor.pub", bytes(root.public_key))
    platform.write_secret(os.path.join(state_dir, "device.key"), bytes(device_secret))
    put("cert.bin", certs.sign(cert, root))
    put("config.json", json.dumps(config, sort_keys=True).encode())
    put("trust_list.bin", trust_list)
    put("deny_list.bin", deny_list)
    put("state.json", json.dumps({"clock_set": True, "selftest": {"passed": True}}).encode())
    roots = {trustlist.root_key_id(root.public_key): bytes(root.public_key)}
    verifier = crypto_openssl.verifier()
    TrustStore(roots, verifier, os.path.join(state_dir, gatestate.TRUST)).install(trust_list)
    deny_dir = os.path.join(state_dir, gatestate.DENY)
    os.makedirs(deny_dir, exist_ok=True)
    DenyStore(deny_dir, roots, verifier).install(deny_list)
