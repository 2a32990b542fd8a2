"""docs/technician-guide.md shows what the tools really print: run it and compare."""

from tests import guides


def test_guide_matches_what_the_tools_print(tmp_path):
    with open(guides.GUIDES["technician"][0]) as f:
        assert f.read().count("```console") >= 15
    _new, problems = guides.check("technician", str(tmp_path))
    assert not problems, "\n\n".join(problems) + (
        "\n\nIf the change is intended: python -m tests.guides --write technician"
    )


def test_masking_keeps_what_matters():
    mask = guides.mask
    a = "[ 3/12] clock        2026-11-27 01:10:03 UTC (was 9827 days behind)"
    b = "[ 3/12] clock        2027-01-02 11:00:00 UTC (was 12 days behind)"
    assert mask(a) == mask(b)
    assert mask("gate 1017 on /dev/pts/3") != mask("gate 1018 on /dev/pts/3")
    assert mask("[exit 3]") != mask("[exit 4]")
    assert mask("key id ef1919d5") == mask("key id 366b114a")
