"""The generic operations the Spark engine is made of: a partial over every partition's batches
combined on this machine, a function mapped over batches into a new table, joins on a key or by
position, a sort with a running sum, and a keyed sample.  No formula and no message of their own:
what they compute and what they say comes from the caller."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
from pyspark import StorageLevel, TaskContext
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from ...errors import UserError
from ...resample import row_keys, uniforms
from ..base import combine
from .read import ROW, batch_frame

TYPES = {"string": "string", "double": "double", "long": "long", "boolean": "boolean"}


def reduce_batches(frame, partial, combine_fn=None):
    """``partial`` over every batch of every partition (a pandas frame indexed by row position),
    the results added up per partition and then on this machine; ``None`` for no rows.  A
    partial's :class:`UserError` is raised here, the one of the earliest partition first."""

    def run(batches):
        total, error = None, None
        for batch in batches:
            if batch.empty:
                continue
            try:
                part = partial(batch_frame(batch))
            except UserError as exc:
                error = exc
                break
            total = part if total is None else (combine_fn(total, part) if combine_fn else total + part)
        pid = TaskContext.get().partitionId()
        if error is not None:
            yield pd.DataFrame({"pid": [pid], "error": [True], "payload": [pickle.dumps(error)]})
        elif total is not None:
            yield pd.DataFrame({"pid": [pid], "error": [False], "payload": [pickle.dumps(total)]})

    rows = sorted(frame.mapInPandas(run, "pid long, error boolean, payload binary").collect(), key=lambda r: r["pid"])
    errors = [pickle.loads(r["payload"]) for r in rows if r["error"]]
    if errors:
        raise errors[0]
    return combine((pickle.loads(r["payload"]) for r in rows), combine_fn)


def map_batches(frame, fn, schema: dict[str, str]):
    """A table: ``fn`` over every batch (indexed by row position); each output frame's index
    becomes the ``_row`` of its rows."""
    ddl = ", ".join([f"`{name}` {TYPES[kind]}" for name, kind in schema.items()] + [f"{ROW} long"])

    def run(batches):
        for batch in batches:
            if batch.empty:
                continue
            out = fn(batch_frame(batch))
            yield out.reset_index(drop=True).assign(**{ROW: out.index.to_numpy(dtype=np.int64)})[[*schema, ROW]]

    return frame.mapInPandas(run, ddl)


def join_on_key(log_frame, log_key: str, table, columns: list[str], rename: dict, messages, lookup: bool):
    """``columns`` of ``table`` joined to the log's rows on the id (as text): every logged row
    needs exactly one row of the table, or with ``lookup`` at most one (the first, in file
    order) and some."""
    keyed = table.select(F.col("id").cast("string").alias("_key"), F.col(ROW).alias("_trow"),
                         *[F.col(f"`{c}`").alias(rename.get(c, c)) for c in columns])
    if lookup:
        first = Window.partitionBy("_key").orderBy("_trow")
        keyed = keyed.withColumn("_rank", F.row_number().over(first)).filter("_rank = 1").drop("_rank")
    else:
        # the id of the first row that repeats an earlier one (as the local join names it)
        repeated = (keyed.groupBy("_key").agg(F.count(F.lit(1)).alias("n"), F.sort_array(F.collect_list("_trow")).alias("at"))
                    .filter("n > 1").orderBy(F.element_at("at", 2)).limit(1).collect())
        if repeated:
            raise UserError(messages.duplicated.format(id=repeated[0]["_key"]))
    joined = (log_frame.withColumn("_key", F.col(f"`{log_key}`").cast("string"))
              .join(keyed.drop("_trow").withColumn("_matched", F.lit(True)), on="_key", how="left"))
    lost = joined.filter(F.col("_matched").isNull())
    if lookup:
        if joined.filter(F.col("_matched").isNotNull()).limit(1).count() == 0:
            example = log_frame.orderBy(ROW).select(F.col(f"`{log_key}`").cast("string")).first()[0]
            raise UserError(f"no id of the log is in the {messages} (e.g. {example!r})")
    else:
        n_missing = lost.count()
        if n_missing:
            raise UserError(messages.missing.format(n=n_missing, id=lost.orderBy(ROW).select("_key").first()[0]))
    return joined.drop("_key", "_matched")


def join_by_position(log_frame, n: int, table, columns: list[str], rename: dict, messages):
    """``columns`` of ``table`` joined to the log's rows by position (the same row count)."""
    n_rows = table.count()
    if n_rows != n:
        raise UserError(messages.rows.format(rows=n_rows, n=n))
    return log_frame.join(table.select(F.col(ROW), *[F.col(f"`{c}`").alias(rename.get(c, c)) for c in columns]),
                          on=ROW, how="inner")


def crossing(table, order, column: str, limit: float, sums) -> dict:
    """Sort ``table`` by ``order`` and find where the running sum of ``column`` first exceeds
    ``limit``: one global sort (kept on disk, about a million rows per partition so this
    machine never holds them), each partition's totals, then the one partition the crossing
    falls in, brought here."""
    session = table.sparkSession
    rows = table.count()
    partitions = max(int(session.conf.get("spark.sql.shuffle.partitions")), -(-rows // 1_000_000))
    session.conf.set("spark.sql.shuffle.partitions", str(partitions))
    ordered = table.orderBy(*[F.desc(c) if descending else F.asc(c) for c, descending in order]).persist(
        StorageLevel.DISK_ONLY)
    wanted = list(dict.fromkeys([column, *sums]))

    def totals(batches):
        count, acc = 0, dict.fromkeys(wanted, 0.0)
        for batch in batches:
            count += len(batch)
            for c in wanted:
                acc[c] += float(batch[c].sum())
        yield pd.DataFrame({"pid": [TaskContext.get().partitionId()], "count": [count], **{c: [v] for c, v in acc.items()}})

    schema = ", ".join(["pid long", "count long", *[f"`{c}` double" for c in wanted]])
    parts = ordered.mapInPandas(totals, schema).toPandas().sort_values("pid").reset_index(drop=True)
    offsets = {c: np.r_[0.0, np.cumsum(parts[c].to_numpy())] for c in wanted}
    counts = np.r_[0, np.cumsum(parts["count"].to_numpy())]
    crossing_part = np.flatnonzero(offsets[column][1:] > limit)
    out = {"rows": int(counts[-1]), "sums": {c: float(offsets[c][-1]) for c in sums}, "next": None}
    for p in crossing_part[:1]:
        inside = ordered.filter(F.spark_partition_id() == int(parts.loc[p, "pid"])).toPandas()
        running = offsets[column][p] + np.cumsum(inside[column].to_numpy())
        j = int(np.searchsorted(running, limit, side="right"))
        out["rows"] = int(counts[p]) + j
        out["sums"] = {c: float(offsets[c][p] + (np.cumsum(inside[c].to_numpy())[j - 1] if j else 0.0)) for c in sums}
        out["next"] = inside.iloc[j].to_dict()
    ordered.unpersist()
    return out


def keyed_sample(frame, n: int, max_rows: int, seed: int):
    """About ``max_rows`` of the ``n`` rows, each kept when its keyed uniform (by row position,
    :mod:`core.resample`) falls below ``max_rows / n``: the same rows every time."""
    share = max_rows / n

    @F.pandas_udf(BooleanType())
    def keep(rows: pd.Series) -> pd.Series:
        return pd.Series(uniforms(row_keys(positions=rows.to_numpy()), 0, seed)[0] < share)

    return frame.filter(keep(F.col(ROW)))
