"""`faregate wallet ...` and `faregate verify`, run as a user would: subprocesses, real files."""

import json
import os
import subprocess

from tests.conftest import faregate_argv

T = "2026-01-01T08:00:00Z"
T0 = 1_767_254_400


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        faregate_argv(*args), input=stdin, capture_output=True, text=True, timeout=120
    )


def ok(*args: str, stdin: str = "") -> str:
    out = run(*args, stdin=stdin)
    assert out.returncode == 0, out.stderr
    return out.stdout


def one(*args: str) -> str:
    """The single line a command printed (codes may end in a space: strip only the newline)."""
    return ok(*args).rstrip("\n")


def verify(state: str, lines: list[str], at: int | str = T0 + 30, *files: str) -> list[dict]:
    out = run("verify", "--state", state, "--at", str(at), *files, stdin="\n".join(lines) + "\n")
    assert out.returncode in (0, 1), out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == (1 if any(not r["accept"] for r in results) else 0)
    return results


def test_demo_setup_issue_mint_verify_and_every_bad_kind(tmp_path):
    from host_sim.wallet import BAD_KINDS

    state = str(tmp_path / "demo")
    ok("wallet", "init", "--state", state, "--now", T)
    assert sorted(os.listdir(state)) == [
        "deny",
        "roots.json",
        "trust.bin",
        "validator.json",
        "wallet",
    ]
    assert oct(os.stat(os.path.join(state, "wallet", "keys.json")).st_mode & 0o777) == "0o600"
    assert (
        json.loads(
            ok("wallet", "issue", "--state", state, "--account", "42", "--now", T, "--json")
        )["cred_no"]
        == 1
    )
    codes = ok(
        "wallet", "mint", "--state", state, "--account", "42", "--now", str(T0 + 20), "--count", "2"
    ).splitlines()
    assert len(codes) == 2 and all(c.startswith("FG1:") and len(c) == 298 for c in codes)
    res = verify(state, codes + [codes[0]])
    assert [r["reason"] for r in res] == ["accepted", "accepted", "replayed"]
    assert res[0]["account_id"] == 42 and res[0]["counter"] == 1 and res[0]["line"] == 1
    assert res[2]["display"] == "Code already used" and res[2]["reason_number"] == 43
    # the MCU gates' pure-Python verifier gives the same answers
    out = run(
        "verify",
        "--state",
        state,
        "--at",
        str(T0 + 30),
        "--backend",
        "p256",
        stdin="\n".join(codes + [codes[0]]) + "\n",
    )
    assert [json.loads(x)["reason"] for x in out.stdout.splitlines()] == [
        "accepted",
        "accepted",
        "replayed",
    ]

    bad = []
    for kind in BAD_KINDS:
        if kind != "replayed":
            bad += ok(
                "wallet",
                "mint",
                "--state",
                state,
                "--account",
                "42",
                "--now",
                str(T0 + 30),
                "--bad",
                kind,
            ).splitlines()
    res = verify(state, bad)
    expected = [BAD_KINDS[k][0] for k in BAD_KINDS if k != "replayed"]
    assert [r["reason"] for r in res] == expected
    # "replayed" mints the rider's last code again: refused when shown after the original
    last = ok(
        "wallet", "mint", "--state", state, "--account", "42", "--now", str(T0 + 30)
    ).splitlines()
    again = ok(
        "wallet",
        "mint",
        "--state",
        state,
        "--account",
        "42",
        "--now",
        str(T0 + 30),
        "--bad",
        "replayed",
    ).splitlines()
    assert again == last
    assert [r["reason"] for r in verify(state, last + again)] == ["accepted", "replayed"]
    # verify never wrote into the state: the gate's own replay cache is untouched
    assert not os.path.exists(os.path.join(state, "replay.log"))


def test_png_codes_decode_and_verify(tmp_path):
    state = str(tmp_path / "s")
    ok("wallet", "init", "--state", state, "--now", T)
    ok("wallet", "issue", "--state", state, "--account", "7", "--now", T)
    paths = ok(
        "wallet",
        "mint",
        "--state",
        state,
        "--account",
        "7",
        "--now",
        str(T0 + 5),
        "--count",
        "2",
        "--png",
        str(tmp_path / "png"),
    ).splitlines()
    assert len(paths) == 2 and all(p.endswith(".png") and os.path.exists(p) for p in paths)
    res = verify(state, [], T0 + 10, *paths)
    assert [(r["reason"], r["source"], r["counter"]) for r in res] == [
        ("accepted", paths[0], 1),
        ("accepted", paths[1], 2),
    ]


def test_deny_rotate_and_stale_trust(tmp_path):
    state = str(tmp_path / "s")
    # a stale list is refused by default; this gate grants the grace period
    ok(
        "wallet",
        "init",
        "--state",
        state,
        "--now",
        T,
        "--trust-days",
        "2",
        "--stale-policy",
        "grace",
    )
    ok("wallet", "issue", "--state", state, "--account", "5", "--now", T)
    ok("wallet", "deny", "--state", state, "--account", "5", "--now", T)
    code = one("wallet", "mint", "--state", state, "--account", "5", "--now", str(T0 + 1))
    assert verify(state, [code], T0 + 2)[0]["reason"] == "denied"
    ok("wallet", "deny", "--state", state, "--account", "5", "--remove", "--now", T)
    assert verify(state, [code], T0 + 2)[0]["reason"] == "accepted"
    # rotation with overlap: both keys verify until the old one ends
    rot = json.loads(
        ok("wallet", "rotate", "--state", state, "--overlap-days", "1", "--now", T, "--json")
    )
    assert (rot["event"], rot["command"], rot["ok"]) == ("result", "wallet rotate", True)
    assert {k: rot[k] for k in ("new_key_id", "old_key_id", "trust_version")} == {
        "new_key_id": 2,
        "old_key_id": 1,
        "trust_version": 2,
    }
    old_code = one("wallet", "mint", "--state", state, "--account", "5", "--now", str(T0 + 3))
    ok("wallet", "issue", "--state", state, "--account", "6", "--now", T)
    new_code = one("wallet", "mint", "--state", state, "--account", "6", "--now", str(T0 + 3))
    res = verify(state, [old_code, new_code], T0 + 4)
    assert [(r["reason"], r["issuer_key_id"]) for r in res] == [("accepted", 1), ("accepted", 2)]
    # a trust list past valid_until: accepted in the grace period (flagged), then refused
    ok("wallet", "trust", "--state", state, "--valid-days", "0.5", "--now", T)
    ok(
        "wallet",
        "issue",
        "--state",
        state,
        "--account",
        "8",
        "--now",
        str(T0 + 86400 - 100),
        "--hours",
        "48",
    )
    late = one("wallet", "mint", "--state", state, "--account", "8", "--now", str(T0 + 86400))
    res = verify(state, [late], T0 + 86400)
    assert res[0]["accept"] and res[0]["flags"] == ["trust_stale"]
    late2 = one("wallet", "mint", "--state", state, "--account", "8", "--now", str(T0 + 2 * 86400))
    assert verify(state, [late2], T0 + 2 * 86400)[0]["reason"] == "trust_list_stale"


def test_usage_errors_are_one_line_with_a_fix(tmp_path):
    out = run("verify", "--state", str(tmp_path / "nope"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "(fix:" in out.stderr
    out = run("wallet", "mint", "--state", str(tmp_path), "--account", "1")
    assert out.returncode == 2 and "wallet init" in out.stderr
    state = str(tmp_path / "s")
    ok("wallet", "init", "--state", state, "--now", T)
    out = run("wallet", "init", "--state", state)
    assert out.returncode == 2 and "--force" in out.stderr
    out = run("wallet", "mint", "--state", state, "--account", "3")
    assert out.returncode == 2 and "wallet issue" in out.stderr
    ok("wallet", "issue", "--state", state, "--account", "3", "--now", T)
    out = run("wallet", "mint", "--state", state, "--account", "3", "--bad", "nonsense")
    assert out.returncode == 2 and "expired" in out.stderr
    out = run("verify", "--state", state, "--at", "yesterday-ish")
    assert out.returncode == 2 and "ISO 8601" in out.stderr
    out = run("verify", "--state", state, str(tmp_path / "missing.txt"))
    assert out.returncode == 2 and "missing.txt" in out.stderr
    assert "one JSON object per code" in ok("verify", "--help")


def test_two_issuers_account_42_are_two_riders_and_the_gate_takes_both(tmp_path):
    state = str(tmp_path / "demo")
    ok("wallet", "init", "--state", state, "--now", T)
    out = json.loads(ok("wallet", "add-issuer", "--state", state, "--issuer-id", "7",
                        "--now", T, "--json"))  # fmt: skip
    assert out["issuer_key_id"] == 7 and out["trust_version"] == 2
    a = json.loads(ok("wallet", "issue", "--state", state, "--issuer", "1", "--account", "42",
                      "--now", T, "--json"))  # fmt: skip
    b = json.loads(ok("wallet", "issue", "--state", state, "--issuer", "7", "--account", "42",
                      "--now", T, "--json"))  # fmt: skip
    assert (a["issuer"], b["issuer"]) == (1, 7) and a["credential"] != b["credential"]
    # minting needs the issuer once two have an account 42
    out = run("wallet", "mint", "--state", state, "--account", "42", "--now", str(T0 + 20))
    assert out.returncode != 0 and "several issuers (1, 7)" in out.stderr
    code1 = one("wallet", "mint", "--state", state, "--issuer", "1", "--account", "42",
                "--now", str(T0 + 20))  # fmt: skip
    code7 = one("wallet", "mint", "--state", state, "--issuer", "7", "--account", "42",
                "--now", str(T0 + 20))  # fmt: skip
    # each is its own rider with its own counter: both first presentations pass the gate
    results = verify(state, [code1, code7])
    assert [r["accept"] for r in results] == [True, True]
    from protocol import ridecode

    assert [ridecode.parse_text(c).credential.issuer_key_id for c in (code1, code7)] == [1, 7]
