"""The EconML backend: the causal forest (``CausalForestDML``) and the reference S/T/X/DR-learners
(``SLearner``, ``TLearner``, ``XLearner`` and a DR-learner over all rows with the logged
propensity of each row's arm), all on LightGBM models, cross-fitted over the model's folds.

The native backend (:mod:`core.uplift.native`) is tested against these references.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import UserError
from ..evaluation.pseudo import CLIP as DR_CLIP
from ..lgbm import LGBMFactory
from .names import LEARNERS


def fit_econml(model, learner, x, t, outcomes, p, segments, tracker, probes: dict | None = None) -> dict:
    """Cross-fit ``learner`` on EconML over the folds of ``model._splits`` with ``model``'s
    LightGBM settings.  ``probes`` (segment → probe rows): also predict those rows with every
    fold model of the value head (fold-to-fold stability, for auto's comparison)."""
    n, n_arms = len(t), len(model.labels_)
    smallest_arm = int(np.bincount(t, minlength=n_arms).min()) * (model.folds - 1) // model.folds
    factory = LGBMFactory(model._lgbm_params(smallest_arm // max(len(segments), 1)), model.cat_idx_)
    bags = max(model.bagging, 1)
    tracker.plan(len(outcomes) * len(segments) * model.folds * bags)
    oof = {head: np.zeros((n, n_arms - 1)) for head in outcomes}
    oof_bags = {head: np.zeros((bags, n, n_arms - 1)) for head in outcomes} if model.bagging else {}
    probe = {}
    models = {}
    for head, y in outcomes.items():
        for seg_name, fold, train, test in model._splits(segments, t):
            rng = np.random.default_rng([model.seed, fold, 0])
            bag_models = []
            for b in range(bags):
                rows = train if not model.bagging else np.sort(rng.choice(train, size=len(train), replace=True))
                fitted = fit_effects(learner, factory, x[rows], t[rows], y[rows],
                                     None if p is None else p[rows], n_arms, model.seed + b)
                effects = fitted.predict(x[test])
                if model.bagging:
                    oof_bags[head][b, test] = effects
                oof[head][test] += effects / bags
                if head == "value" and probes is not None:
                    probe.setdefault(seg_name, []).append(fitted.predict(x[probes[seg_name]]))
                bag_models.append(fitted)
                tracker.step(f"{LEARNERS[learner]} · {head} head · segment {seg_name} · fold {fold + 1}/{model.folds}"
                             + (f" · bag {b + 1}/{bags}" if model.bagging else ""))
            models.setdefault((head, seg_name), []).append(bag_models)
    return {"learner": learner, "models": models, "oof": oof, "oof_bags": oof_bags, "probe": probe}


def fit_effects(kind: str, factory: LGBMFactory, x: np.ndarray, t: np.ndarray, y: np.ndarray,
                p: np.ndarray | None, n_arms: int, seed: int):
    """Fit one learner on (x, t, y); return an object whose ``predict(x)`` gives (n × arms−1) effects."""
    with warnings.catch_warnings():
        # LightGBM warns that categorical_feature belongs on its Dataset; the sklearn wrappers
        # that EconML calls pass it through params, which is what we want.
        warnings.simplefilter("ignore", UserWarning)
        return _fit_effects_quietly(kind, factory, x, t, y, p, n_arms, seed)


def _fit_effects_quietly(kind, factory, x, t, y, p, n_arms, seed):
    if kind in ("s", "t", "x"):
        from econml.metalearners import SLearner, TLearner, XLearner  # deferred: econml is slow to import

        if kind == "s":
            est = SLearner(overall_model=factory.regressor(), allow_missing=True)
        elif kind == "t":
            est = TLearner(models=factory.regressor(), allow_missing=True)
        else:
            est = XLearner(models=factory.regressor(), propensity_model=factory.classifier(), allow_missing=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(y, t, X=x)
        return EconMLEffects(est, n_arms)
    if kind == "cf":
        from econml.dml import CausalForestDML  # deferred: econml is slow to import

        est = CausalForestDML(model_y=factory.regressor(), model_t=factory.classifier(), discrete_treatment=True,
                              n_estimators=100, min_samples_leaf=20, max_samples=0.45, cv=2, random_state=seed,
                              n_jobs=factory.params.get("n_jobs", 2), allow_missing=True, inference=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(y, t, X=x)
        return EconMLEffects(est, n_arms)
    if kind == "dr":
        return DREffects.fit(factory, x, t, y, p, n_arms, seed)
    raise UserError(f"learner '{kind}' is not one of {', '.join(LEARNERS)}")


class EconMLEffects:
    """A fitted EconML estimator: ``predict(x)`` gives (n × arms−1) effects against the control."""

    def __init__(self, est, n_arms: int):
        self.est = est
        self.n_arms = n_arms

    def predict(self, x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            # EconML warns about NaN inputs; LightGBM routes missing values on purpose.
            warnings.simplefilter("ignore", UserWarning)
            return np.column_stack([np.ravel(self.est.effect(x, T0=0, T1=k)) for k in range(1, self.n_arms)])


class DREffects:
    """The DR-learner with per-row propensities (the EconML backend's reference form: over all
    rows, the logged propensity of each row's arm)."""

    def __init__(self, finals):
        self.finals = finals

    @classmethod
    def fit(cls, factory, x, t, y, p, n_arms, seed):
        from sklearn.model_selection import StratifiedKFold  # deferred: scikit-learn is slow to import

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
