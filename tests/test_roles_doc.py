"""Keep docs/security.md's roles, rotation and claiming sections (and the guides' commands for
them) equal to the code: the root metadata vector, the reasons, the security settings, the
roles, and every `faregate keys root-*` / `device root` command line the guides show."""

import os
import re
import shlex

from firmware import settings
from firmware.compose import roles
from protocol import reasons, rootmeta
from provisioning.cli.main import build_parser
from tests.portable import test_rootmeta

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _read(name: str) -> str:
    with open(os.path.join(DOCS, name)) as f:
        return f.read()


def _section(text: str, title: str) -> str:
    start = text.index("\n## " + title)
    end = text.find("\n## ", start + 4)
    return text[start : end if end > 0 else len(text)]


def test_the_vector_in_the_docs_is_what_the_code_makes():
    text = _section(_read("security.md"), "Root metadata layout")
    block = re.search(r"```\n([0-9a-f\n]+)```", text).group(1)
    data = bytes.fromhex(block.replace("\n", ""))
    assert data == test_rootmeta.vector()
    assert "%d bytes" % len(data) in text
    root = rootmeta.parse(data)
    flat = " ".join(text.split())
    assert "issued_at %d, expires %d" % (root.issued_at, root.expires) in flat
    for kid in root.key_ids(rootmeta.ROOT):
        assert "%08x" % kid in text


def test_every_reason_of_the_roles_is_explained_in_the_docs():
    text = _read("security.md")
    ours = [n for n in reasons.REASONS if 280 <= reasons.number(n) <= 289]
    assert len(ours) == 7
    for name in ours:
        assert "`%s`" % name in text, name
        assert name in rootmeta.REASONS


def test_the_roles_table_names_every_role_and_the_security_settings():
    text = _section(_read("security.md"), "Roles")
    for name in rootmeta.ROLE_NAMES.values():
        assert "| `%s`" % name in text, name
    flat = " ".join(text.split())
    for name in roles.SECURITY:
        if name.endswith("."):
            assert "`%s*`" % name in flat, name
        elif name.startswith("validation."):
            continue  # "every validation.* window, skew, stale and clock policy"
        else:
            assert "`%s`" % name in flat, name
    for name in roles.SECURITY:  # each is a real setting (or section)
        assert any(r[0] == name or r[0].startswith(name) for r in settings.SCHEMA), name


def test_the_threat_model_covers_each_stolen_thing():
    text = _section(_read("security.md"), "Threat model")
    for what in ("the sync key", "a technician's laptop", "a gate", "the release key"):
        assert "\n| %s" % what in text, what


def test_every_roles_command_in_the_guides_parses():
    parser = build_parser()
    seen = 0
    for guide in ("operator-guide.md", "technician-guide.md"):
        for block in re.findall(r"```sh\n(.*?)```", _read(guide), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                argv = shlex.split(line, comments=True)  # a shell comment may hold quotes
                if argv[:2] not in (["faregate", "keys"], ["faregate", "device"]) and argv[:3] != [
                    "faregate",
                    "backoffice",
                    "publish",
                ]:
                    continue
                args = parser.parse_args(argv[1:])
                assert callable(args.func), line
                seen += 1
    assert seen >= 10
