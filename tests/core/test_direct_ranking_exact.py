"""Issue 24, item 4: the direct ranking model's exact quantities.

- the constrained variant's CPI limit, given in the log's units (cost per value), enters
  training in units of the two effect scales: ``cpi_max · scale_value / scale_cost``;
- thin score bins are merged with their thinner neighbour (the first bin with the one to its
  right, a tie with the one to its left) until each has ``min_rows`` rows of each arm;
- ``effect_scale`` is the absolute average effect, floored at two standard errors;
- the LightGBM custom objective hands over ``n·∂L/∂s`` and the Hessian approximation
  ``n·p(1 − p)·(|a|·|v − v̄| + |b|·|c − c̄|)`` floored at 1e-3.

Every expected number is computed here from its formula.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.uplift import direct_ranking as drm
from core.uplift import ranking_scorers

T = 10.0  # the log-barrier's t


def _softplus(z):
    return np.log1p(np.exp(z))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _barrier(z):
    """ψ_t and its slope: −log(−z)/t up to z = −1/t², then the tangent line there."""
    edge = -1.0 / T**2
    if z <= edge:
        return -np.log(-z) / T, -1.0 / (T * z)
    return -np.log(-edge) / T + T * (z - edge), T


def _selection(score, treated, weight):
    """Soft selection: w·e^s normalised within each arm, by an explicit loop."""
    p = np.zeros(len(score))
    for arm in (True, False):
        rows = [i for i in range(len(score)) if treated[i] == arm]
        total = sum(weight[i] * np.exp(score[i]) for i in rows)
        for i in rows:
            p[i] = weight[i] * np.exp(score[i]) / total
    return p


# --- the CPI limit's units ---------------------------------------------------------------------

def _cost_value_log(n=400, seed=1):
    """Value effect about 40, cost effect about 2: the two scales differ twentyfold."""
    rng = np.random.default_rng(seed)
    treated = np.arange(n) % 2 == 0
    x = rng.normal(size=(n, 3))
    value = 100.0 + 40.0 * treated + 5.0 * x[:, 0] + rng.normal(0, 5.0, n)
    cost = np.where(treated, 2.0 + 0.3 * x[:, 1] + rng.normal(0, 0.2, n), 0.0)
    return x, treated, value, cost


@pytest.mark.parametrize("scorer", ["linear", "lightgbm"])
def test_the_cpi_limit_is_converted_to_the_training_units(monkeypatch, scorer):
    """Catches a limit passed on in the log's units, or converted the wrong way round
    (``cpi_max · scale_cost / scale_value``)."""
    x, treated, value, cost = _cost_value_log()
    captured = {}
    name = "fit_numpy" if scorer == "linear" else "fit_lightgbm"
    real = getattr(drm, name)

    def spy(*args):
        captured["groups"], captured["cpi"] = args[2], args[3]
        return real(*args)

    monkeypatch.setattr(drm, name, spy)
    cpi_max = 0.04
    ranker = drm.DirectRanker(scorer, cpi_max=cpi_max, max_steps=3).fit(x, treated, value, cost)
    # the scales by hand: plain differences of arm means, clearly above two standard errors
    scale_v = abs(value[treated].mean() - value[~treated].mean())
    scale_c = abs(cost[treated].mean() - cost[~treated].mean())
    se_v = np.sqrt(value[treated].var() / treated.sum() + value[~treated].var() / (~treated).sum())
    assert scale_v > 2 * se_v and scale_v / scale_c > 10
    assert ranker.scale_value_ == pytest.approx(scale_v, rel=1e-12)
    assert ranker.scale_cost_ == pytest.approx(scale_c, rel=1e-12)
    assert captured["cpi"] == pytest.approx(cpi_max * scale_v / scale_c, rel=1e-12)

    # what it means: the constrained loss of the training cohort, for any score, is the one
    # written in the log's units, the constraint (Δc − cpi_max·Δv) measured in cost units
    train, val = captured["groups"]
    np.testing.assert_allclose(np.sort(np.r_[train.value, val.value] * scale_v), np.sort(value), rtol=1e-12)
    np.testing.assert_allclose(np.sort(np.r_[train.cost, val.cost] * scale_c), np.sort(cost), rtol=1e-12, atol=1e-12)
    raw_v, raw_c = train.value * scale_v, train.cost * scale_c
    arm = np.arange(len(raw_v)) < train.n_treated
    rng = np.random.default_rng(0)
    checked = set()
    for spread in (0.0, 1.0, 3.0):
        # spread 0: a uniform selection, at the offer's average CPI 0.05 (infeasible); larger
        # spreads favour high-value offer rows and low-value control rows (feasible)
        direction = np.where(arm, 1.0, -1.0) * (raw_v - raw_v.mean()) / raw_v.std()
        score = rng.normal(0, 0.1, len(raw_v)) + spread * direction
        p = _selection(score, arm, np.ones(len(score)))
        dv = p[arm] @ raw_v[arm] - p[~arm] @ raw_v[~arm]
        dc = p[arm] @ raw_c[arm] - p[~arm] @ raw_c[~arm]
        z = (dc - cpi_max * dv) / scale_c
        checked.add(z <= -1.0 / T**2)
        expected = -_softplus(dv / scale_v) + _barrier(z)[0]
        assert train.loss(score, captured["cpi"]) == pytest.approx(expected, rel=1e-10)
    assert checked == {True, False}, "both the feasible and the infeasible side of the barrier"


# --- thin bins ---------------------------------------------------------------------------------

def _binned_example(treated_per_bin):
    """Bins of 8 consecutive scores (0..8·bins−1, equal-count quantile bins); bin k has
    ``treated_per_bin[k]`` treated rows (its first ones) and the rest control."""
    treated = np.concatenate([np.arange(8) < k for k in treated_per_bin])
    score = np.arange(len(treated), dtype=float)
    rng = np.random.default_rng(len(treated_per_bin) + sum(treated_per_bin))
    return score, treated, rng.normal(10, 3, len(score)), rng.exponential(2.0, len(score))


@pytest.mark.parametrize("treated_per_bin,min_rows,merged", [
    # min(treated, control) per bin 2,4,1,2,4: the thinnest (bin 3) joins its thinner right
    # neighbour → 2,4,3,4; then the first bin joins the one to its right → 6,3,4.
    ((2, 4, 1, 2, 4), 3, [(0, 16), (16, 32), (32, 40)]),
    # 4,2,1,4,1: bin 3 (the first of the two thinnest) joins its thinner left neighbour → 4,3,4,1;
    # then the last bin joins the one to its left → 4,3,5.
    ((4, 2, 1, 4, 7), 3, [(0, 8), (8, 24), (24, 40)]),
    # 3,1,3: equally thin neighbours, the left one is taken → 4,3.
    ((3, 1, 3), 2, [(0, 16), (16, 24)]),
    # nothing thin: the five bins stay
    ((4, 4, 3, 5, 4), 3, [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40)]),
])
def test_thin_bins_are_merged_with_their_thinner_neighbour_by_hand(treated_per_bin, min_rows, merged):
    """Catches a thin bin merged with the thicker neighbour, with the wrong one (an index off
    by one), ties going right, and the first or last bin merged the wrong way; each final bin's
    effects are the differences of arm means of exactly the hand-merged rows."""
    score, treated, value, cost = _binned_example(treated_per_bin)
    bins = drm.rank_bins(score, treated, value, cost, n_bins=len(treated_per_bin), min_rows=min_rows)
    assert len(bins) == len(merged)
    for (_, row), (lo, hi) in zip(bins.iterrows(), merged):
        rows = np.arange(lo, hi)
        t, c = rows[treated[rows]], rows[~treated[rows]]
        assert (row["score_low"], row["score_high"]) == (lo, hi - 1)
        assert (row["n_offer"], row["n_control"]) == (len(t), len(c))
        assert min(len(t), len(c)) >= min_rows
        for head, y in (("value", value), ("cost", cost)):
            effect = y[t].mean() - y[c].mean()
            se = np.sqrt(np.mean((y[t] - y[t].mean()) ** 2) / len(t) + np.mean((y[c] - y[c].mean()) ** 2) / len(c))
            assert row[f"tau_{head}"] == pytest.approx(effect, rel=1e-12)
            assert row[f"tau_{head}_se"] == pytest.approx(se, rel=1e-12)


# --- effect_scale ------------------------------------------------------------------------------

def test_effect_scale_is_the_absolute_effect_floored_at_two_standard_errors():
    """Catches a signed effect (a negative effect would fall to the two-standard-error floor),
    a floor other than 2 SE, and unweighted means when weights are given."""
    rng = np.random.default_rng(7)
    n = 200
    treated = np.arange(n) % 2 == 0
    noise = rng.normal(0, 1.0, n)
    # a large negative effect: the scale is its size
    y = 50.0 - 30.0 * treated + noise
    assert drm.effect_scale(y, treated) == pytest.approx(abs(y[treated].mean() - y[~treated].mean()), rel=1e-12)
    assert drm.effect_scale(-y, treated) == pytest.approx(abs(y[treated].mean() - y[~treated].mean()), rel=1e-12)
    # an effect lost in noise: two standard errors of the difference of means (divisor n)
    flat = 50.0 + 10.0 * noise
    effect = flat[treated].mean() - flat[~treated].mean()
    se = np.sqrt(flat[treated].var() / treated.sum() + flat[~treated].var() / (~treated).sum())
    assert abs(effect) < 2 * se
    assert drm.effect_scale(flat, treated) == pytest.approx(2 * se, rel=1e-12)
    # weighted (Hájek) means and the weighted variance of a mean, Σw²(y − m)² / (Σw)²
    w = rng.uniform(0.5, 4.0, n)

    def hajek(rows):
        m = np.sum(w[rows] * y[rows]) / np.sum(w[rows])
        return m, np.sum(w[rows] ** 2 * (y[rows] - m) ** 2) / np.sum(w[rows]) ** 2

    (mt, vt), (mc, vc) = hajek(treated), hajek(~treated)
    assert abs(mt - mc) > 2 * np.sqrt(vt + vc)
    assert drm.effect_scale(y, treated, w) == pytest.approx(abs(mt - mc), rel=1e-12)
    # nothing at all to measure: 1
    assert drm.effect_scale(np.full(n, 3.0), treated) == 1.0


# --- the LightGBM objective ---------------------------------------------------------------------

@pytest.mark.parametrize("cpi_max", [None, 0.3, 5.0])
def test_lightgbm_objective_gradient_and_hessian_equal_their_formulas(cpi_max):
    """Catches a Hessian without the (1 − p) factor, with signed instead of absolute slopes or
    deviations, without the row-count factor, without (or with another) floor, and a gradient
    with the wrong sign for control rows."""
    rng = np.random.default_rng(3)
    n = 30
    treated = rng.uniform(size=n) < 0.5
    value = rng.normal(1.0, 1.0, n) + treated
    cost = np.where(treated, rng.exponential(1.0, n), rng.exponential(0.1, n))
    weight = rng.uniform(0.5, 3.0, n)
    score = rng.normal(0, 1, n)
    score[np.flatnonzero(treated)[0]] = -60.0  # p ≈ e⁻⁶⁰: its Hessian is the floor
    group = drm.Cohort.of(treated, value, cost, weight)
    grad, hess = ranking_scorers.lightgbm_objective(group, cpi_max)(score, None)

    p = _selection(score, treated, weight)
    sign = np.where(treated, 1.0, -1.0)
    v_bar = np.where(treated, p[treated] @ value[treated], p[~treated] @ value[~treated])
    c_bar = np.where(treated, p[treated] @ cost[treated], p[~treated] @ cost[~treated])
    dv = p[treated] @ value[treated] - p[~treated] @ value[~treated]
    dc = p[treated] @ cost[treated] - p[~treated] @ cost[~treated]

    def loss(dv, dc):
        if cpi_max is None:
            return -_softplus(dv) / _softplus(dc)
        return -_softplus(dv) + _barrier(dc - cpi_max * dv)[0]

    if cpi_max is None:  # a = ∂L/∂Δv, b = ∂L/∂Δc
        a = -_sigmoid(dv) / _softplus(dc)
        b = _softplus(dv) * _sigmoid(dc) / _softplus(dc) ** 2
    else:
        slope = _barrier(dc - cpi_max * dv)[1]
        a, b = -_sigmoid(dv) - cpi_max * slope, slope
    h = 1e-6  # the closed forms agree with the loss itself
    assert a == pytest.approx((loss(dv + h, dc) - loss(dv - h, dc)) / (2 * h), rel=1e-6)
    assert b == pytest.approx((loss(dv, dc + h) - loss(dv, dc - h)) / (2 * h), rel=1e-6)

    expected_grad = n * sign * p * (a * (value - v_bar) + b * (cost - c_bar))
    raw_hess = n * p * (1 - p) * (abs(a) * np.abs(value - v_bar) + abs(b) * np.abs(cost - c_bar))
    expected_hess = np.maximum(raw_hess, 1e-3)
    assert raw_hess.min() < 1e-20 and (raw_hess > 1e-3).sum() >= n - 2  # the floor bites on one row only
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hess, expected_hess, rtol=1e-10)
