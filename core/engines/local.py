"""The local engine: the whole log in memory on this machine (pandas/numpy; DuckDB counts a
file without loading it).  A partial runs once, on the whole log as its only batch, or, with
``batch_rows``, on consecutive batches of that many rows whose results are added up (what the
Spark engine does per partition: the tests check that every partial adds up this way)."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io import file_columns, group_counts, read_table
from ..joins import align_to_log, lookup_on_id
from ..schema import ExperimentLog
from .base import Engine, combine


class LocalEngine(Engine):
    """pandas/numpy on this machine (see :mod:`core.engines.base`)."""

    name = "local"

    def __init__(self, batch_rows: int | None = None):
        self.batch_rows = batch_rows

    def _batches(self, data):
        n = self.n_rows(data)
        step = self.batch_rows or max(n, 1)
        for start in range(0, max(n, 1), step):
            rows = slice(start, min(n, start + step))
            if isinstance(data, ExperimentLog):
                yield replace(data, frame=data.frame.iloc[rows], row_positions=data.positions[rows])
            else:
                yield data.iloc[rows]

    def columns(self, source: str) -> list[str]:
        return file_columns(source)

    def counts(self, source: str, columns: Sequence[str]) -> pd.DataFrame:
        return group_counts(source, list(columns))

    def read_log(self, source: str, mapping, *, require_value: bool = False, keep: Sequence[str] = ()) -> ExperimentLog:
        return self.log_of(read_table(source, str_columns=[mapping.action]), mapping, require_value=require_value)

    def log_of(self, frame: pd.DataFrame, mapping, *, require_value: bool = False) -> ExperimentLog:
        return ExperimentLog.from_frame(frame, mapping, require_value=require_value)

    def read_table(self, source: str, *, text_columns: Sequence[str] = ()) -> pd.DataFrame:
        return read_table(source, name=source, str_columns=list(text_columns))

    def frame(self, source: str, *, text_columns: Sequence[str] = ()) -> pd.DataFrame:
        return read_table(source, name=source, str_columns=list(text_columns))

    def sample_frame(self, source: str, max_rows: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, int]:
        frame = read_table(source, name=source)
        return frame, len(frame)

    def head(self, data, n: int = 5) -> pd.DataFrame:
        return (data.frame if isinstance(data, ExperimentLog) else data).head(n)

    def reduce(self, data, partial, combine_fn=None):
        if not self.batch_rows:
            return partial(data)
        return combine((partial(batch) for batch in self._batches(data)), combine_fn)

    def map(self, data, fn, schema: dict[str, str]) -> pd.DataFrame:
        if not self.batch_rows:
            return fn(data)
        return pd.concat([fn(batch) for batch in self._batches(data)])

    def attach(self, log: ExperimentLog, arrays: dict[str, np.ndarray]) -> ExperimentLog:
        return log.with_columns(arrays)

    def join(self, log: ExperimentLog, table: pd.DataFrame, columns: Sequence[str], messages,
             rename: dict | None = None, lookup: bool = False) -> ExperimentLog:
        aligned = lookup_on_id(log, table, messages) if lookup else align_to_log(log, table, messages)
        return log.with_columns({(rename or {}).get(c, c): aligned[c].to_numpy() for c in columns})

    def collect(self, log: ExperimentLog, *, max_rows: int | None = None, sample_seed: int | None = None,
                why: str = "") -> ExperimentLog:
        return log  # already on this machine, every row of it

    def to_pandas(self, table: pd.DataFrame) -> pd.DataFrame:
        return table.reset_index(drop=True)

    def write_csv(self, table: pd.DataFrame, path: str, setting: str, count: str | None = None) -> int:
        try:
            table.to_csv(path, index=False)
        except OSError as exc:
            raise UserError(f"{setting} '{path}' cannot be written: {exc.strerror}") from exc
        return int(table[count].sum()) if count else 0

    def n_rows(self, data) -> int:
        return data.n if isinstance(data, ExperimentLog) else len(data)

    def crossing(self, table: pd.DataFrame, order, column: str, limit: float, sums) -> dict:
        keys = [(-table[c].to_numpy() if descending else table[c].to_numpy()) for c, descending in reversed(list(order))]
        ranked = table.iloc[np.lexsort(keys)] if len(table) else table
        running = np.cumsum(ranked[column].to_numpy())
        k = int(np.searchsorted(running, limit, side="right"))
        return {"rows": k, "sums": {c: float(ranked[c].to_numpy()[:k].sum()) for c in sums},
                "next": ranked.iloc[k].to_dict() if k < len(ranked) else None, "ranked": ranked}
