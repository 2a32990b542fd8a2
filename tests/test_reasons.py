"""protocol/reasons.py and its notes: every reason explained once, and an MCU gate without them.

The technicians' explanations live in protocol/reason_notes.py so that an MCU gate does not hold
them (about 19 KB of a 512 KB unix-port heap, docs/mcu.md); CPython joins them to each entry.
"""

import os
import subprocess

from protocol import mesh, reason_notes, reasons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def test_every_reason_has_its_note_and_no_note_is_left_over() -> None:
    own = set(reasons.REASONS) - set(mesh.REASONS)  # the mesh's carry their own text
    assert set(reason_notes.NOTES) == own
    for name, (number, display, note) in reasons.REASONS.items():
        assert isinstance(number, int) and isinstance(display, str), name
        assert note and note == (reason_notes.NOTES.get(name) or mesh.REASONS[name][2]), name


def test_numbers_are_unique() -> None:
    numbers = [n for n, _d, _e in reasons.REASONS.values()]
    assert len(numbers) == len(set(numbers))


def test_an_mcu_gate_loads_numbers_and_display_texts_only() -> None:
    probe = (
        "import sys\n"
        "from protocol import reasons\n"
        "print(len(reasons.REASONS['malformed']), reasons.display_text('denied'),"
        " reasons.number('replayed'), 'protocol.reason_notes' in sys.modules)\n"
    )
    out = subprocess.run(
        [MICROPYTHON, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["2", "Account", "blocked", "-", "see", "staff", "43", "False"]
