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
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
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
class OverlapResult:
    """Overlap diagnostics (see module docstring).  ``propensity`` is the probability of each
    row's logged arm; ``matrix`` the full (n × arms) estimate when one was made."""

    propensity_source: str
    clip: float
    labels: tuple[str, ...]
    action: np.ndarray = field(repr=False)
    propensity: np.ndarray = field(repr=False)
    matrix: np.ndarray | None = field(default=None, repr=False)
    estimated_for_logged: np.ndarray | None = field(default=None, repr=False)

    @property
    def share_below_clip(self) -> float:
        return float(np.mean(self.propensity < self.clip))

    def _rows(self, label):
        return self.propensity[self.action == label]

    @property
    def min_propensity(self) -> dict[str, float]:
        return {l: float(self._rows(l).min()) if (self.action == l).any() else float("nan") for l in self.labels}

    @property
    def ess(self) -> dict[str, float]:
        return {l: ess(1.0 / self._rows(l)) for l in self.labels}

    @property
    def n_by_arm(self) -> dict[str, int]:
        return {l: int((self.action == l).sum()) for l in self.labels}

    @property
    def ess_ratio(self) -> dict[str, float]:
        n = self.n_by_arm
        return {l: (e / n[l] if n[l] else float("nan")) for l, e in self.ess.items()}

    @property
    def share_below_clip_by_arm(self) -> dict[str, float]:
        return {l: float(np.mean(self._rows(l) < self.clip)) if (self.action == l).any() else float("nan") for l in self.labels}

    def clip_table(self, candidates=CLIP_CANDIDATES) -> pd.DataFrame:
        """For each clip ε: share of rows clipped, ESS per arm and its smallest ratio to n."""
        rows = []
        for eps in (0.0, *candidates):
            row = {"clip": eps, "share_clipped": float(np.mean(self.propensity < eps))}
            ratios = []
            for l in self.labels:
                p = self._rows(l)
                value = ess(1.0 / np.maximum(p, eps)) if len(p) else 0.0
                row[f"ess__{l}"] = value
                ratios.append(value / len(p) if len(p) else 0.0)
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

    def disagreement(self, factor: float = DISAGREEMENT_FACTOR) -> pd.DataFrame:
        """Rows whose logged and estimated propensities differ by more than ``factor``×
        (a logging bug, or a policy using information the features do not have)."""
        if self.estimated_for_logged is None or self.propensity_source != "logged":
            return pd.DataFrame(columns=["row", "arm", "logged", "estimated", "ratio"])
        ratio = self.propensity / self.estimated_for_logged
        bad = (ratio > factor) | (ratio < 1.0 / factor)
        idx = np.flatnonzero(bad)
        return pd.DataFrame({"row": idx + 1, "arm": self.action[idx], "logged": self.propensity[idx],
                             "estimated": self.estimated_for_logged[idx], "ratio": ratio[idx]})

    def to_dict(self) -> dict:
        out = {
            "propensity_source": self.propensity_source, "clip": self.clip,
            "share_below_clip": self.share_below_clip, "min_propensity": self.min_propensity, "ess": self.ess,
            "n": self.n_by_arm, "ess_ratio": self.ess_ratio, "share_below_clip_by_arm": self.share_below_clip_by_arm,
            "suggested_clip": self.suggested_clip,
        }
        if self.estimated_for_logged is not None and self.propensity_source == "logged":
            out["disagreement_rows"] = int(len(self.disagreement()))
        return out


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
    if not (0 < clip < 1):
        raise UserError(f"--clip must be between 0 and 1 (exclusive), got {clip}")
    action = log.action
    labels = tuple(log.labels)
    picked = None
    if estimated is not None:
        estimated = np.asarray(estimated, dtype=float)
        if estimated.shape != (log.n, len(labels)):
            raise UserError(f"estimated propensities have shape {estimated.shape}; expected ({log.n}, {len(labels)})")
        index = pd.Series(action).map({l: i for i, l in enumerate(labels)}).to_numpy()
        picked = estimated[np.arange(log.n), index]
    if log.propensity is not None:
        return OverlapResult("logged", clip, labels, action, log.propensity, estimated, picked)
    if picked is None:
        raise UserError("the log has no propensity column; estimate propensities first (estimate_propensities)")
    return OverlapResult("estimated", clip, labels, action, picked, estimated, None)
