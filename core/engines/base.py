"""The engine seam: where rows are read and summed, and nothing else.

Every row-wise statistic in core is written once, as a *partial* over a batch of rows that
returns an object adding up over any split of the rows (counts, sums, centred moments, group
sums, keyed bootstrap sums, hull segments), plus one *finish* in core that turns the combined
partial into the result.  An engine only

- reads a log through the one schema code (:mod:`core.schema`: the same checks, the same
  messages) or a table (scores, policies, allocations),
- maps a partial over its batches and combines the results (``+``), or maps a function over
  its batches into a new table,
- joins per-row arrays or a table to the log's rows, writes a table, or brings rows to this
  machine when a model has to be fitted.

A batch of a log is an :class:`~core.schema.ExperimentLog` (the same object the local engine
holds for the whole log), so a partial is ordinary numpy code over ``batch.value``,
``batch.action`` …; a batch of a table is a pandas frame.  Either way the batch's row positions
in the source (files in name order, rows in file order) are its index
(:attr:`~core.schema.ExperimentLog.positions` for a log).

Commands open one engine from their options (:func:`core.engines.open_engine`) and never ask
which one it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import pandas as pd

from ..errors import UserError

T = TypeVar("T")
FIT_ROWS = 2_000_000  # most rows a model is fitted on, on this machine, whatever the engine


def fit_rows() -> int:
    """:data:`FIT_ROWS`, read when asked (a test may lower it)."""
    return FIT_ROWS


class Sums(dict):
    """A partial made of named sums (numbers or numpy arrays): ``+`` adds them key by key."""

    def __add__(self, other: "Sums") -> "Sums":
        return Sums({k: self[k] + other[k] for k in self})


class Extremes(Sums):
    """Sums whose keys starting with ``"low"`` or ``"high"`` (tuples) keep the largest value
    instead: store a maximum as it is and a minimum negated."""

    def __add__(self, other: "Extremes") -> "Extremes":
        keys = dict.fromkeys([*self, *other])
        return Extremes({k: (self[k] if k not in other else other[k] if k not in self
                             else max(self[k], other[k]) if isinstance(k, tuple) and k[0] in ("low", "high")
                             else self[k] + other[k]) for k in keys})


def combine(parts, combine_fn: Callable[[Any, Any], Any] | None = None):
    """``parts`` added up in order (``None`` entries skipped); ``None`` when there are none."""
    total = None
    for part in parts:
        if part is None:
            continue
        total = part if total is None else (combine_fn(total, part) if combine_fn else total + part)
    return total


class Engine(ABC):
    """Where the rows are: read, map a partial over batches, combine (see module docstring)."""

    name: str = ""
    cluster = False  # reads paths where a cluster keeps them (the app then offers such a path as a source)

    # --- reading ---------------------------------------------------------------------------------
    @abstractmethod
    def columns(self, source: str) -> list[str]:
        """The column names of a log file (without reading its rows where the format allows)."""

    @abstractmethod
    def counts(self, source: str, columns: Sequence[str]) -> pd.DataFrame:
        """Rows per distinct combination of ``columns`` of a file, values as text (missing as
        ``None``): a frame with ``columns`` and ``n``."""

    @abstractmethod
    def read_log(self, source: str, mapping, *, require_value: bool = False, keep: Sequence[str] = ()):
        """The log in ``source`` checked against ``mapping`` (:class:`~core.schema.ColumnMap`)
        by the schema's one validation; ``keep`` names further columns to carry along."""

    @abstractmethod
    def log_of(self, frame: pd.DataFrame, mapping, *, require_value: bool = False):
        """A log from rows already on this machine (a series stored in the workspace), checked
        as :meth:`read_log` checks a file."""

    @abstractmethod
    def read_table(self, source: str, *, text_columns: Sequence[str] = ()):
        """A table file (scores, a policy, an allocation), ``text_columns`` read as text."""

    @abstractmethod
    def frame(self, source: str, *, text_columns: Sequence[str] = ()) -> pd.DataFrame:
        """A file read whole into memory on this machine, as the local reader reads it (for a
        summary that needs every value); refused when the file has more than :func:`fit_rows`
        rows."""

    @abstractmethod
    def sample_frame(self, source: str, max_rows: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, int]:
        """The rows of a log the app works on, read where the log is, and the log's row count:
        every row up to ``max_rows`` (default :func:`fit_rows`), else a fixed keyed sample of
        about ``max_rows``."""

    @abstractmethod
    def head(self, data, n: int = 5) -> pd.DataFrame:
        """The first ``n`` rows of a log or table, as a pandas frame."""

    # --- the seam --------------------------------------------------------------------------------
    @abstractmethod
    def reduce(self, data, partial: Callable[[Any], T], combine_fn: Callable[[T, T], T] | None = None) -> T | None:
        """``partial`` over every batch of ``data`` (a log or a table), the results added up
        (``+``, or ``combine_fn``); ``None`` for no rows."""

    @abstractmethod
    def map(self, data, fn: Callable[[Any], pd.DataFrame], schema: dict[str, str]):
        """A table: ``fn`` over every batch of ``data``; each output frame's index holds the row
        positions it belongs to.  ``schema`` names the output columns and their types
        (``string``, ``double``, ``long``, ``boolean``)."""

    @abstractmethod
    def attach(self, log, arrays: dict[str, np.ndarray]):
        """The log with per-row arrays (in row order, computed on this machine) as columns."""

    @abstractmethod
    def join(self, log, table, columns: Sequence[str], messages, rename: dict | None = None, lookup: bool = False):
        """The log with ``columns`` of ``table`` as columns (named as ``rename`` says, default
        as they are).  ``lookup``: looked up by id, rows without one left empty
        (:func:`core.joins.lookup_on_id`; ``messages`` is then what the table is called).
        Otherwise joined on the id (as text) when the
        log maps one and the table has an ``id`` column, else by position (same row count);
        ``messages`` (:class:`core.joins.JoinMessages`) say what went wrong in the caller's terms."""

    @abstractmethod
    def collect(self, log, *, max_rows: int | None = None, sample_seed: int | None = None, why: str = ""):
        """The log as one in-memory :class:`~core.schema.ExperimentLog` (for fitting a model).
        Above ``max_rows`` (default :func:`fit_rows`): a fixed keyed sample of about ``max_rows`` rows when
        ``sample_seed`` is given, else an error saying ``why`` the rows are needed."""

    @abstractmethod
    def to_pandas(self, table) -> pd.DataFrame:
        """A (small) table in row order."""

    @abstractmethod
    def write_csv(self, table, path: str, setting: str, count: str | None = None) -> int:
        """Write a table to one CSV file in row order; returns the number of true values of the
        boolean column ``count`` (0 without)."""

    @abstractmethod
    def n_rows(self, data) -> int:
        """Rows of a log or table."""

    @abstractmethod
    def crossing(self, table, order: Sequence[tuple[str, bool]], column: str, limit: float,
                 sums: Sequence[str]) -> dict:
        """Sort ``table`` by ``order`` ((column, descending) pairs) and find where the running
        sum of ``column`` first exceeds ``limit``: ``{"rows": k}`` (rows before it), the sums of
        ``sums`` over those rows (``{"sums": {col: total}}``) and the row at the crossing
        (``{"next": dict | None}``)."""

    def release(self, data) -> None:
        """Free what the engine keeps for ``data`` (cached batches); a no-op by default."""


def refuse_above(n: int, max_rows: int | None, why: str) -> None:
    """The one message for a log too large to bring to this machine."""
    if max_rows is not None and n > max_rows:
        raise UserError(f"the log has {n:,} rows; {why} on this machine on at most {max_rows:,} rows")
