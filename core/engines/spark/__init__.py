"""The Spark engine: the seam of :mod:`core.engines.base` on a Spark cluster (PySpark's
DataFrame API; ``mapInPandas`` runs core's partials on each batch of rows).

- reading: Parquet folders and globs, CSV, each row's position in ``_row`` (:mod:`.read`); the
  log is checked by the schema's one partial (:func:`core.validation.check_rows`), summed over
  the partitions, and its duplicated ids counted with one group-by;
- a partial over a log gets each batch as an :class:`~core.schema.ExperimentLog` (the same
  conversions as the local engine's), over a table as a pandas frame indexed by row position;
- models are fitted on this machine: :meth:`SparkEngine.collect` reads the log there with the
  local reader (every row up to :func:`~core.engines.base.fit_rows`, else a fixed keyed sample
  of a Parquet log), and what they predict is joined back by row (:meth:`SparkEngine.attach`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from ...errors import UserError, setting
from ...io import is_parquet, read_table
from ...schema import ArmLabels, ExperimentLog
from ...validation import check_rows, duplicated_from_counts, log_problems, prepare_rows
from ..base import Engine, fit_rows, refuse_above
from ..local import LocalEngine
from .ops import crossing, join_by_position, join_on_key, keyed_sample, map_batches, reduce_batches
from .read import ROW, read, to_pandas, write_csv
from .session import DEFAULT_MASTER, session


@dataclass(frozen=True)
class SparkLog(ArmLabels):
    """A log checked on Spark: ``frame`` holds ``_row``, the mapped columns, the features and
    whatever was attached or joined; the rest as :class:`~core.schema.ExperimentLog`."""

    frame: object
    columns: object
    labels: tuple[str, ...]
    features: tuple[str, ...]
    n: int
    counts: dict
    source: str | None = None
    source_frame: pd.DataFrame | None = field(default=None, repr=False)
    extra: tuple[str, ...] = ()
    dropped: dict = field(default_factory=dict)


class SparkEngine(Engine):
    """Spark on ``master`` (see module docstring)."""

    name = "spark"
    cluster = True

    def __init__(self, master: str = DEFAULT_MASTER):
        self.master = master
        self.spark = session(master)
        self._read: dict[str, object] = {}

    def _frame(self, source: str):
        if source not in self._read:
            self._read[source] = read(self.spark, source)
        return self._read[source]

    # --- reading ---------------------------------------------------------------------------------
    def columns(self, source: str) -> list[str]:
        return [c for c in self._frame(source).columns if c != ROW]

    def counts(self, source: str, columns: Sequence[str]) -> pd.DataFrame:
        keys = [F.col(f"`{c}`").cast("string").alias(f"k_{i}") for i, c in enumerate(columns)]
        out = self._frame(source).groupBy(*keys).count().toPandas()
        out.columns = [*columns, "n"]
        return out

    def read_log(self, source: str, mapping, *, require_value: bool = False, keep: Sequence[str] = ()) -> SparkLog:
        return self._checked(self._frame(source), mapping, require_value, keep, source=source)

    def log_of(self, frame: pd.DataFrame, mapping, *, require_value: bool = False) -> SparkLog:
        rows = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).assign(
            **{ROW: np.arange(len(frame), dtype=np.int64)})
        return self._checked(self.spark.createDataFrame(rows), mapping, require_value, (), source_frame=frame)

    def _checked(self, frame, mapping, require_value: bool, keep, source=None, source_frame=None) -> SparkLog:
        if mapping.drop_incomplete:
            raise UserError("leaving out incomplete rows is not available on the Spark engine yet; clean the log or "
                            "use the local engine")
        file_columns = [c for c in frame.columns if c != ROW]
        present = set(file_columns)
        check = reduce_batches(frame, lambda batch: check_rows(prepare_rows(batch, mapping)[0], mapping, batch.index))
        duplicates = (0, [])
        if mapping.id and mapping.id in present:
            counts = (frame.groupBy(F.col(f"`{mapping.id}`").alias("id")).agg(F.count(F.lit(1)).alias("n"),
                                                                               F.min(ROW).alias("first"))
                      .filter("n > 1").toPandas())
            duplicates = duplicated_from_counts(counts)
        problems = log_problems(mapping, file_columns, check, duplicates, require_value=require_value, min_arms=2,
                                rows_in_file=check.rows)
        if problems:
            raise UserError(f"the experiment log does not fit the mapping ({len(problems)} problem{'s' if len(problems) > 1 else ''})",
                            problems)
        features = tuple(mapping.resolved_features(file_columns))
        wanted = [c for c in dict.fromkeys([*mapping.role_columns().values(), *features, *keep]) if c in present]
        labels = (mapping.control, *[label for label in check.labels if label != mapping.control])
        return SparkLog(frame.select(F.col(ROW), *[F.col(f"`{c}`") for c in wanted]), mapping, labels, features,
                        check.rows, dict(check.arms), source, source_frame)

    def read_table(self, source: str, *, text_columns: Sequence[str] = ()):
        return self._frame(source)

    def frame(self, source: str, *, text_columns: Sequence[str] = ()) -> pd.DataFrame:
        refuse_above(self._frame(source).count(), fit_rows(), "a file is read whole")
        return read_table(source, name=source, str_columns=list(text_columns))

    def head(self, data, n: int = 5) -> pd.DataFrame:
        frame = data.frame if isinstance(data, SparkLog) else data
        return to_pandas(frame.orderBy(ROW).limit(n))

    # --- the seam --------------------------------------------------------------------------------
    def _batches(self, data):
        """The frame to map over and how a pandas batch of it becomes what a partial reads."""
        if isinstance(data, SparkLog):
            mapping, labels, features = data.columns, data.labels, data.features
            return data.frame, lambda batch: ExperimentLog.of_batch(batch, mapping, labels, features, batch.index.to_numpy())
        return data, lambda batch: batch

    def reduce(self, data, partial, combine_fn=None):
        frame, as_batch = self._batches(data)
        return reduce_batches(frame, lambda batch: partial(as_batch(batch)), combine_fn)

    def map(self, data, fn, schema: dict[str, str]):
        frame, as_batch = self._batches(data)
        return map_batches(frame, lambda batch: fn(as_batch(batch)), schema)

    def attach(self, log: SparkLog, arrays: dict[str, np.ndarray]) -> SparkLog:
        table = pd.DataFrame({ROW: np.arange(log.n, dtype=np.int64), **{k: np.asarray(v) for k, v in arrays.items()}})
        joined = log.frame.join(self.spark.createDataFrame(table), on=ROW, how="inner")
        return replace(log, frame=joined, extra=(*log.extra, *arrays))

    def join(self, log: SparkLog, table, columns: Sequence[str], messages, rename: dict | None = None,
             lookup: bool = False) -> SparkLog:
        rename = rename or {}
        if lookup and "id" not in table.columns:
            raise UserError(f"the {messages} has no 'id' column to join on")
        if lookup and not log.columns.id:
            raise UserError(f"the log maps no id column ({setting('id')}), so the {messages} cannot be joined to it")
        if log.columns.id and "id" in table.columns:
            joined = join_on_key(log.frame, log.columns.id, table, list(columns), rename, messages, lookup)
        else:
            joined = join_by_position(log.frame, log.n, table, list(columns), rename, messages)
        return replace(log, frame=joined, extra=(*log.extra, *[rename.get(c, c) for c in columns]))

    def collect(self, log: SparkLog, *, max_rows: int | None = None, sample_seed: int | None = None,
                why: str = "") -> ExperimentLog:
        max_rows = fit_rows() if max_rows is None else max_rows
        if max_rows is not None and log.n > max_rows and sample_seed is not None:
            if log.source is None or not is_parquet(log.source):
                raise UserError(f"the log has {log.n:,} rows, more than this machine fits ({max_rows:,}); a sample of it is "
                                "drawn from a Parquet log only: convert the log to Parquet")
            frame = to_pandas(keyed_sample(log.frame, log.n, max_rows, sample_seed))
            return ExperimentLog.from_frame(frame.reset_index(drop=True)[[c for c in frame.columns if c not in log.extra]],
                                            log.columns, require_value=bool(log.columns.value))
        refuse_above(log.n, max_rows, why or "the rows are used")
        raw = log.source_frame if log.source_frame is not None else read_table(log.source, str_columns=[log.columns.action])
        local = ExperimentLog.from_frame(raw, log.columns, require_value=bool(log.columns.value))
        if not log.extra:
            return local
        extra = to_pandas(log.frame.select(ROW, *[F.col(f"`{c}`") for c in log.extra]))
        return local.with_columns({c: extra[c].to_numpy() for c in log.extra})

    def sample_frame(self, source: str, max_rows: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, int]:
        max_rows = fit_rows() if max_rows is None else max_rows
        if not is_parquet(source):
            raise UserError(f"'{source}' is not a Parquet file, folder or pattern; a path read on the cluster must be Parquet")
        frame = self._frame(source)
        n = frame.count()
        if n > max_rows:
            frame = keyed_sample(frame, n, max_rows, seed)
        return to_pandas(frame).reset_index(drop=True), n

    def to_pandas(self, table) -> pd.DataFrame:
        return to_pandas(table).reset_index(drop=True)

    def write_csv(self, table, path: str, setting: str, count: str | None = None) -> int:
        if isinstance(table, pd.DataFrame):  # a table made on this machine (a model's predictions)
            return LocalEngine().write_csv(table, path, setting, count)
        return write_csv(table, path, setting, count)

    def n_rows(self, data) -> int:
        return data.n if isinstance(data, SparkLog) else data.count()

    def crossing(self, table, order, column: str, limit: float, sums) -> dict:
        return crossing(table, order, column, limit, sums)

    def release(self, data) -> None:
        (data.frame if isinstance(data, SparkLog) else data).unpersist()
