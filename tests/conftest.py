"""Shared fixtures: an isolated workspace for every test, and small simulated logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
HILLSTROM = DATA / "hillstrom.csv.gz"


def pytest_collection_modifyitems(config, items):
    """Two workers share the suite (pytest.ini), one test file at a time each, so a file's module
    fixtures (an app session, a golden run, a Spark session) are built once; the Spark files are
    one unit of work, so only one Java process runs at a time."""
    for item in items:
        path = Path(item.path).resolve()
        group = "spark" if path.parent.name == "engines" else str(path.relative_to(ROOT))
        item.add_marker(pytest.mark.xdist_group(group))


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
