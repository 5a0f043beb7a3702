"""Engines for the heavy, row-wise work: ``local`` (pandas/numpy/DuckDB on this machine, the
default) and ``spark`` (the same numbers on a Spark cluster, :mod:`core.engines.spark`).

Both answer the seam of :mod:`core.engines.base`: read a log through the schema's one
validation, run a partial over batches of rows and add the results up.  Every formula and every
message lives in core's domain modules; an engine only moves rows.  Bootstrap resamples draw
their Poisson counts from a counter-based generator keyed by row and resample
(:mod:`core.resample`), so any partitioning of the rows draws the same counts.  Model fitting
stays on one machine in both.

The app's engine is configured by the environment: ``UPLIFT_ENGINE=spark`` (default ``local``)
and ``UPLIFT_SPARK_MASTER`` (default ``local[*]``).
"""

from __future__ import annotations

import os

from .base import Engine
from .local import LocalEngine

ENGINES = ("local", "spark")
DEFAULT_MASTER = "local[*]"


def configured() -> tuple[str, str]:
    """The app's engine and Spark master, from ``UPLIFT_ENGINE`` and ``UPLIFT_SPARK_MASTER``."""
    engine = os.environ.get("UPLIFT_ENGINE", "local").strip().lower() or "local"
    return (engine if engine in ENGINES else "local"), os.environ.get("UPLIFT_SPARK_MASTER", DEFAULT_MASTER)


def cluster_configured() -> bool:
    """Whether the app's engine reads paths where a cluster keeps them (the Data page then
    offers such a path as a source)."""
    return configured()[0] == "spark"


def open_engine(name: str = "local", master: str = DEFAULT_MASTER) -> Engine:
    """The engine called ``name`` (``local`` or ``spark`` on ``master``)."""
    if name == "spark":
        from .spark import SparkEngine  # deferred: the Spark engine imports PySpark

        return SparkEngine(master)
    return LocalEngine()
