"""The one settings schema (firmware/settings.py): checks, errors, and what is built from it."""

import sys

from firmware import settings
from firmware.compose import gate_config
from firmware.gate import modes
from firmware.gate.policy import Passback, Sessions
from firmware.gate.sensors import BeamTracker, EdgeInput
from firmware.settings import SettingError
from firmware.verify import timeanchor
from firmware.verify.gatestate import config_from_gate_config
from firmware.verify.limits import LimitsConfig
from firmware.verify.replay import ReplayCache
from firmware.verify.validator import ValidatorConfig
from protocol.errors import FormatError
from tests.portable.console_kit import CONFIG
from tests.portable.harness import raises


def _with(**sections):
    cfg = dict(CONFIG)
    cfg.update(sections)
    return cfg


def _other(row):
    """A valid value of `row` that is not its default."""
    _name, kind, bounds, default = row[:4]  # an MCU gate's rows have no doc (firmware/settings.py)
    if kind == "bool":
        return not default
    if kind == "choice":
        return [c for c in bounds if c != default][0]
    if kind == "ints":
        return [bounds[1], bounds[0]]
    return bounds[0] if bounds[0] != default else bounds[1]


def test_a_bad_setting_names_the_setting_and_the_bound():
    e = raises(SettingError, settings.check, "validation.window_s", 2)
    assert isinstance(e, FormatError) and e.reason == "bad_config"
    assert e.setting == "validation.window_s" and e.bound == (5, 3600)
    assert "validation.window_s" in str(e) and "5 and 3600" in str(e)
    e = raises(SettingError, settings.check, "limits.at_limit", "open")
    assert e.bound == ("refuse", "flag") and "refuse, flag" in str(e)
    assert raises(SettingError, settings.check, "gate.pass_sec", 1).problem == "unknown setting"
    assert raises(SettingError, settings.check, "gate.require_entry", 1).setting
    # the same error from every place a setting is taken
    assert raises(SettingError, ValidatorConfig, window_s=1).setting == "validation.window_s"
    assert raises(SettingError, ValidatorConfig, stale_policy="open").bound[0] == "refuse"
    assert raises(SettingError, ValidatorConfig.from_dict, {"windows": 1}).setting == "windows"
    assert raises(SettingError, LimitsConfig, max_value_per_account=-1).bound[0] == 0
    assert raises(SettingError, modes.config, {"pass_ms": 1}).setting == "gate.pass_ms"
    bad = _with(limits={"max_unsynced_count": 0})
    assert raises(SettingError, gate_config.validate, bad).setting == "limits.max_unsynced_count"
    missing = dict(CONFIG)
    del missing["lane"]
    assert raises(SettingError, gate_config.validate, missing).problem == "missing"


def test_a_flat_dotted_key_is_checked_like_a_nested_one():
    low = dict(CONFIG)
    low["gate.pass_ms"] = 5  # used to skip its range check
    assert raises(SettingError, gate_config.validate, low).setting == "gate.pass_ms"
    ok = dict(CONFIG)
    ok["gate.pass_ms"] = 3000
    gate_config.validate(ok)
    assert gate_config.get(ok, "gate.pass_ms") == 3000
    assert settings.section("gate", ok)["pass_ms"] == 3000
    both = dict(ok, gate={"pass_ms": 3000})
    assert "twice" in raises(SettingError, gate_config.validate, both).problem


def test_a_stale_trust_list_is_refused_by_default():
    assert settings.default("validation.stale_trust") == "refuse"
    assert ValidatorConfig().stale_policy == "refuse"
    assert config_from_gate_config(dict(CONFIG)).stale_policy == "refuse"
    # "accept_flagged", the site files' older word, is grace
    old = _with(validation={"stale_trust": "accept_flagged"})
    gate_config.validate(old)
    assert config_from_gate_config(old).stale_policy == "grace"


def test_every_setting_is_reachable_from_a_gate_config():
    chosen = {}
    cfg = dict(CONFIG)
    for row in settings.SCHEMA:
        name = row[0]
        if row[3] is None:
            continue  # identity, sync address, revocations: read as given
        chosen[name] = value = _other(row)
        if "." in name:
            section, key = name.split(".")
            cfg.setdefault(section, {})[key] = value
        else:
            cfg[name] = value
    gate_config.validate(cfg)
    for name, value in chosen.items():
        assert gate_config.get(cfg, name) == value, name
    built = {}
    for cls in (ValidatorConfig, LimitsConfig):
        obj = settings.build(cls, cfg)
        for key, name in cls.SETTINGS:
            assert getattr(obj, key) == chosen[name], name
            built[name] = True
    mode = modes.config(settings.section("gate", cfg))
    for key in mode:
        assert mode[key] == chosen["gate." + key], key
        built["gate." + key] = True
    for name in chosen:
        if name.split(".")[0] in ("validation", "limits", "gate") or name == "scope":
            assert name in built, name + " is in no config object"


def test_constructors_take_their_defaults_from_the_schema():
    d = settings.default
    assert BeamTracker().loiter_ms == d("gate.loiter_ms")
    assert EdgeInput("fire_alarm").debounce_ms == d("gate.debounce_ms")
    assert Passback().window_s == d("gate.passback_s")
    assert Passback().require_entry == d("gate.require_entry")
    assert Sessions().max_s == d("gate.session_max_s")
    assert ReplayCache().retain_s == d("validation.window_s") + d("validation.skew_s")
    assert timeanchor.AHEAD_TOLERANCE_S == d("clock.ahead_tolerance_s")
    assert LimitsConfig().max_value_per_account == d("limits.max_value_per_account")
    assert ValidatorConfig().to_dict()["cache_size"] == d("validation.cache_size")
    assert modes.DEFAULTS["pass_ms"] == d("gate.pass_ms")
    for row in settings.SCHEMA:
        if row[3] is not None:
            assert settings.problem(row[0], row[3]) is None, row[0]  # defaults within bounds


def test_profile_defaults_are_settings_in_bounds_and_the_mcu_cache_is_small():
    for profile, own in settings.PROFILE_DEFAULTS.items():
        for name, v in own.items():
            assert settings.problem(name, v) is None, (profile, name, v)
    assert settings.PROFILE in settings.PROFILE_DEFAULTS
    assert settings.default("validation.cache_size", "mcu") == 32
    assert settings.default("validation.cache_size", "linux") == 4096  # the schema's
    here = settings.default("validation.cache_size")
    assert here == (32 if sys.implementation.name == "micropython" else 4096)
    assert ValidatorConfig().cache_size == here
    assert settings.value(None, "validation.cache_size") == here
    assert settings.default("limits.max_unsynced_count", "mcu") == 1024
    assert settings.default("limits.max_unsynced_count", "linux") == 20000
    assert LimitsConfig().max_unsynced == settings.default("limits.max_unsynced_count")
    cfg = {"validation": {"cache_size": 10}}  # a config still sets any value in bounds
    assert settings.value(cfg, "validation.cache_size") == 10
