"""Shared pytest setup.

The back office's store fixtures: `store_target` is a --db value, parametrized over both
backends (a SQLite file in tmp_path, and a fresh database on the run's private PostgreSQL
cluster, tests/pgcluster.py); `pg_url` is a fresh PostgreSQL database alone.

Subprocesses started by tests (the `faregate` CLI, simulated devices, killed gates) must import
this checkout's code, whatever `pip install -e` last pointed at: put the repo root first on
PYTHONPATH for them.
"""

import atexit
import os
import sys

import pytest

from tests.pgcluster import Cluster, ClusterError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = ROOT + (
    os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
)


def faregate_argv(*args: str) -> list[str]:
    """argv to run the `faregate` command of this checkout in a subprocess."""
    return [sys.executable, "-m", "provisioning", *args]


@pytest.fixture(scope="session")
def pg_cluster():
    """This worker's private PostgreSQL cluster, stopped at the session's end (or exit)."""
    cluster = Cluster()
    atexit.register(cluster.stop)  # also when the session is interrupted
    try:
        cluster.start()
    except ClusterError as e:
        cluster.stop()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh, empty PostgreSQL database for one test: its libpq URL (dropped afterwards)."""
    name, url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """A back office --db for one test, on each backend in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "bo.sqlite")
    return request.getfixturevalue("pg_url")
