"""Engines for the heavy, row-wise work: ``local`` (pandas/numpy/DuckDB on this machine, the
default) and ``spark`` (the same numbers on a Spark cluster, :mod:`core.engines.spark`).

Both engines print the same JSON (floats equal to 1e-9 relative, cli-contract.md, section
Engines).  Bootstrap resamples draw their Poisson counts from a counter-based generator keyed by
row and resample (:mod:`core.engines.keys`), so that any partitioning of the rows draws the same
counts.  Model fitting stays on one machine in both engines.

The app's engine is configured by the environment: ``UPLIFT_ENGINE=spark`` (default ``local``)
and ``UPLIFT_SPARK_MASTER`` (default ``local[*]``).
"""

from __future__ import annotations

import os

ENGINES = ("local", "spark")


def configured() -> tuple[str, str]:
    """The app's engine and Spark master, from ``UPLIFT_ENGINE`` and ``UPLIFT_SPARK_MASTER``."""
    engine = os.environ.get("UPLIFT_ENGINE", "local").strip().lower() or "local"
    return (engine if engine in ENGINES else "local"), os.environ.get("UPLIFT_SPARK_MASTER", "local[*]")
