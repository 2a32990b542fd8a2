"""What a gate does with the root's blobs (docs/security.md "Roles", "Root rotation",
"Claiming"): root metadata (by sync or console), a release (console), and who signed a config
that came by sync. Loaded only when one of them arrives, so that an MCU gate that never gets
one does not carry this code in its heap (firmware/compose/device.py `_roles` calls in).

Who signed a config decides what it may change: a plain JSON config comes under the sync key,
which may change every setting but those of SECURITY (refused config_needs_root, naming them);
a root-signed config (protocol/rootmeta.py security_config: the JSON inside, a security
version, the threshold of the root role's signatures) may change any, once: its security
version must be above the last one the gate took (root_rollback).
"""

from firmware import settings
from firmware.compose import gate_config
from protocol import image, rootmeta, service
from protocol.errors import FormatError

# Settings that touch security (issue 16): over sync, a config that changes one of them needs
# the root's threshold; the sync key alone may deliver every other setting of
# firmware/settings.py. A name ending in "." is a whole section.
SECURITY = (
    "revoked_technicians",
    "validation.window_s",
    "validation.skew_s",
    "validation.stale_trust",
    "validation.stale_grace_s",
    "validation.stale_offline_limit",
    "validation.clock_policy",
    "validation.clock_offline_limit",
    "validation.stale_deny",
    "validation.stale_deny_offline_limit",
    "risk.",
    "sync.host_key",
    "clock.ahead_tolerance_s",
    "clock.set_bound_s",
)


def is_security(name: str) -> bool:
    """True for a setting of SECURITY (its own name, or under a section it names)."""
    for s in SECURITY:
        if name == s or (s.endswith(".") and name.startswith(s)):
            return True
    return False


def security_changes(old, new) -> list:
    """The SECURITY settings whose value (default when unset) differs between two configs."""
    out = []
    for r in settings.SCHEMA:
        name = r[0]
        if is_security(name) and settings.value(old, name) != settings.value(new, name):
            out.append(name)
    return out


def delivered(data: bytes, device_id: int, current, root, verifier, held_version: int):
    """A config that came by sync, checked against who signed it: -> (cfg, JSON bytes to
    store, security version or None). `current` is the config in force, `root()` the root the
    gate trusts (protocol.rootmeta.Root), `held_version` the last security version it took.
    Raises FormatError (bad_config, config_needs_root, root_rollback, root_threshold, ...)."""
    data = bytes(data)
    if data[:4] != rootmeta.CONFIG_MAGIC:
        cfg = gate_config.parse(data, device_id)
        changed = security_changes(current, cfg)
        if changed:
            raise FormatError(
                "config changes %s: security settings need the root's signature, the sync key "
                "alone may not change them" % ", ".join(changed),
                "config_needs_root",
            )
        return cfg, data, None
    theirs, version, raw, body, sigs = rootmeta.parse_security_config(data)
    if theirs != device_id:
        problem = "root-signed config is for device %d, this is device %d" % (theirs, device_id)
        raise settings.SettingError("device_id", problem)
    rootmeta.check_threshold(root(), rootmeta.ROOT, body, sigs, verifier, "root-signed config")
    if version <= held_version:
        raise FormatError(
            "root-signed config has security version %d, not above %d held"
            % (version, held_version),
            "root_rollback",
        )
    return gate_config.parse(raw, device_id), raw, version


def _sync_key(dev):
    key = gate_config.get(dev.console.config, "sync.host_key")
    return bytes.fromhex(key) if key else None


def trusted(dev):
    """The Root gate `dev` trusts: the held one, else the implicit one of its anchor (version
    0: the anchor for every role, the config's sync.host_key for sync), else None (blank)."""
    root = dev.store.root()
    if root is not None:
        return root
    anchor = dev.store.anchor()
    return rootmeta.implicit(anchor, _sync_key(dev)) if anchor is not None else None


def synced_config(dev, version: int, data: bytes):
    """A config from the back office, kept if its signers may change what it changes."""
    cfg, raw, security = delivered(
        data,
        dev.device_id,
        dev.console.config,
        lambda: trusted(dev),
        dev.verifier,
        dev.store.flags.get("security_version", 0),
    )
    dev.store.write_blob(service.BLOB_CONFIG, raw)
    if security is not None:
        dev.store.set_flag("security_version", security)
    dev.store.set_flag("config_version", version)
    return cfg


def release_keys(dev) -> None:
    """A gate that holds root metadata takes images signed by its release role only."""
    if dev.agent is not None and dev.store.root() is not None:
        dev.agent.keys = {image.key_id(k): k for k in dev.store.role_keys("release")}


def install_root(dev, data: bytes) -> dict:
    """The next root metadata (console or sync): checked against the root held, kept."""
    held = trusted(dev)
    if held is None:
        raise FormatError("a blank gate takes no root metadata", "root_threshold")
    new = rootmeta.check_update(held, data, dev.verifier, dev.clock.now())
    dev.store.set_root(data, new)
    release_keys(dev)
    if dev.store.flags.get("released"):  # a release names the version it released
        dev.store.set_flag("released", 0)
    dev.log("device: root metadata version %d installed" % new.version)
    dev.events.add("root_installed", {"version": new.version, "expires": new.expires})
    return {"version": new.version, "expires": new.expires}


def synced_root(dev, _version: int, data: bytes) -> None:
    """Root metadata from the back office (FormatError: refused, the root held stays)."""
    install_root(dev, data)
    dev._fire("config")  # the lists' keys may have changed: rebuild the validator


def load_release(dev, data: bytes) -> dict:
    """A root-signed release: the gate's next factory reset forgets the binding."""
    device_id, version, body, sigs = rootmeta.parse_release(data)
    held = dev.store.root()
    if held is None or device_id != dev.device_id or version != held.version:
        raise FormatError(
            "release for device %d, root version %d; this is device %d holding root "
            "version %d" % (device_id, version, dev.device_id, dev.store.root_version()),
            "release_refused",
        )
    try:
        rootmeta.check_threshold(held, rootmeta.ROOT, body, sigs, dev.verifier, "release")
    except FormatError as e:
        raise FormatError(str(e), "release_refused") from None
    dev.store.set_flag("released", version)
    dev.events.add("released", {"root_version": version})
    return {"released": version}
