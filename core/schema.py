"""The experiment log: a column mapping and a validated frame with a content fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd

from .errors import UserError, setting
from .validation import (NUMERIC_ROLES, check_rows, duplicated_ids, finish_rows, incomplete_rows, log_problems,  # noqa: F401
                         prepare_rows)

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
            raise UserError(f"{setting('action_cost')} entry '{part}' is not of the form LABEL=AMOUNT")
        label, amount = part.rsplit("=", 1)
        try:
            value = float(amount)
        except ValueError:
            raise UserError(f"{setting('action_cost')} amount '{amount}' for arm '{label}' is not a number") from None
        if not np.isfinite(value) or value < 0:
            raise UserError(f"{setting('action_cost')} amount for arm '{label}' must be a finite number ≥ 0, got {amount}")
        out[label.strip()] = value
    if not out:
        raise UserError(f"{setting('action_cost')} is empty; expected LABEL=AMOUNT pairs such as coupon=2.5,email=0.1")
    return out


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame: column names, dtypes and every value, not row order-free."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


class ArmLabels:
    """The control and the offers of a log that has ``columns`` and ``labels`` (control first)."""

    @property
    def control(self) -> str:
        return self.columns.control

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.labels[1:]


@dataclass(frozen=True)
class ExperimentLog(ArmLabels):
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
    row_positions : array of int, optional
        For a batch of a larger log (:meth:`of_batch`): each row's position in the whole log.
    """

    frame: pd.DataFrame = field(repr=False)
    columns: ColumnMap
    labels: tuple[str, ...]
    features: tuple[str, ...]
    fingerprint: str
    data_fingerprint: str
    dropped: dict = field(default_factory=dict)
    row_positions: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_batch(cls, frame: pd.DataFrame, columns: ColumnMap, labels, features, positions: np.ndarray) -> "ExperimentLog":
        """One batch of rows of a log already validated as a whole (an engine's batch): the
        same conversions as :meth:`from_frame`, no checks.  ``labels`` and ``features`` are the
        whole log's; ``positions`` the rows' positions in it."""
        work, _ = prepare_rows(frame, columns)
        return cls(frame=finish_rows(work, columns), columns=columns, labels=tuple(labels), features=tuple(features),
                   fingerprint="", data_fingerprint="", row_positions=np.asarray(positions))

    def with_columns(self, arrays: Mapping[str, np.ndarray]) -> "ExperimentLog":
        """The same log with per-row arrays added as columns (computed on this machine: fitted
        propensities, reward models …); they are not features."""
        return replace(self, frame=self.frame.assign(**{k: np.asarray(v) for k, v in arrays.items()}))

    @property
    def positions(self) -> np.ndarray:
        """Each row's position in the log (files in name order, rows in file order, after
        incomplete rows are left out)."""
        return np.arange(self.n) if self.row_positions is None else self.row_positions

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
        """The id column, or the row positions when no id is mapped."""
        if self.columns.id:
            return self.frame[self.columns.id].to_numpy()
        return self.positions

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
        work, dropped = prepare_rows(frame, columns)
        file_columns = list(frame.columns)
        duplicates = (0, [])
        if columns.id and columns.id in work.columns:
            duplicates = duplicated_ids(work[columns.id])
        problems = log_problems(columns, file_columns, check_rows(work, columns), duplicates,
                                require_value=require_value, min_arms=min_arms, rows_in_file=len(frame))
        if problems:
            raise UserError(f"the experiment log does not fit the mapping ({len(problems)} problem{'s' if len(problems) > 1 else ''})", problems)
        work = finish_rows(work, columns)
        labels = sorted(work[columns.action].dropna().unique().tolist())
        features = columns.resolved_features(file_columns)

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
