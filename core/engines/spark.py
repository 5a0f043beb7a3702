"""The Spark engine: the row-wise work of SRM, OPE, the allocation frontier and the curves on a
Spark cluster (PySpark's DataFrame API; ``mapInPandas`` runs the same numpy code as the local
engine on each batch of rows).

What runs where:

- distributed: reading (Parquet folders and globs, CSV), validation counts, arm counts, the
  per-row OPE statistics and their Poisson bootstrap (counter-based counts keyed by row, so
  every partition draws what the local engine draws for the same rows), the per-customer hull
  segments of the allocation frontier, its global sort by efficiency and the cumulative sums,
  the curves' sums per distinct score, and scoring customers with a fitted model;
- on the driver, from those sums: every estimate and interval, with the local engine's own
  functions; model fitting (reward models, estimated propensities), on at most
  :data:`FIT_ROWS` rows, as everywhere in the app.

Rows are identified by their position in the log (files in name order, rows in file order:
the order the local engine reads them), kept in the column ``_row``.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError

DEFAULT_MASTER = "local[*]"
FIT_ROWS = 2_000_000  # largest log whose models are fitted on the driver (all rows)
ROW = "_row"
_LOCAL_MASTER = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")
_SESSIONS: dict[str, object] = {}


def _check_java() -> None:
    from shutil import which

    home = os.environ.get("JAVA_HOME")
    if which("java") is None and not (home and Path(home, "bin", "java").exists()):
        raise UserError("the Spark engine needs a Java runtime (17 or newer) and none was found; install one "
                        "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def check_master(master: str) -> None:
    """Refuse a master URL Spark cannot use, and a cluster that does not answer, naming it."""
    if _LOCAL_MASTER.match(master) or master in ("yarn",) or master.startswith("k8s://"):
        return
    match = re.match(r"^(spark|sc)://(.+)$", master)
    if not match:
        raise UserError(f"--spark-master '{master}' is not a Spark master URL; expected local[*], local[N], "
                        "spark://HOST:PORT, sc://HOST:PORT (Spark Connect), yarn or k8s://…")
    default_port = 7077 if match.group(1) == "spark" else 15002
    for address in match.group(2).split("/")[0].split(","):
        host, _, port = address.partition(":")
        try:
            port_number = int(port or default_port)
        except ValueError:
            raise UserError(f"--spark-master '{master}' has a bad port '{port}'") from None
        try:
            socket.create_connection((host, port_number), timeout=5).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UserError(f"--spark-master '{master}' cannot be reached ({host}:{port_number}: {reason}); "
                            "check that the Spark master is running and the address is right") from None


def session(master: str = DEFAULT_MASTER):
    """A SparkSession on ``master`` (reused within the process)."""
    if master in _SESSIONS:
        return _SESSIONS[master]
    check_master(master)
    import warnings

    # PySpark 4.3 warns about pandas 3 on every conversion; the conversions used here are tested
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError("the Spark engine needs PySpark; install it with pip install -r requirements.txt") from None
    if master.startswith("sc://"):
        try:
            spark = SparkSession.builder.remote(master).getOrCreate()
        except Exception as exc:  # missing Connect client packages or a refused session
            raise UserError(f"could not open a Spark Connect session on '{master}': {str(exc).splitlines()[0]}") from None
    else:
        _check_java()
        # the workers must run this interpreter: it has numpy, pandas and pyarrow
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (SparkSession.builder.master(master).appName("uplift-studio")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
                   .config("spark.sql.shuffle.partitions", os.environ.get("UPLIFT_SPARK_PARTITIONS", "8"))
                   .config("spark.driver.memory", os.environ.get("UPLIFT_SPARK_DRIVER_MEMORY", "1g")))
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            raise UserError(f"could not start Spark on '{master}': {str(exc).splitlines()[0]}") from None
        spark.sparkContext.setLogLevel("ERROR")
    _SESSIONS[master] = spark
    return spark


def stop_sessions() -> None:
    """Stop every session this process started (tests, benchmarks)."""
    for spark in _SESSIONS.values():
        spark.stop()
    _SESSIONS.clear()


# --- reading ---------------------------------------------------------------------------------

def _csv_separator(path: Path) -> str:
    import gzip

    from ..io import GZIP_MAGIC, _sniff_delimiter

    with path.open("rb") as handle:
        head = handle.read(2)
    opener = gzip.open if head == GZIP_MAGIC else open
    with opener(path, "rb") as handle:
        text = handle.read(1 << 16).decode("utf-8", errors="replace")
    return _sniff_delimiter(text)


def read(spark, source, name: str | None = None):
    """A Spark DataFrame over a log file, a Parquet folder or a glob, with its row positions in
    ``_row`` (files in name order, rows in file order: the local engine's row order).

    CSV columns are read as text (numbers are converted where a role needs them, like the
    local engine's ``pd.to_numeric``); Parquet keeps its types.
    """
    from pyspark.sql import functions as F

    from ..io import PARQUET_MAGIC, check_file, parquet_dataset

    name = name or str(source)
    files = parquet_dataset(source)
    if files is None:
        if check_file(source) == 0:
            raise UserError(f"file '{name}' is empty (0 bytes); expected a CSV, CSV.GZ or Parquet file")
        with open(source, "rb") as handle:
            parquet = handle.read(4) == PARQUET_MAGIC
        files = [Path(source)] if parquet else None
    if files:
        import pyarrow.parquet as pq

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
    """Collect a (small) Spark DataFrame in row order, without ``_row``."""
    out = frame.orderBy(ROW).toPandas() if ROW in frame.columns else frame.toPandas()
    return out.drop(columns=[ROW], errors="ignore").reset_index(drop=True)


def _number(column: str):
    from pyspark.sql import functions as F

    return F.col(f"`{column}`").try_cast("double")


# --- a mapped log ----------------------------------------------------------------------------

UNSUPPORTED = {"drop_incomplete": "--drop-incomplete", "text_as_missing": "--text-as-missing",
               "value_long": "--value-long", "value_unit": "--value-unit"}


@dataclass
class SparkLog:
    """A validated log on Spark: ``frame`` has ``_row``, ``_arm`` (text), ``_value``, ``_cost``
    and ``_p`` (when mapped), the id column and the features; ``labels`` put the control first
    (as :class:`~core.schema.ExperimentLog` does)."""

    frame: object
    args: object
    labels: tuple[str, ...]
    control: str
    n: int
    counts: dict[str, int]
    has_cost: bool
    has_propensity: bool
    id_column: str | None
    source: str
    features: tuple[str, ...] = field(default=())

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.labels[1:]

    def local(self, require_value: bool = True):
        """The same log as the local engine reads it (for fitting models on the driver)."""
        from ..cli import load_log

        if self.n > FIT_ROWS:
            raise UserError(f"the log has {self.n:,} rows; models are fitted on one machine on at most {FIT_ROWS:,} rows: "
                            "give --propensity and use the weighting estimators (--estimators ips,snips) on larger logs")
        return load_log(self.args, require_value=require_value)


def mapped_log(spark, args, require_value: bool = False, keep=(), frame=None) -> SparkLog:
    """Read ``--data`` on Spark (or take ``frame``, already read) and check it against the
    mapping options (one pass of counts); ``keep`` names further columns to carry along."""
    from pyspark.sql import functions as F

    for attr, option in UNSUPPORTED.items():
        if getattr(args, attr, None):
            raise UserError(f"{option} is not supported by the Spark engine yet; run with --engine local")
    frame = read(spark, args.data) if frame is None else frame
    present = set(frame.columns) - {ROW}
    roles = {"action": args.action, "value": args.value, "cost": args.cost, "propensity": args.propensity, "id": args.id}
    missing = [f"{role} column '{col}'" for role, col in roles.items() if col and col not in present]
    if require_value and not args.value:
        raise UserError("the experiment log does not fit the mapping (1 problem): no value column is mapped; choose the outcome")
    if missing:
        raise UserError(f"{', '.join(missing)} not in the log; columns: {', '.join(sorted(present)[:30])}")
    if args.cost and args.action_cost:
        raise UserError(f"both a cost column '{args.cost}' and constant per-arm costs are given; choose one")
    columns = [F.col(ROW), F.col(f"`{args.action}`").cast("string").alias("_arm")]
    checks = [F.count(F.lit(1)).alias("n"), F.sum(F.col(f"`{args.action}`").isNull().cast("long")).alias("arm_null")]
    numeric = {"value": args.value, "cost": args.cost, "propensity": args.propensity}
    for role, col in numeric.items():
        if not col:
            continue
        raw, number = F.col(f"`{col}`"), _number(col)
        columns.append(number.alias({"value": "_value", "cost": "_cost", "propensity": "_p"}[role]))
        checks += [F.sum((raw.isNotNull() & number.isNull()).cast("long")).alias(f"{role}_text"),
                   F.sum(raw.isNull().cast("long")).alias(f"{role}_null"),
                   F.min(F.when(raw.isNull(), F.col(ROW))).alias(f"{role}_first_null"),
                   F.sum((F.abs(number) == float("inf")).cast("long")).alias(f"{role}_inf")]
        if role == "propensity":
            checks.append(F.sum((number.isNotNull() & ~((number > 0) & (number <= 1))).cast("long")).alias("p_range"))
    if args.id:
        columns.append(F.col(f"`{args.id}`"))
        checks.append(F.sum(F.col(f"`{args.id}`").isNull().cast("long")).alias("id_null"))
    if args.features:
        features = tuple(f.strip() for f in args.features.split(",") if f.strip())
        unknown = [f for f in features if f not in present]
        if unknown:
            raise UserError(f"feature column(s) {', '.join(map(repr, unknown))} not in the file")
    else:  # every column not mapped to a role, in file order (as ColumnMap.resolved_features)
        used = {getattr(args, role, None) for role in ("action", "value", "cost", "propensity", "segment", "time", "id")}
        features = tuple(c for c in frame.columns if c != ROW and c not in used)
    row = frame.agg(*checks).collect()[0].asDict()
    n = int(row["n"])
    problems = []
    if row["arm_null"]:
        problems.append(f"action column '{args.action}' has {row['arm_null']} empty values")
    for role, col in numeric.items():
        if not col:
            continue
        if row[f"{role}_text"]:
            problems.append(f"{role} column '{col}' has {row[f'{role}_text']} non-numeric values; expected numbers")
        if row[f"{role}_null"]:
            problems.append(f"{role} column '{col}' has {row[f'{role}_null']} missing values (first at row "
                            f"{int(row[f'{role}_first_null']) + 1}); expected a number in every row")
        if row[f"{role}_inf"]:
            problems.append(f"{role} column '{col}' has infinite values at {row[f'{role}_inf']} rows")
    if args.propensity and row["p_range"]:
        problems.append(f"propensity column '{args.propensity}' has {row['p_range']} values outside (0, 1]; "
                        "a logged probability must be > 0 and ≤ 1")
    if args.id:
        if row["id_null"]:
            problems.append(f"id column '{args.id}' has {row['id_null']} empty ids")
        duplicated = frame.groupBy(f"`{args.id}`").count().filter("count > 1").limit(3).collect()
        if duplicated:
            problems.append(f"id column '{args.id}' has duplicated ids (e.g. {', '.join(repr(str(r[0])) for r in duplicated)}); "
                            "ids must be unique")
    counts = {str(r["_arm"]): int(r["count"]) for r in frame.select(F.col(f"`{args.action}`").cast("string").alias("_arm"))
              .groupBy("_arm").count().collect() if r["_arm"] is not None}
    labels = sorted(counts)
    if len(labels) < 2:
        problems.append(f"action column '{args.action}' has {len(labels)} arm(s) ({', '.join(labels) or 'none'}); "
                        "an experiment needs at least 2, including the control")
    if args.control not in labels:
        problems.append(f"control label '{args.control}' is not an arm of '{args.action}'; arms found: {', '.join(labels[:20])}")
    cost_map = {}
    if args.action_cost:
        from ..schema import parse_action_cost

        cost_map = dict(parse_action_cost(args.action_cost))
        unknown_costs = [a for a in cost_map if a not in labels]
        if unknown_costs:
            problems.append(f"constant cost given for unknown arm(s) {', '.join(unknown_costs)}; arms: {', '.join(labels[:20])}")
    if problems:
        raise UserError(f"the experiment log does not fit the mapping ({len(problems)} problem{'s' if len(problems) > 1 else ''})",
                        problems)
    if cost_map:
        pairs = [x for label, amount in cost_map.items() for x in (F.lit(label), F.lit(float(amount)))]
        columns.append(F.coalesce(F.create_map(*pairs)[F.col("_arm")], F.lit(0.0)).alias("_cost"))
    columns += [F.col(f"`{f}`") for f in dict.fromkeys([*features, *keep]) if f not in {args.id} and f in present]
    labels = (args.control, *[label for label in labels if label != args.control])
    return SparkLog(frame.select(*columns), args, labels, args.control, n, counts, bool(args.cost or cost_map),
                    bool(args.propensity), args.id, str(args.data), features)


def batch_keys(batch: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """The counter-based generator's keys of a batch's rows (see :mod:`core.engines.keys`)."""
    from .keys import row_keys

    if id_column:
        return row_keys(ids=batch[id_column].to_numpy())
    return row_keys(positions=batch[ROW].to_numpy())


def reduce_partitions(frame, per_partition, combine=None):
    """Run ``per_partition(iterator of pandas batches) -> object`` on every partition of
    ``frame`` and combine the results on the driver (``+`` by default); ``None`` results
    (empty partitions) are skipped."""

    def run(batches):
        result = per_partition(batches)
        if result is not None:
            yield pd.DataFrame({"payload": [pickle.dumps(result)]})

    parts = [pickle.loads(r["payload"]) for r in frame.mapInPandas(run, "payload binary").collect()]
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = combine(total, part) if combine else total + part
    return total


# --- SRM ---------------------------------------------------------------------------------------

def arm_counts(frame, action: str, by: list[str]) -> pd.DataFrame:
    """:func:`core.diagnostics.srm.count_arms` on Spark: counts per arm (and ``by`` columns) of a
    log read by :func:`read`, as text."""
    from pyspark.sql import functions as F

    missing = [c for c in [action, *by] if c not in frame.columns]
    if missing:
        raise UserError(f"column(s) {', '.join(map(repr, missing))} not in the log; columns: {', '.join(frame.columns[:30])}")
    keys = [F.col(f"`{c}`").cast("string").alias(f"by_{i}") for i, c in enumerate(by)]
    counts = frame.groupBy(*keys, F.col(f"`{action}`").cast("string").alias("arm")).count().toPandas()
    counts.columns = [*by, "arm", "n"]
    counts["n"] = counts["n"].astype(np.int64)
    if counts["arm"].isna().any():
        raise UserError(f"action column '{action}' has {int(counts.loc[counts['arm'].isna(), 'n'].sum())} empty values")
    return counts


def propensity_sums(log: SparkLog) -> tuple[np.ndarray, np.ndarray]:
    """Σ 1/p and Σ 1/p² per arm (``log.labels`` order), for the propensity-consistency test."""
    from pyspark.sql import functions as F

    rows = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(F.sum(1.0 / F.col("_p")).alias("s"),
                                                                 F.sum(1.0 / (F.col("_p") * F.col("_p"))).alias("d")).collect()}
    s = np.array([rows[l]["s"] if l in rows else 0.0 for l in log.labels])
    d = np.array([rows[l]["d"] if l in rows else 0.0 for l in log.labels])
    return s, d


# --- OPE -------------------------------------------------------------------------------------

def attach(spark, log: SparkLog, columns: dict[str, np.ndarray]) -> SparkLog:
    """Join per-row arrays computed on the driver (indexed by row position) to the log."""
    table = pd.DataFrame({ROW: np.arange(log.n, dtype=np.int64), **{k: np.asarray(v, dtype=float) for k, v in columns.items()}})
    joined = log.frame.join(spark.createDataFrame(table), on=ROW, how="inner")
    return SparkLog(joined, log.args, log.labels, log.control, log.n, log.counts, log.has_cost, log.has_propensity,
                    log.id_column, log.source, log.features)


def _join_to_log(log: SparkLog, table, wanted: list, duplicated: str, missing: str, rows: str):
    """``wanted`` columns of ``table`` joined to the log's rows: on ``id`` (as text) when the log
    maps an id and the table has one, else by position (same number of rows).  The messages are
    formatted with ``{id}`` (an example id), ``{n}`` (ids missing) or ``{rows}`` (the table's rows)."""
    from pyspark.sql import functions as F

    if log.id_column and "id" in table.columns:
        keyed = table.select(F.col("id").cast("string").alias("_key"), *wanted)
        repeated = keyed.groupBy("_key").count().filter("count > 1").limit(1).collect()
        if repeated:
            raise UserError(duplicated.format(id=repeated[0]["_key"]))
        joined = (log.frame.withColumn("_key", F.col(f"`{log.id_column}`").cast("string"))
                  .join(keyed.withColumn("_matched", F.lit(True)), on="_key", how="left"))
        lost = joined.filter(F.col("_matched").isNull())
        n_missing = lost.count()
        if n_missing:
            raise UserError(missing.format(n=n_missing, id=lost.orderBy(ROW).select("_key").first()[0]))
        return joined.drop("_key", "_matched")
    n_rows = table.count()
    if n_rows != log.n:
        raise UserError(rows.format(rows=n_rows))
    return log.frame.join(table.select(F.col(ROW), *wanted), on=ROW, how="inner")


def policy_frame(spark, log: SparkLog, path: str):
    """The policy file's rows joined to the log (on ``id`` when both have ids, else by position):
    ``_pa`` (the action, as text) or ``_pi__<j>`` (probabilities per arm)."""
    from pyspark.sql import functions as F

    policy = read(spark, path)
    prob_cols = [c for c in policy.columns if str(c).startswith("prob__")]
    if "action" in policy.columns and not prob_cols:
        wanted = [F.col("action").cast("string").alias("_pa")]
    elif prob_cols:
        unknown = [c[len("prob__"):] for c in prob_cols if c[len("prob__"):] not in log.labels]
        if unknown:
            raise UserError(f"the policy file has probabilities for arm(s) {', '.join(map(repr, unknown))} not in the log")
        wanted = [_number(c).alias(f"_pi__{log.labels.index(c[len('prob__'):])}") for c in prob_cols]
        for c in prob_cols:
            number = _number(c)
            if policy.filter(number.isNull() | (number < 0) | (number > 1)).limit(1).count():
                raise UserError(f"column '{c}' must hold probabilities between 0 and 1 in every row")
    else:
        raise UserError("the policy file needs an 'action' column or prob__<arm> columns")
    return _join_to_log(log, policy, wanted, "the policy file has duplicated ids (e.g. {id!r})",
                        "the policy file has no row for {n:,} customers of the log (e.g. id {id!r}); "
                        "every logged customer needs a decision",
                        f"the policy file has {{rows:,}} rows but the log has {log.n:,}; add an id column (and map --id) "
                        "to join them")


@dataclass
class _OPEPart:
    sums: object
    used: np.ndarray
    positive: np.ndarray
    bad_rows: int
    first_bad: tuple
    unknown: frozenset
    p_bad: int

    def __add__(self, other: "_OPEPart") -> "_OPEPart":
        return _OPEPart(self.sums + other.sums, self.used + other.used, self.positive + other.positive,
                        self.bad_rows + other.bad_rows, min(self.first_bad, other.first_bad), self.unknown | other.unknown,
                        self.p_bad + other.p_bad)


def ope(args, log: SparkLog, policy_spec: dict, q: dict, estimators):
    """The ``ope`` command's :class:`~core.ope.compare.PolicyEvaluation` on Spark: per partition,
    the policy's row statistics, their sums and keyed Poisson replicates (:class:`RowSums`),
    combined on the driver; ``q`` says which driver-fitted columns were joined (``estimated``
    propensities, ``fitted`` reward models)."""
    from ..ope.compare import evaluation_from_sums, exact_bootstrap, policy_rows, row_sums

    labels = list(log.labels)
    k = len(labels)
    control_index = labels.index(log.control)
    exact = exact_bootstrap(log.n, args.bootstrap, np.inf if args.exact_bootstrap else None)
    clip, tau, n_boot, seed = args.clip, args.switch_tau, args.bootstrap, args.seed
    # the partition function must not capture Spark objects (DataFrames, the session)
    kind, arm_index = policy_spec["kind"], policy_spec.get("index")
    estimated, fitted = bool(q.get("estimated")), bool(q.get("fitted"))
    id_column, has_cost = log.id_column, log.has_cost

    def per_partition(batches):
        total = None
        for batch in batches:
            if batch.empty:
                continue
            n_b = len(batch)
            index = pd.Categorical(batch["_arm"], categories=labels).codes.astype(np.int64)
            eye = np.eye(k)
            unknown = frozenset()
            logged_prob = None
            if kind == "arm":
                matrix = np.tile(eye[arm_index], (n_b, 1))
            elif kind == "random":
                matrix = np.full((n_b, k), 1.0 / k)
            elif kind == "logging":
                matrix = batch[[f"_pm__{j}" for j in range(k)]].to_numpy(float) if estimated else eye[index]
            elif kind == "action":
                chosen = pd.Categorical(batch["_pa"], categories=labels).codes
                unknown = frozenset(batch.loc[chosen < 0, "_pa"].astype(str).tolist())
                matrix = eye[np.maximum(chosen, 0)]
            else:
                matrix = np.zeros((n_b, k))
                for j in range(k):
                    if f"_pi__{j}" in batch.columns:
                        matrix[:, j] = batch[f"_pi__{j}"].to_numpy(float)
            propensity = batch["_pe"].to_numpy(float) if estimated else batch["_p"].to_numpy(float)
            if kind == "logging":
                logged_prob = propensity
            else:
                logged_prob = matrix[np.arange(n_b), index]
            sums_rows = matrix.sum(axis=1)
            bad = np.abs(sums_rows - 1.0) > 1e-6
            rows = batch[ROW].to_numpy()
            first_bad = (int(rows[bad].min()), float(sums_rows[bad][np.argmin(rows[bad])])) if bad.any() else (np.iinfo(np.int64).max, 0.0)
            if fitted:
                q_value = batch[[f"_qv__{j}" for j in range(k)]].to_numpy(float)
                q_cost = batch[[f"_qc__{j}" for j in range(k)]].to_numpy(float) if has_cost else None
            else:
                q_value = np.zeros((n_b, k))
                q_cost = np.zeros((n_b, k)) if has_cost else None
            cost = batch["_cost"].to_numpy(float) if has_cost else None
            stats, w, clipped = policy_rows(batch["_value"].to_numpy(float), cost, q_value, q_cost, index, control_index,
                                            matrix, logged_prob, propensity, clip, tau)
            part = _OPEPart(row_sums(stats, w, clipped, batch_keys(batch, id_column), n_boot, seed, exact),
                            matrix.sum(axis=0), (matrix > 0).sum(axis=0), int(bad.sum()), first_bad, unknown,
                            int(((propensity <= 0) | np.isnan(propensity)).sum()))
            total = part if total is None else total + part
        return total

    part = reduce_partitions(policy_spec["frame"], per_partition)
    name = policy_spec["name"]
    if part.unknown:
        raise UserError(f"policy '{name}' uses arm(s) {', '.join(map(repr, sorted(part.unknown)[:5]))} that are not in the log; "
                        f"arms: {', '.join(labels)}")
    if part.bad_rows:
        raise UserError(f"policy '{name}': probabilities of row {part.first_bad[0] + 1} sum to {part.first_bad[1]:.6g}, not 1 "
                        f"({part.bad_rows:,} rows affected)")
    for j, label in enumerate(labels):
        if log.counts.get(label, 0) == 0 and part.positive[j] > 0:
            raise UserError(f"policy '{name}' sends '{label}' to {int(part.positive[j]):,} customers, but '{label}' "
                            "was never logged: there is no support to evaluate it")
    if part.p_bad:
        raise UserError(f"{part.p_bad:,} rows have a propensity of 0 (or none); a logged action with probability 0 cannot be reweighted")
    logged_share = np.array([log.counts.get(l, 0) for l in labels]) / log.n
    result = evaluation_from_sums(name, part.sums, labels, log.control, estimators, n_boot, args.alpha, seed, logged_share,
                                  part.used / log.n)
    return result


# --- allocation: the frontier on Spark ----------------------------------------------------------

@dataclass
class _Options:
    """Pass A's summary of the option table, per partition and then in total."""

    n: int
    options: int
    pruned: np.ndarray
    base_value: float
    base_cost: float
    base_counts: np.ndarray  # customers per starting vertex arm (index 0 = no offer, j + 1 = arm j)
    error: str | None = None

    def __add__(self, other: "_Options") -> "_Options":
        return _Options(self.n + other.n, self.options + other.options, self.pruned + other.pruned,
                        self.base_value + other.base_value, self.base_cost + other.base_cost,
                        self.base_counts + other.base_counts, self.error or other.error)


def _segments_of(batch: pd.DataFrame, setting: dict):
    """One batch of customers: their candidates, hull segments (with the arm at each end,
    −1 = no offer) and the batch's summary."""
    from ..decision.allocate import Frontier
    from ..decision.policy import candidates_for_plan

    candidates = candidates_for_plan(batch.drop(columns=[ROW]).reset_index(drop=True), setting)
    frontier = Frontier(candidates)
    rows = batch[ROW].to_numpy()
    unit, pos = frontier.seg_unit, frontier.seg_pos
    arm_at = lambda u, p: frontier._order[u, frontier._hull[u, p]].astype(np.int64) - 1  # noqa: E731
    segments = pd.DataFrame({"unit": rows[unit], "pos": pos.astype(np.int64), "d_cost": frontier.d_cost,
                             "d_value": frontier.d_value, "eff": frontier.efficiency,
                             "from_arm": arm_at(unit, pos), "to_arm": arm_at(unit, pos + 1)})
    start = arm_at(np.arange(candidates.n), np.zeros(candidates.n, dtype=np.int64))
    summary = _Options(candidates.n, int(candidates.mask.sum()), np.array([v for v in candidates.pruned_counts().values()]),
                       frontier.base_value, frontier.base_cost, np.bincount(start + 1, minlength=len(candidates.arms) + 1))
    return candidates, frontier, segments, summary


SEGMENT_SCHEMA = "unit long, pos long, d_cost double, d_value double, eff double, from_arm long, to_arm long, payload binary"


def option_segments(scores, setting: dict):
    """Pass A: every customer's hull segments (a Spark DataFrame) and the option table's summary."""
    from pyspark import StorageLevel

    from ..errors import UserError as _UserError

    def payload_row(obj) -> pd.DataFrame:
        return pd.DataFrame({"unit": [-1], "pos": [0], "d_cost": [0.0], "d_value": [0.0], "eff": [0.0], "from_arm": [0],
                             "to_arm": [0], "payload": [pickle.dumps(obj)]})

    def run(batches):
        total = None
        for batch in batches:
            if batch.empty:
                continue
            try:
                _, _, segments, summary = _segments_of(batch, setting)
            except _UserError as exc:
                yield payload_row(str(exc))
                return
            total = summary if total is None else total + summary
            yield segments.assign(payload=None)
        if total is not None:
            yield payload_row(total)

    frame = scores.mapInPandas(run, SEGMENT_SCHEMA).persist(StorageLevel.DISK_ONLY)
    parts = [pickle.loads(r["payload"]) for r in frame.filter("unit < 0").select("payload").collect()]
    errors = [p for p in parts if isinstance(p, str)]
    if errors:
        frame.unpersist()
        raise UserError(errors[0])
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return frame.filter("unit >= 0").drop("payload"), total


def frontier_plan(segments, summary: _Options, budget: float) -> dict:
    """The fast allocation at ``budget`` from the hull segments: one global sort by efficiency
    (ties in customer order, as :class:`~core.decision.allocate.Frontier`), cumulative sums
    through per-partition offsets, then the fill of the budget left over on the driver."""
    from pyspark import StorageLevel, TaskContext
    from pyspark.sql import functions as F

    # about a million segments per sorted partition, kept on disk: the driver's heap stays small
    session = segments.sparkSession
    partitions = max(int(session.conf.get("spark.sql.shuffle.partitions")), -(-summary.options // 1_000_000))
    session.conf.set("spark.sql.shuffle.partitions", str(partitions))
    ordered = segments.orderBy(F.desc("eff"), "unit", "pos").persist(StorageLevel.DISK_ONLY)

    def totals(batches):
        count, cost, value = 0, 0.0, 0.0
        for batch in batches:
            count += len(batch)
            cost += float(batch["d_cost"].sum())
            value += float(batch["d_value"].sum())
        yield pd.DataFrame({"pid": [TaskContext.get().partitionId()], "count": [count], "cost": [cost], "value": [value]})

    parts = ordered.mapInPandas(totals, "pid long, count long, cost double, value double").toPandas().sort_values("pid")
    parts = parts.reset_index(drop=True)
    limit = budget - summary.base_cost + 1e-9
    offset_count = np.r_[0, np.cumsum(parts["count"].to_numpy())]
    offset_cost = np.r_[0.0, np.cumsum(parts["cost"].to_numpy())]
    offset_value = np.r_[0.0, np.cumsum(parts["value"].to_numpy())]
    crossing = np.flatnonzero(offset_cost[1:] > limit)
    n_segments = int(offset_count[-1])
    k, cum_cost, cum_value, next_segment = n_segments, offset_cost[-1], offset_value[-1], None
    for p in crossing[:1]:
        pid = int(parts.loc[p, "pid"])
        rows = ordered.filter(F.spark_partition_id() == pid).toPandas()
        local_cost = offset_cost[p] + np.cumsum(rows["d_cost"].to_numpy())
        j = int(np.searchsorted(local_cost, limit, side="right"))
        k = int(offset_count[p]) + j
        cum_cost = local_cost[j - 1] if j else offset_cost[p]
        cum_value = offset_value[p] + (float(np.cumsum(rows["d_value"].to_numpy())[j - 1]) if j else 0.0)
        next_segment = rows.iloc[j]
    spent_value, spent_cost = summary.base_value + cum_value, summary.base_cost + cum_cost
    bound, lam = spent_value, 0.0
    if next_segment is not None:
        d_cost = float(next_segment["d_cost"])
        fraction = (budget - spent_cost) / d_cost if d_cost > 0 else 0.0
        bound += max(0.0, min(1.0, fraction)) * float(next_segment["d_value"])
        lam = float(next_segment["eff"])

    starts = offset_count[:-1]
    pid_offset = {int(pid): int(start) for pid, start in zip(parts["pid"], starts)}

    def mark(batches):
        pid = TaskContext.get().partitionId()
        at = pid_offset.get(pid, 0)
        for batch in batches:
            rank = at + np.arange(len(batch))
            at += len(batch)
            yield batch.assign(taken=rank < k)

    marked = ordered.mapInPandas(mark, "unit long, pos long, d_cost double, d_value double, eff double, "
                                       "from_arm long, to_arm long, taken boolean")
    per_unit = (marked.filter("taken").groupBy("unit")
                .agg(F.count(F.lit(1)).alias("c"), F.max_by("to_arm", "pos").alias("last_arm"),
                     F.min_by("from_arm", "pos").alias("base_arm")))
    per_unit = per_unit.persist(StorageLevel.DISK_ONLY)
    left = budget - spent_cost
    fill = pd.DataFrame()
    if next_segment is not None:
        fill = (marked.filter(~F.col("taken") & (F.col("d_cost") <= left + 1e-9)).join(per_unit, on="unit", how="left")
                .filter(F.col("pos") == F.coalesce(F.col("c"), F.lit(0))).toPandas())
    counts = summary.base_counts.astype(np.int64).copy()
    for r in per_unit.groupBy("base_arm", "last_arm").count().collect():
        counts[int(r["base_arm"]) + 1] -= int(r["count"])
        counts[int(r["last_arm"]) + 1] += int(r["count"])
    fill_value = fill_cost = 0.0
    filled_rows = []
    if len(fill):
        fill = fill.sort_values("unit", kind="stable").reset_index(drop=True)
        dc, dv = fill["d_cost"].to_numpy(), fill["d_value"].to_numpy()
        for i in np.argsort(-(dv / np.where(dc > 0, dc, 1e-300)), kind="stable"):
            if dc[i] <= left + 1e-9:
                row = fill.iloc[i]
                before = int(row["last_arm"]) if pd.notna(row["c"]) else int(row["from_arm"])
                counts[before + 1] -= 1
                counts[int(row["to_arm"]) + 1] += 1
                fill_value += dv[i]
                fill_cost += dc[i]
                left -= dc[i]
                filled_rows.append((int(row["unit"]), int(row["to_arm"])))
    taken_sums = marked.filter("taken").agg(F.sum("d_value"), F.sum("d_cost")).collect()[0]
    total_value = summary.base_value + (taken_sums[0] or 0.0) + fill_value
    total_cost = summary.base_cost + (taken_sums[1] or 0.0) + fill_cost
    return {"total_value": float(total_value), "total_cost": float(total_cost), "counts": counts, "upper_bound": float(bound),
            "lambda": lam, "per_unit": per_unit, "filled": filled_rows, "ordered": ordered}


def write_allocation(spark, scores, setting: dict, plan: dict, control: str, path: str) -> int | None:
    """The allocation CSV of a :func:`frontier_plan` (one row per customer, in row order), built
    per batch on Spark and appended to ``path`` part by part.  Returns the number of cold starts
    when the scores flag them."""
    from pyspark.sql import functions as F

    from ..decision.allocate import Allocation

    moved = plan["per_unit"].select(F.col("unit").alias(ROW), F.col("last_arm").alias("_arm_taken"))
    if plan["filled"]:
        filled = spark.createDataFrame(pd.DataFrame(plan["filled"], columns=[ROW, "_arm_filled"]))
        moved = moved.join(filled, on=ROW, how="full_outer")
    else:
        moved = moved.withColumn("_arm_filled", F.lit(None).cast("long"))
    joined = scores.join(moved, on=ROW, how="left")
    lam = plan["lambda"]
    has_ids, has_cold = "id" in scores.columns, "cold_start" in scores.columns

    def run(batches):
        for batch in batches:
            if batch.empty:
                continue
            scores_only = batch.drop(columns=["_arm_taken", "_arm_filled"])
            candidates, frontier, _, _ = _segments_of(scores_only, setting)
            n = candidates.n
            start = frontier._order[np.arange(n), frontier._hull[np.arange(n), 0]].astype(np.int64) - 1
            taken = batch["_arm_taken"].to_numpy(dtype=float, na_value=np.nan)
            extra = batch["_arm_filled"].to_numpy(dtype=float, na_value=np.nan)
            choice = np.where(~np.isnan(extra), extra, np.where(~np.isnan(taken), taken, start)).astype(np.int64)
            plan_rows = Allocation(candidates.arms, control, choice, 0.0, 0.0, 0.0, "fast", 0.0, 0.0, lam, ~np.isnan(extra))
            ids = batch["id"].astype(str).to_numpy() if has_ids else batch[ROW].astype(str).to_numpy()
            table = plan_rows.to_frame(ids, candidates)
            if has_cold:
                table["cold_start"] = batch["cold_start"].astype(bool).to_numpy()
            yield table.assign(**{ROW: batch[ROW].to_numpy()})

    schema = ("id string, action string, tau_value double, tau_cost double, score double, reason string"
              + (", cold_start boolean" if has_cold else "") + f", {ROW} long")
    table = joined.mapInPandas(run, schema)
    counted = write_csv(table, path, "--allocation-out", count="cold_start" if has_cold else None)
    return counted if has_cold else None


def write_csv(table, path: str, option: str, count: str | None = None) -> int:
    """Write a Spark table to one CSV file in ``_row`` order (without ``_row``), part by part so
    the driver never holds it whole; returns the number of true values of column ``count``."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

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
            raise UserError(f"{option} '{path}' cannot be written: {exc.strerror}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return counted


# --- evaluation: curves from sums per distinct score ---------------------------------------------

def _group_sums(frame, score, extras=()) -> np.ndarray:
    """:func:`core.evaluation.curves.score_groups`' sums on Spark: one ``groupBy`` of the score,
    collected highest score first (one row per distinct score)."""
    from pyspark.sql import functions as F

    t, w, y = F.col("_t"), F.col("_w"), F.col("_y")
    aggs = [F.count(F.lit(1)).alias("n"), F.sum(t).alias("n_t"), F.sum(w * t).alias("w_t"), F.sum(w * (1 - t)).alias("w_c"),
            F.sum(w * y * t).alias("wy_t"), F.sum(w * y * (1 - t)).alias("wy_c")]
    for i, extra in enumerate(extras):
        aggs += [F.sum(w * F.col(extra) * t).alias(f"x{i}_t"), F.sum(w * F.col(extra) * (1 - t)).alias(f"x{i}_c")]
    table = frame.groupBy(score.alias("_s")).agg(*aggs).toPandas().sort_values("_s", ascending=False, kind="stable")
    return table.drop(columns=["_s"]).to_numpy(dtype=float)


def _finite(column):
    from pyspark.sql import functions as F

    big = float(np.finfo(float).max)
    return (F.when(column == float("inf"), F.lit(big)).when(column == float("-inf"), F.lit(-big)).otherwise(column))


def _calibration(frame, score_col: str, outcome: str, n_bins: int, alpha: float):
    """:func:`core.evaluation.calibration.calibration_bins` on Spark: bins from the counts per
    distinct score, then each bin's Hájek means and (two-pass) variances."""
    from pyspark.sql import functions as F
    from scipy import stats as st

    from ..evaluation.calibration import bin_row, bins_from_counts, calibration_from_rows

    t, w, y, s = F.col("_t"), F.col("_w"), F.col(outcome), F.col(score_col)
    groups = (frame.groupBy(s.alias("_s")).agg(F.count(F.lit(1)).alias("n"), F.sum(t).alias("n_t"), F.sum(w * t).alias("w_t"),
                                                 F.sum(w * (1 - t)).alias("w_c"), F.sum(w * y * t).alias("wy_t"),
                                                 F.sum(w * y * (1 - t)).alias("wy_c"))
              .toPandas().sort_values("_s", kind="stable").reset_index(drop=True))
    n_bins = int(min(n_bins, len(groups)))
    groups["bin"] = bins_from_counts(groups["n"].to_numpy(), max(n_bins, 1))
    per_bin = groups.assign(sn=groups["_s"] * groups["n"]).groupby("bin").sum(numeric_only=True)
    starts = groups.groupby("bin")["_s"].min().sort_index()
    # each row's bin from the lowest score of every bin, then Σ w²(y − mean)² per bin and arm
    bin_of = F.lit(0)
    for b, low in starts.items():
        if b > 0:
            bin_of = F.when(s >= F.lit(float(low)), F.lit(int(b))).otherwise(bin_of)
    mean_t = {b: r["wy_t"] / r["w_t"] if r["w_t"] > 0 else 0.0 for b, r in per_bin.iterrows()}
    mean_c = {b: r["wy_c"] / r["w_c"] if r["w_c"] > 0 else 0.0 for b, r in per_bin.iterrows()}
    binned = frame.withColumn("_bin", bin_of)
    mean_of = lambda means: F.create_map(*[x for b, m in means.items() for x in (F.lit(int(b)), F.lit(float(m)))])  # noqa: E731
    spread = (binned.withColumn("_mt", mean_of(mean_t)[F.col("_bin")]).withColumn("_mc", mean_of(mean_c)[F.col("_bin")])
              .groupBy("_bin").agg(F.sum(w * w * (y - F.col("_mt")) * (y - F.col("_mt")) * t).alias("ss_t"),
                                   F.sum(w * w * (y - F.col("_mc")) * (y - F.col("_mc")) * (1 - t)).alias("ss_c"))
              .toPandas().set_index("_bin"))
    z = st.norm.ppf(1 - alpha / 2)
    rows = []
    for b in range(max(n_bins, 1)):
        if b not in per_bin.index:  # a tie spanning several bins leaves the ones it skips empty
            rows.append(bin_row(b, 0, 0, float("nan"), None, None, z))
            continue
        r = per_bin.loc[b]
        n_t, n_c = int(r["n_t"]), int(r["n"] - r["n_t"])
        moments = []
        for arm_n, weight, mean, ss in ((n_t, r["w_t"], mean_t[b], spread.loc[b, "ss_t"]),
                                        (n_c, r["w_c"], mean_c[b], spread.loc[b, "ss_c"])):
            moments.append((float(mean), float(ss / weight**2) * arm_n / (arm_n - 1)) if arm_n >= 2 else None)
        rows.append(bin_row(b, n_t, n_c, float(r["sn"] / r["n"]), *moments, z))
    return calibration_from_rows(rows)


def scores_frame(spark, log: SparkLog, path: str):
    """The scores file joined to the log: on ``id`` when the log maps one and the file has it,
    else by position (same number of rows)."""
    scores = read(spark, path)
    wanted = [c for c in scores.columns if c.startswith(("tau_value__", "tau_cost__", "score__"))]
    joined = _join_to_log(log, scores, [_number(c).alias(c) for c in wanted],
                          f"--scores '{path}' has duplicated ids (e.g. {{id!r}})",
                          f"--scores '{path}' has no row for {{n:,}} ids of the log (e.g. {{id!r}})",
                          f"--scores '{path}' has {{rows:,}} rows but the log has {log.n:,}; give --id so they can be "
                          "joined on id")
    return joined, wanted


def evaluate(log: SparkLog, frame, columns: list[str], arms: list[str], n_bins: int):
    """:func:`core.evaluation.evaluate` on Spark (same numbers): every curve from sums per
    distinct score, calibration from sums per bin."""
    from pyspark.sql import functions as F

    from ..evaluation import MIN_EVENTS, TOP_FRACTIONS, ArmEvaluation, Evaluation
    from ..evaluation.curves import (_area, _normalised, cost_curve_from_groups, qini_from_groups,
                                     uplift_at_top_from_groups, uplift_from_groups)

    frame = frame.persist()  # every curve below is a job over the same joined rows
    for column in [c for c in columns if c.startswith("tau_value__") and c[len("tau_value__"):] in arms]:
        bad = frame.filter(F.col(column).isNull() | F.isnan(column)).count()
        if bad:
            first = frame.filter(F.col(column).isNull() | F.isnan(column)).agg(F.min(ROW)).collect()[0][0]
            raise UserError(f"score column '{column}' has {bad} missing or non-numeric values (first at row {int(first) + 1})")
    weighted = False
    if log.has_propensity:
        low, high = frame.agg(F.min("_p"), F.max("_p")).collect()[0]
        weighted = (high - low) >= 1e-12
    results, notes = {}, []
    for arm in arms:
        if not log.counts.get(arm):
            raise UserError(f"arm '{arm}' has no rows in the log")
        rows = (frame.filter(F.col("_arm").isin(arm, log.control))
                .withColumn("_t", (F.col("_arm") == arm).cast("double"))
                .withColumn("_w", (1.0 / F.col("_p")) if weighted else F.lit(1.0))
                .withColumn("_y", F.col("_value")))
        if f"score__{arm}" in columns:
            rank = cost_rank = F.col(f"score__{arm}")
        else:
            rank, cost_col = F.col(f"tau_value__{arm}"), f"tau_cost__{arm}"
            cost_rank = None
            if cost_col in columns and frame.filter(F.col(cost_col).isNull() | F.isnan(cost_col)).limit(1).count() == 0:
                tv, tc = F.col(f"tau_value__{arm}"), F.col(cost_col)
                cost_rank = (F.when(tc > 0, tv / tc).when(tv > 0, F.lit(float("inf"))).otherwise(F.lit(float("-inf"))))
        rows = rows.persist()
        counts = rows.agg(F.count(F.lit(1)), F.sum((F.col("_y") != 0).cast("long") * F.col("_t")),
                          F.sum((F.col("_y") != 0).cast("long") * (1 - F.col("_t"))),
                          F.sum(((F.col("_y") == 1) & (F.col("_t") == 0)).cast("long")),
                          F.sum(((F.col("_y") == 0) & (F.col("_t") == 1)).cast("long"))).collect()[0]
        n, events = int(counts[0]), (int(counts[1]), int(counts[2]))
        t, y = F.col("_t"), F.col("_y")
        ranked = _group_sums(rows, rank)
        perfect_qini = _group_sums(rows, y * t - y * (1 - t))
        summand = y if counts[3] > counts[4] else t
        perfect_uplift = _group_sums(rows, 2 * (y == t).cast("double") + summand)
        arm_aucc = calibration_cost = None
        if log.has_cost and cost_rank is not None:
            try:
                x, curve = cost_curve_from_groups(_group_sums(rows, _finite(cost_rank), extras=["_cost"]))
                arm_aucc = float(np.trapezoid(curve, x))
            except UserError as exc:
                notes.append(f"{arm}: no cost curve ({exc})")
        cost_col = f"tau_cost__{arm}"
        if log.has_cost and cost_col in columns:
            low, high = rows.agg(F.min(cost_col), F.max(cost_col)).collect()[0]
            if frame.filter(F.col(cost_col).isNull() | F.isnan(cost_col)).limit(1).count() == 0 and high - low > 0:
                calibration_cost = _calibration(rows, cost_col, "_cost", n_bins, 0.05)
        qini = qini_from_groups(ranked)
        results[arm] = ArmEvaluation(
            arm=arm, n=n, events=events, horizon=None,
            qini_normalized=_normalised(qini, qini_from_groups(perfect_qini)),
            auuc_normalized=_normalised(uplift_from_groups(ranked), uplift_from_groups(perfect_uplift)),
            qini_coefficient=_area(*qini) - qini[0][-1] * qini[1][-1] / 2.0, aucc=arm_aucc,
            uplift_at_top={f: uplift_at_top_from_groups(ranked, f) for f in TOP_FRACTIONS},
            calibration=_calibration(rows, f"tau_value__{arm}", "_y", n_bins, 0.05), calibration_cost=calibration_cost)
        rows.unpersist()
        if results[arm].rare:
            notes.append(f"Offer '{arm}': only {events[0]:,} non-zero outcomes under the offer and {events[1]:,} under "
                         f"'{log.control}' — fewer than {MIN_EVENTS} in an arm, so its curves and Qini are noise; "
                         "do not rank customers on them")
    frame.unpersist()
    return Evaluation(results, weighted, notes)


# --- scoring -----------------------------------------------------------------------------------

def score(spark, model, source: str, path: str) -> int:
    """Score every customer of ``source`` with a fitted model, batch by batch on Spark
    (``mapInPandas``), and write the predictions CSV (the local engine's columns) to ``path``."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    frame = read(spark, source)
    id_column = getattr(model, "id_column_", None)
    has_id = bool(id_column) and id_column in frame.columns
    sample = to_pandas(frame.limit(5))
    columns = list(model.predict(sample).columns)
    schema = StructType([StructField("id", StringType())] + [StructField(c, DoubleType()) for c in columns]
                        + [StructField(ROW, LongType())])

    def run(batches):
        for batch in batches:
            if batch.empty:
                continue
            predictions = model.predict(batch.drop(columns=[ROW]).reset_index(drop=True))
            ids = batch[id_column] if has_id else batch[ROW]
            predictions.insert(0, "id", ids.astype(str).to_numpy())
            yield predictions.assign(**{ROW: batch[ROW].to_numpy()})

    write_csv(frame.mapInPandas(run, schema), path, "--predictions-out")
    return frame.count()


# --- readout -----------------------------------------------------------------------------------

def readout(log: SparkLog, alpha: float):
    """:func:`core.diagnostics.readout.readout` (without CUPED) on Spark: Hájek means per arm,
    then their centred second moments (two passes of sums per arm)."""
    from pyspark.sql import functions as F

    from ..diagnostics.readout import ArmMoments, readout_from_moments

    weighted = False
    if log.has_propensity:
        spread = log.frame.groupBy("_arm").agg(F.min("_p").alias("low"), F.max("_p").alias("high")).collect()
        weighted = any(r["high"] - r["low"] > 1e-12 for r in spread)
    w = (1.0 / F.col("_p")) if weighted else F.lit(1.0)
    y = F.col("_value")
    c = F.col("_cost") if log.has_cost else F.lit(0.0)
    first = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(
        F.count(F.lit(1)).alias("n"), F.sum(w).alias("sw"), F.sum(w * y).alias("swy"), F.sum(w * c).alias("swc")).collect()}
    mean_v = {a: r["swy"] / r["sw"] for a, r in first.items()}
    mean_c = {a: r["swc"] / r["sw"] for a, r in first.items()}
    as_map = lambda means: F.create_map(*[x for a, m in means.items() for x in (F.lit(a), F.lit(float(m)))])  # noqa: E731
    dv, dc = y - as_map(mean_v)[F.col("_arm")], c - as_map(mean_c)[F.col("_arm")]
    second = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(
        F.sum(w * w * dv * dv).alias("vv"), F.sum(w * w * dc * dc).alias("cc"), F.sum(w * w * dv * dc).alias("vc")).collect()}
    moments = {a: ArmMoments(int(first[a]["n"]), float(first[a]["sw"]), float(mean_v[a]),
                             float(mean_c[a]) if log.has_cost else None, float(second[a]["vv"]),
                             float(second[a]["cc"]) if log.has_cost else None,
                             float(second[a]["vc"]) if log.has_cost else None) for a in log.labels}
    return readout_from_moments(log.labels, log.control, moments, weighted, alpha)


# --- the app: a Parquet path on the cluster -------------------------------------------------------

def driver_sample(spark, source: str, max_rows: int = FIT_ROWS, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """The rows of a Parquet log that the app works on, in row order, and the log's row count:
    every row when the log has at most ``max_rows``, else a sample of about ``max_rows`` drawn
    with the counter-based generator keyed by row position (the same sample every time)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    from ..io import parquet_dataset

    if not (parquet_dataset(source) or (Path(source).is_file() and Path(source).open("rb").read(4) == b"PAR1")):
        raise UserError(f"'{source}' is not a Parquet file, folder or pattern; a path read on the cluster must be Parquet")
    frame = read(spark, source)
    n = frame.count()
    if n > max_rows:
        share = max_rows / n

        @F.pandas_udf(BooleanType())
        def keep(rows: pd.Series) -> pd.Series:
            from .keys import row_keys, uniforms

            return pd.Series(uniforms(row_keys(positions=rows.to_numpy()), 0, seed)[0] < share)

        frame = frame.filter(keep(F.col(ROW)))
    return to_pandas(frame), n


# --- overlap and balance -------------------------------------------------------------------------

def overlap(log: SparkLog, clip: float, source: str, check_logged: bool):
    """:class:`~core.diagnostics.overlap.OverlapSums` on Spark: per arm, rows, the smallest
    propensity, rows below the clip, and Σ 1/max(p, ε), Σ 1/max(p, ε)² for the clip table.
    The propensity is ``_p`` (logged) or ``_pe`` (estimated on the driver and joined)."""
    from pyspark.sql import functions as F

    from ..diagnostics.overlap import DISAGREEMENT_FACTOR, OverlapSums

    p = F.col("_p") if source == "logged" else F.col("_pe")
    aggs = [F.count(F.lit(1)).alias("n"), F.min(p).alias("min_p"), F.sum((p < clip).cast("long")).alias("below")]
    epsilons = OverlapSums.epsilons()
    for i, eps in enumerate(epsilons):
        inverse = 1.0 / F.greatest(p, F.lit(eps))
        aggs += [F.sum(inverse).alias(f"s1_{i}"), F.sum(inverse * inverse).alias(f"s2_{i}"),
                 F.sum((p < eps).cast("long")).alias(f"b_{i}")]
    if check_logged:
        ratio = F.col("_p") / F.col("_pe")
        aggs.append(F.sum(((ratio > DISAGREEMENT_FACTOR) | (ratio < 1.0 / DISAGREEMENT_FACTOR)).cast("long")).alias("disagree"))
    rows = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(*aggs).collect()}
    labels = tuple(log.labels)
    n = {l: int(rows[l]["n"]) if l in rows else 0 for l in labels}
    clip_sums = {eps: {l: (float(rows[l][f"s1_{i}"]), float(rows[l][f"s2_{i}"])) if l in rows else (0.0, 0.0) for l in labels}
                 for i, eps in enumerate(epsilons)}
    below_eps = {eps: sum(int(r[f"b_{i}"]) for r in rows.values()) for i, eps in enumerate(epsilons)}
    return OverlapSums(source, clip, labels, n, {l: float(rows[l]["min_p"]) if l in rows else float("nan") for l in labels},
                       {l: int(rows[l]["below"]) if l in rows else 0 for l in labels}, clip_sums, below_eps,
                       sum(int(r["disagree"]) for r in rows.values()) if check_logged else None)


def _design_columns(frame, features: list[str]) -> list[tuple[str, object, object]]:
    """:func:`core.diagnostics.balance.design_matrix` as Spark expressions: (name, value,
    present) per design column.  Numeric features (numeric types, or text whose every value
    is a number, as pandas reads a CSV) as they are, plus ``col_missing`` when a value is
    missing; the others one-hot over their ``MAX_LEVELS`` most frequent levels."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType, StringType

    from ..diagnostics.balance import MAX_LEVELS

    types = {f.name: f.dataType for f in frame.schema.fields}
    checks = []
    for col in features:
        raw = F.col(f"`{col}`")
        if isinstance(types[col], StringType):
            checks.append(F.sum((raw.isNotNull() & raw.try_cast("double").isNull()).cast("long")).alias(f"text_{col}"))
        checks.append(F.sum((raw.isNull() | (F.isnan(raw.try_cast("double")) if not isinstance(types[col], (StringType, BooleanType))
                                             else F.lit(False))).cast("long")).alias(f"missing_{col}"))
    counts = frame.agg(*checks).collect()[0].asDict()
    out = []
    for col in features:
        raw = F.col(f"`{col}`")
        kind = types[col]
        numeric = isinstance(kind, NumericType) or (isinstance(kind, StringType) and counts[f"text_{col}"] == 0)
        if numeric and not isinstance(kind, BooleanType):
            number = raw.try_cast("double")
            present = number.isNotNull() & ~F.isnan(number)
            out.append((col, F.when(present, number), present))
            if isinstance(kind, StringType):
                missing = frame.filter(number.isNull()).limit(1).count() > 0
            else:
                missing = counts[f"missing_{col}"] > 0
            if missing:
                out.append((f"{col}_missing", (~present).cast("double"), F.lit(True)))
            continue
        text = (F.when(raw, F.lit("True")).otherwise(F.lit("False")) if isinstance(kind, BooleanType)
                else raw.cast("string"))
        text = F.coalesce(text, F.lit("(missing)"))
        levels = frame.groupBy(text.alias("_level")).count().toPandas()
        levels = levels.sort_values(["count", "_level"], ascending=[False, True], kind="stable")["_level"].tolist()
        top = levels[:MAX_LEVELS]
        folded = F.when(text.isin(top), text).otherwise(F.lit("other"))
        for level in sorted(set(top) | ({"other"} if len(levels) > MAX_LEVELS else set())):
            out.append((f"{col}_{level}", (folded == F.lit(level)).cast("double"), F.lit(True)))
    return out


def balance(log: SparkLog, source: str | None):
    """:func:`core.diagnostics.balance.balance` on Spark: each arm's (weighted) means of the
    design columns, then their variances around those means (two passes of sums)."""
    from pyspark.sql import functions as F

    from ..diagnostics.balance import BalanceResult, smd_from_stats

    if not log.features:
        raise UserError("no features are mapped, so balance cannot be checked; map at least one pre-treatment column")
    design = _design_columns(log.frame, list(log.features))
    names = [name for name, _, _ in design]
    weightings = {"raw": F.lit(1.0)}
    if source is not None:
        weightings["weighted"] = 1.0 / (F.col("_p") if source == "logged" else F.col("_pe"))
    first = []
    for tag, w in weightings.items():
        for j, (_, x, present) in enumerate(design):
            ww = F.when(present, w).otherwise(F.lit(0.0))
            first += [F.sum(ww).alias(f"{tag}_v1_{j}"), F.sum(ww * ww).alias(f"{tag}_v2_{j}"),
                      F.sum(F.when(present, w * x).otherwise(F.lit(0.0))).alias(f"{tag}_sx_{j}")]
    sums = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(*first).collect()}
    means = {tag: {a: np.array([r[f"{tag}_sx_{j}"] / r[f"{tag}_v1_{j}"] if r[f"{tag}_v1_{j}"] else np.nan
                                for j in range(len(design))]) for a, r in sums.items()} for tag in weightings}
    second = []
    for tag, w in weightings.items():
        for j, (_, x, present) in enumerate(design):
            mean = F.create_map(*[v for a in sums for v in (F.lit(a), F.lit(float(means[tag][a][j])))])[F.col("_arm")]
            second.append(F.sum(F.when(present, w * (x - mean) * (x - mean)).otherwise(F.lit(0.0))).alias(f"{tag}_ss_{j}"))
    spread = {r["_arm"]: r for r in log.frame.groupBy("_arm").agg(*second).collect()}
    tables = {}
    for tag in weightings:
        stats = {}
        for a in log.labels:
            r, q = sums[a], spread[a]
            v1 = np.array([r[f"{tag}_v1_{j}"] for j in range(len(design))], dtype=float)
            v2 = np.array([r[f"{tag}_v2_{j}"] for j in range(len(design))], dtype=float)
            ss = np.array([q[f"{tag}_ss_{j}"] for j in range(len(design))], dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[a] = (means[tag][a], ss / (v1 - v2 / v1))
        tables[tag] = smd_from_stats(stats, names, list(log.labels), log.control)
    return BalanceResult(tables["raw"], tables.get("weighted"))
