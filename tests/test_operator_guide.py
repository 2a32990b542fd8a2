"""docs/operator-guide.md shows what the tools really print: run it and compare.

Every command of the guide runs for real in a sandbox: the operator's keys, the back office
serving TLS on a free port, a simulated gate provisioned, registered and syncing, lists and
firmware published and taken, a station simulation and its back-office database, a benchmark,
a stale trust list and its cure, a revoked gate."""

import re
import shlex

from provisioning.cli.backoffice import _serve_settings
from provisioning.cli.main import build_parser
from tests import guides


def _guide() -> str:
    with open(guides.GUIDES["operator"][0]) as f:
        return f.read()


def test_guide_matches_what_the_tools_print(tmp_path):
    text = _guide()
    assert text.count("```console") >= 20 and text.count("<!-- wait: ") >= 5
    _new, problems = guides.check("operator", str(tmp_path))
    assert not problems, "\n\n".join(problems) + (
        "\n\nIf the change is intended: python -m tests.guides --write operator"
    )


def test_the_systemd_units_command_is_one_faregate_accepts(tmp_path):
    [line] = re.findall(r"^ExecStart=(.+)$", _guide(), re.M)
    argv = shlex.split(line)
    assert argv[0].endswith("/.venv/bin/faregate")
    args = build_parser().parse_args(argv[1:])  # exits 2 on an unknown option
    assert (args.command, args.func.__name__) == ("backoffice", "cmd_serve")
    assert args.config == "/etc/faregate/backoffice.toml"
    # the config file the guide shows for it is one serve accepts, for a host on the network
    [toml] = re.findall(r"```toml\n# /etc/faregate/backoffice.toml\n(.*?)```", _guide(), re.S)
    (tmp_path / "backoffice.toml").write_text(toml)
    args.config = str(tmp_path / "backoffice.toml")
    cfg = _serve_settings(args)
    assert cfg["sync.listen"] == [("0.0.0.0", 7700)]
    assert cfg["sync.sync_key"] == "/etc/faregate/sync.key"
    assert cfg["store.path"] == "/var/lib/faregate/backoffice.sqlite"
    assert all(cfg[k].startswith("/etc/faregate/") for k in ("tls.cert", "tls.key", "tls.ca"))
    assert cfg["http.listen"] and cfg["http.listen"][0] != "0.0.0.0"


def test_masks_hide_measurements_not_results():
    extra = guides.GUIDES["operator"][1]

    def mask(text):
        return guides.mask(text, extra)

    a = "P5  sync 100,000 records, loopback TCP + TLS  0.921  s     None       None   <= 5 s"
    b = "P5  sync 100,000 records, loopback TCP + TLS  1.05   s     None       None   <= 5 s"
    assert mask(a) == mask(b)
    assert mask(a) != mask(b.replace("<= 5 s", "<= 9 s"))
    assert mask(a) != mask(b.replace(" s ", " ms "))
    w1 = "  wall time 2.1 s for 0.6 simulated hours (522 accepted per wall second)"
    w2 = "  wall time 12.7 s for 0.6 simulated hours (87 accepted per wall second)"
    assert mask(w1) == mask(w2) and mask(w1) != mask(w2.replace("0.6", "1.6"))
    assert mask("invariants: 7 checked, all hold") != mask("invariants: 7 checked, 1 BROKEN")


def test_the_postgresql_config_of_the_guide_loads(tmp_path):
    from host_sim.backoffice import config

    [toml] = re.findall(r"```toml\n# /etc/faregate/backoffice.toml, on PostgreSQL.*?\n(.*?)```",
                        _guide(), re.S)  # fmt: skip
    (tmp_path / "bo.toml").write_text(toml)
    values = config.load(str(tmp_path / "bo.toml"))
    assert values == {"store.url": "postgresql://faregate@/faregate?host=/var/run/postgresql"}
