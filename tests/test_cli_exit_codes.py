"""The documented exit codes for failures that happen before any gate is reached."""

import os

from provisioning import operator_keys
from provisioning.cli import device as device_cli
from provisioning.cli import main as cli


def test_a_bug_is_exit_5_with_one_closing_line(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(device_cli, "cmd_test_card", boom)
    assert cli.main(["device", "test-card"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Traceback")
    assert err[-1] == (
        "faregate: internal error: ZeroDivisionError('oops') "
        "(fix: report it with the command line above)"
    )


def test_expired_credential_is_refused_on_the_laptop_with_exit_4(tmp_path, capsys):
    op = str(tmp_path / "op")
    operator_keys.init_operator(op, "Test", 1767254400)
    old = str(tmp_path / "old")
    operator_keys.issue_technician(op, old, 9, "old", "full", 1, 1767254400)
    code = cli.main(["device", "status", "--port", os.devnull, "--cred", old])
    assert code == cli.EXIT_AUTH
    err = capsys.readouterr().err.strip()
    assert err.startswith("faregate: error: technician credential %s expired 2026-01-02" % old)
    assert err.endswith("(fix: ask the operator for a new one (`faregate keys technician`))")


def test_test_card_is_a_readable_qr(tmp_path, capsys):
    import zxingcpp
    from PIL import Image

    out = str(tmp_path / "card.png")
    assert cli.main(["device", "test-card", "--out", out]) == 0
    texts = [r.text for r in zxingcpp.read_barcodes(Image.open(out))]
    assert texts == ["FGTEST:card-1"]
    assert cli.main(["device", "test-card", "--text", "hello"]) == cli.EXIT_USAGE


def test_a_reader_that_stops_early_is_not_a_bug(tmp_path):
    """`faregate ... | head`: the output's reader goes away; exit 141 (as for SIGPIPE), with
    no traceback and no 'internal error'."""
    import subprocess

    from tests.conftest import faregate_argv

    state = str(tmp_path / "demo")
    for args in (["init"], ["issue", "--account", "7"]):
        p = subprocess.run(faregate_argv("wallet", *args, "--state", state), capture_output=True)
        assert p.returncode == 0, p.stderr
    mint = faregate_argv("wallet", "mint", "--state", state, "--account", "7", "--count", "3000")
    p = subprocess.Popen(mint, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline().strip()  # one code (3000 are far more than a pipe holds)
    p.stdout.close()
    assert p.wait(60) == cli.EXIT_SIGPIPE == 141
    assert p.stderr.read() == b""
