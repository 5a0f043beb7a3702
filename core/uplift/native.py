"""The native LightGBM fit backend behind the S-, T-, X- and DR-learners: binned data,
boosting with early stopping, fitted models.

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

The learners built on it are in :mod:`core.uplift.native_learners`; the fold phases an
:class:`~core.uplift.model.UpliftModel` runs in threads are in :mod:`core.uplift.native_folds`.

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


def base_params(seed: int) -> dict:
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
        import lightgbm as lgb  # deferred: lightgbm is slow to import

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
        import lightgbm as lgb  # deferred: lightgbm is slow to import

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
    import lightgbm as lgb  # deferred: lightgbm is slow to import

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


def predict_booster(booster, x: np.ndarray) -> np.ndarray:
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
        return predict_booster(self.booster, x)

    def predict_cross(self, x: np.ndarray, rows: np.ndarray, in_a: np.ndarray) -> np.ndarray:
        """Predictions for training ``rows`` (``in_a``: which lie in half A) from the booster of
        the other half, so that no row is predicted by a booster that trained on it (fixed mode
        has no pair: the one booster)."""
        if self.pair is None:
            return self.predict(x[rows])
        out = np.empty(len(rows))
        out[in_a] = predict_booster(self.pair[1], x[rows[in_a]])
        out[~in_a] = predict_booster(self.pair[0], x[rows[~in_a]])
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
