"""A gate's verification state in one directory, and the Validator built from it.

    DIR/roots.json       {"1": "02ab..."}: operator root public keys (SEC1 hex) by root key id
    DIR/validator.json   ValidatorConfig settings (firmware/verify/validator.py), all optional
    DIR/trust.bin        the installed signed trust list (firmware/verify/truststore.py)
    DIR/deny/            the deny-list store (firmware/verify/denystore.py)
    DIR/replay.log       the replay cache (firmware/verify/replay.py)
    DIR/anchor.bin       the time anchor (firmware/verify/timeanchor.py)

`faregate wallet init` writes roots.json and validator.json and installs the first lists;
`faregate verify --state DIR` opens the same directory read-only to re-check codes as that gate
would. A provisioned gate (firmware/compose/device.py) has no roots.json or validator.json: its
root is the operator root it was claimed for, its settings come from its config, and the console and
sync install newer lists (`validator.trust.install(blob)`, `validator.deny.install(blob)`).
"""

import json

from firmware import platform, settings
from firmware.storage.fs import DISK
from firmware.verify.denystore import DenyStore
from firmware.verify.flashdeny import FlashDenyStore
from firmware.verify.replay import ReplayCache
from firmware.verify.timeanchor import TimeAnchor
from firmware.verify.truststore import TrustStore
from firmware.verify.validator import Validator, ValidatorConfig
from protocol.errors import UsageError

ROOTS = "roots.json"
CONFIG = "validator.json"
TRUST = "trust.bin"
DENY = "deny"
REPLAY = "replay.log"
ANCHOR = "anchor.bin"


def read_roots(directory: str, fs=DISK) -> dict:
    data = fs.read_file(directory + "/" + ROOTS)
    if data is None:
        raise UsageError("%s/%s is missing: the gate has no operator root key" % (directory, ROOTS))
    try:
        raw = json.loads(data)
        return {int(k): bytes.fromhex(v) for k, v in raw.items()}
    except (ValueError, AttributeError, TypeError):
        raise UsageError("%s/%s is not a JSON object of hex keys" % (directory, ROOTS)) from None


def read_config(directory: str, fs=DISK) -> ValidatorConfig:
    data = fs.read_file(directory + "/" + CONFIG)
    if data is None:
        return ValidatorConfig()
    try:
        return ValidatorConfig.from_dict(json.loads(data))
    except (ValueError, TypeError) as e:  # not a JSON object (a bad setting: SettingError)
        raise UsageError("%s/%s: %s" % (directory, CONFIG, e)) from None


def config_from_gate_config(cfg: dict) -> ValidatorConfig:
    """The ValidatorConfig for a provisioned gate config (nested or dotted names); a setting
    the config leaves out takes its default (firmware/settings.py)."""
    return settings.build(ValidatorConfig, cfg)


def write_setup(directory: str, roots: dict, config=None, fs=DISK) -> None:
    """Write roots.json and validator.json (what provisioning does for a new gate)."""
    fs.write_atomic(
        directory + "/" + ROOTS,
        json.dumps({str(k): bytes(v).hex() for k, v in roots.items()}).encode(),
    )
    cfg = config or ValidatorConfig()
    fs.write_atomic(directory + "/" + CONFIG, json.dumps(cfg.to_dict()).encode())


def _mkdir(path: str, fs=DISK) -> None:
    try:
        fs.mkdir(path)
    except OSError:
        pass


def open_validator(
    directory: str,
    verifier,
    rtc=None,
    readonly: bool = False,
    roots=None,
    config=None,
    clock=None,
    fs=DISK,
    deny_backend=None,
    lists=None,
):
    """The Validator of the gate whose state is in `directory`.

    rtc       the gate's RTC (`.now()`); with it the clock is a persisted TimeAnchor, which the
              caller should also use as the gate's clock (`validator.clock`)
    readonly  load everything but never write (for `faregate verify` on a copy of a gate's state)
    roots, config   the operator roots and ValidatorConfig (default: roots.json, validator.json)
    clock     a TimeAnchor the caller made (instead of `rtc`)
    fs        the storage object of every store (firmware/storage/fs.py)
    deny_backend  "ram" or "file" (default: the platform's, firmware.platform.DENY_BACKEND)
    lists     who signs deny lists (truststore.ListKeys: the lists role of the root metadata);
              default: the roots, threshold 1
    """
    if roots is None:
        roots = read_roots(directory, fs)
    if config is None:
        config = read_config(directory, fs)
    trust = TrustStore(roots, verifier, directory + "/" + TRUST, fs=fs)
    if readonly:
        trust.path = None
    deny_dir = directory + "/" + DENY
    if not readonly:
        _mkdir(deny_dir, fs)
    deny = open_deny(
        deny_dir, lists or roots, verifier, fs=fs, readonly=readonly, backend=deny_backend
    )
    replay = ReplayCache(
        directory + "/" + REPLAY, config.window_s + config.skew_s, fs=fs, readonly=readonly
    )
    if clock is None and rtc is not None:
        clock = TimeAnchor(rtc, None if readonly else directory + "/" + ANCHOR, fs=fs)
    return Validator(verifier, trust, deny, config, replay, clock)


def open_deny(deny_dir, roots, verifier, fs=DISK, readonly=False, backend=None):
    """The deny store of `deny_dir`: in RAM ("ram") or searched in its file ("file"); `roots`:
    who signs deny lists (a truststore.ListKeys, or a {root_key_id: key} dict)."""
    backend = backend or platform.DENY_BACKEND
    if backend == "file" and not readonly:
        return FlashDenyStore(deny_dir, roots, verifier, fs=fs)
    return DenyStore(deny_dir, roots, verifier, fs=fs, readonly=readonly)


def forget_lists(directory: str, fs=DISK) -> None:
    """Remove the installed trust and deny lists (a factory reset: the next operator's lists
    start from version 1 again)."""
    fs.remove_if_exists(directory + "/" + TRUST)
    for name in ("deny.base", "deny.log"):
        fs.remove_if_exists(directory + "/" + DENY + "/" + name)
