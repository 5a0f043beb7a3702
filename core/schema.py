"""The experiment log: a column mapping and a validated frame with a content fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from .errors import UserError

ROLES = ("action", "value", "value_long", "cost", "propensity", "segment", "time", "id")


@dataclass(frozen=True)
class ColumnMap:
    """Which column plays which role (DESIGN.md §2).  Names are the user's own.

    Parameters
    ----------
    action : str
        Logged arm column.
    control : str
        The no-offer label among the arms (compared as text).
    value : str, optional
        Value outcome.  Required by every analysis; optional only for looking at a file.
    cost : str, optional
        Realised incentive cost per row.  Exclusive with ``action_cost``.
    action_cost : mapping of label to float, optional
        Constant cost per unit assigned to each arm (control costs 0).
    propensity : str, optional
        Logged probability of the logged action.
    features : tuple of str, optional
        Model features; ``None`` means every unmapped column.
    segment, time, id : str, optional
        Lifecycle segment, decision day/timestamp, unit id.
    text_as_missing : bool
        Text in the value, long-horizon value, cost or propensity column ("n/a", "twelve
        dollars") counts as a missing value instead of an error.
    drop_incomplete : bool
        Rows with a missing arm, value, long-horizon value, cost or propensity are left out of the
        log (the file itself is never changed); :attr:`ExperimentLog.dropped` counts them per arm.
    value_unit : float, optional
        Money per unit of the value column, e.g. what one conversion of a 0/1 outcome is worth:
        the log's value is the column times this, so effects, CPI and budgets are in money.
    value_long : str, optional
        A longer-horizon value (e.g. 12-month revenue next to the 30-day one): models still rank
        on ``value``; plans and the report are also given in this unit (see
        :mod:`core.evaluation.horizon`).
    """

    action: str
    control: str
    value: str | None = None
    cost: str | None = None
    action_cost: tuple[tuple[str, float], ...] | None = None
    propensity: str | None = None
    features: tuple[str, ...] | None = None
    segment: str | None = None
    time: str | None = None
    id: str | None = None
    text_as_missing: bool = False
    drop_incomplete: bool = False
    value_unit: float | None = None
    value_long: str | None = None

    def __post_init__(self):
        if isinstance(self.action_cost, Mapping):
            object.__setattr__(self, "action_cost", tuple((str(k), float(v)) for k, v in self.action_cost.items()))
        if self.features is not None and not isinstance(self.features, tuple):
            object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "control", str(self.control) if self.control is not None else None)

    @property
    def action_cost_map(self) -> dict[str, float]:
        return dict(self.action_cost or ())

    def role_columns(self) -> dict[str, str]:
        """Mapped role → column name, for the roles that are mapped."""
        return {role: getattr(self, role) for role in ROLES if getattr(self, role)}

    def resolved_features(self, columns) -> list[str]:
        """The feature list: explicit, or every column not mapped to a role."""
        if self.features is not None:
            return list(self.features)
        used = set(self.role_columns().values())
        return [c for c in columns if c not in used]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["action_cost"] = self.action_cost_map or None
        out["features"] = list(self.features) if self.features is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "ColumnMap":
        known = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        if not known.get("action"):
            raise UserError("the mapping has no action column; choose the column that holds the arm")
        if known.get("control") in (None, ""):
            raise UserError(f"the mapping has no control label for action column '{known['action']}'")
        return cls(**known)


def parse_action_cost(text: str) -> dict[str, float]:
    """Parse ``L=AMT,...`` (the CLI's ``--action-cost``) into a dict, naming a bad pair."""
    out: dict[str, float] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        if "=" not in part:
            raise UserError(f"--action-cost entry '{part}' is not of the form LABEL=AMOUNT")
        label, amount = part.rsplit("=", 1)
        try:
            value = float(amount)
        except ValueError:
            raise UserError(f"--action-cost amount '{amount}' for arm '{label}' is not a number") from None
        if not np.isfinite(value) or value < 0:
            raise UserError(f"--action-cost amount for arm '{label}' must be a finite number ≥ 0, got {amount}")
        out[label.strip()] = value
    if not out:
        raise UserError("--action-cost is empty; expected LABEL=AMOUNT pairs such as coupon=2.5,email=0.1")
    return out


NUMERIC_ROLES = ("value", "value_long", "cost", "propensity")


def incomplete_rows(frame: pd.DataFrame, columns: ColumnMap) -> tuple[pd.Series, dict[str, int]]:
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


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame: column names, dtypes and every value, not row order-free."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _example(values: pd.Series, mask: pd.Series, limit: int = 3) -> str:
    idx = np.flatnonzero(mask.to_numpy())[:limit]
    shown = []
    for i in idx:
        value = values.iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        shown.append(f"row {i + 1}: {value!r}")
    return ", ".join(shown)


@dataclass(frozen=True)
class ExperimentLog:
    """A validated experiment log.

    Build it with :meth:`from_frame`; it never alters the user's frame (the validated frame is
    a copy with the action column as text).

    Attributes
    ----------
    frame : DataFrame
    columns : ColumnMap
    labels : tuple of str
        Arms, control first, then the others sorted.
    features : tuple of str
    fingerprint : str
        Hash of the data and the mapping; the key for caches and the workspace.
    data_fingerprint : str
        Hash of the data alone.
    dropped : dict of str to int
        Rows left out per arm by ``ColumnMap.drop_incomplete`` (empty when none were).
    """

    frame: pd.DataFrame = field(repr=False)
    columns: ColumnMap
    labels: tuple[str, ...]
    features: tuple[str, ...]
    fingerprint: str
    data_fingerprint: str
    dropped: dict = field(default_factory=dict)

    @property
    def control(self) -> str:
        return self.columns.control

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.labels[1:]

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def action(self) -> np.ndarray:
        return self.frame[self.columns.action].to_numpy(dtype=object)

    @property
    def value(self) -> np.ndarray:
        if not self.columns.value:
            raise UserError("no value column is mapped; choose the outcome to optimise")
        return self.frame[self.columns.value].to_numpy(dtype=float)

    @property
    def value_long(self) -> np.ndarray | None:
        """The longer-horizon value per row, or ``None`` when none is mapped."""
        if not self.columns.value_long:
            return None
        return self.frame[self.columns.value_long].to_numpy(dtype=float)

    @property
    def has_cost(self) -> bool:
        return bool(self.columns.cost or self.columns.action_cost)

    @property
    def cost(self) -> np.ndarray | None:
        """Realised cost per row, or the constant cost of each row's arm; ``None`` if unmapped."""
        if self.columns.cost:
            return self.frame[self.columns.cost].to_numpy(dtype=float)
        if self.columns.action_cost:
            costs = self.columns.action_cost_map
            return pd.Series(self.action).map(lambda a: costs.get(a, 0.0)).to_numpy(dtype=float)
        return None

    @property
    def propensity(self) -> np.ndarray | None:
        if not self.columns.propensity:
            return None
        return self.frame[self.columns.propensity].to_numpy(dtype=float)

    @property
    def ids(self) -> np.ndarray:
        if self.columns.id:
            return self.frame[self.columns.id].to_numpy()
        return np.arange(len(self.frame))

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: ColumnMap,
        *,
        require_value: bool = True,
        min_arms: int = 2,
    ) -> "ExperimentLog":
        """Validate ``frame`` against ``columns`` and report every problem at once.

        Raises
        ------
        UserError
            With one entry in ``problems`` per issue: missing columns, fewer than two arms,
            a control label that is not an arm, non-numeric or missing outcomes, propensities
            outside (0, 1], duplicated ids, costs for unknown arms, unknown features.
        """
        problems: list[str] = []
        present = set(frame.columns)
        roles = columns.role_columns()
        missing = {role: col for role, col in roles.items() if col not in present}
        for role, col in missing.items():
            problems.append(f"{role} column '{col}' is not in the file")
        if missing:
            shown = ", ".join(map(str, frame.columns[:30])) + (" …" if frame.shape[1] > 30 else "")
            problems[-1] += f" (the file's columns: {shown})"
        if require_value and not columns.value:
            problems.append("no value column is mapped; choose the outcome to optimise (e.g. revenue)")
        if columns.cost and columns.action_cost:
            problems.append(f"both a cost column '{columns.cost}' and constant per-arm costs are given; choose one")
        clashes = [c for c in set(roles.values()) if list(roles.values()).count(c) > 1]
        for col in clashes:
            which = [r for r, c in roles.items() if c == col]
            problems.append(f"column '{col}' is mapped to several roles ({', '.join(which)}); each role needs its own column")

        labels: list[str] = []
        work = frame.copy()
        dropped: dict[str, int] = {}
        if columns.text_as_missing:
            for role in NUMERIC_ROLES:
                col = getattr(columns, role)
                if col and col in present:
                    work[col] = pd.to_numeric(work[col], errors="coerce")
        if columns.drop_incomplete and columns.action in present:
            incomplete, dropped = incomplete_rows(work, columns)
            work = work.loc[~incomplete].reset_index(drop=True)
            if work.empty:
                problems.append(f"every row has a missing arm, value, cost or propensity ({len(frame):,} rows); nothing is left to analyse")
        if columns.action not in missing.values():
            raw_action = work[columns.action]
            na = raw_action.isna()
            if na.any():
                problems.append(f"action column '{columns.action}' has {int(na.sum())} empty values (first at row {int(np.flatnonzero(na)[0]) + 1})")
            action = raw_action.astype(object).where(~na, None).map(lambda v: None if v is None else str(v))
            work[columns.action] = action
            labels = sorted(action.dropna().unique().tolist())
            if len(labels) < min_arms:
                problems.append(
                    f"action column '{columns.action}' has {len(labels)} arm(s) ({', '.join(labels) or 'none'}); "
                    f"an experiment needs at least {min_arms}, including the control"
                )
            if columns.control not in labels:
                problems.append(
                    f"control label '{columns.control}' is not an arm of '{columns.action}'; "
                    f"arms found: {', '.join(labels[:20])}"
                )
            unknown_costs = [a for a in columns.action_cost_map if a not in labels]
            if unknown_costs:
                problems.append(f"constant cost given for unknown arm(s) {', '.join(unknown_costs)}; arms: {', '.join(labels[:20])}")

        for role in ("value", "value_long", "cost"):
            col = getattr(columns, role)
            if col and col not in missing.values():
                values = work[col]
                numeric = pd.to_numeric(values, errors="coerce")
                text = numeric.isna() & values.notna()
                if text.any():
                    problems.append(f"{role} column '{col}' has {int(text.sum())} non-numeric value{'s' if text.sum() > 1 else ''} ({_example(values, text)}); "
                                    "expected numbers, or treat such text as missing")
                nan = values.isna()
                if nan.any():
                    problems.append(f"{role} column '{col}' has {int(nan.sum())} missing values (first at row {int(np.flatnonzero(nan)[0]) + 1}); "
                                    "expected a number in every row, or drop the incomplete rows")
                inf = np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan))
                if inf.any():
                    problems.append(f"{role} column '{col}' has infinite values at {int(inf.sum())} rows")
                if not text.any():
                    work[col] = numeric.astype(float)
                if role == "value" and columns.value_unit is not None and not text.any():
                    if not np.isfinite(columns.value_unit) or columns.value_unit <= 0:
                        problems.append(f"the worth of one unit of '{col}' must be a number > 0, got {columns.value_unit}")
                    else:
                        work[col] = work[col] * float(columns.value_unit)

        if columns.propensity and columns.propensity not in missing.values():
            col = columns.propensity
            values = work[col]
            numeric = pd.to_numeric(values, errors="coerce")
            bad_text = numeric.isna() & values.notna()
            if bad_text.any():
                problems.append(f"propensity column '{col}' has non-numeric values ({_example(values, bad_text)})")
            if values.isna().any():
                problems.append(f"propensity column '{col}' has {int(values.isna().sum())} missing values")
            out_of_range = numeric.notna() & ~((numeric > 0) & (numeric <= 1))
            if out_of_range.any():
                problems.append(
                    f"propensity column '{col}' has {int(out_of_range.sum())} values outside (0, 1] "
                    f"({_example(numeric, out_of_range)}); a logged probability must be > 0 and ≤ 1"
                )
            if not bad_text.any():
                work[col] = numeric.astype(float)

        if columns.id and columns.id not in missing.values():
            ids = work[columns.id]
            dup = ids.duplicated(keep=False) & ids.notna()
            if dup.any():
                examples = ", ".join(map(repr, ids[dup].unique()[:3].tolist()))
                problems.append(f"id column '{columns.id}' has {int(ids.duplicated().sum())} duplicated ids (e.g. {examples}); ids must be unique")
            if ids.isna().any():
                problems.append(f"id column '{columns.id}' has {int(ids.isna().sum())} empty ids")

        features = columns.resolved_features(list(frame.columns))
        unknown = [f for f in features if f not in present]
        if unknown:
            problems.append(f"feature column(s) {', '.join(map(repr, unknown))} not in the file")
        role_overlap = [f for f in features if f in set(roles.values())]
        if role_overlap:
            problems.append(f"feature(s) {', '.join(map(repr, role_overlap))} are also mapped to a role; a feature cannot be the action, outcome or propensity")

        if problems:
            raise UserError(f"the experiment log does not fit the mapping ({len(problems)} problem{'s' if len(problems) > 1 else ''})", problems)

        control = columns.control
        ordered = (control, *[l for l in labels if l != control])
        data_fp = frame_fingerprint(frame)
        mapping_fp = hashlib.sha256(json.dumps(columns.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        fingerprint = hashlib.sha256((data_fp + mapping_fp).encode()).hexdigest()
        return cls(frame=work, columns=columns, labels=ordered, features=tuple(features),
                   fingerprint=fingerprint, data_fingerprint=data_fp, dropped=dropped)

    def arm_summary(self) -> pd.DataFrame:
        """Per arm: n, share, mean value and mean cost (when mapped), control first."""
        frame = pd.DataFrame({"arm": self.action})
        if self.columns.value:
            frame["value"] = self.value
        cost = self.cost
        if cost is not None:
            frame["cost"] = cost
        grouped = frame.groupby("arm", sort=False)
        out = pd.DataFrame({"n": grouped.size()})
        out["share"] = out["n"] / out["n"].sum()
        if "value" in frame:
            out["mean_value"] = grouped["value"].mean()
        if "cost" in frame:
            out["mean_cost"] = grouped["cost"].mean()
        out = out.reindex(list(self.labels))
        out.index.name = "arm"
        return out.reset_index()
