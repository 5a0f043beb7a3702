"""The S-, T-, X- and DR-learners on the native backend (:mod:`core.uplift.native`): per training
fold, the pairwise propensity classifiers and, per head, the outcome models and every requested
learner's later stages.

Learners (per non-control arm ``k``, control ``0``; ``μₖ`` outcome models, ``gₖ(x)`` the
probability of arm ``k`` among rows of arms ``{0, k}``):

- ``t``: ``μₖ(x) − μ₀(x)``.
- ``x``: ``gₖ(x)·τ₀ₖ(x) + (1 − gₖ(x))·τ₁ₖ(x)`` with ``τ₁ₖ`` fitted on treated rows'
  ``Y − μ̂₀(x)`` and ``τ₀ₖ`` on control rows' ``μ̂ₖ(x) − Y``.
- ``dr``: a regression on x, over rows of arms {0, k}, of
  ``ψ = μ̂ₖ − μ̂₀ + 1[A=k](Y − μ̂ₖ)/ĝₖ − 1[A=0](Y − μ̂₀)/(1 − ĝₖ)`` with cross-fitted ``μ̂`` and
  ``ĝₖ`` (clipped to [0.01, 0.99]; :func:`core.evaluation.pseudo.dr_pseudo_outcome`).
- ``s``: one model of ``Y`` on ``(x, arm)``; the effect is its prediction at ``k`` minus at ``0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation.pseudo import CLIP, dr_pseudo_outcome
from .native import PROPENSITY_PARAMS, SEARCH, Binned, Model, Shifted, base_params, fit_model, predict_booster, train

NATIVE_LEARNERS = ("s", "t", "x", "dr")


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
    params = ({**base_params(seed), **PROPENSITY_PARAMS} if tuned else dict(fixed_params))
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
            params = {**base_params(seed), **SEARCH[name]}
            fits = [train(data, params, a, y[a], valid_rows=b, valid_label=y[b], weight=None if weight is None else weight[a])
                    for a, b in by_arm]
            search_loss[name] = float(sum(loss for _, loss in fits))
            first[name] = fits
        config = min(search_loss, key=search_loss.get)
        params = {**base_params(seed), **SEARCH[config]}
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
                mu_hat[pred_mask, k] = predict_booster(booster, x[rows[pred_mask]])
    final_params = dict(params)
    if not tuned:  # the fixed reference: a smoother final stage, as before the native backend existed
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
