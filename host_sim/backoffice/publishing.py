"""Checked publishing: what `faregate backoffice publish` lets through, and what each gate will
do with it.

    offer = check(kind, data, version, current, now)   # PublishRefused, or an Offer
    offer.warnings                                       # what --force let through
    predict(offer, device_id, status)                    # one sentence per gate

A blob goes down to every gate that holds an older version (docs/sync-protocol.md), so the gate
is the wrong place to find out it was never going to work. `check` refuses, before anything is
stored:
  - a blob of the wrong kind (a trust list offered as a deny delta, anything offered as firmware
    that is not an image), or one its kind's format does not parse;
  - a deny list of format 1 or 2, or a plate list of format 1 (no issuer): gates of this
    release refuse them (deny_needs_issuer, plate_needs_issuer), so they are not offered;
  - a version not above the one published now (gates holding it would never fetch the new one),
    and, for blobs that carry their own version (trust and deny lists), a --version that is not
    theirs (gates compare the offer with what they hold: they would fetch it at every sync);
  - with `force`, allowed through with a warning: an expired trust list (every code refused),
    one expiring within SOON_S, a deny delta that leaves a gap after the version published now
    (gates fetch one version after the other and would stop before it; the first delta
    follows the snapshot the site files gave the gates, which the back office does not know).
  - root metadata (protocol/rootmeta.py) that does not follow the version published now
    (gates take version held + 1 only: they would stop at the gap; forcible);
  - a config is a plain JSON config (the sync key's: gates refuse it as config_needs_root if it
    changes a security setting) or a root-signed one (`faregate keys sign-config`), whose JSON
    inside is checked the same.
Signatures are not checked here (the gates check them against the root metadata they hold).
`predict` reads a gate's last STATUS (Store.note_status) and says what that gate will do at its
next sync, by the same rules the gate applies (firmware/verify/truststore.py, denystore.py,
firmware/maintenance/update_agent.py, firmware/compose/gate_config.py).
"""

import datetime
import json
from typing import Any

from firmware.compose import gate_config
from host_sim.errors import SimError
from protocol import denylist, image, platelist, rootmeta, trustlist
from protocol import messages as m
from protocol.errors import FormatError

SOON_S = 7 * 86400  # a trust list valid for less than this is refused without --force
MAGICS = {
    trustlist.MAGIC: "trust_list",
    denylist.MAGIC: "deny_delta",
    image.MAGIC: "firmware",
    rootmeta.MAGIC: "root",
    rootmeta.CONFIG_MAGIC: "config",
    platelist.MAGIC: "plate_delta",
}
DESCRIBED = {
    "trust_list": "a trust list",
    "deny_delta": "a deny list",
    "plate_delta": "a plate list",
    "firmware": "a firmware image",
    "config": "a gate config",
    "fare_table": "a fare table",
    "root": "root metadata",
}


class PublishRefused(SimError):
    """A blob `publish` will not offer to the gates (the message says why, the remedy what to
    do; `forcible`: --force would publish it anyway, with a warning)."""

    reason = "publish_refused"
    forcible = False


class Offer:
    """A checked blob: kind (a KINDS name), version, data, what it says about itself."""

    def __init__(self, kind: str, version: int, data: bytes, info: dict[str, Any]) -> None:
        self.kind = kind
        self.version = version
        self.data = data
        self.info = info  # trust_list: valid_until; deny_delta: from/to, snapshot; firmware ...
        self.warnings: list[str] = []


def _when(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def detect(data: bytes) -> str | None:
    """The kind a blob's bytes say it is (by magic, or a JSON object for a config), or None."""
    kind = MAGICS.get(bytes(data[:4]))
    if kind is not None:
        return kind
    try:
        return "config" if isinstance(json.loads(bytes(data).decode()), dict) else None
    except (ValueError, UnicodeError):
        return None


def _refuse(message: str, remedy: str, forcible: bool = False) -> PublishRefused:
    e = PublishRefused(message, remedy=remedy)
    e.forcible = forcible
    return e


def _parse(kind: str, data: bytes) -> tuple[dict[str, Any], int | None]:
    """(what the blob says about itself, its own version or None)."""
    try:
        if kind == "trust_list":
            tl = trustlist.parse(data)
            return {"valid_until": tl.valid_until, "keys": len(tl.keys)}, tl.version
        if kind == "deny_delta":
            dl = denylist.parse(data)
            if dl.legacy:
                raise _refuse(
                    "this deny list is of format %d, without the issuer: gates refuse it "
                    "(deny_needs_issuer)" % data[4],
                    "make a format-3 list (`faregate wallet deny`, `backoffice risk publish`); "
                    "after an old one publish a format-3 snapshot first",
                )
            snapshot = dl.kind == denylist.KIND_SNAPSHOT
            info = {
                "from": dl.from_version,
                "to": dl.to_version,
                "snapshot": snapshot,
                "issuers": dl.issuers(),
                "signatures": len(dl.sigs),
            }
            return info, dl.to_version
        if kind == "plate_delta":
            pl = platelist.parse(data)
            if pl.legacy:
                raise _refuse(
                    "this plate list is of format 1, without the issuer: gates refuse it "
                    "(plate_needs_issuer)",
                    "publish a format-2 list (`faregate backoffice plates publish`)",
                )
            snapshot = pl.kind == platelist.KIND_SNAPSHOT
            info = {"from": pl.from_version, "to": pl.to_version, "snapshot": snapshot}
            return info, pl.to_version
        if kind == "firmware":
            _h, man, _off = image.parse(data)
            info = {
                "image_version": image.version_str(man.version),
                "profile": man.profile_name,
                "counter": man.counter,
            }
            return info, None
        if kind == "config" and bytes(data[:4]) == rootmeta.CONFIG_MAGIC:
            device_id, security, raw, _body, sigs = rootmeta.parse_security_config(data)
            cfg = gate_config.parse(raw, device_id)
            info = {"device_id": device_id, "security_version": security, "signatures": len(sigs)}
            return info, None
        if kind == "config":
            cfg = gate_config.parse(data)
            return {"device_id": cfg["device_id"], "security_version": None}, None
        if kind == "root":
            root = rootmeta.parse(data)
            return {"expires": root.expires, "signatures": len(root.sigs)}, root.version
    except FormatError as e:
        raise _refuse(
            "%s is not a valid %s: %s" % (DESCRIBED[kind], kind, e),
            "publish the file its tool made (faregate keys / image / site tools)",
        ) from None
    return {}, None


def check(
    kind: str, data: bytes, version: int | None, current: int | None, now: int, force=False
) -> Offer:
    """Check `data` as version `version` of `kind` (None: the blob's own version) against the
    version published now (`current`, None for none) at unix time `now`. Returns the Offer
    (with the warnings `force` let through) or raises PublishRefused."""
    if kind not in m.KINDS.values():
        raise _refuse("unknown kind %r" % kind, "one of " + ", ".join(m.KINDS.values()))
    found = detect(data)
    if found is not None and found != kind:
        raise _refuse(
            "this file is %s, not %s: gates would refuse it as %s"
            % (DESCRIBED[found], DESCRIBED[kind], kind),
            "publish it as %s, or pick the right file" % found,
        )
    if found is None and kind != "fare_table":
        raise _refuse(
            "this file is not %s (its first bytes are %s)" % (DESCRIBED[kind], data[:4].hex()),
            "publish the file its tool made",
        )
    info, own = _parse(kind, data)
    if version is None:
        if own is None:
            raise _refuse("a %s needs --version N" % kind, "give its version number (> 0)")
        version = own
    if version < 1:
        raise _refuse("--version must be at least 1", "number versions from 1 up")
    if own is not None and version != own:
        raise _refuse(
            "--version %d, but the %s inside says version %d: gates compare the offer with what "
            "they hold and would fetch it at every sync" % (version, kind, own),
            "leave --version out (it is read from the list) or give %d" % own,
        )
    if current is not None and version <= current:
        raise _refuse(
            "version %d is not above version %d, published now: gates that hold %d never fetch "
            "it" % (version, current, current),
            "publish it as version %d or higher" % (current + 1),
        )
    offer = Offer(kind, version, bytes(data), info)
    problems = []
    if kind == "trust_list":
        left = info["valid_until"] - now
        if left <= 0:
            problems.append(
                "trust list %d expired at %s: gates that install it refuse every code (or accept "
                "them flagged for their stale grace only)" % (version, _when(info["valid_until"]))
            )
        elif left < SOON_S:
            problems.append(
                "trust list %d expires at %s, in %.1f days: gates go stale then unless a newer one "
                "reaches them" % (version, _when(info["valid_until"]), left / 86400)
            )
    if kind in ("deny_delta", "plate_delta") and not info["snapshot"] and current is not None:
        if info["from"] != current:  # (the first one follows the site files' snapshot)
            problems.append(
                "%s %d->%d does not follow version %d, published now: gates fetch one "
                "version after the other and stop at %d"
                % (kind.replace("_", " "), info["from"], info["to"], current, current)
            )
    if kind == "root" and current is not None and version != current + 1:
        problems.append(
            "root version %d does not follow version %d, published now: gates take version "
            "held + 1 only and stop at %d" % (version, current, current)
        )
    if kind == "root" and info["expires"] <= now:
        problems.append("root version %d expired at %s" % (version, _when(info["expires"])))
    for p in problems:
        if not force:
            raise _refuse(p, "publish a fresh one, or --force to publish it anyway", True)
        offer.warnings.append(p)
    return offer


def predict(offer: Offer, device_id: int, status: dict[str, Any] | None) -> str:
    """What gate `device_id` will do with `offer` at its next sync, from its last STATUS."""
    kind, v, info = offer.kind, offer.version, offer.info
    if kind == "config" and info["device_id"] != device_id:
        return "refuses it: the config is for device %d" % info["device_id"]
    if not status:
        return "has not reported yet: fetches it at its first sync"
    held = status.get("versions", {})
    if kind not in held:
        return "does not take %s: ignores it" % kind
    have = held[kind]
    if have >= v:
        return "holds version %d already: ignores it" % have
    extra = status.get("extra") or {}
    if kind == "trust_list":
        if info["valid_until"] <= status.get("time", 0):
            return "installs it (v%d -> v%d), then treats it as stale: expired" % (have, v)
        return "installs it at its next sync (v%d -> v%d)" % (have, v)
    if kind in ("deny_delta", "plate_delta"):
        if info["snapshot"]:
            return "replaces its " + kind[:-6] + " list at its next sync (v%d -> v%d)" % (have, v)
        if info["from"] == have:
            return "applies it at its next sync (v%d -> v%d)" % (have, v)
        return "holds version %d: cannot apply a delta from %d (it fetches %d next)" % (
            have,
            info["from"],
            have + 1,
        )
    if kind == "firmware":
        running = extra.get("image") or {}
        floor = running.get("counter") or 0
        if info["counter"] < floor:
            return "refuses it (image_rollback): security counter %d is below its %d" % (
                info["counter"],
                floor,
            )
        return "stages %s for a trial boot at its next sync (runs %s)" % (
            info["image_version"],
            running.get("version", "?"),
        )
    if kind == "root":
        return "takes root version %d at its next sync, after every version between" % v
    if kind == "config" and info["security_version"] is not None:
        return (
            "installs it at its next sync if it holds a security version below %d and the root "
            "signatures reach its threshold (v%d -> v%d)" % (info["security_version"], have, v)
        )
    if kind == "config":
        return (
            "installs it at its next sync and rebuilds its gate (v%d -> v%d), unless it changes "
            "a security setting (refused: config_needs_root)" % (have, v)
        )
    return "installs it at its next sync (v%d -> v%d)" % (have, v)
