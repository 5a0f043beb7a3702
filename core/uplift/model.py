"""Uplift models with separate value and cost heads, every offer at once, cross-fitted.

For every non-control arm ``a`` and customer ``x`` the model estimates

    tau_value(x, a) = E[value | x, a] − E[value | x, control]
    tau_cost(x, a)  = E[cost  | x, a] − E[cost  | x, control]

with two heads, never one "net" model.  A constant cost per arm needs no model: its
``tau_cost`` is the constant.  Learners (all on LightGBM bases):

- ``s``, ``t``, ``x``, ``dr``: on the native engine (:mod:`core.uplift.native`: features binned
  once, per-head complexity search with early stopping, folds in parallel threads); with
  ``engine="econml"`` the S/T/X-learners run through EconML's ``SLearner``, ``TLearner``,
  ``XLearner`` instead (the reference the native X-learner is tested against).
- ``cf``: EconML's ``CausalForestDML`` with LightGBM nuisances.
- ``dr``: the DR-learner (Kennedy, 2023).  Native: over the rows of arm ``a`` and the control,
  ``ψ = μ_a(x) − μ_0(x) + 1[A=a](Y − μ_a(x))/q − 1[A=0](Y − μ_0(x))/(1 − q)`` with cross-fitted
  outcome models ``μ`` and ``q`` the cross-fitted probability of ``a`` among those rows (a
  logged propensity gives only the logged arm's probability, and ``q`` needs both); ψ is then
  regressed on x.  The EconML-engine reference (``_DREffects``) keeps the earlier form over all
  rows with the logged propensity of each row's arm.
- ``auto`` (the default): all of the above in one pass (they share the outcome models) and the
  one with the lowest doubly robust loss on out-of-fold predictions is kept; near-ties go to
  the most stable (:mod:`core.evaluation.selection`).  The causal forest is scored only on
  logs of up to ``AUTO_CF_MAX_ROWS`` rows (it alone would take minutes on larger ones).

Every row's prediction is out-of-fold: K folds stratified by arm; the fold models score the
held-out fold, and new customers are scored by the average of the K fold models.  Optional
bootstrap bagging refits each fold's learner on B resamples (their spread feeds the stability
checks) and optional per-segment models fit one model per lifecycle segment.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from ..features import lgbm_frame

LEARNERS = {"s": "S-learner", "t": "T-learner", "x": "X-learner", "dr": "DR-learner", "cf": "Causal forest (DML)",
            "auto": "Auto (best of S/T/X/DR/CF)", "drm": "Direct ranking (DRM)",
            "cdrm": "Constrained direct ranking"}
LEARNER_CHOICES = ["auto", "x", "t", "s", "dr", "cf", "drm", "cdrm"]  # the order the app offers them in
RANKERS = ("drm", "cdrm")  # one learned score per offer (core.uplift.direct_ranking), effects per score bin
TUNING = {"auto": "Chosen from the data", "fixed": "One fixed, regularised setting"}
MIN_ROWS_PER_ARM = 50
AUTO_CANDIDATES = ("s", "t", "x", "dr", "cf")
AUTO_CF_MAX_ROWS = 2_000
AUTO_SELECT_ROWS = 100_000  # larger logs: candidates are compared on a random sample this size
PROBE_ROWS = 1_000
DR_CLIP = 0.01

Progress = Callable[[float, str], None]


def model_title(key: str, model=None) -> str:
    """A fitted model's name for people: "Auto → X-learner" for auto, else the learner's name."""
    if key == "auto" and model is not None and getattr(model, "learner_", "auto") != "auto":
        return f"Auto → {LEARNERS[model.learner_]}"
    return LEARNERS.get(key, key)


def tuning_frame(models: dict) -> pd.DataFrame:
    """One row per fitted model, head and fold: the LightGBM complexity used."""
    rows = []
    for key, model in models.items():
        for head, info in getattr(model.report_, "tuning", {}).items():
            for fold, config in enumerate(info.get("per_fold", []), start=1):
                rows.append({"model": model_title(key, model), "head": head, "fold": fold, "complexity": config})
    return pd.DataFrame(rows, columns=["model", "head", "fold", "complexity"])


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


def _probe_rows(rows: np.ndarray, seed: int) -> np.ndarray:
    """A fixed sample of customers every fold model scores (fold-to-fold stability)."""
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(rows, size=min(PROBE_ROWS, len(rows)), replace=False))


def _tuning_summary(configs: list[str], tuned: bool, fixed: dict | None) -> dict:
    from .native import PATIENCE, SEARCH

    if not tuned:
        keep = ("num_leaves", "learning_rate", "min_child_samples", "reg_lambda", "subsample", "colsample_bytree")
        return {"mode": "fixed", "chosen": "fixed", "per_fold": configs,
                "params": {**{k: fixed["regressor"][k] for k in keep if k in fixed["regressor"]},
                           "n_estimators": fixed["rounds"]}}
    chosen = max(set(configs), key=lambda c: (configs.count(c), -list(SEARCH).index(c)))
    return {"mode": "auto", "search": list(SEARCH), "per_fold": configs, "chosen": chosen,
            "params": {**SEARCH[chosen], "n_estimators": f"early stopping (patience {PATIENCE})"}}


def _native_propensity(data, t, train, test, probe_rows, wanted, tuned, seed, fold, bag, bootstrap, fixed, step):
    """Phase 1 of a training fold: halves, bootstrap weights, the propensity classifiers and
    their predictions (made here once: phase 2's tasks of the two heads run concurrently)."""
    from .native import CLIP, fit_propensity, split_halves

    x = data.x
    n_arms = int(t.max()) + 1
    halves = split_halves(train, t, [seed, fold, bag])
    weight = None
    if bootstrap:  # a bootstrap refit: multinomial counts of the training rows as weights
        rng = np.random.default_rng([seed, fold, bag, 1])
        weight = np.zeros(len(t))
        weight[train] = rng.multinomial(len(train), np.full(len(train), 1.0 / len(train)))
    step("propensity")
    fit, g_cross = None, None
    if tuned or len(wanted) > 1 or "x" in wanted or "dr" in wanted:
        fit = fit_propensity(data, t, train, halves, tuned=tuned, seed=seed, cross="dr" in wanted,
                             fixed_params=fixed and fixed["classifier"], rounds=fixed and fixed["classifier_rounds"])
        if "dr" in wanted:
            in_a = np.isin(train, halves[0])
            g_cross = np.clip(np.column_stack([m.predict_cross(x, train, in_a) for m in fit.models]), CLIP, 1 - CLIP)
    g_test = fit.predict(x[test]) if fit else np.full((len(test), n_arms - 1), 0.5)
    g_probe = fit.predict(x[probe_rows]) if fit and len(wanted) > 1 else None
    return {"halves": halves, "weight": weight, "propensity": fit, "g_cross": g_cross, "g_test": g_test,
            "g_probe": g_probe}


def _native_head(data, t, y, head, test, wanted, tuned, seed, fixed, probe_rows, fold_state, step):
    """Phase 2: one head of one training fold, every wanted learner; test-fold predictions."""
    from .native import fit_head

    x = data.x
    g_test = fold_state["g_test"]
    fit = fit_head(data, y, t, fold_state["halves"], wanted, tuned=tuned, seed=seed, g_cross=fold_state["g_cross"],
                   fixed_params=fixed and fixed["regressor"], rounds=fixed and fixed["rounds"],
                   weight=fold_state["weight"], step=lambda text: step(f"{head} head · {text}"))
    # the outcome predictions feed auto's selection (and the T-learner); one other learner skips them
    mu = fit.outcomes(x[test]) if len(wanted) > 1 or wanted == ["t"] else None
    out = {"fit": fit, "q": g_test, "mu": mu, "effects": {name: fit.effects(name, x[test], g_test, mu) for name in wanted},
           "probe": {}}
    if head == "value" and len(wanted) > 1:  # fold-to-fold stability, for auto's comparison
        out["probe"] = {name: fit.effects(name, x[probe_rows], fold_state["g_probe"]) for name in wanted}
    return out


class _Progress:
    """Progress of a fit: workers count steps, the calling thread reports them (Streamlit's
    widgets may only be touched from the script's own thread)."""

    def __init__(self, callback: Progress | None, start: float):
        self.callback = callback
        self.start = start
        self.total = 1
        self.done = 0
        self.message = ""
        self.lock = threading.Lock()
        self.owner = threading.get_ident()

    def plan(self, total: int) -> None:
        self.total, self.done = max(int(total), 1), 0

    def step(self, message: str) -> None:
        with self.lock:
            self.done += 1
            self.message = message
        if threading.get_ident() == self.owner:
            self.report()

    def report(self) -> None:
        if self.callback is None or self.done == 0:
            return
        with self.lock:
            done, message = min(self.done, self.total), self.message
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.total - done)
        self.callback(done / self.total, f"{message} · about {left:.0f} s left")

    def wait(self, pool, fn, tasks) -> list:
        """Run ``fn`` over ``tasks`` in ``pool``, reporting progress until all are done."""
        from concurrent.futures import wait

        if pool is None:  # one worker: run inline
            return [fn(task) for task in tasks]
        futures = [pool.submit(fn, task) for task in tasks]
        pending = futures
        while pending:
            _, pending = wait(pending, timeout=0.25)
            self.report()
        return [f.result() for f in futures]


@dataclass(frozen=True)
class FitReport:
    """What one fit did: per head, per segment, per fold and bag, seconds; the tuning choice
    per head and, for ``auto``, the learner selection."""

    learner: str
    labels: tuple[str, ...]
    n_rows: int
    seconds: float
    heads: tuple[str, ...]
    folds: int
    bagging: int
    segments: tuple[str, ...]
    tuning: dict = field(default_factory=dict)
    selection: dict | None = None
    ranking: dict | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {"learner": self.learner, "labels": list(self.labels), "n_rows": self.n_rows, "seconds": self.seconds,
               "heads": list(self.heads), "folds": self.folds, "bagging": self.bagging, "segments": list(self.segments),
               "tuning": self.tuning}
        if self.selection is not None:
            chosen = next(c for c in self.selection["candidates"] if c["learner"] == self.selection["chosen"])
            out.update(chosen={"learner": self.selection["chosen"], "params": chosen["params"]},
                       criterion=self.selection["criterion"], candidates=self.selection["candidates"],
                       reason=self.selection["reason"], skipped=self.selection["skipped"])
        if self.ranking is not None:
            out["ranking"] = self.ranking
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def _compact(models: dict) -> None:
    """Drop from native fold models what their learner does not need to predict."""
    for fold_models in models.values():
        for bag in fold_models:
            for m in bag:
                if isinstance(m, _NativeEffects):
                    m.head_fit.drop_except(m.learner)
                    if m.learner != "x":
                        m.propensity_fit = None


class _NativeEffects:
    """One fold (and bag) of a native-engine learner: ``predict(x)`` gives (n × arms−1) effects."""

    def __init__(self, head_fit, propensity_fit, learner: str):
        self.head_fit = head_fit
        self.propensity_fit = propensity_fit
        self.learner = learner

    def predict(self, x: np.ndarray) -> np.ndarray:
        g = self.propensity_fit.predict(x) if self.learner == "x" else None
        return self.head_fit.effects(self.learner, x, g)


class UpliftModel:
    """Value and cost uplift for every offer against control, cross-fitted.

    Parameters
    ----------
    learner : {"auto", "s", "t", "x", "dr", "cf"}
        ``auto`` fits every candidate in one pass and keeps the one with the lowest doubly
        robust loss (:mod:`core.evaluation.selection`).
    folds : int
        Cross-fitting folds (≥ 2).
    tuning : {"auto", "fixed"}
        ``auto``: per head and fold, the LightGBM complexity from a small search with early
        stopping (:mod:`core.uplift.native`).  ``fixed``: the settings below, no early stopping.
    n_estimators, learning_rate, num_leaves, min_child_samples : LightGBM settings of ``fixed``
        tuning and of the causal forest's nuisance models.
    bagging : int
        Bootstrap refits per fold (0 = none).
    by_segment : bool
        One model per value of the log's segment column.
    seed : int
    n_jobs : int
        Worker threads (folds in parallel, one LightGBM thread each).
    engine : {"native", "econml"}
        ``econml`` runs the S/T/X/DR-learners through EconML (the reference; fixed tuning).
        The causal forest always runs on EconML.
    candidates : tuple of str
        The learners ``auto`` chooses from.
    reuse_bins : bool
        Native engine: bin the features once (False: every model bins its own rows).
    ranking_scorer : {"lightgbm", "linear", "mlp"}
        ``drm`` / ``cdrm``: the scorer of the direct ranking model (:mod:`core.uplift.direct_ranking`).
    cpi_max : float, optional
        ``cdrm``: the incremental cost per incremental value the ranking's selection must keep
        to (default: the average CPI of the offers that add value, from the log).

    Attributes (after ``fit``)
    --------------------------
    labels_, control_, treatments_, features_, categories_
    learner_ : str
        The learner used (the chosen one with ``auto``).
    oof_ : DataFrame
        Out-of-fold ``tau_value__L`` / ``tau_cost__L`` for every row of the training log.
    oof_bags_ : dict head → array (bags × n × arms−1), when bagging.
    selection_ : core.evaluation.selection.Selection or None
    report_ : FitReport
    """

    def __init__(self, learner: str = "auto", folds: int = 5, n_estimators: int = 150, learning_rate: float = 0.035,
                 num_leaves: int = 7, min_child_samples: int = 250, bagging: int = 0, by_segment: bool = False,
                 seed: int = 0, n_jobs: int = 2, tuning: str = "auto", engine: str = "native",
                 candidates: tuple = AUTO_CANDIDATES, reuse_bins: bool = True, ranking_scorer: str = "lightgbm",
                 cpi_max: float | None = None):
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
        self.tuning = tuning
        self.engine = engine
        self.candidates = candidates
        self.reuse_bins = reuse_bins
        self.ranking_scorer = ranking_scorer
        self.cpi_max = cpi_max

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("learner", "folds", "n_estimators", "learning_rate", "num_leaves",
                                              "min_child_samples", "bagging", "by_segment", "seed", "n_jobs", "tuning",
                                              "engine", "candidates", "reuse_bins", "ranking_scorer", "cpi_max")}

    def __setstate__(self, state):  # models saved before tuning/engine existed
        defaults = {"tuning": "fixed", "engine": "econml", "candidates": AUTO_CANDIDATES, "reuse_bins": True,
                    "selection_": None, "ranking_scorer": "lightgbm", "cpi_max": None}
        self.__dict__.update({**defaults, **state})
        if "learner_" not in self.__dict__:
            self.learner_ = self.learner

    def _validate_params(self) -> None:
        if self.learner not in LEARNERS:
            raise UserError(f"--learner '{self.learner}' is not one of {', '.join(LEARNERS)} ({', '.join(LEARNERS.values())})")
        if not isinstance(self.folds, (int, np.integer)) or self.folds < 2:
            raise UserError(f"--folds must be a whole number ≥ 2, got {self.folds!r}")
        if not isinstance(self.bagging, (int, np.integer)) or self.bagging < 0:
            raise UserError(f"bagging must be a whole number ≥ 0, got {self.bagging!r}")
        if self.tuning not in ("auto", "fixed"):
            raise UserError(f"tuning must be 'auto' or 'fixed', got {self.tuning!r}")
        if self.engine not in ("native", "econml"):
            raise UserError(f"engine must be 'native' or 'econml', got {self.engine!r}")
        bad = [c for c in self.candidates if c not in LEARNERS or c == "auto"]
        if bad or not self.candidates:
            raise UserError(f"--candidates {', '.join(map(repr, bad)) or '(none)'}: choose from "
                            f"{', '.join(k for k in LEARNERS if k != 'auto')}")
        if self.cpi_max is not None and self.learner != "cdrm":
            raise UserError(f"--cpi-max is the constrained ranking's limit; it needs --learner cdrm (got {self.learner})")
        if self.learner in RANKERS:
            from .direct_ranking import SCORERS

            if self.ranking_scorer not in SCORERS:
                raise UserError(f"--ranking-scorer '{self.ranking_scorer}' is not one of {', '.join(SCORERS)}")
            if self.cpi_max is not None and not (isinstance(self.cpi_max, (int, float)) and np.isfinite(self.cpi_max)
                                                 and self.cpi_max > 0):
                raise UserError(f"--cpi-max must be a positive number, got {self.cpi_max!r}")
            if self.by_segment:
                raise UserError("per-segment models are not available for the direct ranking model; it takes the "
                                "segment as a feature — turn per-segment models off")
            if self.bagging:
                raise UserError("bootstrap refits are not available for the direct ranking model; set them to 0")
        if self.engine == "econml" and self.learner == "auto":
            raise UserError("learner 'auto' runs on the native engine; name one learner for the EconML reference")

    def _lgbm_params(self, smallest_arm: int) -> dict:
        # Fixed tuning: heavily regularised trees.  Leaves of at least `min_child_samples` rows,
        # but never more than an eighth of the smallest arm.
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
            Probability of each row's logged arm; defaults to the log's.  Weights the calibration
            bins of ``auto``'s candidates and the EconML-engine DR-learner.
        progress : callable(fraction, message), optional
            Called as the fit advances with the share done, the step (tuning, fold, head) and
            an estimate of the time left.
        """
        self._validate_params()
        check_log(log)
        if self.learner == "auto" and self.engine == "native" and log.n > AUTO_SELECT_ROWS:
            return self._fit_large_auto(log, propensity, progress)
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
        segments = self._segments(log, t)
        tracker = _Progress(progress, start)
        if self.learner in RANKERS:
            return self._fit_ranking(log, x, t, p, tracker, start)
        native = self.engine == "native" and self.learner != "cf"
        if native:
            result = self._fit_native(x, t, outcomes, p, segments, tracker)
        else:
            result = self._fit_econml(self.learner, x, t, outcomes, p, segments, tracker)
        self.learner_ = result["learner"]
        self.models_ = result["models"]
        self.selection_ = result.get("selection")
        self.oof_ = self._to_frame(result["oof"], log.n)
        self.oof_bags_ = result["oof_bags"]
        self.report_ = FitReport(self.learner, self.labels_, log.n, time.perf_counter() - start, tuple(outcomes),
                                 self.folds, self.bagging, tuple(segments), result.get("tuning", {}),
                                 None if self.selection_ is None else self.selection_.to_dict())
        return self

    def _fit_ranking(self, log, x, t, p, tracker, start) -> "UpliftModel":
        """``drm`` / ``cdrm``: a direct ranking model per offer, cross-fitted; τ value and τ cost
        estimated per bin of its out-of-fold score (:mod:`core.uplift.direct_ranking`)."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        from ..evaluation import inverse_propensity_weights
        from .direct_ranking import DirectRanker, check_rankable, cross_fit, rank_bins

        cost = log.cost
        check_rankable(x, cost)
        value = log.value
        weight = inverse_propensity_weights(p)
        self.cpi_max_ = self._ranking_cpi(log, p) if self.learner == "cdrm" else None
        tracker.plan(self.folds * len(self.treatments_))

        def make(seed):
            return DirectRanker(self.ranking_scorer, cpi_max=self.cpi_max_, seed=seed)

        workers = max(int(self.n_jobs), 1)
        # one BLAS thread per worker: the scorers' small matrix products lose time to BLAS's
        # own threads when the workers already use every core
        with ThreadPoolExecutor(max_workers=workers) as pool, threadpool_limits(limits=1, user_api="blas"):
            def run(fn, tasks):
                return tracker.wait(pool if workers > 1 else None, fn, tasks)

            oof, self.rankers_ = cross_fit(x, t, value, cost, weight, self.folds, self.seed, make, self.cat_idx_,
                                           run=run, step=lambda m: tracker.step(f"{LEARNERS[self.learner]} · {m}"))
        self.rank_bins_ = {}
        notes = []
        for k, arm in enumerate(self.treatments_):
            rows = (t == k + 1) | (t == 0)
            bins = rank_bins(oof[rows, k], t[rows] == k + 1, value[rows], cost[rows],
                             None if weight is None else weight[rows])
            self.rank_bins_[arm] = bins
            if len(bins) == 1:
                notes.append(f"offer '{arm}': the ranking's score bins had to be merged into one (too few customers of "
                             f"an arm per bin), so every customer gets the offer's average effect")
        notes += self._segment_gaps(log)
        self.learner_ = self.learner
        self.models_ = {}
        self.selection_ = None
        self.segment_column_ = None
        self.oof_ = self._ranking_frame(oof)
        self.oof_bags_ = {}
        ranking = {"scorer": self.ranking_scorer, "cpi_max": self.cpi_max_,
                   "fits": {arm: [r.info_ for r in self.rankers_[k + 1]] for k, arm in enumerate(self.treatments_)},
                   "bins": {arm: bins.to_dict("records") for arm, bins in self.rank_bins_.items()}}
        self.report_ = FitReport(self.learner, self.labels_, log.n, time.perf_counter() - start, ("value", "cost"),
                                 self.folds, 0, ("all",), {}, None, ranking, tuple(notes))
        return self

    def _ranking_cpi(self, log, propensity) -> float:
        """``cdrm``'s CPI limit: the one given, else the median of the readout's average CPI of
        the offers that add value at a positive cost."""
        from ..diagnostics.readout import readout

        if self.cpi_max is not None:
            return float(self.cpi_max)
        effects = readout(log, propensity).effects.pivot(index="arm", columns="outcome", values="effect")
        cpis = [row["cost"] / row["value"] for _, row in effects.iterrows() if row["value"] > 0 and row["cost"] > 0]
        if not cpis:
            raise UserError("no offer adds value at a positive cost on average, so there is no default CPI limit for "
                            "the constrained ranking; give one (--cpi-max)")
        return float(np.median(cpis))

    def _segment_gaps(self, log) -> list[str]:
        """Notes on segments in which an offer was never sent: the ranking extrapolates there."""
        if not log.columns.segment:
            return []
        seg = log.frame[log.columns.segment].astype("string").fillna("(missing)")
        counts = pd.crosstab(seg, pd.Series(log.action, index=seg.index))
        notes = []
        for arm in self.treatments_:
            empty = [str(s) for s in counts.index if arm not in counts.columns or counts.loc[s, arm] == 0]
            if empty:
                notes.append(f"offer '{arm}' was never sent in segment(s) {', '.join(map(repr, empty[:5]))} of "
                             f"'{log.columns.segment}': the ranking's scores for those customers are extrapolated")
        return notes

    def rank_bins_frame(self) -> pd.DataFrame:
        """A ranking learner's effects per score bin, every offer in one table (``offer`` first)."""
        return pd.concat([bins.assign(offer=arm) for arm, bins in self.rank_bins_.items()], ignore_index=True)

    def _ranking_frame(self, scores: np.ndarray) -> pd.DataFrame:
        """A ranking learner's predictions: τ value and τ cost of each offer from its score
        bins at the customers' scores (n × offers), then the scores as ``score__<offer>``."""
        from .direct_ranking import effects_from_bins

        effects = {head: np.column_stack([effects_from_bins(scores[:, k], self.rank_bins_[arm], head)
                                          for k, arm in enumerate(self.treatments_)]) for head in ("value", "cost")}
        frame = self._to_frame(effects, len(scores))
        for k, arm in enumerate(self.treatments_):
            frame[f"score__{arm}"] = scores[:, k]
        return frame

    def _fit_large_auto(self, log, propensity, progress) -> "UpliftModel":
        """``auto`` on a large log: compare the candidates on a random sample of
        ``AUTO_SELECT_ROWS`` rows (stratified by arm), then fit only the chosen learner on every
        row, so that choosing does not multiply the cost of the fit."""
        from dataclasses import replace

        from ..schema import ExperimentLog

        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, 3])
        action = np.asarray(log.action)
        rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(action == label),
                                                  size=int(round(AUTO_SELECT_ROWS * np.mean(action == label))), replace=False)
                                       for label in log.labels]))
        sample = ExperimentLog.from_frame(log.frame.iloc[rows].reset_index(drop=True), log.columns)
        share = 0.3  # of the time: measured, the sample comparison takes about a third

        def scaled(lo, hi):
            return None if progress is None else (lambda f, m: progress(lo + (hi - lo) * f, m))

        scout = UpliftModel(**self.get_params()).fit(
            sample, None if propensity is None else np.asarray(propensity)[rows],
            progress=None if progress is None else (lambda f, m: progress(share * f, f"choosing on a {len(rows):,}-row sample · {m}")))
        full = UpliftModel(**{**self.get_params(), "learner": scout.learner_}).fit(log, propensity, progress=scaled(share, 1.0))
        self.__dict__.update({k: v for k, v in full.__dict__.items() if k.endswith("_")})
        note = f" (candidates compared on a random {len(rows):,}-row sample of the {log.n:,}-row log; the chosen learner then fitted on every row)"
        self.selection_ = replace(scout.selection_, reason=scout.selection_.reason + note)
        self.report_ = replace(full.report_, learner="auto", seconds=time.perf_counter() - start,
                               selection=self.selection_.to_dict())
        return self

    def _segments(self, log, t) -> dict:
        self.segment_column_ = None
        if not self.by_segment:
            return {"all": np.arange(log.n)}
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
        return segments

    def _splits(self, segments, t):
        from sklearn.model_selection import StratifiedKFold

        for seg_name, seg_rows in segments.items():
            splitter = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
            for fold, (train_pos, test_pos) in enumerate(splitter.split(seg_rows, t[seg_rows])):
                yield seg_name, fold, np.sort(seg_rows[train_pos]), np.sort(seg_rows[test_pos])

    def _fit_econml(self, learner, x, t, outcomes, p, segments, tracker, probe_stability: bool = False) -> dict:
        """The EconML path: the causal forest, and the reference S/T/X/DR-learners."""
        n, n_arms = len(t), len(self.labels_)
        smallest_arm = int(np.bincount(t, minlength=n_arms).min()) * (self.folds - 1) // self.folds
        factory = _LGBMFactory(self._lgbm_params(smallest_arm // max(len(segments), 1)), self.cat_idx_)
        bags = max(self.bagging, 1)
        tracker.plan(len(outcomes) * len(segments) * self.folds * bags)
        oof = {head: np.zeros((n, n_arms - 1)) for head in outcomes}
        oof_bags = {head: np.zeros((bags, n, n_arms - 1)) for head in outcomes} if self.bagging else {}
        probe = {}
        models = {}
        for head, y in outcomes.items():
            for seg_name, fold, train, test in self._splits(segments, t):
                rng = np.random.default_rng([self.seed, fold, 0])
                bag_models = []
                for b in range(bags):
                    rows = train if not self.bagging else np.sort(rng.choice(train, size=len(train), replace=True))
                    model = _fit_effects(learner, factory, x[rows], t[rows], y[rows],
                                         None if p is None else p[rows], n_arms, self.seed + b)
                    effects = model.predict(x[test])
                    if self.bagging:
                        oof_bags[head][b, test] = effects
                    oof[head][test] += effects / bags
                    if head == "value" and probe_stability:
                        probe.setdefault(seg_name, []).append(model.predict(x[_probe_rows(segments[seg_name], self.seed)]))
                    bag_models.append(model)
                    tracker.step(f"{LEARNERS[learner]} · {head} head · segment {seg_name} · fold {fold + 1}/{self.folds}"
                                 + (f" · bag {b + 1}/{bags}" if self.bagging else ""))
                models.setdefault((head, seg_name), []).append(bag_models)
        return {"learner": learner, "models": models, "oof": oof, "oof_bags": oof_bags, "probe": probe}

    def _fit_native(self, x, t, outcomes, p, segments, tracker) -> dict:
        """The native engine: every needed learner in one pass over the folds (threads)."""
        from concurrent.futures import ThreadPoolExecutor

        from .native import ENGINE_LEARNERS, Binned, predict_threads

        auto = self.learner == "auto"
        wanted = [c for c in self.candidates if c in ENGINE_LEARNERS] if auto else [self.learner]
        n, n_arms = len(t), len(self.labels_)
        tuned = self.tuning == "auto"
        data = Binned(x, self.cat_idx_, arm=t if "s" in wanted else None, reuse_bins=self.reuse_bins)
        fixed = None
        if not tuned:
            from lightgbm import LGBMClassifier, LGBMRegressor

            smallest_arm = int(np.bincount(t, minlength=n_arms).min()) * (self.folds - 1) // self.folds
            sk = {**self._lgbm_params(smallest_arm // max(len(segments), 1)), "n_jobs": 1}
            fixed = {"regressor": LGBMRegressor(**sk)._process_params(stage="fit"),
                     "classifier": LGBMClassifier(**{**sk, "n_estimators": min(sk["n_estimators"], 150)})._process_params(stage="fit"),
                     "rounds": sk["n_estimators"], "classifier_rounds": min(sk["n_estimators"], 150)}
        bags = max(self.bagging, 1)
        stages = (1 if tuned else 0) + 1 + sum(s in wanted for s in ("x", "dr", "s"))
        tracker.plan(len(segments) * self.folds * bags * (1 + len(outcomes) * stages))
        tasks = [(seg, fold, b, train, test) for seg, fold, train, test in self._splits(segments, t) for b in range(bags)]

        def where(task):
            seg, fold, b = task[:3]
            return ((f"segment {seg} · " if seg != "all" else "") + f"fold {fold + 1}/{self.folds}"
                    + (f" · bag {b + 1}/{bags}" if self.bagging else ""))

        workers = max(int(self.n_jobs), 1)

        def phase1(task):
            predict_threads(1 if workers > 1 else None)
            seg, fold, b, train, test = task
            return _native_propensity(data, t, train, test, _probe_rows(segments[seg], self.seed), wanted, tuned,
                                      self.seed, fold, b, bool(self.bagging), fixed, lambda text: tracker.step(f"{where(task)} · {text}"))

        def phase2(job):
            predict_threads(1 if workers > 1 else None)
            task, head, state = job
            return _native_head(data, t, outcomes[head], head, task[4], wanted, tuned, self.seed + task[2], fixed,
                                _probe_rows(segments[task[0]], self.seed), state,
                                lambda text: tracker.step(f"{where(task)} · {text}"))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            pool = pool if workers > 1 else None
            states = tracker.wait(pool, phase1, tasks)
            jobs = [(task, head, state) for task, state in zip(tasks, states) for head in outcomes]
            results = tracker.wait(pool, phase2, jobs)
        effects = {name: {head: np.zeros((n, n_arms - 1)) for head in outcomes} for name in wanted}
        oof_bags = {name: {head: np.zeros((bags, n, n_arms - 1)) for head in outcomes} for name in wanted}
        mu = {head: np.zeros((n, n_arms)) for head in outcomes}
        q = np.zeros((n, n_arms - 1))
        probe = {name: {} for name in wanted}
        models = {name: {} for name in wanted}
        configs = {head: [] for head in outcomes}
        for (task, head, state), res in zip(jobs, results):
            seg, fold, b, train, test = task
            if res["mu"] is not None:
                mu[head][test] += res["mu"] / bags
            configs[head].append(res["fit"].config)
            for name in wanted:
                oof_bags[name][head][b, test] = res["effects"][name]
                effects[name][head][test] += res["effects"][name] / bags
                fold_models = models[name].setdefault((head, seg), [])
                if b == 0:
                    fold_models.append([])
                fold_models[-1].append(_NativeEffects(res["fit"], state["propensity"], name))
            if head == "value":
                q[test] += res["q"] / bags
                for name, predicted in res["probe"].items():
                    probe[name].setdefault(seg, []).append(predicted)
        tuning = {head: _tuning_summary(configs[head], tuned, fixed) for head in outcomes}
        if not auto:
            name = wanted[0]
            _compact(models[name])
            return {"learner": name, "models": models[name], "oof": effects[name],
                    "oof_bags": oof_bags[name] if self.bagging else {}, "tuning": tuning}
        return self._select(x, t, outcomes, p, segments, tracker, effects, oof_bags, mu, q, probe, models, tuning)

    def _select(self, x, t, outcomes, p, segments, tracker, effects, oof_bags, mu, q, probe, models, tuning) -> dict:
        from ..evaluation import inverse_propensity_weights
        from ..evaluation.selection import fold_stability, select_learner

        skipped = {}
        if "cf" in self.candidates:
            if len(t) <= AUTO_CF_MAX_ROWS:
                cf = self._fit_econml("cf", x, t, outcomes, p, segments, _Progress(None, time.perf_counter()),
                                     probe_stability=True)
                effects["cf"], models["cf"] = cf["oof"], cf["models"]
                oof_bags["cf"] = cf["oof_bags"]
                probe["cf"] = cf["probe"]
            else:
                skipped["cf"] = (f"the causal forest takes about a minute per 50,000 rows and head, so auto scores it only "
                                 f"on logs of up to {AUTO_CF_MAX_ROWS:,} rows; fit it on its own (learner cf) to compare")
        stability = {}
        for name, by_seg in probe.items():
            values = [v for v in (fold_stability(np.array(folds)) for folds in by_seg.values()) if np.isfinite(v)]
            stability[name] = float(np.mean(values)) if values else float("nan")
        params = {name: ({head: info["params"] for head, info in tuning.items()} if name != "cf"
                         else {"nuisance": self._lgbm_params(len(t))}) for name in effects}
        selection = select_learner(effects, outcomes, t, mu, q, stability=stability, params=params,
                                   weights=inverse_propensity_weights(p), skipped=skipped)
        chosen = selection.chosen
        _compact(models[chosen])
        return {"learner": chosen, "models": models[chosen], "oof": effects[chosen],
                "oof_bags": oof_bags[chosen] if self.bagging else {}, "tuning": tuning, "selection": selection}

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

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's feature matrix of ``frame`` (categories coded as in training)."""
        matrix, _ = lgbm_frame(frame, list(self.features_), self.categories_)
        return _numeric_matrix(matrix)[0]

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
        x = self._matrix(frame)
        n = len(frame)
        if self.learner_ in RANKERS:
            return self._ranking_frame(np.column_stack([np.mean([r.percentile(x) for r in self.rankers_[k + 1]], axis=0)
                                                        for k in range(len(self.treatments_))]))
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
