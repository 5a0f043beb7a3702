"""Issue 24, item 2: the native learners' cross-fitting, checked with boosters that return an id.

Every LightGBM fit of the native backend (``core.uplift.native.train``) is replaced by a stub
that records the rows and label it was given and returns a booster predicting one constant: its
own id.  Which id a row receives then says which rows the model that predicted it was trained
on.  Two levels of cross-fitting are checked:

- outer folds: a row of one fold is predicted by models trained on the other fold only;
- inside a training fold (halves A and B): the DR-learner's pseudo-outcome for a row of A uses
  the outcome models and propensities trained on B, and vice versa (tuned mode; fixed mode uses
  an inner 2-fold split for μ̂ and, as EconML does, the training fold's propensity).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from core.schema import ColumnMap, ExperimentLog
from core.uplift import native, native_folds, native_learners
from core.uplift.model import UpliftModel

N = 400


class IdBooster:
    """Predicts its id for every row."""

    def __init__(self, ident: float):
        self.ident = ident
        self.best_iteration = 4

    def predict(self, x, **_):
        return np.full(len(x), self.ident)


class Recorder:
    """Stands in for ``native.train``: records every fit and returns an :class:`IdBooster`.

    Outcome-model and final-stage boosters get ids 100, 101, …; propensity classifiers
    (objective ``binary``) ids 0.05, 0.06, … (valid probabilities, never clipped).  The held-out
    loss favours the ``balanced`` configuration (15 leaves), so the search's choice is known.
    """

    def __init__(self):
        self.fits = []
        self.lock = threading.Lock()

    def train(self, data, params, rows, label, *, valid_rows=None, valid_label=None, rounds=None, weight=None,
              with_arm=False):
        binary = params.get("objective") == "binary"
        with self.lock:
            count = sum(f["binary"] == binary for f in self.fits)
            ident = 0.05 + 0.01 * count if binary else 100.0 + count
            order = np.argsort(rows)
            self.fits.append({"id": ident, "rows": np.asarray(rows)[order], "label": np.asarray(label, dtype=float)[order],
                              "valid": None if valid_rows is None else np.sort(np.asarray(valid_rows)),
                              "leaves": params.get("num_leaves"), "binary": binary})
        leaves = params.get("num_leaves", 15)
        loss = float("nan") if valid_rows is None else float(1 + abs(leaves - 15)) * len(valid_rows)
        return IdBooster(ident), loss

    def find(self, rows, *, binary: bool, valid=None, leaves=None) -> dict:
        """The one recorded fit on exactly ``rows``, early-stopped on exactly ``valid`` (None: a
        fit without validation rows)."""
        def same(a, b):
            return a is None and b is None or a is not None and b is not None and np.array_equal(a, np.sort(b))

        hits = [f for f in self.fits if f["binary"] == binary and same(f["rows"], rows) and same(f["valid"], valid)
                and (leaves is None or f["leaves"] == leaves)]
        assert len(hits) == 1, f"{len(hits)} fits on these rows"
        return hits[0]

    def by_id(self, ident: float) -> dict:
        hits = [f for f in self.fits if f["id"] == ident]
        assert len(hits) == 1, ident
        return hits[0]


def _log(seed: int = 0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=N), rng.uniform(size=N)
    treated = rng.uniform(size=N) < 0.5
    y = 3.0 + x1 + treated * (1.0 + x2) + rng.normal(size=N)
    frame = pd.DataFrame({"arm": np.where(treated, "offer", "control"), "y": y, "x1": x1, "x2": x2})
    return ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="control", value="y", features=("x1", "x2")))


def _fit(monkeypatch, learner: str, tuning: str = "auto", folds: int = 2):
    """Fit ``learner`` with id boosters; returns the model, the recorder, the arm codes, y and
    every training fold's (rows, half A, half B)."""
    recorder = Recorder()
    monkeypatch.setattr(native, "train", recorder.train)
    monkeypatch.setattr(native_learners, "train", recorder.train)
    halves = []
    real_split = native_folds.split_halves

    def split(rows, arm, seed):
        a, b = real_split(rows, arm, seed)
        halves.append((np.sort(rows), a, b))
        return a, b

    monkeypatch.setattr(native_folds, "split_halves", split)
    log = _log()
    model = UpliftModel(learner=learner, folds=folds, seed=0, n_jobs=1, tuning=tuning).fit(log)
    arm = (np.asarray(log.action) == "offer").astype(int)
    return model, recorder, arm, log.value, halves


def test_predict_cross_gives_a_row_of_half_a_the_booster_of_half_b_and_vice_versa():
    """Catches ``Model.predict_cross`` using the booster of the row's own half (the pair swapped)
    or the full model."""
    x = np.zeros((6, 1))
    rows = np.array([0, 2, 3, 5])
    in_a = np.array([True, False, True, False])
    model = native.Model(IdBooster(3.0), (IdBooster(1.0), IdBooster(2.0)))  # (booster on A, booster on B)
    np.testing.assert_array_equal(model.predict_cross(x, rows, in_a), [2.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(native.Model(IdBooster(3.0)).predict_cross(x, rows, in_a), [3.0] * 4)


@pytest.mark.parametrize("learner", ["t", "dr"])
def test_a_row_of_one_outer_fold_is_predicted_by_the_models_of_the_other_fold(monkeypatch, learner):
    """The out-of-fold effect of a row comes from models trained on the other fold only: for
    the T-learner μ̂₁ − μ̂₀ of that fold's refitted outcome models, for the DR-learner its final
    regression.  Catches out-of-fold effects written to the wrong rows or predicted by a model
    that saw them."""
    model, recorder, arm, _, halves = _fit(monkeypatch, learner)
    oof = model.oof_["tau_value__offer"].to_numpy()
    assert len(halves) == 2
    everyone = np.arange(N)
    folds = [train for train, _, _ in halves]
    np.testing.assert_array_equal(np.sort(np.concatenate([np.setdiff1d(everyone, f) for f in folds])), everyone)
    for train in folds:
        test = np.setdiff1d(everyone, train)
        if learner == "t":
            expected = (recorder.find(train[arm[train] == 1], binary=False)["id"]
                        - recorder.find(train[arm[train] == 0], binary=False)["id"])
        else:
            expected = recorder.find(train, binary=False)["id"]  # the final stage, on both arms of the fold
        np.testing.assert_array_equal(oof[test], np.full(len(test), expected))
    if learner == "dr":  # each of the two ids was trained on exactly the rows that did not receive it
        for ident in np.unique(oof):
            assert np.array_equal(recorder.by_id(ident)["rows"], np.flatnonzero(oof != ident))


@pytest.mark.parametrize("tuning", ["auto", "fixed"])
def test_dr_pseudo_outcome_of_a_training_row_uses_models_of_the_other_half(monkeypatch, tuning):
    """The DR-learner's final stage regresses ψ = μ̂₁ − μ̂₀ + T(Y − μ̂₁)/q − (1 − T)(Y − μ̂₀)/(1 − q)
    with μ̂ (and, tuned, q) of a row of half A from the boosters trained on half B and vice versa.

    ψ is rebuilt here from the ids of those boosters and compared with the label the final
    stage was trained on.  Catches out-of-fold effects learned from in-sample outcome models
    (``mu[k].predict`` instead of ``predict_cross``; the whole suite passed with it), the halves'
    boosters swapped, in-sample propensities in tuned mode, and fixed mode's inner split
    predicting the half it was trained on."""
    _, recorder, arm, y, halves = _fit(monkeypatch, "dr", tuning)
    assert len(halves) == 2
    for train, a, b in halves:
        np.testing.assert_array_equal(np.union1d(a, b), train)
        mu = np.zeros((len(train), 2))
        q = np.zeros(len(train))
        for own, other in ((a, b), (b, a)):
            at = np.isin(train, own)
            for k in (0, 1):
                if tuning == "auto":  # tuned: trained on the other half, early-stopped on this one
                    fit = recorder.find(other[arm[other] == k], binary=False, valid=own[arm[own] == k], leaves=15)
                else:  # fixed: an inner fit on the other half, a fixed number of trees
                    fit = recorder.find(other[arm[other] == k], binary=False)
                np.testing.assert_array_equal(fit["label"], y[other[arm[other] == k]])  # an outcome model
                assert not np.isin(train[at], fit["rows"]).any()
                mu[at, k] = fit["id"]
            propensity = (recorder.find(other, binary=True, valid=own) if tuning == "auto"
                          else recorder.find(train, binary=True))  # fixed: EconML's in-fold propensity
            q[at] = propensity["id"]
        t, yy = arm[train], y[train]
        psi = mu[:, 1] - mu[:, 0] + t * (yy - mu[:, 1]) / q - (1 - t) * (yy - mu[:, 0]) / (1 - q)
        final = recorder.find(train, binary=False)  # the final stage's model on the whole fold
        np.testing.assert_allclose(final["label"], psi, rtol=1e-12)
