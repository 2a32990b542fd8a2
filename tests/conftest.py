"""Shared pytest setup.

Subprocesses started by tests (the `faregate` CLI, simulated devices, killed gates) must import
this checkout's code, whatever `pip install -e` last pointed at: put the repo root first on
PYTHONPATH for them.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = ROOT + (
    os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
)


def faregate_argv(*args: str) -> list[str]:
    """argv to run the `faregate` command of this checkout in a subprocess."""
    return [sys.executable, "-m", "provisioning", *args]
