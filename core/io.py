"""Reading and writing experiment logs: CSV, CSV.GZ and Parquet, plus column auto-detection.

The format is recognised from the file's first bytes, not its name, so a renamed file still
loads and a file that is neither CSV nor Parquet gets a clear message instead of garbage.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import pyarrow.parquet as pq

from .errors import UserError

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
DELIMITERS = (",", ";", "\t", "|")


def _human_size(n_bytes: int) -> str:
    if n_bytes >= 1024**2:
        return f"{n_bytes / 1024**2:.1f} MB"
    if n_bytes >= 1024:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{n_bytes} bytes"


def _parser_problem(exc: Exception, sep: str) -> str:
    """pandas' parser message in the user's words."""
    text = str(exc).strip()
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        expected, line, seen = fields.groups()
        shown = {"\t": "tab"}.get(sep, f"'{sep}'")
        return (f"line {line} has {seen} values but the header names {expected} column{'s' if expected != '1' else ''} "
                f"(values separated by {shown}); is it a table at all, or are quotes or the separator off on that line?")
    if "EOF inside string" in text or "EOF while parsing" in text:
        return "a quoted value is never closed (an odd number of \" characters); check the quotes"
    return text.splitlines()[0] if text else type(exc).__name__


def parquet_dataset(source) -> list[Path] | None:
    """The Parquet files behind a folder or a glob pattern, in name order (the log's row order:
    file by file, rows in file order), or ``None`` when ``source`` is a single file or bytes.

    Raises a :class:`UserError` when the folder or pattern holds no Parquet file, when a file is
    not Parquet, or when the files' schemas differ (naming the first file that differs and how).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
        where = f"folder '{text}'"
    elif any(ch in text for ch in "*?[") and not path.exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        where = f"pattern '{text}'"
    else:
        return None
    if not files:
        if path.is_dir():
            raise UserError(f"'{text}' is a folder; expected a CSV, CSV.GZ or Parquet file, or a folder of Parquet files")
        raise UserError(f"{where} matches no file; expected Parquet files")
    schemas = []
    for file in files:
        with file.open("rb") as handle:
            if handle.read(4) != PARQUET_MAGIC:
                raise UserError(f"file '{file}' in {where} is not Parquet; a folder or pattern must hold Parquet files only")
        try:
            schemas.append(pq.read_schema(file))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise UserError(f"file '{file}' looks like Parquet but could not be read: {exc}") from exc
    def logical(schema) -> list[tuple[str, str]]:
        # string and large_string (and the like) hold the same values: only writers differ
        return [(f.name, str(f.type).replace("large_", "")) for f in schema]

    first = logical(schemas[0])
    for file, schema in zip(files[1:], map(logical, schemas[1:])):
        if schema != first:
            expected, found = dict(first), dict(schema)
            diff = [f"'{c}' missing" for c in expected if c not in found]
            diff += [f"extra '{c}'" for c in found if c not in expected]
            diff += [f"'{c}' is {found[c]}, not {expected[c]}" for c in expected if c in found and found[c] != expected[c]]
            raise UserError(f"file '{file}' in {where} has a different schema from '{files[0]}': "
                            f"{'; '.join(diff) or 'columns in another order'}; every file must have the same columns and types")
    return files


def is_parquet(source) -> bool:
    """Whether ``source`` is a Parquet file, folder or pattern."""
    if parquet_dataset(source):
        return True
    path = Path(source)
    return path.is_file() and path.open("rb").read(4) == PARQUET_MAGIC


def check_file(source: str | os.PathLike) -> int:
    """The size of a log file that exists and is a file, else a :class:`UserError` naming it."""
    path = Path(source)
    if not path.exists():
        raise UserError(f"file '{path}' does not exist")
    if path.is_dir():
        raise UserError(f"'{path}' is a folder; expected a CSV, CSV.GZ or Parquet file")
    return path.stat().st_size


def _load_bytes(source: str | os.PathLike | bytes, name: str, max_bytes: int | None) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = len(source)
    else:
        size = check_file(source)
    if max_bytes is not None and size > max_bytes:
        raise UserError(
            f"file '{name}' is {_human_size(size)}, above the upload limit of "
            f"{_human_size(max_bytes)}; sample it down or raise server.maxUploadSize"
        )
    if size == 0:
        raise UserError(f"file '{name}' is empty (0 bytes); expected a CSV, CSV.GZ or Parquet file")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source).read_bytes()


def _decode_text(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:65536]:
        raise UserError(
            f"file '{name}' is not a CSV or Parquet file (it contains binary data); "
            "expected comma-separated text, gzip-compressed CSV or Parquet"
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UserError(f"file '{name}' is not UTF-8 or Windows-1252 text; expected a CSV file")


def sniff_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def read_table(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    str_columns: Iterable[str] = (),
    max_bytes: int | None = None,
) -> pd.DataFrame:
    """Read an experiment log from a path or from uploaded bytes.

    Parameters
    ----------
    source : path or bytes
        CSV (any of ``, ; TAB |`` as delimiter), gzip-compressed CSV, or Parquet.  The format
        is recognised from the content.  A folder or a glob pattern reads its Parquet files in
        name order (see :func:`parquet_dataset`).
    name : str, optional
        Name used in messages (defaults to the path).
    str_columns : iterable of str
        Columns read as text exactly as the file writes them (the action column: arm labels
        ``1`` and ``1.0`` stay different labels).
    max_bytes : int, optional
        Size limit; a larger file is refused with a message giving both sizes.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UserError
        Missing, empty, oversized or unreadable files, and files without data rows.
    """
    name = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "upload")
    str_columns = list(str_columns)
    files = parquet_dataset(source)
    raw = b"" if files else _load_bytes(source, name, max_bytes)

    if files or raw[:4] == PARQUET_MAGIC:
        try:
            if files:
                frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
            else:
                frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise UserError(f"file '{name}' looks like Parquet but could not be read: {exc}") from exc
        for col in str_columns:
            if col in frame.columns:
                frame[col] = frame[col].astype("string").astype(object).where(frame[col].notna(), None)
    else:
        if raw[:2] == GZIP_MAGIC:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise UserError(f"file '{name}' is a damaged gzip file: {exc}") from exc
            if not raw:
                raise UserError(f"file '{name}' is an empty gzip file; expected compressed CSV")
            if raw[:4] == PARQUET_MAGIC:
                raise UserError(f"file '{name}' is a gzipped Parquet file; upload the .parquet itself")
        text = _decode_text(raw, name)
        if not text.strip():
            raise UserError(f"file '{name}' has no content (only blank lines); expected a CSV header and rows")
        sep = sniff_delimiter(text)
        header = [h.strip().strip('"') for h in text.split("\n", 1)[0].rstrip("\r").split(sep)]
        repeated = sorted({h for h in header if h and header.count(h) > 1})
        if repeated:
            raise UserError(f"file '{name}' has duplicated column names: {', '.join(repeated)}; each column needs its own name")
        dtype = {c: str for c in str_columns if c in header}
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=dtype or None, keep_default_na=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise UserError(f"file '{name}' could not be read as a table: {_parser_problem(exc, sep)}") from exc
    if frame.shape[1] == 0:
        raise UserError(f"file '{name}' has no columns; expected a header row")
    if len(frame) == 0:
        raise UserError(f"file '{name}' has a header but no data rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise UserError(f"file '{name}' has duplicated column names: {', '.join(dupes)}")
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as Parquet, CSV or CSV.GZ according to the path's suffix.

    Gzip output carries no timestamp, so equal frames give equal bytes.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    if path.parent and not path.parent.exists():
        raise UserError(f"output folder '{path.parent}' does not exist")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix.endswith(".csv.gz"):
        buffer = frame.to_csv(index=False).encode("utf-8")
        with open(path, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as gz:
            gz.write(buffer)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise UserError(f"output '{path}' must end in .parquet, .csv or .csv.gz")
    return path


# --- column auto-detection ------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "action": ("action", "arm", "offer", "treatment", "treatment_group", "treatment_arm", "variant",
               "promotion", "promo", "group", "campaign", "incentive", "assignment", "treat", "treated",
               "assigned", "condition", "experiment_group", "test_group", "cell", "w", "t"),
    "value": ("revenue", "spend", "value", "sales", "net_revenue", "gross_revenue", "margin", "gmv",
              "profit", "amount", "y", "outcome", "purchase", "conversion", "converted", "visit"),
    "cost": ("cost", "incentive_cost", "offer_cost", "discount_cost", "coupon_cost", "redeemed_cost",
             "redemption_cost", "realised_cost", "realized_cost"),
    "propensity": ("propensity", "propensity_score", "pscore", "logging_propensity", "logging_prob",
                   "action_prob", "p", "prob"),
    "segment": ("lifecycle", "lifecycle_stage", "lifecycle_segment", "customer_segment", "stage",
                "customer_stage", "segment", "tier"),
    "time": ("day", "date", "decision_day", "decision_date", "send_date", "timestamp", "time", "week",
             "ts", "event_date"),
    "id": ("id", "customer_id", "user_id", "unit_id", "client_id", "account_id", "member_id", "uid"),
}

# Outcome-like or post-treatment columns kept out of the default features in the app: they
# are measured after the offer was sent and would leak it into the model.
POST_TREATMENT_NAMES = ("visit", "visits", "conversion", "converted", "purchase", "purchased",
                        "spend", "revenue", "exposure", "exposed", "redeemed", "redemption",
                        "clicked", "click", "opened", "open", "order", "orders_after", "cost")

CONTROL_NAMES = ("control", "no_offer", "none", "no", "no_e_mail", "no_email", "holdout", "hold_out",
                 "baseline", "0", "false", "nothing", "no_treatment", "no_promo", "no_promotion",
                 "untreated", "ctrl")


def guess_control(labels: Iterable[str]) -> str | None:
    """Return the label that looks like the no-offer arm, or ``None``."""
    labels = [str(l) for l in labels]
    for label in labels:
        if _norm(label) in CONTROL_NAMES:
            return label
    for label in labels:
        n = _norm(label)
        if n.startswith("no_") or n.startswith("control") or n.endswith("_control"):
            return label
    return None


def _first_match(columns: list[str], role: str, taken: set[str]) -> str | None:
    by_norm = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    for candidate in ROLE_NAMES[role]:
        col = by_norm.get(candidate)
        if col is not None and col not in taken:
            return col
    return None


def arm_column_problem(frame: pd.DataFrame, column: str, max_arms: int = 20) -> str | None:
    """Why ``column`` cannot be an arm column, or ``None`` when it can.

    An arm column has 2 to ``max_arms`` levels, each logged for a fair number of customers
    (at least 1% of the rows and at least 2): an id, a village number or a single-valued source
    column is not one.
    """
    counts = frame[column].astype("string").value_counts(dropna=True)
    if len(counts) < 2:
        return f"'{column}' has {len(counts)} distinct value{'s' if len(counts) != 1 else ''}; an arm column needs at least 2"
    if len(counts) > max_arms:
        return f"'{column}' has {len(counts):,} distinct values; an arm column has a handful (at most {max_arms})"
    smallest = int(counts.min())
    if smallest < max(2, 0.01 * len(frame)):
        return (f"'{column}' value '{counts.idxmin()}' has only {smallest} row{'s' if smallest != 1 else ''}; "
                "every arm of an experiment is logged for many customers")
    return None


def pick_control(labels: Iterable[str], counts: Mapping[str, int] | None = None) -> tuple[str | None, str]:
    """The no-offer label and why: a label named like none / control / 0 / no, else the most
    common level (a test usually holds out the largest group or splits evenly)."""
    labels = [str(l) for l in labels]
    named = guess_control(labels)
    if named is not None:
        return named, f"'{named}' is named like a no-offer arm"
    if counts:
        common = max(labels, key=lambda l: counts.get(l, 0))
        return common, f"no label is named like none / control / 0 / no, so the most common one, '{common}', is taken"
    return (labels[0] if labels else None), "no label is named like a no-offer arm; check it"


def detect_mapping(frame: pd.DataFrame, max_arms: int = 20) -> dict:
    """Guess the column roles of an experiment log from names and contents.

    The action column is the first column with a common arm name (``offer``, ``treatment``,
    ``promotion``…) that passes :func:`arm_column_problem` (few levels, each with many rows);
    failing that, such a text column holding a control-like label (``No E-Mail``, ``control``…).
    Nothing else is guessed: a wrong arm silently ruins every later number, so the user then
    chooses it.  The control is :func:`pick_control`'s.  The result is a plain dict of
    :class:`core.schema.ColumnMap` fields plus ``why`` (role → reason shown to the user); any
    role may be ``None`` when nothing fits, and the user overrides all of them.
    """
    columns = [str(c) for c in frame.columns]
    taken: set[str] = set()
    why: dict[str, str] = {}
    by_norm = {_norm(c): c for c in columns}
    # names of outcome, cost, propensity, id and time columns never hold the arm ("segment" may:
    # Hillstrom's arm column is called segment)
    other_roles = {_norm(name) for role, names in ROLE_NAMES.items() if role not in ("action", "segment") for name in names}
    other_roles |= set(POST_TREATMENT_NAMES)

    def describe(col: str) -> str:
        counts = frame[col].astype("string").value_counts()
        return f"{len(counts)} levels, the smallest with {int(counts.min()):,} rows"

    action = None
    for candidate in ROLE_NAMES["action"]:
        col = by_norm.get(candidate)
        if col is not None and arm_column_problem(frame, col, max_arms) is None:
            action = col
            why["action"] = f"'{col}' is named like an arm column and has {describe(col)}"
            break
    if action is None:
        # e.g. Hillstrom's `segment`: a text column holding a label such as "No E-Mail".
        # Binary 0/1 flags (mens, newbie) are not arms, so "0"/"false" do not count here.
        for col in columns:
            if (_norm(col) in other_roles or frame[col].dtype.kind in "fcbiu"
                    or arm_column_problem(frame, col, max_arms) is not None):
                continue
            label = guess_control(frame[col].dropna().astype(str).unique())
            if label is not None and _norm(label) not in ("0", "false", "no"):
                action = col
                why["action"] = f"'{col}' holds the no-offer-like label '{label}' and has {describe(col)}"
                break
    if action is None:
        why["action"] = ("no column is named like an arm (offer, treatment, promotion, group…) with a few well-filled "
                         "levels, so none is guessed: choose the column that holds the arm")
    control = None
    if action is not None:
        taken.add(action)
        counts = frame[action].astype("string").value_counts().to_dict()
        control, why["control"] = pick_control(sorted(counts), counts)

    mapping: dict = {"action": action, "control": control}
    for role in ("id", "propensity", "cost", "value", "time", "segment"):
        col = _first_match(columns, role, taken)
        if role == "segment" and col is not None and not (2 <= frame[col].nunique() <= 50):
            col = None
        if role == "propensity" and col is not None:
            values = pd.to_numeric(frame[col], errors="coerce")
            if not (values.dropna().between(0, 1).all() and values.notna().any()):
                col = None
        if role in ("value", "cost") and col is not None and not pd.api.types.is_numeric_dtype(frame[col]):
            # a few text cells ("n/a") do not hide an outcome column: the Data page names them
            present = frame[col].dropna()
            if present.empty or pd.to_numeric(present, errors="coerce").notna().mean() < 0.9:
                col = None
        if role == "id" and col is not None and frame[col].duplicated().any():
            col = None
        mapping[role] = col
        if col is not None:
            taken.add(col)
    excluded = [c for c in columns if c not in taken and _norm(c) in POST_TREATMENT_NAMES]
    mapping["features"] = [c for c in columns if c not in taken and c not in excluded]
    mapping["excluded_features"] = excluded
    mapping["why"] = why
    return mapping


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _relation(con, source):
    """A DuckDB relation over a frame or straight over a file (never loaded into pandas)."""
    if isinstance(source, pd.DataFrame):
        return con.from_df(source)
    files = parquet_dataset(source)
    if files:
        return con.read_parquet([str(f) for f in files])
    path = Path(source)
    head = path.open("rb").read(4)
    if head == PARQUET_MAGIC:
        return con.read_parquet(str(path))
    compression = "gzip" if head[:2] == GZIP_MAGIC else "none"
    return con.read_csv(str(path), compression=compression, all_varchar=True)


def group_counts(source, columns: list[str]) -> pd.DataFrame:
    """Rows per distinct combination of ``columns`` of a frame or a file, counted in DuckDB
    (a file is never loaded whole): ``columns`` as text (missing as ``None``), then ``n``."""
    import duckdb  # deferred: only counting needs DuckDB

    con = duckdb.connect()
    try:
        rel = _relation(con, source)
        keys = [f"CAST({_quote(c)} AS VARCHAR) AS {_quote('k_' + str(i))}" for i, c in enumerate(columns)]
        group = ", ".join(str(i + 1) for i in range(len(columns)))
        con.register("src", rel)
        frame = con.execute(f"SELECT {', '.join(keys)}, COUNT(*) AS n FROM src GROUP BY {group}").df()
    finally:
        con.close()
    frame.columns = [*columns, "n"]
    return frame


def file_columns(source) -> list[str]:
    """Column names of a frame or a log file, read by DuckDB without loading the rows."""
    import duckdb  # deferred: only counting needs DuckDB

    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns]
    files = parquet_dataset(source)
    if files:
        return list(pq.read_schema(files[0]).names)
    path = Path(source)
    if check_file(path) == 0:
        raise UserError(f"file '{path}' is empty (0 bytes); expected a CSV, CSV.GZ or Parquet file")
    con = duckdb.connect()
    try:
        return list(_relation(con, path).columns)
    except duckdb.Error as exc:
        raise UserError(f"file '{path}' could not be read as CSV or Parquet: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
