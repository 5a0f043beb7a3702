"""Learner selection without ground truth: the doubly robust loss, stability, near-ties."""

import numpy as np
import pytest

from core.evaluation.pseudo import dr_pseudo_outcome
from core.evaluation.selection import fold_stability, select_learner


def test_pseudo_outcome_by_hand():
    # treated row: μ1 − μ0 + (y − μ1)/q = 5 − 2 + (9 − 5)/0.25 = 19
    # control row: μ1 − μ0 − (y − μ0)/(1 − q) = 5 − 2 − (1 − 2)/0.75 = 3 + 4/3
    psi = dr_pseudo_outcome([9.0, 1.0], [1, 0], np.array([5.0, 5.0]), np.array([2.0, 2.0]), [0.25, 0.25])
    np.testing.assert_allclose(psi, [19.0, 3 + 4 / 3])
    # the propensity is clipped to [0.01, 0.99]: q = 0 acts as 0.01
    assert dr_pseudo_outcome([1.0], [1], np.array([0.0]), np.array([0.0]), [0.0])[0] == pytest.approx(100.0)


def test_pseudo_outcome_is_unbiased_for_the_effect_even_with_a_wrong_outcome_model():
    rng = np.random.default_rng(0)
    n = 400_000
    x = rng.uniform(-1, 1, n)
    tau = 1.0 + 2.0 * x
    t = rng.uniform(size=n) < 0.3
    y = 3 * x + t * tau + rng.normal(0, 1, n)
    wrong = np.zeros(n)  # μ̂ = 0 everywhere, but the randomised q is right
    psi = dr_pseudo_outcome(y, t, wrong, wrong, np.full(n, 0.3))
    high = x > 0.5
    # E[ψ | x > 0.5] = E[τ | x > 0.5] = 1 + 2·0.75 = 2.5; SE from ψ's own spread
    se = psi[high].std(ddof=1) / np.sqrt(high.sum())
    assert abs(psi[high].mean() - 2.5) < 3 * se


def _randomised_problem(seed=1, n=20_000):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    arm = (rng.uniform(size=n) < 0.5).astype(int)
    mu0, tau = np.sin(3 * x), 2.0 * x
    y = mu0 + arm * tau + rng.normal(0, 1.0, n)
    mu = {"value": np.column_stack([mu0, mu0 + tau])}
    q = np.full((n, 1), 0.5)
    return rng, x, arm, y, tau, mu, q


def test_dr_loss_ranks_candidates_by_their_error_against_the_truth():
    rng, x, arm, y, tau, mu, q = _randomised_problem()
    n = len(y)
    candidates = {"exact": tau, "noisy": tau + rng.normal(0, 0.5, n), "noisier": tau + rng.normal(0, 1.0, n),
                  "constant": np.full(n, tau.mean())}
    effects = {k: {"value": v[:, None]} for k, v in candidates.items()}
    sel = select_learner(effects, {"value": y}, arm, mu, q)
    scores = {c.learner: c.score for c in sel.candidates}
    assert sel.chosen == "exact"
    # mean squared errors: 0, 0.25, 1 and Var(2x) = 4/3
    assert [c.learner for c in sel.candidates] == ["exact", "noisy", "noisier", "constant"]
    # with true nuisances the loss gap is the mean squared error against the truth, over Var(ψ)
    psi = dr_pseudo_outcome(y, arm == 1, mu["value"][:, 1], mu["value"][:, 0], q[:, 0])
    reference = np.mean((psi - psi.mean()) ** 2)
    for name, est in candidates.items():
        pehe2 = np.mean((est - tau) ** 2)
        gap = scores[name] - scores["exact"]
        se = next(c.se for c in sel.candidates if c.learner == name)
        assert abs(gap - pehe2 / reference) < 3 * max(se, 1e-12) + 1e-12, (name, gap, pehe2 / reference, se)
    # the constant predictor's relative loss is 1 by construction (up to the mean of ψ vs the truth's mean)
    assert scores["constant"] == pytest.approx(1.0, abs=0.01)
    assert "lowest doubly robust loss" in sel.reason and "X-learner" not in sel.reason


def test_near_ties_go_to_the_most_stable_candidate():
    rng, x, arm, y, tau, mu, q = _randomised_problem(seed=2)
    n = len(y)
    error = rng.normal(0, 0.3, n)
    a, b = tau + error, tau - error  # mirrored errors: the same expected loss
    effects = {"t": {"value": a[:, None]}, "x": {"value": b[:, None]}}
    for stable in ("t", "x"):
        stability = {"t": 0.9 if stable == "t" else 0.5, "x": 0.9 if stable == "x" else 0.5}
        sel = select_learner(effects, {"value": y}, arm, mu, q, stability=stability)
        assert sel.chosen == stable
        assert "within one standard error" in sel.reason and "rank correlation 0.90" in sel.reason
    # a clear winner is not overruled by stability
    effects["t"] = {"value": np.full((n, 1), tau.mean())}
    sel = select_learner(effects, {"value": y}, arm, mu, q, stability={"t": 1.0, "x": 0.1})
    assert sel.chosen == "x" and next(c.gap_se for c in sel.candidates if c.learner == "t") > 1


def test_fold_stability_by_hand():
    probe = np.arange(10.0)
    same = np.stack([probe, probe * 2, probe + 5])[:, :, None]
    assert fold_stability(same) == pytest.approx(1.0)
    reversed_ = np.stack([probe, -probe])[:, :, None]
    assert fold_stability(reversed_) == pytest.approx(-1.0)
    assert np.isnan(fold_stability(np.stack([probe])[:, :, None]))
    constant = np.stack([np.ones(10), probe])[:, :, None]
    assert np.isnan(fold_stability(constant))  # no ranking in a constant prediction
