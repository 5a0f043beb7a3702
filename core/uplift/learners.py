"""Uplift models with separate value and cost heads, every offer at once, cross-fitted.

For every non-control arm ``a`` and customer ``x`` the model estimates

    tau_value(x, a) = E[value | x, a] − E[value | x, control]
    tau_cost(x, a)  = E[cost  | x, a] − E[cost  | x, control]

with two heads, never one "net" model.  A constant cost per arm needs no model: its
``tau_cost`` is the constant.  Learners (all on LightGBM bases):

- ``s``, ``t``, ``x``: EconML's ``SLearner``, ``TLearner``, ``XLearner`` (multi-action).
- ``cf``: EconML's ``CausalForestDML`` with LightGBM nuisances.
- ``dr``: the DR-learner (Kennedy, 2023) written out here, because the logged propensity of
  each row must enter its pseudo-outcome and EconML's ``DRLearner`` only takes a propensity
  *model*.  For arm ``a``: ``ψ = μ_a(x) − μ_0(x) + 1[A=a](Y − μ_a(x))/p − 1[A=0](Y − μ_0(x))/p``
  where ``p`` is the probability of the row's logged arm (logged, or cross-fitted estimate),
  clipped at 0.01, and ``μ`` are cross-fitted LightGBM outcome models; ψ is then regressed on x.

Every row's prediction is out-of-fold: K folds stratified by arm; the fold models score the
held-out fold, and new customers are scored by the average of the K fold models.  Optional
bootstrap bagging refits each fold's learner on B resamples (their spread feeds the stability
checks) and optional per-segment models fit one model per lifecycle segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from ..features import lgbm_frame

LEARNERS = {"s": "S-learner", "t": "T-learner", "x": "X-learner", "dr": "DR-learner", "cf": "Causal forest (DML)"}
MIN_ROWS_PER_ARM = 50
DR_CLIP = 0.01

Progress = Callable[[float, str], None]


def tau_columns(labels, control) -> list[str]:
    """Prediction column names in the contract's order: value then cost per non-control arm."""
    arms = [l for l in labels if l != control]
    return [f"tau_value__{a}" for a in arms] + [f"tau_cost__{a}" for a in arms]


def _numeric_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """LightGBM frame → float matrix (category codes, unseen/missing = NaN) + categorical indices."""
    cols, cat_idx = [], []
    for i, col in enumerate(frame.columns):
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy(dtype=float)
            codes[codes < 0] = np.nan
            cols.append(codes)
            cat_idx.append(i)
        else:
            cols.append(values.to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.empty((len(frame), 0)), cat_idx


def check_log(log, min_rows: int = MIN_ROWS_PER_ARM) -> None:
    """Refuse logs no uplift model can learn from, naming every problem at once."""
    problems = []
    counts = pd.Series(log.action).value_counts()
    for label in log.labels:
        n = int(counts.get(label, 0))
        if n < min_rows:
            problems.append(f"arm '{label}' has {n} rows; uplift models need at least {min_rows} per arm")
    value = log.value
    if np.ptp(value) == 0:
        problems.append(f"value column '{log.columns.value}' is constant ({value[0]:g} in every row); there is no effect to learn")
    if log.columns.cost:
        cost = log.cost
        if np.ptp(cost) == 0:
            problems.append(f"cost column '{log.columns.cost}' is constant ({cost[0]:g} in every row); "
                            "give a constant cost per arm instead")
    if not log.features:
        problems.append("no features are mapped; uplift models need at least one pre-treatment column")
    action = pd.Series(log.action, index=log.frame.index)
    for feature in log.features:
        values = log.frame[feature]
        if values.isna().all():
            problems.append(f"feature '{feature}' has no values (all missing); drop it from the features")
            continue
        leak = _leaks_action(values, action)
        if leak:
            problems.append(f"feature '{feature}' {leak}; it was probably recorded after the offer was chosen — drop it")
    if problems:
        raise UserError(f"the log cannot be modelled ({len(problems)} problem{'s' if len(problems) > 1 else ''})", problems)


def _leaks_action(values: pd.Series, action: pd.Series) -> str | None:
    """Describe how ``values`` predicts the arm perfectly, or ``None``."""
    present = values.notna()
    values, action = values[present], action[present]
    if len(values) == 0 or action.nunique() < 2:
        return None
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        ranges = values.groupby(action).agg(["min", "max"]).sort_values("min")
        if len(ranges) >= 2 and (ranges["min"].iloc[1:].to_numpy() > ranges["max"].iloc[:-1].to_numpy()).all():
            return "separates the arms perfectly (each arm has its own range of values)"
        return None
    text = values.astype("string")
    if text.nunique() * 2 > len(text):
        return None  # id-like text: too few rows per level to call it a leak
    arms_per_level = action.groupby(text).nunique()
    if (arms_per_level == 1).all():
        return "determines the arm (every level occurs with a single arm)"
    return None


class _LGBMFactory:
    def __init__(self, params: dict, cat_idx: list[int]):
        self.params = params
        self.cat_idx = cat_idx

    def _categorical(self) -> dict:
        # passed through params: EconML hands LightGBM plain matrices, so the column indices
        # are the only way to keep categoricals native; with none, LightGBM's default applies
        return {"categorical_feature": self.cat_idx} if self.cat_idx else {}

    def regressor(self, **overrides):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**{**self.params, **overrides}, **self._categorical())

    def classifier(self, **overrides):
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**{**self.params, "n_estimators": min(self.params["n_estimators"], 150), **overrides},
                              **self._categorical())


def _fit_effects(kind: str, factory: _LGBMFactory, x: np.ndarray, t: np.ndarray, y: np.ndarray,
                 p: np.ndarray | None, n_arms: int, seed: int):
    """Fit one learner on (x, t, y); return an object whose ``predict(x)`` gives (n × arms−1) effects."""
    import warnings

    with warnings.catch_warnings():
        # LightGBM warns that categorical_feature belongs on its Dataset; the sklearn wrappers
        # that EconML calls pass it through params, which is what we want.
        warnings.simplefilter("ignore", UserWarning)
        return _fit_effects_quietly(kind, factory, x, t, y, p, n_arms, seed)


def _fit_effects_quietly(kind, factory, x, t, y, p, n_arms, seed):
    import warnings

    if kind in ("s", "t", "x"):
        from econml.metalearners import SLearner, TLearner, XLearner

        if kind == "s":
            est = SLearner(overall_model=factory.regressor(), allow_missing=True)
        elif kind == "t":
            est = TLearner(models=factory.regressor(), allow_missing=True)
        else:
            est = XLearner(models=factory.regressor(), propensity_model=factory.classifier(), allow_missing=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(y, t, X=x)
        return _EconMLEffects(est, n_arms)
    if kind == "cf":
        from econml.dml import CausalForestDML

        est = CausalForestDML(model_y=factory.regressor(), model_t=factory.classifier(), discrete_treatment=True,
                              n_estimators=100, min_samples_leaf=20, max_samples=0.45, cv=2, random_state=seed,
                              n_jobs=factory.params.get("n_jobs", 2), allow_missing=True, inference=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(y, t, X=x)
        return _EconMLEffects(est, n_arms)
    if kind == "dr":
        return _DREffects.fit(factory, x, t, y, p, n_arms, seed)
    raise UserError(f"learner '{kind}' is not one of {', '.join(LEARNERS)}")


class _EconMLEffects:
    def __init__(self, est, n_arms: int):
        self.est = est
        self.n_arms = n_arms

    def predict(self, x: np.ndarray) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():
            # EconML warns about NaN inputs; LightGBM routes missing values on purpose.
            warnings.simplefilter("ignore", UserWarning)
            return np.column_stack([np.ravel(self.est.effect(x, T0=0, T1=k)) for k in range(1, self.n_arms)])


class _DREffects:
    """The DR-learner with per-row propensities (see the module docstring)."""

    def __init__(self, finals):
        self.finals = finals

    @classmethod
    def fit(cls, factory, x, t, y, p, n_arms, seed):
        from sklearn.model_selection import StratifiedKFold

        n = len(y)
        mu = np.zeros((n, n_arms))
        pi = np.zeros(n) if p is not None else None
        inner = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
        for train, test in inner.split(x, t):
            for k in range(n_arms):
                rows = train[t[train] == k]
                model = factory.regressor().fit(x[rows], y[rows])
                mu[test, k] = model.predict(x[test])
            if p is None:
                clf = factory.classifier().fit(x[train], t[train])
                proba = clf.predict_proba(x[test])
                pi_test = np.zeros(len(test))
                for j, cls_ in enumerate(clf.classes_):
                    pi_test[t[test] == cls_] = proba[t[test] == cls_, j]
                pi = pi if pi is not None else np.zeros(n)
                pi[test] = pi_test
        pi = np.clip(p if p is not None else pi, DR_CLIP, 1.0)
        residual_over_p = (y - mu[np.arange(n), t]) / pi
        finals = []
        for k in range(1, n_arms):
            psi = mu[:, k] - mu[:, 0] + np.where(t == k, residual_over_p, 0.0) - np.where(t == 0, residual_over_p, 0.0)
            final = factory.regressor(min_child_samples=max(factory.params["min_child_samples"], 100))
            finals.append(final.fit(x, psi))
        return cls(finals)

    def predict(self, x):
        return np.column_stack([f.predict(x) for f in self.finals])


@dataclass(frozen=True)
class FitReport:
    """What one fit did: per head, per segment, per fold and bag, seconds."""

    learner: str
    labels: tuple[str, ...]
    n_rows: int
    seconds: float
    heads: tuple[str, ...]
    folds: int
    bagging: int
    segments: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"learner": self.learner, "labels": list(self.labels), "n_rows": self.n_rows, "seconds": self.seconds,
                "heads": list(self.heads), "folds": self.folds, "bagging": self.bagging, "segments": list(self.segments)}


class UpliftModel:
    """Value and cost uplift for every offer against control, cross-fitted.

    Parameters
    ----------
    learner : {"s", "t", "x", "dr", "cf"}
    folds : int
        Cross-fitting folds (≥ 2).
    n_estimators, learning_rate, num_leaves, min_child_samples : LightGBM base settings.
    bagging : int
        Bootstrap refits per fold (0 = none).
    by_segment : bool
        One model per value of the log's segment column.
    seed : int
    n_jobs : int
        LightGBM threads.

    Attributes (after ``fit``)
    --------------------------
    labels_, control_, treatments_, features_, categories_
    oof_ : DataFrame
        Out-of-fold ``tau_value__L`` / ``tau_cost__L`` for every row of the training log.
    oof_bags_ : dict head → array (bags × n × arms−1), when bagging.
    report_ : FitReport
    """

    def __init__(self, learner: str = "x", folds: int = 5, n_estimators: int = 150, learning_rate: float = 0.035,
                 num_leaves: int = 7, min_child_samples: int = 250, bagging: int = 0, by_segment: bool = False,
                 seed: int = 0, n_jobs: int = 2):
        self.learner = learner
        self.folds = folds
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.bagging = bagging
        self.by_segment = by_segment
        self.seed = seed
        self.n_jobs = n_jobs

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("learner", "folds", "n_estimators", "learning_rate", "num_leaves",
                                              "min_child_samples", "bagging", "by_segment", "seed", "n_jobs")}

    def _validate_params(self) -> None:
        if self.learner not in LEARNERS:
            raise UserError(f"--learner '{self.learner}' is not one of {', '.join(LEARNERS)} ({', '.join(LEARNERS.values())})")
        if not isinstance(self.folds, (int, np.integer)) or self.folds < 2:
            raise UserError(f"--folds must be a whole number ≥ 2, got {self.folds!r}")
        if not isinstance(self.bagging, (int, np.integer)) or self.bagging < 0:
            raise UserError(f"bagging must be a whole number ≥ 0, got {self.bagging!r}")

    def _lgbm_params(self, smallest_arm: int) -> dict:
        # Uplift is a small signal in noisy outcomes: heavily regularised trees.  Leaves of at
        # least `min_child_samples` rows, but never more than an eighth of the smallest arm.
        leaf = int(min(self.min_child_samples, max(20, smallest_arm // 8)))
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_child_samples": leaf, "subsample": 0.8, "subsample_freq": 1,
                "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": self.seed, "n_jobs": self.n_jobs,
                "verbose": -1, "deterministic": True}

    def fit(self, log, propensity: np.ndarray | None = None, progress: Progress | None = None) -> "UpliftModel":
        """Fit on an :class:`core.schema.ExperimentLog`.

        Parameters
        ----------
        log : ExperimentLog
        propensity : array, optional
            Probability of each row's logged arm for the DR-learner; defaults to the log's.
        progress : callable(fraction, message), optional
            Called after every fitted fold with the share done and an estimate of time left.
        """
        from sklearn.model_selection import StratifiedKFold

        self._validate_params()
        check_log(log)
        start = time.perf_counter()
        self.labels_ = tuple(log.labels)
        self.control_ = log.control
        self.treatments_ = tuple(log.treatments)
        self.features_ = tuple(log.features)
        self.cost_mode_ = "column" if log.columns.cost else "constant" if log.columns.action_cost else "none"
        self.action_cost_ = log.columns.action_cost_map
        self.id_column_ = log.columns.id
        frame, self.categories_ = lgbm_frame(log.frame, list(self.features_))
        x, self.cat_idx_ = _numeric_matrix(frame)
        t = pd.Series(log.action).map({l: i for i, l in enumerate(self.labels_)}).to_numpy()
        p = log.propensity if propensity is None else np.asarray(propensity, dtype=float)
        outcomes = {"value": log.value}
        if self.cost_mode_ == "column":
            outcomes["cost"] = log.cost
        segments = {"all": np.arange(log.n)}
        self.segment_column_ = None
        if self.by_segment:
            if not log.columns.segment:
                raise UserError("per-segment models need a segment column; map one (e.g. lifecycle) or turn the option off")
            self.segment_column_ = log.columns.segment
            seg = log.frame[self.segment_column_].astype("string").fillna("(missing)").to_numpy()
            segments = {str(s): np.flatnonzero(seg == s) for s in sorted(pd.unique(seg))}
            for name, rows in segments.items():
                counts = np.bincount(t[rows], minlength=len(self.labels_))
                if counts.min() < MIN_ROWS_PER_ARM:
                    arm = self.labels_[int(np.argmin(counts))]
                    raise UserError(f"segment '{name}' has {int(counts.min())} rows of arm '{arm}'; per-segment models need "
                                    f"at least {MIN_ROWS_PER_ARM} per arm in every segment")

        smallest_arm = int(np.bincount(t, minlength=len(self.labels_)).min()) * (self.folds - 1) // self.folds
        factory = _LGBMFactory(self._lgbm_params(smallest_arm // max(len(segments), 1)), self.cat_idx_)
        n_arms = len(self.labels_)
        bags = max(self.bagging, 1)
        total_steps = len(outcomes) * len(segments) * self.folds * bags
        done = 0
        oof = {head: np.zeros((log.n, n_arms - 1)) for head in outcomes}
        oof_bags = {head: np.zeros((bags, log.n, n_arms - 1)) for head in outcomes} if self.bagging else {}
        self.models_ = {}
        for head, y in outcomes.items():
            for seg_name, seg_rows in segments.items():
                splitter = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
                fold_models = []
                for fold, (train_pos, test_pos) in enumerate(splitter.split(seg_rows, t[seg_rows])):
                    train, test = seg_rows[train_pos], seg_rows[test_pos]
                    rng = np.random.default_rng([self.seed, fold, len(fold_models)])
                    bag_models = []
                    for b in range(bags):
                        rows = train if not self.bagging else rng.choice(train, size=len(train), replace=True)
                        model = _fit_effects(self.learner, factory, x[rows], t[rows], y[rows],
                                             None if p is None else p[rows], n_arms, self.seed + b)
                        effects = model.predict(x[test])
                        if self.bagging:
                            oof_bags[head][b, test] = effects
                        oof[head][test] += effects / bags
                        bag_models.append(model)
                        done += 1
                        if progress:
                            elapsed = time.perf_counter() - start
                            left = elapsed / done * (total_steps - done)
                            progress(done / total_steps, f"{head} head · segment {seg_name} · fold {fold + 1}/{self.folds}"
                                     + (f" · bag {b + 1}/{bags}" if self.bagging else "") + f" · about {left:.0f} s left")
                    fold_models.append(bag_models)
                self.models_[(head, seg_name)] = fold_models
        self.oof_ = self._to_frame(oof, log.n)
        self.oof_bags_ = oof_bags
        self.report_ = FitReport(self.learner, self.labels_, log.n, time.perf_counter() - start, tuple(outcomes),
                                 self.folds, self.bagging, tuple(segments))
        return self

    def _to_frame(self, effects: dict[str, np.ndarray], n: int) -> pd.DataFrame:
        out = {}
        for head in ("value", "cost"):
            for k, arm in enumerate(self.treatments_):
                if head in effects:
                    out[f"{head}__{arm}"] = effects[head][:, k]
                elif head == "cost":
                    out[f"{head}__{arm}"] = np.full(n, float(self.action_cost_.get(arm, 0.0)) if self.cost_mode_ == "constant" else np.nan)
        frame = pd.DataFrame({f"tau_{k}": v for k, v in out.items()})
        return frame[tau_columns(self.labels_, self.control_)]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score new customers: the average of the fold (and bag) models.

        Missing feature columns are an error naming them; unseen category levels are treated
        as missing values.
        """
        if not hasattr(self, "models_"):
            raise UserError("the model is not fitted yet")
        missing = [f for f in self.features_ if f not in frame.columns]
        if missing:
            raise UserError(f"feature column(s) {', '.join(map(repr, missing))} missing from the data to score; "
                            f"the model was fitted on {', '.join(self.features_)}")
        matrix, _ = lgbm_frame(frame, list(self.features_), self.categories_)
        x, _ = _numeric_matrix(matrix)
        n = len(frame)
        effects = {}
        if self.segment_column_ is not None:
            if self.segment_column_ not in frame.columns:
                raise UserError(f"segment column '{self.segment_column_}' missing from the data to score")
            seg = frame[self.segment_column_].astype("string").fillna("(missing)").to_numpy()
        for (head, seg_name), fold_models in self.models_.items():
            rows = np.arange(n) if seg_name == "all" else np.flatnonzero(seg == seg_name)
            if len(rows) == 0:
                continue
            models = [m for bag in fold_models for m in bag]
            pred = np.mean([m.predict(x[rows]) for m in models], axis=0)
            effects.setdefault(head, np.full((n, len(self.treatments_)), np.nan))[rows] = pred
        if self.segment_column_ is not None:
            unknown = sorted(set(seg) - {s for _, s in self.models_})
            if unknown:
                raise UserError(f"segment value(s) {', '.join(map(repr, unknown[:5]))} of '{self.segment_column_}' were not "
                                "seen when the per-segment models were fitted")
        return self._to_frame(effects, n)
