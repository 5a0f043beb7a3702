"""Reading a log on Spark with each row's position in ``_row`` (files in name order, rows in
file order: the order the local engine reads them)."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from ...errors import UserError
from ...io import GZIP_MAGIC, PARQUET_MAGIC, check_file, parquet_dataset, sniff_delimiter

ROW = "_row"


def _csv_separator(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(2)
    opener = gzip.open if head == GZIP_MAGIC else open
    with opener(path, "rb") as handle:
        text = handle.read(1 << 16).decode("utf-8", errors="replace")
    return sniff_delimiter(text)


def read(spark, source, name: str | None = None):
    """A Spark DataFrame over a log file, a Parquet folder or a glob, with its row positions in
    ``_row`` (files in name order, rows in file order: the local engine's row order).

    CSV columns are read as text (numbers are converted where a role needs them, like the
    local engine's ``pd.to_numeric``); Parquet keeps its types.
    """
    name = name or str(source)
    files = parquet_dataset(source)
    if files is None:
        if check_file(source) == 0:
            raise UserError(f"file '{name}' is empty (0 bytes); expected a CSV, CSV.GZ or Parquet file")
        with open(source, "rb") as handle:
            parquet = handle.read(4) == PARQUET_MAGIC
        files = [Path(source)] if parquet else None
    if files:
        frames, offset = [], 0
        for file in files:
            frame = spark.read.parquet(str(Path(file).resolve()))
            frames.append(frame.select("*", (F.col("_metadata.row_index") + F.lit(offset)).alias(ROW)))
            offset += pq.ParquetFile(file).metadata.num_rows
        out = frames[0]
        for frame in frames[1:]:
            out = out.unionByName(frame)
        if offset == 0:
            raise UserError(f"file '{name}' has a header but no data rows")
        return out
    path = Path(source)
    frame = spark.read.csv(str(path.resolve()), header=True, sep=_csv_separator(path), inferSchema=False,
                           enforceSchema=False)
    columns = [c.strip() for c in frame.columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UserError(f"file '{name}' has duplicated column names: {', '.join(repeated)}; each column needs its own name")
    frame = frame.toDF(*columns)
    # a CSV split keeps the file's order: partition k holds the rows before those of partition k+1;
    # monotonically_increasing_id numbers rows within a partition (partition id in the upper bits)
    base = frame.select("*", F.spark_partition_id().alias("_pid"), F.monotonically_increasing_id().alias("_mid"))
    sizes = sorted((int(r["_pid"]), int(r["count"])) for r in base.groupBy("_pid").count().collect())
    if not sizes:
        raise UserError(f"file '{name}' has a header but no data rows")
    starts = np.r_[0, np.cumsum([size for _, size in sizes])[:-1]]
    offsets = F.create_map(*[x for (pid, _), start in zip(sizes, starts) for x in (F.lit(pid), F.lit(int(start)))])
    position = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33) + offsets[F.col("_pid")]
    return base.withColumn(ROW, position).drop("_pid", "_mid")


def to_pandas(frame) -> pd.DataFrame:
    """A (small) Spark DataFrame on this machine, in row order, indexed by ``_row`` when it has one."""
    if ROW not in frame.columns:
        return frame.toPandas()
    out = frame.orderBy(ROW).toPandas()
    return out.set_index(ROW).rename_axis(None)


def batch_frame(batch: pd.DataFrame) -> pd.DataFrame:
    """A batch ``mapInPandas`` hands over, indexed by its rows' positions."""
    return batch.set_index(ROW).rename_axis(None) if ROW in batch.columns else batch


def write_csv(table, path: str, setting: str, count: str | None = None) -> int:
    """Write a Spark table to one CSV file in ``_row`` order (without ``_row``), part by part so
    the driver never holds it whole; returns the number of true values of column ``count``."""
    folder = tempfile.mkdtemp(prefix="uplift-csv-")
    counted = 0
    try:
        table.orderBy(ROW).write.mode("overwrite").parquet(folder)
        parts = sorted(Path(folder).glob("part-*.parquet"))
        try:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                for k, part in enumerate(parts):
                    frame = pq.read_table(part).to_pandas().sort_values(ROW).drop(columns=[ROW])
                    if count:
                        counted += int(frame[count].sum())
                    frame.to_csv(handle, index=False, header=k == 0)
                if not parts:
                    handle.write(",".join(c for c in table.columns if c != ROW) + "\n")
        except OSError as exc:
            raise UserError(f"{setting} '{path}' cannot be written: {exc.strerror}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return counted
