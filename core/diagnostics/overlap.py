"""Propensity overlap: can every arm be evaluated on every kind of customer?

Propensities are the logged ones, or cross-fitted multinomial LightGBM estimates when none
are logged (every output says which).  Reported per arm: the minimum propensity of the rows
logged with it, the share of rows below the clip ε (default 0.01) and the effective sample size
ESS = (Σw)² / Σw² of the inverse-propensity weights w = 1/p of its rows (the weights of the
"send everyone this arm" policy).  Clipping is explicit: a table shows what each clip would
cost, and a clip is suggested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError, setting
from ..features import lgbm_frame

DEFAULT_CLIP = 0.01
CLIP_CANDIDATES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
MIN_ESS_RATIO = 0.3
DISAGREEMENT_FACTOR = 3.0


def ess(weights: np.ndarray) -> float:
    """Effective sample size (Σw)² / Σw² (0 for no weight)."""
    w = np.asarray(weights, dtype=float)
    total = w.sum()
    squares = (w**2).sum()
    return float(total**2 / squares) if squares > 0 else 0.0


def estimate_propensities(
    log,
    folds: int = 5,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Cross-fitted P(arm | features): an (n × arms) matrix, columns in ``log.labels`` order.

    Each row's probabilities come from a multinomial LightGBM fitted on the other folds, so a
    row never scores itself.  Estimates are floored at 1e-6.
    """
    # deferred: lightgbm and scikit-learn are slow to import
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedKFold

    if not log.features:
        raise UserError("propensities cannot be estimated without features; map pre-treatment feature columns or a logged propensity")
    labels = list(log.labels)
    y = pd.Series(log.action).map({l: i for i, l in enumerate(labels)}).to_numpy()
    smallest = np.bincount(y, minlength=len(labels)).min()
    folds = int(max(2, min(folds, smallest)))
    if smallest < 2:
        raise UserError(f"arm '{labels[int(np.argmin(np.bincount(y, minlength=len(labels))))]}' has fewer than 2 rows; propensities cannot be estimated")
    x, _ = lgbm_frame(log.frame, list(log.features))
    out = np.zeros((len(y), len(labels)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(x, y)):
        if progress:
            progress(k / folds, f"propensity model, fold {k + 1} of {folds}")
        model = LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=31, min_child_samples=50,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                               n_jobs=2, verbose=-1)
        model.fit(x.iloc[train], y[train])
        proba = model.predict_proba(x.iloc[test])
        out[np.ix_(test, model.classes_)] = proba
    if progress:
        progress(1.0, "propensity model done")
    out = np.maximum(out, 1e-6)
    return out / out.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class OverlapSums:
    """Everything the overlap diagnostics report, from sums per arm (what an engine computes):
    rows, smallest propensity, rows below the clip, and for each clip ε of the clip table (0 =
    none) Σ 1/max(p, ε) and Σ 1/max(p, ε)² and the rows below ε."""

    propensity_source: str
    clip: float
    labels: tuple[str, ...]
    n: dict[str, int]
    min_p: dict[str, float]
    below_clip: dict[str, int]
    clip_sums: dict[float, dict[str, tuple[float, float]]]
    below_eps: dict[float, int]
    disagreement_rows: int | None = None

    def __add__(self, other: "OverlapSums") -> "OverlapSums":
        return OverlapSums(
            self.propensity_source, self.clip, self.labels, {l: self.n[l] + other.n[l] for l in self.labels},
            {l: float(np.fmin(self.min_p[l], other.min_p[l])) for l in self.labels},
            {l: self.below_clip[l] + other.below_clip[l] for l in self.labels},
            {eps: {l: (self.clip_sums[eps][l][0] + other.clip_sums[eps][l][0],
                       self.clip_sums[eps][l][1] + other.clip_sums[eps][l][1]) for l in self.labels}
             for eps in self.clip_sums},
            {eps: self.below_eps[eps] + other.below_eps[eps] for eps in self.below_eps},
            None if self.disagreement_rows is None else self.disagreement_rows + other.disagreement_rows)

    @staticmethod
    def epsilons() -> tuple[float, ...]:
        return (0.0, *CLIP_CANDIDATES)

    @property
    def share_below_clip(self) -> float:
        return sum(self.below_clip.values()) / sum(self.n.values())

    @property
    def min_propensity(self) -> dict[str, float]:
        return {l: self.min_p[l] if self.n[l] else float("nan") for l in self.labels}

    @staticmethod
    def _ess(s1: float, s2: float) -> float:
        return float(s1**2 / s2) if s2 > 0 else 0.0

    @property
    def ess(self) -> dict[str, float]:
        return {l: self._ess(*self.clip_sums[0.0][l]) for l in self.labels}

    @property
    def n_by_arm(self) -> dict[str, int]:
        return dict(self.n)

    @property
    def ess_ratio(self) -> dict[str, float]:
        return {l: (e / self.n[l] if self.n[l] else float("nan")) for l, e in self.ess.items()}

    @property
    def share_below_clip_by_arm(self) -> dict[str, float]:
        return {l: self.below_clip[l] / self.n[l] if self.n[l] else float("nan") for l in self.labels}

    def clip_table(self) -> pd.DataFrame:
        """For each clip ε: share of rows clipped, ESS per arm and its smallest ratio to n."""
        rows = []
        total = sum(self.n.values())
        for eps in self.epsilons():
            row = {"clip": eps, "share_clipped": self.below_eps[eps] / total}
            ratios = []
            for l in self.labels:
                value = self._ess(*self.clip_sums[eps][l]) if self.n[l] else 0.0
                row[f"ess__{l}"] = value
                ratios.append(value / self.n[l] if self.n[l] else 0.0)
            row["min_ess_ratio"] = float(min(ratios))
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def suggested_clip(self) -> float:
        """Smallest clip (0 = none) whose smallest ESS/n over arms reaches ``MIN_ESS_RATIO``;
        the largest candidate when none does."""
        table = self.clip_table()
        ok = table[table["min_ess_ratio"] >= MIN_ESS_RATIO]
        return float(ok["clip"].iloc[0]) if len(ok) else float(table["clip"].iloc[-1])

    def to_dict(self) -> dict:
        out = {
            "propensity_source": self.propensity_source, "clip": self.clip,
            "share_below_clip": self.share_below_clip, "min_propensity": self.min_propensity, "ess": self.ess,
            "n": self.n_by_arm, "ess_ratio": self.ess_ratio, "share_below_clip_by_arm": self.share_below_clip_by_arm,
            "suggested_clip": self.suggested_clip,
        }
        if self.disagreement_rows is not None:
            out["disagreement_rows"] = self.disagreement_rows
        return out


def disagrees(logged: np.ndarray, estimated: np.ndarray, factor: float = DISAGREEMENT_FACTOR) -> np.ndarray:
    """Rows whose logged and estimated propensities differ by more than ``factor``×."""
    ratio = logged / estimated
    return (ratio > factor) | (ratio < 1.0 / factor)


def overlap_sums(action, propensity, labels, clip: float, source: str,
                 estimated_for_logged: np.ndarray | None = None) -> OverlapSums:
    """The partial of the overlap diagnostics over a batch of rows (``propensity``: of each
    row's logged arm; ``estimated_for_logged``: the estimate of it, to count disagreements)."""
    action, propensity = np.asarray(action, dtype=object), np.asarray(propensity, dtype=float)
    rows = {l: propensity[action == l] for l in labels}
    clip_sums = {eps: {l: (float((1.0 / np.maximum(p, eps)).sum()), float((1.0 / np.maximum(p, eps) ** 2).sum()))
                       for l, p in rows.items()} for eps in OverlapSums.epsilons()}
    return OverlapSums(source, clip, tuple(labels), {l: len(p) for l, p in rows.items()},
                       {l: float(p.min()) if len(p) else float("nan") for l, p in rows.items()},
                       {l: int((p < clip).sum()) for l, p in rows.items()}, clip_sums,
                       {eps: int((propensity < eps).sum()) for eps in OverlapSums.epsilons()},
                       None if estimated_for_logged is None else int(disagrees(propensity, estimated_for_logged).sum()))


ESTIMATED = "__pe"  # the column an estimated propensity of the logged arm is attached as


def logged_arm(matrix: np.ndarray, action, labels) -> np.ndarray:
    """Each row's probability of its logged arm, from an (n × arms) matrix in ``labels`` order."""
    index = pd.Series(np.asarray(action, dtype=object)).map({l: i for i, l in enumerate(labels)}).to_numpy()
    return np.asarray(matrix)[np.arange(len(index)), index]


def check_clip(clip: float) -> None:
    if not (0 < clip < 1):
        raise UserError(f"{setting('clip')} must be between 0 and 1 (exclusive), got {clip}")


def overlap_of(engine, log, clip: float, *, estimated: bool, check_logged: bool = False) -> OverlapSums:
    """The :class:`OverlapSums` of a log wherever its rows are: from the logged propensities, or
    from the estimated ones attached as :data:`ESTIMATED` (:func:`with_estimated_propensities`);
    with ``check_logged`` the rows where the two disagree are counted too."""
    check_clip(clip)
    labels = tuple(log.labels)
    source = "estimated" if estimated else "logged"

    def partial(batch):
        guess = batch.frame[ESTIMATED].to_numpy(dtype=float) if (estimated or check_logged) else None
        p = guess if estimated else batch.propensity
        return overlap_sums(batch.action, p, labels, clip, source, guess if check_logged and not estimated else None)

    return engine.reduce(log, partial)


def estimated_propensity_columns(local, folds: int, seed: int, progress=None, matrix_columns: bool = False) -> dict:
    """Cross-fitted propensity estimates of an in-memory log, as columns to attach: the logged
    arm's as :data:`ESTIMATED`, and with ``matrix_columns`` every arm's as ``__pm__<j>``
    (``log.labels`` order)."""
    matrix = estimate_propensities(local, folds=folds, seed=seed, progress=progress)
    arrays = {ESTIMATED: logged_arm(matrix, local.action, local.labels)}
    if matrix_columns:
        arrays.update({f"__pm__{j}": matrix[:, j] for j in range(matrix.shape[1])})
    return arrays


def with_estimated_propensities(engine, log, folds: int, seed: int, progress=None, matrix_columns: bool = False):
    """The log with :func:`estimated_propensity_columns` attached (fitted on this machine)."""
    local = engine.collect(log, why="propensities are estimated")
    return engine.attach(log, estimated_propensity_columns(local, folds, seed, progress, matrix_columns))


@dataclass(frozen=True)
class OverlapResult:
    """Overlap diagnostics (see module docstring).  ``propensity`` is the probability of each
    row's logged arm; ``matrix`` the full (n × arms) estimate when one was made.  The numbers
    come from :class:`OverlapSums` of the rows (:attr:`sums`), as on the Spark engine."""

    propensity_source: str
    clip: float
    labels: tuple[str, ...]
    action: np.ndarray = field(repr=False)
    propensity: np.ndarray = field(repr=False)
    matrix: np.ndarray | None = field(default=None, repr=False)
    estimated_for_logged: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def sums(self) -> OverlapSums:
        checked = self.estimated_for_logged is not None and self.propensity_source == "logged"
        return overlap_sums(self.action, self.propensity, self.labels, self.clip, self.propensity_source,
                            self.estimated_for_logged if checked else None)

    share_below_clip = property(lambda self: self.sums.share_below_clip)
    min_propensity = property(lambda self: self.sums.min_propensity)
    ess = property(lambda self: self.sums.ess)
    n_by_arm = property(lambda self: self.sums.n_by_arm)
    ess_ratio = property(lambda self: self.sums.ess_ratio)
    share_below_clip_by_arm = property(lambda self: self.sums.share_below_clip_by_arm)
    suggested_clip = property(lambda self: self.sums.suggested_clip)

    def clip_table(self) -> pd.DataFrame:
        return self.sums.clip_table()

    def disagreement(self, factor: float = DISAGREEMENT_FACTOR) -> pd.DataFrame:
        """Rows whose logged and estimated propensities differ by more than ``factor``×
        (a logging bug, or a policy using information the features do not have)."""
        if self.estimated_for_logged is None or self.propensity_source != "logged":
            return pd.DataFrame(columns=["row", "arm", "logged", "estimated", "ratio"])
        ratio = self.propensity / self.estimated_for_logged
        idx = np.flatnonzero(disagrees(self.propensity, self.estimated_for_logged, factor))
        return pd.DataFrame({"row": idx + 1, "arm": self.action[idx], "logged": self.propensity[idx],
                             "estimated": self.estimated_for_logged[idx], "ratio": ratio[idx]})

    def to_dict(self) -> dict:
        return self.sums.to_dict()


def overlap(log, clip: float = DEFAULT_CLIP, estimated: np.ndarray | None = None) -> OverlapResult:
    """Overlap of ``log``, from its logged propensities or from ``estimated`` (n × arms).

    Parameters
    ----------
    log : core.schema.ExperimentLog
    clip : float
        ε for ``share_below_clip``; 0 < ε < 1.
    estimated : array (n × arms), optional
        Cross-fitted estimates (:func:`estimate_propensities`).  Required when the log has no
        propensity column; when it has one, used to flag disagreeing rows.
    """
    check_clip(clip)
    action = log.action
    labels = tuple(log.labels)
    picked = None
    if estimated is not None:
        estimated = np.asarray(estimated, dtype=float)
        if estimated.shape != (log.n, len(labels)):
            raise UserError(f"estimated propensities have shape {estimated.shape}; expected ({log.n}, {len(labels)})")
        picked = logged_arm(estimated, action, labels)
    if log.propensity is not None:
        return OverlapResult("logged", clip, labels, action, log.propensity, estimated, picked)
    if picked is None:
        raise UserError("the log has no propensity column; estimate propensities first (estimate_propensities)")
    return OverlapResult("estimated", clip, labels, action, picked, estimated, None)
