"""Shared fixtures: an isolated workspace for every test, and small simulated logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
HILLSTROM = DATA / "hillstrom.csv.gz"


SPARK_FILES = "tests/engines/"  # the tests that start a Java process for Spark


def pytest_collection_modifyitems(config, items):
    """The Spark files first: the longest unit of work starts at once, so no worker waits for it
    at the end (the order within a file stays)."""
    items.sort(key=lambda item: not item.nodeid.startswith(SPARK_FILES))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Two workers share the suite (pytest.ini), a test file at a time, so a file's module
    fixtures (an app session, a golden run) are built once and its tests run in order; the Spark
    files are one unit of work, so only one Java process runs at a time."""
    from xdist.scheduler import LoadFileScheduling  # deferred: only under xdist

    class ByFile(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SPARK_FILES if nodeid.startswith(SPARK_FILES) else super()._split_scope(nodeid)

    return ByFile(config, log)


@pytest.fixture(scope="session", autouse=True)
def no_home_workspace(tmp_path_factory):
    """Safety net: code running outside a test's own workspace still never writes to ~."""
    patch = pytest.MonkeyPatch()
    patch.setenv("UPLIFT_STUDIO_WORKSPACE", str(tmp_path_factory.mktemp("session_workspace") / "ws.duckdb"))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch, request):
    """No test ever touches the user's real workspace.

    Modules that set ``SHARED_WORKSPACE = True`` share one workspace across their tests
    (see :func:`module_workspace`), so that a module-scoped app session keeps its data.
    """
    if getattr(request.module, "SHARED_WORKSPACE", False):
        return Path(request.getfixturevalue("module_workspace"))
    path = tmp_path / "workspace" / "ws.duckdb"
    monkeypatch.setenv("UPLIFT_STUDIO_WORKSPACE", str(path))
    return path


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory):
    """One workspace for a whole test module (its module-scoped fixtures depend on this)."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("module_workspace") / "ws.duckdb"
    patch.setenv("UPLIFT_STUDIO_WORKSPACE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="session")
def sim_small():
    return simulate(4000, seed=11)


@pytest.fixture(scope="session")
def hillstrom_frame():
    from core.io import read_table

    return read_table(HILLSTROM, str_columns=["segment"])

