"""Shared fixtures: an isolated workspace for every test, and small simulated logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
HILLSTROM = DATA / "hillstrom.csv.gz"


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch):
    """No test ever touches the user's real workspace."""
    path = tmp_path / "workspace" / "ws.duckdb"
    monkeypatch.setenv("UPLIFT_STUDIO_WORKSPACE", str(path))
    return path


@pytest.fixture(scope="session")
def sim_small():
    return simulate(4000, seed=11)


@pytest.fixture(scope="session")
def hillstrom_frame():
    from core.io import read_table

    return read_table(HILLSTROM, str_columns=["segment"])
