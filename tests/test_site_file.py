"""Site files: every error names the file, the line and the field."""

import pytest

from provisioning import site

GOOD = """\
# Central station
[operator]
ca_key = "keys/root.key"

[station]
id = 12
name = "Central"
mode = "metro"
scope = 1

[lists]
trust_list = "trust.bin"

[validation]
window_s = 60

[[gate]]
name = "A1"
lane = 1
direction = "entry"

[[gate]]
name = "A2"
device_id = 1018
lane = 2
direction = "exit"
"""


def _write(tmp_path, text):
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "root.key").write_text("x")
    (tmp_path / "trust.bin").write_bytes(b"t")
    p = tmp_path / "site.toml"
    p.write_text(text)
    return str(p)


def _errors(tmp_path, text):
    with pytest.raises(site.SiteErrors) as e:
        site.load(_write(tmp_path, text))
    return [(err.line, err.field, err.problem) for err in e.value.errors], e.value


def test_good_site_builds_each_gates_config(tmp_path):
    st = site.load(_write(tmp_path, GOOD))
    assert [g.name for g in st.gates] == ["A1", "A2"]
    assert st.ca_key == str(tmp_path / "keys" / "root.key")
    assert st.lists == {"trust_list": str(tmp_path / "trust.bin")}
    a2 = st.select_gate(None, 1018)
    cfg = st.config_for(a2, 1018)
    assert cfg == {
        "version": 1,
        "device_id": 1018,
        "name": "A2",
        "lane": 2,
        "direction": "exit",
        "station": 12,
        "station_name": "Central",
        "mode": "metro",
        "scope": 1,
        "validation": {"window_s": 60},
    }
    from firmware.compose import gate_config

    gate_config.validate(cfg, 1018)  # what the site builds, the gate accepts
    assert st.select_gate("A1", 5).name == "A1"
    with pytest.raises(site.SiteErrors, match="2 gates and none has device_id = 5") as e:
        st.select_gate(None, 5)
    assert e.value.errors[0].remedy == "pass --gate NAME (one of A1, A2)"
    with pytest.raises(site.SiteErrors, match="no \\[\\[gate\\]\\] named 'B9'"):
        st.select_gate("B9", 1018)


def test_bad_value_names_line_and_field(tmp_path):
    errs, e = _errors(tmp_path, GOOD.replace('direction = "exit"', 'direction = "sideways"'))
    assert errs == [(26, "gate[2].direction", "'sideways' is not one of entry, exit, both")]
    assert str(e.errors[0]).startswith(str(tmp_path / "site.toml") + ":26: gate[2].direction")
    assert e.errors[0].remedy == "use one of: entry, exit, both"


def test_every_problem_is_reported_in_line_order(tmp_path):
    text = (
        GOOD.replace("scope = 1", 'scope = "all"')
        .replace("window_s = 60", "window_s = 2\nwindow = 5")
        .replace('trust_list = "trust.bin"', 'trust_list = "missing.bin"')
        .replace("lane = 2", "lane = 2000")
        .replace('name = "A2"', 'name = "A1"')
    )
    errs, _e = _errors(tmp_path, text)
    assert errs == [
        (9, "station.scope", "must be an integer"),
        (12, "lists.trust_list", "file %s not found" % (tmp_path / "missing.bin")),
        (15, "validation.window_s", "must be between 5 and 3600"),
        (16, "validation.window", "unknown key"),
        (24, "gate[2].name", "'A1' is also gate 1's name"),
        (26, "gate[2].lane", "must be between 0 and 255"),
    ]
    assert _e.errors[3].remedy == "did you mean window_s?"


def test_missing_sections_and_keys(tmp_path):
    text = GOOD.replace("[lists]\n", "[list]\n").replace('mode = "metro"\n', "")
    errs, _e = _errors(tmp_path, text)
    assert (1, "lists", "missing section") in errs
    assert (5, "station.mode", "missing") in errs  # the table's header line
    assert (10, "list", "unknown section") in errs
    errs, _e = _errors(tmp_path, GOOD.split("[[gate]]")[0])
    assert (1, "gate", "no [[gate]] tables") in errs


def test_syntax_error_has_its_line(tmp_path):
    errs, _e = _errors(tmp_path, GOOD.replace('name = "Central"', 'name = "Central'))
    assert errs[0][0] == 7 and errs[0][1] == "syntax"
    errs, _e = _errors(tmp_path, GOOD.replace("[station]", "[station"))
    assert errs[0][0] == 5


def test_not_found_and_not_utf8(tmp_path):
    with pytest.raises(site.SiteErrors, match="not found"):
        site.load(str(tmp_path / "nope.toml"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b'[station]\nname = "\xff"\n')
    with pytest.raises(site.SiteErrors, match="not UTF-8"):
        site.load(str(p))


def test_find_line_handles_quoted_keys_and_arrays():
    text = '[a]\n"b" = 1\n[[g]]\nx = 1\n[[g]]\n  x = 2\n'
    assert site.find_line(text, "a", None, "b") == 2
    assert site.find_line(text, "g", 1, "x") == 6
    assert site.find_line(text, "g", 1, "y") == 5
    assert site.find_line(text, "zz", None, "y") == 1


def test_sync_host_key_defaults_to_the_operators_sync_pub(tmp_path):
    """`faregate keys init` writes sync.pub next to root.key: a [sync] without host_key takes
    it from there; with none there, the error names the field and the command that makes it."""
    text = GOOD.replace("[[gate]]", '[sync]\nhost = "10.0.0.5"\n\n[[gate]]', 1)
    errors, _ = _errors(tmp_path, text)
    assert errors == [
        (
            text.splitlines().index("[sync]") + 1,
            "sync.host_key",
            "missing, and there is no %s to take it from" % (tmp_path / "keys" / "sync.pub"),
        )
    ]
    pub = "02" + "ab" * 32
    (tmp_path / "keys" / "sync.pub").write_text(pub + "\n")
    st = site.load(_write(tmp_path, text))
    assert st.config_for(st.gates[0], 1017)["sync"] == {"host": "10.0.0.5", "host_key": pub}
    given = "03" + "cd" * 32
    st = site.load(_write(tmp_path, text.replace("[sync]\n", '[sync]\nhost_key = "%s"\n' % given)))
    assert st.config_for(st.gates[0], 1017)["sync"]["host_key"] == given
    (tmp_path / "keys" / "sync.pub").write_text("02abcd\n")
    errors, _ = _errors(tmp_path, text)
    assert errors[0][1] == "sync.host_key" and "sync.pub" in errors[0][2]


def test_sync_hosts_names_several_front_ends_and_a_bad_entry_names_its_line(tmp_path):
    pub = "02" + "ab" * 32
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "sync.pub").write_text(pub + "\n")
    text = GOOD.replace("[[gate]]", '[sync]\nhosts = "bo1:7700, bo2:7701"\n\n[[gate]]', 1)
    st = site.load(_write(tmp_path, text))  # host_key from sync.pub, as with one host
    assert st.config_for(st.gates[0], 1017)["sync"] == {"hosts": "bo1:7700, bo2:7701",
                                                        "host_key": pub}  # fmt: skip
    errors, _ = _errors(tmp_path, text.replace("bo2:7701", "bo2:70000"))
    line = text.splitlines().index('hosts = "bo1:7700, bo2:7701"') + 1
    assert errors == [(line, "sync.hosts", "'bo2:70000': the port must be between 1 and 65535")]


def test_the_registry_is_a_path_beside_the_site_file_or_a_database_url(tmp_path):
    text = GOOD.replace("[[gate]]", '[sync]\nhost = "bo"\nhost_key = "%s"\nregistry = "%s"\n\n'
                        "[[gate]]" % ("02" + "ab" * 32, "REG"), 1)  # fmt: skip
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "bo.sqlite").write_bytes(b"")
    st = site.load(_write(tmp_path, text.replace("REG", "db/bo.sqlite")))
    assert st.registry == str(tmp_path / "db" / "bo.sqlite")
    url = "postgresql://faregate@127.0.0.1:5432/backoffice"
    assert site.load(_write(tmp_path, text.replace("REG", url))).registry == url


BUS_SITE = """\
[operator]
ca_key = "keys/root.key"

[station]
id = 0
name = "Depot North"
mode = "bus"
scope = 1

[lists]
trust_list = "trust.bin"

[bus]
route = 31
stops = "101:48.1173:11.5166;102:48.1209:11.5166"
radius_m = 35

[[gate]]
name = "V7-front"
lane = 1
direction = "both"
vehicle = 7
"""


def test_a_bus_route_site_file_gives_each_validator_its_route_and_vehicle(tmp_path):
    from firmware.compose import gate_config

    st = site.load(_write(tmp_path, BUS_SITE))
    cfg = st.config_for(st.gates[0], 2001)
    assert cfg["mode"] == "bus"
    assert cfg["bus"] == {
        "route": 31,
        "stops": "101:48.1173:11.5166;102:48.1209:11.5166",
        "radius_m": 35,
        "vehicle": 7,
    }
    gate_config.validate(cfg, 2001)
    bad = BUS_SITE.replace("radius_m = 35", "radius_m = 1").replace("vehicle = 7", "vehicle = -1")
    errors, _e = _errors(tmp_path, bad)
    assert [(line, field) for line, field, _p in errors] == [
        (16, "bus.radius_m"),
        (22, "gate[1].vehicle"),
    ]
