"""The native LightGBM fit engine behind the S-, T-, X- and DR-learners.

Why it exists: a cross-fitted, two-head, multi-offer fit is hundreds of small LightGBM fits.
Through EconML every one of them re-bins the same features from raw floats.  Here the
features are binned **once** (one :class:`Binned` per log: one ``lgb.Dataset`` for the
features, one more with the arm as an extra categorical column for the S-learner), and every
fold, arm, half and stage trains on a row subset of it (LightGBM copies the binned rows; it
never re-bins).  Text columns stay native LightGBM categoricals.

Two modes:

``tuned`` (the default)
    Each outer training fold ``R`` is split in two halves ``A`` and ``B`` (stratified by arm).
    Every model's number of trees comes from early stopping: a booster trained on ``A`` and
    validated on ``B``; the model is then refitted on ``A ∪ B`` with ``REFIT_ROUNDS`` times as
    many trees (early stopping on half the rows under-counts what all of them support; on the
    shipped simulator the refit is worth about 10% of √PEHE over averaging the two halves'
    boosters).  Where cross-fitted predictions of training rows are needed (the DR-learner's
    outcome models and propensities) a booster on ``B`` stopped on ``A`` is kept as well.  The
    complexity of the outcome models is chosen per head and per fold from :data:`SEARCH` by
    the held-out squared error of the ``A`` boosters on ``B`` (summed over arms); the test fold
    is never seen while choosing.  Every later stage (X-learner's imputed-effect models,
    DR-learner's final regression, S-learner) uses the chosen configuration, with its own
    early stopping.
``fixed``
    The given LightGBM settings, a fixed number of trees, models trained on the whole training
    fold: the X-learner then performs exactly EconML's ``XLearner`` computation (per-arm
    outcome models, imputed effects ``Y − μ₀(x)`` on treated and ``μₖ(x) − Y`` on control
    rows, propensity-weighted blend with per-arm binary classifiers).  With
    ``reuse_bins=False`` every model bins its own rows as LightGBM's scikit-learn wrapper does,
    and the predictions equal EconML's to floating-point accuracy (a test checks it); with the
    shared bins the split candidates are the quantiles of the whole log instead of each
    subset's, which moves predictions slightly (the same test bounds how much).

Learners (per non-control arm ``k``, control ``0``; ``μₖ`` outcome models, ``gₖ(x)`` the
probability of arm ``k`` among rows of arms ``{0, k}``):

- ``t``: ``μₖ(x) − μ₀(x)``.
- ``x``: ``gₖ(x)·τ₀ₖ(x) + (1 − gₖ(x))·τ₁ₖ(x)`` with ``τ₁ₖ`` fitted on treated rows'
  ``Y − μ̂₀(x)`` and ``τ₀ₖ`` on control rows' ``μ̂ₖ(x) − Y``.
- ``dr``: a regression on x, over rows of arms {0, k}, of
  ``ψ = μ̂ₖ − μ̂₀ + 1[A=k](Y − μ̂ₖ)/ĝₖ − 1[A=0](Y − μ̂₀)/(1 − ĝₖ)`` with cross-fitted ``μ̂`` and
  ``ĝₖ`` (clipped to [0.01, 0.99]).
- ``s``: one model of ``Y`` on ``(x, arm)``; the effect is its prediction at ``k`` minus at ``0``.

Threads: LightGBM releases the GIL while it trains, so folds run in a thread pool (one
LightGBM thread per fit), which on 2 cores beats 2-thread fits run one after another; threads
rather than processes because OpenMP is not fork-safe and the binned data stay shared.  Building
a subset and creating a booster read the shared base dataset, so those two steps hold a lock
(LightGBM crashed without it); the boosting rounds themselves run in parallel.

Large logs: a tree grows on at most ``ROWS_PER_TREE`` random rows of its training set and early
stopping watches at most ``VALID_ROWS`` rows, so the cost of one round stops growing with the
log; fits below those sizes are unaffected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..evaluation.pseudo import CLIP, dr_pseudo_outcome

MAX_ROUNDS = 300  # early stopping's ceiling: a configuration that wants more lacks capacity
PATIENCE = 10
MAX_BIN = 255
# refits on the whole training fold grow this many times the trees early stopping found on half of it
REFIT_ROUNDS = 1.5
# Large logs: the rows one tree is grown on, and the rows early stopping watches, are capped
# (random subsamples); fits below these sizes are unaffected.
ROWS_PER_TREE = 100_000
VALID_ROWS = 50_000

# The documented search: three complexities, trees set by early stopping.  Minimum leaf sizes
# shrink on small fits (never more than a tenth of the rows a booster trains on, at least 5).
SEARCH = {
    "regularised": {"num_leaves": 7, "min_data_in_leaf": 200, "learning_rate": 0.1, "lambda_l2": 10.0},
    "balanced": {"num_leaves": 15, "min_data_in_leaf": 50, "learning_rate": 0.1, "lambda_l2": 1.0},
    "flexible": {"num_leaves": 31, "min_data_in_leaf": 20, "learning_rate": 0.1, "lambda_l2": 0.0},  # LightGBM's defaults
}
# propensity classifiers are not searched: one moderate setting, early-stopped
PROPENSITY_PARAMS = {"num_leaves": 15, "min_data_in_leaf": 50, "learning_rate": 0.1, "lambda_l2": 1.0}
ENGINE_LEARNERS = ("s", "t", "x", "dr")


def _base_params(seed: int) -> dict:
    return {"objective": "regression", "verbose": -1, "num_threads": 1, "seed": seed, "deterministic": True,
            "force_row_wise": True, "feature_pre_filter": False}


class Binned:
    """Features binned once; LightGBM datasets for any subset of rows and any label.

    Parameters
    ----------
    x : (n, d) float array (categorical columns hold integer codes, NaN = missing)
    cat_idx : list of int
        Categorical columns.
    arm : (n,) int array, optional
        Arm codes: adds an S-learner dataset with the arm as one more categorical column.
    reuse_bins : bool
        False: bin every subset afresh (as LightGBM's scikit-learn wrapper does); for the
        EconML equality check only.
    """

    def __init__(self, x: np.ndarray, cat_idx: list[int], arm: np.ndarray | None = None, reuse_bins: bool = True):
        import lightgbm as lgb

        self.x = x
        self.cat_idx = list(cat_idx)
        self.reuse_bins = reuse_bins
        self._lock = threading.Lock()
        params = {"verbose": -1, "feature_pre_filter": False, "max_bin": MAX_BIN}
        self.params = params
        self.base = lgb.Dataset(x, label=np.zeros(len(x)), categorical_feature=self.cat_idx or "auto",
                                free_raw_data=False, params=params).construct() if reuse_bins else None
        self.xs = None
        self.base_s = None
        if arm is not None:
            self.xs = np.column_stack([x, arm.astype(float)])
            cats = self.cat_idx + [x.shape[1]]
            self.base_s = (lgb.Dataset(self.xs, label=np.zeros(len(x)), categorical_feature=cats, free_raw_data=False,
                                       params=params).construct() if reuse_bins else None)

    def dataset(self, rows: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None, with_arm: bool = False):
        """A LightGBM dataset of ``rows`` with ``label`` (aligned with rows)."""
        import lightgbm as lgb

        base = self.base_s if with_arm else self.base
        if base is None:  # as LightGBM's scikit-learn wrapper does: bin these rows, default settings
            x = (self.xs if with_arm else self.x)[rows]
            cats = self.cat_idx + ([self.x.shape[1]] if with_arm else [])
            return lgb.Dataset(x, label=label, weight=weight, categorical_feature=cats or "auto", free_raw_data=False)
        # free_raw_data: the subset needs no raw copy of its rows (LightGBM would slice one)
        ds = lgb.Dataset(None, reference=base, feature_name=base.feature_name, categorical_feature=base.categorical_feature,
                         params=base.params, free_raw_data=True)
        ds._predictor = base._predictor
        ds.pandas_categorical = base.pandas_categorical
        ds.used_indices = rows
        with self._lock:  # subsets of one base dataset are built one at a time
            ds.construct()
        ds.set_label(label)
        if weight is not None:
            ds.set_weight(weight)
        return ds


def leaf_params(config: dict, n_fit: int) -> dict:
    """A configuration's LightGBM parameters for a booster trained on ``n_fit`` rows."""
    out = dict(config)
    out["min_data_in_leaf"] = int(max(5, min(config["min_data_in_leaf"], n_fit // 10)))
    return out


def train(data: Binned, params: dict, rows: np.ndarray, label: np.ndarray, *, valid_rows=None, valid_label=None,
          rounds: int | None = None, weight=None, with_arm: bool = False):
    """One booster on ``rows``: early stopping on ``valid_rows`` when given, else ``rounds`` trees.

    Returns ``(booster, valid_loss)``; ``valid_loss`` is the sum of the validation loss over the
    validation rows at the best iteration (NaN without validation).
    """
    import lightgbm as lgb

    params = dict(params)
    n_valid = 0 if valid_rows is None else len(valid_rows)
    if "min_data_in_leaf" in params:  # tuned settings; the fixed reference runs exactly as EconML would
        params = leaf_params(params, len(rows))
        if len(rows) > ROWS_PER_TREE:  # large logs: each tree sees a random subsample (stochastic boosting)
            params.update(bagging_fraction=ROWS_PER_TREE / len(rows), bagging_freq=1)
        if n_valid > VALID_ROWS:  # and early stopping watches a fixed random part of the validation rows
            pick = np.sort(np.random.default_rng([params.get("seed", 0), n_valid]).choice(n_valid, VALID_ROWS, replace=False))
            valid_rows, valid_label = valid_rows[pick], valid_label[pick]
    train_set = data.dataset(rows, label, weight, with_arm)
    valid_set = None if valid_rows is None else data.dataset(valid_rows, valid_label, None, with_arm)
    booster, best = _boost(data, params, train_set, valid_set, MAX_ROUNDS if valid_set is not None else int(rounds))
    return booster, best * n_valid if valid_set is not None else float("nan")


def _boost(data: Binned, params: dict, train_set, valid_set, rounds: int):
    """LightGBM's training loop with early stopping (as ``lgb.train`` with ``early_stopping``:
    stop after :data:`PATIENCE` rounds without a strict improvement of the first metric, keep the
    best iteration).  Written out because creating a booster reads the shared binned base, which
    must not happen while another thread builds a subset of it: creation holds the data's lock,
    the boosting rounds run in parallel.  Returns the booster (training data released, its
    ``best_iteration`` set when validated) and the best validation metric (mean over rows)."""
    import lightgbm as lgb

    with data._lock:
        booster = lgb.Booster(params=params, train_set=train_set)
        if valid_set is not None:
            if not data.reuse_bins:  # bin the validation rows with the training rows' bins
                valid_set.set_reference(train_set)
            booster.add_valid(valid_set, "valid")
    best, best_iteration = np.inf, 0
    for i in range(rounds):
        booster.update()
        if valid_set is None:
            continue
        value = booster.eval_valid()[0][2]
        if value < best:
            best, best_iteration = value, i + 1
        elif i + 1 - best_iteration >= PATIENCE:
            break
    with data._lock:  # a fresh booster from the model text: the datasets can be freed safely
        booster.model_from_string(booster.model_to_string())
    booster.best_iteration = best_iteration if valid_set is not None else 0
    return booster, best


_threads = threading.local()


def predict_threads(n: int | None) -> None:
    """LightGBM threads for predictions made by the calling thread (None: LightGBM's default)."""
    _threads.n = n


def _predict(booster, x: np.ndarray) -> np.ndarray:
    n = getattr(_threads, "n", None)
    return booster.predict(x, num_iteration=booster.best_iteration if booster.best_iteration > 0 else None,
                           **({"num_threads": n} if n else {}))


@dataclass
class Model:
    """A fitted model: ``booster`` predicts new rows; ``pair`` (tuned mode, when cross-fitted
    predictions are needed) holds the boosters trained on half A and on half B."""

    booster: object
    pair: tuple | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _predict(self.booster, x)

    def predict_cross(self, x: np.ndarray, rows: np.ndarray, in_a: np.ndarray) -> np.ndarray:
        """Predictions for training ``rows`` (``in_a``: which lie in half A) from the booster of
        the other half, so that no row is predicted by a booster that trained on it (fixed mode
        has no pair: the one booster)."""
        if self.pair is None:
            return self.predict(x[rows])
        out = np.empty(len(rows))
        out[in_a] = _predict(self.pair[1], x[rows[in_a]])
        out[~in_a] = _predict(self.pair[0], x[rows[~in_a]])
        return out


@dataclass
class Shifted:
    """A model's predictions plus a constant."""

    model: Model
    shift: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x) + self.shift


def fit_model(data: Binned, params: dict, label_of, a_rows, b_rows, *, tuned: bool, rounds: int | None = None,
              first=None, weight_of=None, with_arm: bool = False, cross: bool = False) -> tuple[Model, float]:
    """A :class:`Model` on ``a_rows ∪ b_rows``; ``label_of(rows)`` gives the label of rows.

    Tuned: a booster on half A early-stopped on half B (``first`` = that ``(booster, loss)`` when
    the search already trained it) fixes the number of trees; the model is then refitted on
    A ∪ B with :data:`REFIT_ROUNDS` times as many (twice the rows support more trees).  With
    ``cross`` a booster on B early-stopped on A is kept beside A's for cross-fitted
    predictions.  Fixed: one booster on A ∪ B with ``rounds`` trees.
    Returns the model and the held-out loss of the A booster on B.
    """
    w = (lambda r: None) if weight_of is None else weight_of
    rows = np.union1d(a_rows, b_rows)
    if not tuned:
        booster, _ = train(data, params, rows, label_of(rows), rounds=rounds, weight=w(rows), with_arm=with_arm)
        return Model(booster), float("nan")
    booster_a, loss = first or train(data, params, a_rows, label_of(a_rows), valid_rows=b_rows,
                                     valid_label=label_of(b_rows), weight=w(a_rows), with_arm=with_arm)
    pair = None
    if cross:
        booster_b, _ = train(data, params, b_rows, label_of(b_rows), valid_rows=a_rows, valid_label=label_of(a_rows),
                             weight=w(b_rows), with_arm=with_arm)
        pair = (booster_a, booster_b)
    trees = max(int(round(REFIT_ROUNDS * max(booster_a.best_iteration, 1))), 1)
    full, _ = train(data, params, rows, label_of(rows), rounds=trees, weight=w(rows), with_arm=with_arm)
    return Model(full, pair), loss


def split_halves(rows: np.ndarray, arm: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of ``rows`` with each arm split evenly; both sorted."""
    rng = np.random.default_rng(seed)
    a = []
    for k in np.unique(arm[rows]):
        members = rows[arm[rows] == k]
        a.append(rng.choice(members, size=len(members) // 2, replace=False))
    a = np.sort(np.concatenate(a)) if a else np.array([], dtype=int)
    return a, np.setdiff1d(rows, a, assume_unique=True)


@dataclass
class HeadFit:
    """Every requested learner's models for one head in one training fold."""

    config: str
    search_loss: dict
    n_arms: int
    mu: list | None
    x_models: list | None = None
    dr_models: list | None = None
    s_model: Model | None = None

    def outcomes(self, x: np.ndarray) -> np.ndarray:
        """(n × arms) outcome-model predictions μₖ(x)."""
        return np.column_stack([m.predict(x) for m in self.mu])

    def effects(self, learner: str, x: np.ndarray, g: np.ndarray | None, mu: np.ndarray | None = None) -> np.ndarray:
        """(n × arms−1) effects of ``learner`` for rows ``x``; ``g`` the pairwise propensities,
        ``mu`` the outcome predictions when already at hand."""
        if learner == "t":
            mu = self.outcomes(x) if mu is None else mu
            return mu[:, 1:] - mu[:, :1]
        if learner == "x":
            return np.column_stack([g[:, j] * tau0.predict(x) + (1 - g[:, j]) * tau1.predict(x)
                                    for j, (tau0, tau1) in enumerate(self.x_models)])
        if learner == "dr":
            return np.column_stack([m.predict(x) for m in self.dr_models])
        if learner == "s":
            preds = [self.s_model.predict(np.column_stack([x, np.full(len(x), float(k))])) for k in range(self.n_arms)]
            return np.column_stack([p - preds[0] for p in preds[1:]])
        raise ValueError(learner)

    def drop_except(self, learner: str) -> None:
        """Forget what predicting with ``learner`` does not need: other learners' models and the
        cross-fitting boosters (smaller saved files)."""
        for model in [*(self.mu or []), *(self.dr_models or []), *[m for pair in self.x_models or [] for m in pair]]:
            if isinstance(model, Model):
                model.pair = None
        if learner != "x":
            self.x_models = None
        if learner != "dr":
            self.dr_models = None
        if learner != "s":
            self.s_model = None
        if learner != "t":
            self.mu = None


@dataclass
class PropensityFit:
    """Per-arm binary classifiers ``gₖ(x) = P(arm k | x, arm ∈ {0, k})`` of one training fold."""

    models: list

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.column_stack([m.predict(x) for m in self.models]), CLIP, 1 - CLIP)


def fit_propensity(data: Binned, arm: np.ndarray, rows: np.ndarray, halves, *, tuned: bool, seed: int,
                   cross: bool = False, fixed_params: dict | None = None, rounds: int | None = None) -> PropensityFit:
    """The pairwise propensity classifiers on the training fold ``rows``.

    Tuned mode: one booster per offer (trained on half A, early-stopped on B), or a cross-fitted
    pair when ``cross`` (the DR-learner needs out-of-sample propensities of training rows).
    """
    n_arms = int(arm.max()) + 1
    params = ({**_base_params(seed), **PROPENSITY_PARAMS} if tuned else dict(fixed_params))
    params.update(objective="binary")
    models = []
    for k in range(1, n_arms):
        a_rows, b_rows = (h[np.isin(arm[h], (0, k))] for h in halves)

        def label(r, k=k):
            return (arm[r] == k).astype(float)

        if not tuned:  # EconML's order (controls, then arm k): row subsampling picks rows by position
            ordered = np.concatenate([rows[arm[rows] == 0], rows[arm[rows] == k]])
            ordered = np.sort(ordered) if data.reuse_bins else ordered  # subsets of shared bins are sorted
            booster, _ = train(data, params, ordered, label(ordered), rounds=rounds)
            models.append(Model(booster))
            continue
        # weights, not effects: the early-stopped booster on A needs no refit
        booster_a, _ = train(data, params, a_rows, label(a_rows), valid_rows=b_rows, valid_label=label(b_rows))
        booster_b = None
        if cross:
            booster_b, _ = train(data, params, b_rows, label(b_rows), valid_rows=a_rows, valid_label=label(a_rows))
        models.append(Model(booster_a, (booster_a, booster_b) if cross else None))
    return PropensityFit(models)


def fit_head(data: Binned, y: np.ndarray, arm: np.ndarray, halves, learners, *, tuned: bool, seed: int,
             g_cross: np.ndarray | None, fixed_params: dict | None = None, rounds: int | None = None,
             weight: np.ndarray | None = None, step=None) -> HeadFit:
    """Fit the outcome models of one head and every learner in ``learners`` on one training fold.

    Parameters
    ----------
    halves : (A rows, B rows) of the training fold, sorted.
    g_cross : (n_train × arms−1) cross-fitted pairwise propensities of the training rows
        (rows ordered as ``np.union1d(A, B)``), needed by ``dr``.
    weight : (n,) row weights (bootstrap counts), or ``None``.
    step : callable(str), optional
        Called with a short description before each stage (progress).
    """
    step = step or (lambda text: None)
    a_all, b_all = halves
    rows = np.union1d(a_all, b_all)
    n_arms = int(arm.max()) + 1
    x = data.x
    weight_of = None if weight is None else (lambda r: weight[r])
    by_arm = [tuple(h[arm[h] == k] for h in halves) for k in range(n_arms)]

    def label(values):
        return lambda r: values[r]

    # 1. outcome models μₖ, with the complexity search in tuned mode
    search_loss = {}
    if tuned:
        step("tuning")
        first = {}
        for name in SEARCH:
            params = {**_base_params(seed), **SEARCH[name]}
            fits = [train(data, params, a, y[a], valid_rows=b, valid_label=y[b], weight=None if weight is None else weight[a])
                    for a, b in by_arm]
            search_loss[name] = float(sum(loss for _, loss in fits))
            first[name] = fits
        config = min(search_loss, key=search_loss.get)
        params = {**_base_params(seed), **SEARCH[config]}
    else:
        config, params, first = "fixed", dict(fixed_params), None
    step(f"outcome models ({config})")
    mu = [fit_model(data, params, label(y), a, b, tuned=tuned, rounds=rounds, weight_of=weight_of,
                    first=first[config][k] if first else None, cross=tuned and "dr" in learners)[0]
          for k, (a, b) in enumerate(by_arm)]
    fit = HeadFit(config, search_loss, n_arms, mu)

    in_a = np.isin(rows, a_all)
    mu_hat = {k: mu[k].predict_cross(x, rows, in_a) for k in range(n_arms)} if tuned and "dr" in learners else None
    if "x" in learners:
        step("X-learner stage 2")
        # the X-learner imputes with the full outcome models, as EconML does: μ₀ never saw a
        # treated row and μₖ never a control row, so no row meets a model that trained on it
        control_rows = np.union1d(*by_arm[0])
        treated_rows = np.setdiff1d(rows, control_rows, assume_unique=True)
        control_y = y[control_rows]
        # A constant control outcome (no offer, no cost) makes the control side's imputed effect
        # μ̂ₖ(x) − c exactly: a noiseless copy of μ̂ₖ that boosting would chase to its ceiling.
        constant_control = tuned and np.ptp(control_y) == 0
        d1 = np.zeros(len(y))  # treated rows: Y − μ̂₀(x)
        d1[treated_rows] = y[treated_rows] - mu[0].predict(x[treated_rows])
        models = []
        for k in range(1, n_arms):
            tau1, _ = fit_model(data, params, label(d1), *by_arm[k], tuned=tuned, rounds=rounds, weight_of=weight_of)
            if constant_control:
                tau0 = Shifted(mu[k], -float(control_y[0]))
            else:
                d0 = np.zeros(len(y))  # control rows: μ̂ₖ(x) − Y
                d0[control_rows] = mu[k].predict(x[control_rows]) - control_y
                tau0, _ = fit_model(data, params, label(d0), *by_arm[0], tuned=tuned, rounds=rounds, weight_of=weight_of)
            models.append((tau0, tau1))
        fit.x_models = models
    if "dr" in learners:
        step("DR-learner final stage")
        fit.dr_models = _fit_dr(data, y, arm, halves, rows, mu_hat, params, tuned=tuned, rounds=rounds,
                                g_cross=g_cross, weight_of=weight_of)
    if "s" in learners:
        step("S-learner")
        fit.s_model, _ = fit_model(data, params, label(y), a_all, b_all, tuned=tuned, rounds=rounds, with_arm=True,
                                   weight_of=weight_of)
    return fit


def _fit_dr(data, y, arm, halves, rows, mu_cross, params, *, tuned, rounds, g_cross, weight_of):
    """DR-learner final stage, per offer k on the training rows of arms {0, k}:

    ψ = μ̂ₖ − μ̂₀ + 1[A=k](Y − μ̂ₖ)/q − 1[A=0](Y − μ̂₀)/(1 − q), ``q`` the cross-fitted
    probability of k among rows of {0, k} (clipped to [0.01, 0.99]); E[ψ | x] = τₖ(x) when either
    μ̂ or q is right.  ``mu_cross``: arm → cross-fitted μ̂ of the training rows (tuned mode; fixed
    mode fits an inner 2-fold μ̂ here).  A logged propensity is not used here: it gives the
    probability of the logged arm only, and q needs that of the other arm as well.
    """
    x = data.x
    n_arms = int(arm.max()) + 1
    if tuned:
        mu_hat = np.column_stack([mu_cross[k] for k in range(n_arms)])
    else:
        mu_hat = np.zeros((len(rows), n_arms))
        a_all, b_all = halves
        in_a = np.isin(rows, a_all)
        for k in range(n_arms):
            for fit_half, pred_mask in ((a_all, ~in_a), (b_all, in_a)):
                members = fit_half[arm[fit_half] == k]
                booster, _ = train(data, params, members, y[members], rounds=rounds)
                mu_hat[pred_mask, k] = _predict(booster, x[rows[pred_mask]])
    final_params = dict(params)
    if not tuned:  # the fixed reference: a smoother final stage, as before the engine existed
        key = "min_child_samples" if "min_child_samples" in params else "min_data_in_leaf"
        final_params[key] = max(params.get(key, 20), 100)
    a_rows = arm[rows]
    models = []
    for k in range(1, n_arms):
        mine = (a_rows == 0) | (a_rows == k)  # the regression below uses only these rows
        psi = np.zeros(len(y))
        psi[rows[mine]] = dr_pseudo_outcome(y[rows[mine]], a_rows[mine] == k, mu_hat[mine, k], mu_hat[mine, 0],
                                            g_cross[mine, k - 1])
        a_k, b_k = (h[np.isin(arm[h], (0, k))] for h in halves)
        model, _ = fit_model(data, final_params, lambda r, psi=psi: psi[r], a_k, b_k, tuned=tuned, rounds=rounds,
                             weight_of=weight_of)
        models.append(model)
    return models
