"""Issue 24, item 1: the relative doubly robust loss that ``--learner auto`` chooses by.

For head h and offer k, over the rows of the control and offer k, the loss of a candidate is
``mean((ψ − τ̂)²) / Var(ψ)`` (Var with divisor n: the loss of the best constant, ψ̄); the
criterion is the mean of these over heads and offers.  ψ is recomputed here from its formula,
with q clipped to [0.01, 0.99], never through :func:`core.evaluation.pseudo.dr_pseudo_outcome`.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.selection import select_learner

N = 90  # 30 rows per arm: small, so that a divisor n − 1 instead of n moves a loss by over 1%


def _log(seed: int = 3):
    """Three arms (control, offers 1 and 2), two heads, out-of-fold μ̂ and q with a few q outside
    the clip range."""
    rng = np.random.default_rng(seed)
    arm = np.tile([0, 1, 2], N // 3)
    x = rng.normal(size=N)
    tau = {"value": np.column_stack([1.0 + 2.0 * x, 2.0 - 2.0 * x]), "cost": np.column_stack([0.5 + x, 0.8 - x])}
    outcomes, mu = {}, {}
    for head, scale in (("value", 3.0), ("cost", 1.0)):
        base = scale * (2.0 + 0.5 * x)
        y = base + np.where(arm > 0, tau[head][np.arange(N), np.maximum(arm - 1, 0)], 0.0) + rng.normal(0, 0.5 * scale, N)
        outcomes[head] = y
        # deliberately imperfect outcome models
        mu[head] = np.column_stack([base + 0.3, base + tau[head][:, 0] - 0.2, base + tau[head][:, 1] + 0.1])
    q = rng.uniform(0.2, 0.8, (N, 2))
    # outside the clip range: treated rows at q = 1 and control rows at q = 0 (→ 0.99 and 0.01)
    q[[1, 4], 0], q[[0, 3], 0] = 1.0, 0.0
    q[[2, 5], 1], q[[6, 9], 1] = 1.0, 0.0
    return arm, x, tau, outcomes, mu, q


def _psi_by_hand(y, arm, mu, q, k):
    """ψ of offer k over the rows of arms {0, k}, from the formula."""
    rows = (arm == 0) | (arm == k)
    qc = np.minimum(np.maximum(q[rows, k - 1], 0.01), 0.99)
    m1, m0, yy, t = mu[rows, k], mu[rows, 0], y[rows], arm[rows] == k
    psi = m1 - m0 + t * (yy - m1) / qc - (~t) * (yy - m0) / (1.0 - qc)
    return rows, psi


def test_relative_dr_loss_is_mean_squared_error_over_the_variance_of_psi():
    """Catches a loss not divided by Var(ψ) (or by a variance other than ψ's, e.g. with divisor
    n − 1 or uncentred), a criterion that is not the mean of the per-head-and-offer losses, and
    a constant-effect candidate that does not score exactly 1."""
    arm, _, tau, outcomes, mu, q = _log()
    rng = np.random.default_rng(11)
    candidates = {"const": {}, "truth": {}, "noisy": {}}
    psis = {}
    for head in outcomes:
        candidates["truth"][head] = tau[head]
        candidates["noisy"][head] = tau[head] + rng.normal(0, 2.0, tau[head].shape)
        const = np.zeros((N, 2))
        for k in (1, 2):
            rows, psi = _psi_by_hand(outcomes[head], arm, mu[head], q, k)
            psis[head, k] = rows, psi
            const[:, k - 1] = psi.mean()  # "everyone gets the average effect"
        candidates["const"][head] = const
    selection = select_learner(candidates, outcomes, arm, mu, q)
    by_name = {c.learner: c for c in selection.candidates}

    hand = {}
    for name, effects in candidates.items():
        losses = {}
        for (head, k), (rows, psi) in psis.items():
            variance = np.sum((psi - psi.mean()) ** 2) / len(psi)
            losses[f"{head}:{k}"] = np.sum((psi - effects[head][rows, k - 1]) ** 2) / len(psi) / variance
        hand[name] = losses
        assert set(by_name[name].losses) == {"value:1", "value:2", "cost:1", "cost:2"}
        for key, loss in losses.items():
            assert by_name[name].losses[key] == pytest.approx(loss, rel=1e-10), (name, key)
        assert by_name[name].score == pytest.approx(np.mean(list(losses.values())), rel=1e-10), name

    # a constant effect equal to ψ̄ is the reference itself: every loss and the criterion are 1
    assert abs(by_name["const"].score - 1.0) < 0.01
    for key, loss in by_name["const"].losses.items():
        assert loss == pytest.approx(1.0, abs=1e-10), key
    # the true effects beat the constant and the noisy candidate; the choice follows the criterion
    assert by_name["truth"].score < 1.0 < by_name["noisy"].score
    assert selection.chosen == "truth" and [c.learner for c in selection.candidates] == ["truth", "const", "noisy"]


def test_the_gap_to_the_best_is_in_paired_standard_errors_of_the_per_row_losses():
    """The standard error of a candidate's gap to the best is √n times the standard deviation
    (divisor n − 1) of the per-row differences of loss contributions, a row's contribution being
    Σ over the heads and offers it belongs to of (ψ − τ̂)² / (n_k · Var(ψ) · heads · offers).
    Catches a contribution not divided by Var(ψ) (the scores stay right, the paired errors move)."""
    arm, _, tau, outcomes, mu, q = _log(seed=8)
    rng = np.random.default_rng(2)
    candidates = {"a": {h: tau[h] + rng.normal(0, 0.5, (N, 2)) for h in outcomes},
                  "b": {h: tau[h] + rng.normal(0, 1.5, (N, 2)) for h in outcomes}}
    selection = select_learner(candidates, outcomes, arm, mu, q, tie_se=0.0)
    contrib = {name: np.zeros(N) for name in candidates}
    for head in outcomes:
        for k in (1, 2):
            rows, psi = _psi_by_hand(outcomes[head], arm, mu[head], q, k)
            variance = np.mean((psi - psi.mean()) ** 2)
            for name, effects in candidates.items():
                contrib[name][np.flatnonzero(rows)] += (psi - effects[head][rows, k - 1]) ** 2 / (rows.sum() * variance * 4)
    score = {name: c.sum() for name, c in contrib.items()}
    best, other = sorted(score, key=score.get)
    diff = contrib[other] - contrib[best]
    se = np.sqrt(N) * np.sqrt(np.sum((diff - diff.mean()) ** 2) / (N - 1))
    found = {c.learner: c for c in selection.candidates}
    assert found[best].score == pytest.approx(score[best], rel=1e-10) and found[best].se == 0.0
    assert found[other].score == pytest.approx(score[other], rel=1e-10)
    assert found[other].se == pytest.approx(se, rel=1e-10)
    assert found[other].gap_se == pytest.approx((score[other] - score[best]) / se, rel=1e-10)
    assert selection.chosen == best
