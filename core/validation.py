"""The log's row checks, written once as a partial over a batch of rows.

:meth:`core.schema.ExperimentLog.from_frame` runs :func:`check_rows` on the whole frame; the
Spark engine runs it on every batch and adds the results.  Either way :func:`log_problems` turns
the combined :class:`RowCheck` into the same list of problems, each naming the column and the
values at fault.  :func:`prepare_rows` and :func:`finish_rows` are the conversions a checked
batch goes through before any statistic reads it (text labels, numbers, the value's unit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NUMERIC_ROLES = ("value", "value_long", "cost", "propensity")
FIRST_NONE = np.iinfo(np.int64).max  # "no such row" for a first-row position
EXAMPLES = 3


def _merge_examples(a: tuple, b: tuple) -> tuple:
    return tuple(sorted(a + b)[:EXAMPLES])


@dataclass
class ColumnCheck:
    """One numeric role's column: text values (with the first examples), missing values (and
    the first row of one), infinite values, and for a propensity the values outside (0, 1]."""

    text: int = 0
    text_examples: tuple = ()
    missing: int = 0
    first_missing: int = FIRST_NONE
    infinite: int = 0
    out_of_range: int = 0
    range_examples: tuple = ()

    def __add__(self, other: "ColumnCheck") -> "ColumnCheck":
        return ColumnCheck(self.text + other.text, _merge_examples(self.text_examples, other.text_examples),
                           self.missing + other.missing, min(self.first_missing, other.first_missing),
                           self.infinite + other.infinite, self.out_of_range + other.out_of_range,
                           _merge_examples(self.range_examples, other.range_examples))


@dataclass
class RowCheck:
    """What the log's validation needs from its rows, adding up over any split of them."""

    rows: int = 0
    arms: Counter = field(default_factory=Counter)
    arm_missing: int = 0
    first_arm_missing: int = FIRST_NONE
    roles: dict = field(default_factory=dict)  # role → ColumnCheck
    id_missing: int = 0

    def __add__(self, other: "RowCheck") -> "RowCheck":
        roles = {r: self.roles.get(r, ColumnCheck()) + other.roles.get(r, ColumnCheck())
                 for r in dict.fromkeys([*self.roles, *other.roles])}
        return RowCheck(self.rows + other.rows, self.arms + other.arms, self.arm_missing + other.arm_missing,
                        min(self.first_arm_missing, other.first_arm_missing), roles, self.id_missing + other.id_missing)

    @property
    def labels(self) -> list[str]:
        return sorted(self.arms)


def _examples(values: pd.Series, mask: np.ndarray, positions: np.ndarray) -> tuple:
    out = []
    for i in np.flatnonzero(mask)[:EXAMPLES]:
        value = values.iloc[i]
        out.append((int(positions[i]), value.item() if isinstance(value, np.generic) else value))
    return tuple(out)


def _first(mask: np.ndarray, positions: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(positions[hits[0]]) if len(hits) else FIRST_NONE


def text_labels(values: pd.Series) -> pd.Series:
    """Arm labels as text, exactly as the file writes them (``None`` when missing)."""
    na = values.isna()
    return values.astype(object).where(~na, None).map(lambda v: None if v is None else str(v))


def incomplete_rows(frame: pd.DataFrame, columns) -> tuple[pd.Series, dict[str, int]]:
    """Rows with a missing arm, value, cost or propensity (text counts as missing when
    ``columns.text_as_missing``), and how many there are per arm (``(missing)`` for no arm).

    Only mapped columns present in ``frame`` are looked at.
    """
    missing = pd.Series(False, index=frame.index)
    for role in ("action", *NUMERIC_ROLES):
        col = getattr(columns, role)
        if not col or col not in frame.columns:
            continue
        values = frame[col]
        if role != "action" and columns.text_as_missing:
            values = pd.to_numeric(values, errors="coerce")
        missing |= values.isna()
    arms = frame[columns.action].astype("string").fillna("(missing)") if columns.action in frame.columns else None
    per_arm = {} if arms is None else {str(k): int(v) for k, v in sorted(arms[missing].value_counts().items())}
    return missing, per_arm


def prepare_rows(frame: pd.DataFrame, columns) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows as the checks read them: text in a numeric role as missing when the mapping
    says so, incomplete rows left out when it says so (counted per arm).  Returns a copy; the
    user's frame is never changed."""
    work = frame.copy()
    dropped: dict[str, int] = {}
    present = set(frame.columns)
    if columns.text_as_missing:
        for role in NUMERIC_ROLES:
            col = getattr(columns, role)
            if col and col in present:
                work[col] = pd.to_numeric(work[col], errors="coerce")
    if columns.drop_incomplete and columns.action in present:
        incomplete, dropped = incomplete_rows(work, columns)
        work = work.loc[~incomplete].reset_index(drop=True)
    return work, dropped


def check_rows(work: pd.DataFrame, columns, positions: np.ndarray | None = None) -> RowCheck:
    """The :class:`RowCheck` of a batch of prepared rows (``positions``: their rows in the log,
    default 0, 1, …).  Columns the batch lacks are skipped (the finish names them)."""
    positions = np.arange(len(work)) if positions is None else np.asarray(positions)
    present = set(work.columns)
    check = RowCheck(rows=len(work))
    if columns.action in present:
        raw = work[columns.action]
        na = raw.isna().to_numpy()
        check.arm_missing, check.first_arm_missing = int(na.sum()), _first(na, positions)
        check.arms = Counter({str(k): int(v) for k, v in text_labels(raw).value_counts(dropna=True).items()})
    for role in NUMERIC_ROLES:
        col = getattr(columns, role)
        if not col or col not in present:
            continue
        values = work[col]
        numeric = pd.to_numeric(values, errors="coerce")
        text = (numeric.isna() & values.notna()).to_numpy()
        nan = values.isna().to_numpy()
        part = ColumnCheck(int(text.sum()), _examples(values, text, positions), int(nan.sum()), _first(nan, positions))
        if role == "propensity":
            outside = (numeric.notna() & ~((numeric > 0) & (numeric <= 1))).to_numpy()
            part.out_of_range, part.range_examples = int(outside.sum()), _examples(numeric, outside, positions)
        else:
            part.infinite = int(np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).sum())
        check.roles[role] = part
    if columns.id and columns.id in present:
        check.id_missing = int(work[columns.id].isna().sum())
    return check


def duplicated_ids(ids: pd.Series) -> tuple[int, list]:
    """How many rows repeat an earlier id, and the first three repeated ids (in row order)."""
    dup = ids.duplicated(keep=False) & ids.notna()
    return int(ids.duplicated().sum()), ids[dup].unique()[:3].tolist()


def duplicated_from_counts(counts: pd.DataFrame) -> tuple[int, list]:
    """:func:`duplicated_ids` from counts per id (columns ``id``, ``n``, ``first``: the id's
    first row): what an engine computes with one group-by."""
    repeated = counts[counts["n"] > 1].sort_values("first", kind="stable")
    return int((repeated["n"] - 1).sum()), repeated.loc[repeated["id"].notna(), "id"].head(3).tolist()


def _shown(examples: tuple) -> str:
    return ", ".join(f"row {pos + 1}: {value!r}" for pos, value in examples)


def log_problems(columns, file_columns: list, check: RowCheck, duplicates: tuple[int, list], *,
                 require_value: bool, min_arms: int, rows_in_file: int) -> list[str]:
    """Every problem of a log with the mapping ``columns``, from its combined :class:`RowCheck`
    (``duplicates``: :func:`duplicated_ids`)."""
    problems: list[str] = []
    present = set(file_columns)
    roles = columns.role_columns()
    missing = {role: col for role, col in roles.items() if col not in present}
    for role, col in missing.items():
        problems.append(f"{role} column '{col}' is not in the file")
    if missing:
        shown = ", ".join(map(str, file_columns[:30])) + (" …" if len(file_columns) > 30 else "")
        problems[-1] += f" (the file's columns: {shown})"
    if require_value and not columns.value:
        problems.append("no value column is mapped; choose the outcome to optimise (e.g. revenue)")
    if columns.cost and columns.action_cost:
        problems.append(f"both a cost column '{columns.cost}' and constant per-arm costs are given; choose one")
    clashes = [c for c in set(roles.values()) if list(roles.values()).count(c) > 1]
    for col in clashes:
        which = [r for r, c in roles.items() if c == col]
        problems.append(f"column '{col}' is mapped to several roles ({', '.join(which)}); each role needs its own column")
    if columns.drop_incomplete and columns.action in present and check.rows == 0:
        problems.append(f"every row has a missing arm, value, cost or propensity ({rows_in_file:,} rows); nothing is left to analyse")
    if columns.action not in missing.values():
        if check.arm_missing:
            problems.append(f"action column '{columns.action}' has {check.arm_missing} empty values (first at row {check.first_arm_missing + 1})")
        labels = check.labels
        if len(labels) < min_arms:
            problems.append(f"action column '{columns.action}' has {len(labels)} arm(s) ({', '.join(labels) or 'none'}); "
                            f"an experiment needs at least {min_arms}, including the control")
        if columns.control not in labels:
            problems.append(f"control label '{columns.control}' is not an arm of '{columns.action}'; "
                            f"arms found: {', '.join(labels[:20])}")
        unknown_costs = [a for a in columns.action_cost_map if a not in labels]
        if unknown_costs:
            problems.append(f"constant cost given for unknown arm(s) {', '.join(unknown_costs)}; arms: {', '.join(labels[:20])}")
    for role in ("value", "value_long", "cost"):
        col = getattr(columns, role)
        if not col or col in missing.values():
            continue
        part = check.roles.get(role, ColumnCheck())
        if part.text:
            problems.append(f"{role} column '{col}' has {part.text} non-numeric value{'s' if part.text > 1 else ''} "
                            f"({_shown(part.text_examples)}); expected numbers, or treat such text as missing")
        if part.missing:
            problems.append(f"{role} column '{col}' has {part.missing} missing values (first at row {part.first_missing + 1}); "
                            "expected a number in every row, or drop the incomplete rows")
        if part.infinite:
            problems.append(f"{role} column '{col}' has infinite values at {part.infinite} rows")
        if role == "value" and columns.value_unit is not None and not part.text:
            if not np.isfinite(columns.value_unit) or columns.value_unit <= 0:
                problems.append(f"the worth of one unit of '{col}' must be a number > 0, got {columns.value_unit}")
    if columns.propensity and columns.propensity not in missing.values():
        col, part = columns.propensity, check.roles.get("propensity", ColumnCheck())
        if part.text:
            problems.append(f"propensity column '{col}' has non-numeric values ({_shown(part.text_examples)})")
        if part.missing:
            problems.append(f"propensity column '{col}' has {part.missing} missing values")
        if part.out_of_range:
            problems.append(f"propensity column '{col}' has {part.out_of_range} values outside (0, 1] "
                            f"({_shown(part.range_examples)}); a logged probability must be > 0 and ≤ 1")
    if columns.id and columns.id not in missing.values():
        repeated, examples = duplicates
        if repeated:
            problems.append(f"id column '{columns.id}' has {repeated} duplicated ids (e.g. {', '.join(map(repr, examples))}); "
                            "ids must be unique")
        if check.id_missing:
            problems.append(f"id column '{columns.id}' has {check.id_missing} empty ids")
    features = columns.resolved_features(list(file_columns))
    unknown = [f for f in features if f not in present]
    if unknown:
        problems.append(f"feature column(s) {', '.join(map(repr, unknown))} not in the file")
    role_overlap = [f for f in features if f in set(roles.values())]
    if role_overlap:
        problems.append(f"feature(s) {', '.join(map(repr, role_overlap))} are also mapped to a role; a feature cannot be the action, outcome or propensity")
    return problems


def finish_rows(work: pd.DataFrame, columns) -> pd.DataFrame:
    """A checked batch as every statistic reads it: arm labels as text, the numeric roles as
    floats, the value in money when the mapping gives its unit (changes ``work`` in place)."""
    present = set(work.columns)
    if columns.action in present:
        work[columns.action] = text_labels(work[columns.action])
    for role in NUMERIC_ROLES:
        col = getattr(columns, role)
        if col and col in present:
            work[col] = pd.to_numeric(work[col], errors="coerce").astype(float)
            if role == "value" and columns.value_unit is not None:
                work[col] = work[col] * float(columns.value_unit)
    return work
