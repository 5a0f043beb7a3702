"""Uplift models with separate value and cost heads, every offer at once, cross-fitted.

For every non-control arm ``a`` and customer ``x`` the model estimates

    tau_value(x, a) = E[value | x, a] − E[value | x, control]
    tau_cost(x, a)  = E[cost  | x, a] − E[cost  | x, control]

with two heads, never one "net" model.  A constant cost per arm needs no model: its
``tau_cost`` is the constant.  Learners (all on LightGBM bases; names in :mod:`.names`):

- ``s``, ``t``, ``x``, ``dr``: on the native backend (:mod:`.native`: features binned once,
  per-head complexity search with early stopping; the learners in :mod:`.native_learners`, the
  folds in parallel threads by :mod:`.native_folds`); with ``backend="econml"`` they run
  through EconML's ``SLearner``, ``TLearner``, ``XLearner`` instead (:mod:`.econml_backend`: the
  reference the native X-learner is tested against).
- ``cf``: EconML's ``CausalForestDML`` with LightGBM nuisances.
- ``dr``: the DR-learner (Kennedy, 2023).  Native: over the rows of arm ``a`` and the control,
  ``ψ = μ_a(x) − μ_0(x) + 1[A=a](Y − μ_a(x))/q − 1[A=0](Y − μ_0(x))/(1 − q)``
  (:mod:`core.evaluation.pseudo`) with cross-fitted outcome models ``μ`` and ``q`` the
  cross-fitted probability of ``a`` among those rows (a logged propensity gives only the logged
  arm's probability, and ``q`` needs both); ψ is then regressed on x.  The EconML backend's
  reference keeps the earlier form over all rows with the logged propensity of each row's arm.
- ``drm``, ``cdrm``: direct ranking (:mod:`.model_ranking`, :mod:`.direct_ranking`).
- ``auto`` (the default): all of S/T/X/DR/CF in one pass (they share the outcome models) and
  the one with the lowest doubly robust loss on out-of-fold predictions is kept; near-ties go to
  the most stable (:mod:`core.evaluation.selection`).  The causal forest is scored only on
  logs of up to ``AUTO_CF_MAX_ROWS`` rows (it alone would take minutes on larger ones).

Every row's prediction is out-of-fold: K folds stratified by arm; the fold models score the
held-out fold, and new customers are scored by the average of the K fold models.  Optional
bootstrap bagging refits each fold's learner on B resamples (their spread feeds the stability
checks) and optional per-segment models fit one model per lifecycle segment.  A log is checked
first (:mod:`.checks`); a fit reports its progress through :mod:`.progress`.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import UserError, setting
from ..evaluation import inverse_propensity_weights
from ..evaluation.selection import fold_stability, select_learner
from ..features import lgbm_frame, numeric_matrix
from ..schema import ExperimentLog
from .checks import MIN_ROWS_PER_ARM, check_log
from .direct_ranking import SCORERS, effects_from_bins
from .econml_backend import fit_econml
from .fit_report import FitReport
from .model_ranking import fit_ranking
from .names import LEARNERS, RANKERS, tau_columns
from .native_folds import compact, fit_native
from .progress import Progress, ProgressTracker

AUTO_CANDIDATES = ("s", "t", "x", "dr", "cf")
AUTO_CF_MAX_ROWS = 2_000
AUTO_SELECT_ROWS = 100_000  # larger logs: candidates are compared on a random sample this size
PROBE_ROWS = 1_000


class UpliftModel:
    """Value and cost uplift for every offer against control, cross-fitted.

    Parameters
    ----------
    learner : {"auto", "s", "t", "x", "dr", "cf", "drm", "cdrm"}
        ``auto`` fits every candidate in one pass and keeps the one with the lowest doubly
        robust loss (:mod:`core.evaluation.selection`); ``drm`` / ``cdrm`` learn a ranking
        (:mod:`core.uplift.model_ranking`).
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
    backend : {"native", "econml"}
        ``native`` (:mod:`core.uplift.native`): features binned once, folds in threads.
        ``econml`` runs the S/T/X/DR-learners through EconML (the reference; fixed tuning;
        :mod:`core.uplift.econml_backend`).  The causal forest always runs on EconML.
    candidates : tuple of str
        The learners ``auto`` chooses from.
    reuse_bins : bool
        Native backend: bin the features once (False: every model bins its own rows).
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
                 seed: int = 0, n_jobs: int = 2, tuning: str = "auto", backend: str = "native",
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
        self.backend = backend
        self.candidates = candidates
        self.reuse_bins = reuse_bins
        self.ranking_scorer = ranking_scorer
        self.cpi_max = cpi_max

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("learner", "folds", "n_estimators", "learning_rate", "num_leaves",
                                              "min_child_samples", "bagging", "by_segment", "seed", "n_jobs", "tuning",
                                              "backend", "candidates", "reuse_bins", "ranking_scorer", "cpi_max")}

    def __setstate__(self, state):  # models saved before tuning/the native backend existed
        state = dict(state)
        if "engine" in state:  # saved while the backend was called the engine
            state["backend"] = state.pop("engine")
        defaults = {"tuning": "fixed", "backend": "econml", "candidates": AUTO_CANDIDATES, "reuse_bins": True,
                    "selection_": None, "ranking_scorer": "lightgbm", "cpi_max": None}
        self.__dict__.update({**defaults, **state})
        if "learner_" not in self.__dict__:
            self.learner_ = self.learner

    def _validate_params(self) -> None:
        if self.learner not in LEARNERS:
            raise UserError(f"{setting('learner')} '{self.learner}' is not one of {', '.join(LEARNERS)} ({', '.join(LEARNERS.values())})")
        if not isinstance(self.folds, (int, np.integer)) or self.folds < 2:
            raise UserError(f"{setting('folds')} must be a whole number ≥ 2, got {self.folds!r}")
        if not isinstance(self.bagging, (int, np.integer)) or self.bagging < 0:
            raise UserError(f"{setting('bagging')} must be a whole number ≥ 0, got {self.bagging!r}")
        if self.tuning not in ("auto", "fixed"):
            raise UserError(f"{setting('tuning')} must be 'auto' or 'fixed', got {self.tuning!r}")
        if self.backend not in ("native", "econml"):
            raise UserError(f"{setting('fit_engine')} must be 'native' or 'econml', got {self.backend!r}")
        bad = [c for c in self.candidates if c not in LEARNERS or c == "auto"]
        if bad or not self.candidates:
            raise UserError(f"{setting('candidates')} {', '.join(map(repr, bad)) or '(none)'}: choose from "
                            f"{', '.join(k for k in LEARNERS if k != 'auto')}")
        if self.cpi_max is not None and self.learner != "cdrm":
            raise UserError(f"{setting('cpi_max')} is the constrained ranking's limit; it needs {setting('learner')} cdrm "
                            f"(got {self.learner})")
        if self.learner in RANKERS:
            if self.ranking_scorer not in SCORERS:
                raise UserError(f"{setting('ranking_scorer')} '{self.ranking_scorer}' is not one of {', '.join(SCORERS)}")
            if self.cpi_max is not None and not (isinstance(self.cpi_max, (int, float)) and np.isfinite(self.cpi_max)
                                                 and self.cpi_max > 0):
                raise UserError(f"{setting('cpi_max')} must be a positive number, got {self.cpi_max!r}")
            if self.by_segment:
                raise UserError("per-segment models are not available for the direct ranking model; it takes the "
                                "segment as a feature — turn per-segment models off")
            if self.bagging:
                raise UserError("bootstrap refits are not available for the direct ranking model; set them to 0")
        if self.backend == "econml" and self.learner == "auto":
            raise UserError("learner 'auto' runs on the native backend; name one learner for the EconML reference")

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
            bins of ``auto``'s candidates and the EconML backend's DR-learner.
        progress : callable(fraction, message), optional
            Called as the fit advances with the share done, the step (tuning, fold, head) and
            an estimate of the time left.
        """
        self._validate_params()
        check_log(log)
        if self.learner == "auto" and self.backend == "native" and log.n > AUTO_SELECT_ROWS:
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
        x, self.cat_idx_ = numeric_matrix(frame)
        t = pd.Series(log.action).map({l: i for i, l in enumerate(self.labels_)}).to_numpy()
        p = log.propensity if propensity is None else np.asarray(propensity, dtype=float)
        outcomes = {"value": log.value}
        if self.cost_mode_ == "column":
            outcomes["cost"] = log.cost
        segments = self._segments(log, t)
        tracker = ProgressTracker(progress, start)
        if self.learner in RANKERS:
            return fit_ranking(self, log, x, t, p, tracker, start)
        native = self.backend == "native" and self.learner != "cf"
        if native:
            result = self._fit_native(x, t, outcomes, p, segments, tracker)
        else:
            result = fit_econml(self, self.learner, x, t, outcomes, p, segments, tracker)
        self.learner_ = result["learner"]
        self.models_ = result["models"]
        self.selection_ = result.get("selection")
        self.oof_ = self._to_frame(result["oof"], log.n)
        self.oof_bags_ = result["oof_bags"]
        self.report_ = FitReport(self.learner, self.labels_, log.n, time.perf_counter() - start, tuple(outcomes),
                                 self.folds, self.bagging, tuple(segments), result.get("tuning", {}),
                                 None if self.selection_ is None else self.selection_.to_dict())
        return self

    def rank_bins_frame(self) -> pd.DataFrame:
        """A ranking learner's effects per score bin, every offer in one table (``offer`` first)."""
        return pd.concat([bins.assign(offer=arm) for arm, bins in self.rank_bins_.items()], ignore_index=True)

    def _ranking_frame(self, scores: np.ndarray) -> pd.DataFrame:
        """A ranking learner's predictions: τ value and τ cost of each offer from its score
        bins at the customers' scores (n × offers), then the scores as ``score__<offer>``."""
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
        from sklearn.model_selection import StratifiedKFold  # deferred: scikit-learn is slow to import

        for seg_name, seg_rows in segments.items():
            splitter = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
            for fold, (train_pos, test_pos) in enumerate(splitter.split(seg_rows, t[seg_rows])):
                yield seg_name, fold, np.sort(seg_rows[train_pos]), np.sort(seg_rows[test_pos])

    def _probes(self, segments) -> dict:
        """Per segment, a fixed sample of customers every fold model scores (fold-to-fold stability)."""
        probes = {}
        for name, rows in segments.items():
            rng = np.random.default_rng([self.seed, 7])
            probes[name] = np.sort(rng.choice(rows, size=min(PROBE_ROWS, len(rows)), replace=False))
        return probes

    def _fit_native(self, x, t, outcomes, p, segments, tracker) -> dict:
        """The native backend: every needed learner in one pass over the folds (threads)."""
        fitted = fit_native(self, x, t, outcomes, segments, self._probes(segments), tracker)
        return fitted if self.learner != "auto" else self._select(x, t, outcomes, p, segments, **fitted)

    def _select(self, x, t, outcomes, p, segments, effects, oof_bags, mu, q, probe, models, tuning) -> dict:
        """``auto``: score every candidate (the causal forest too, on small logs) and keep the best."""
        skipped = {}
        if "cf" in self.candidates:
            if len(t) <= AUTO_CF_MAX_ROWS:
                cf = fit_econml(self, "cf", x, t, outcomes, p, segments, ProgressTracker(None, time.perf_counter()),
                                self._probes(segments))
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
        compact(models[chosen])
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
        return numeric_matrix(matrix)[0]

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
