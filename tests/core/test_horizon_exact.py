"""Issue 24, item 8: which ratio a predicted effect is scaled by in the long-horizon value.

Each score gets its bin's ratio (a score on a bin edge belongs to the upper bin: the edges are
the bins' smallest scores), and the overall ratio where the bin's is undefined.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core.evaluation.horizon import horizon_ratios, plan_long_value

PER_BIN = 12


def _data(seed: int = 5):
    """4 bins of 12 distinct scores (1–12, 13–24, 25–36, 37–48).

    bin 1: a clear short effect, long = 1.5 × short + noise; bin 2: a single treated row (no ratio);
    bin 3: a clear effect, long = 3 × short + noise; bin 4: a short effect lost in noise (ratio not defined).
    """
    rng = np.random.default_rng(seed)
    score = np.arange(1, 4 * PER_BIN + 1, dtype=float)
    t = np.tile(np.r_[np.ones(6), np.zeros(6)], 4).astype(int)
    t[PER_BIN:2 * PER_BIN] = 0
    t[PER_BIN] = 1
    b = (np.arange(4 * PER_BIN) // PER_BIN)
    effect = np.array([20.0, 20.0, 20.0, 0.3])[b]
    noise = np.array([1.0, 1.0, 1.0, 10.0])[b]
    short = 50.0 + effect * t + rng.normal(0, 1, len(score)) * noise
    long = np.array([1.5, 1.0, 3.0, 2.0])[b] * short + rng.normal(0, 1, len(score))
    return score, t, b, short, long


def _hand_ratio(short, long, treated, control, alpha=0.05):
    """Δlong/Δshort with plain means, and whether Δshort's interval excludes 0 (two independent means)."""
    d_short = short[treated].mean() - short[control].mean()
    d_long = long[treated].mean() - long[control].mean()
    se_short = np.sqrt(short[treated].var(ddof=1) / treated.sum() + short[control].var(ddof=1) / control.sum())
    return d_long / d_short, bool(abs(d_short) > stats.norm.ppf(1 - alpha / 2) * se_short)


def test_bins_by_hand_undefined_bins_use_the_overall_ratio_and_edges_go_up():
    score, t, b, short, long = _data()
    result = horizon_ratios(short, long, score, t, n_bins=4)
    table = result.table
    assert table["n"].tolist() == [PER_BIN] * 4
    np.testing.assert_array_equal(result.edges, [-np.inf, 13.0, 25.0, 37.0])
    overall, overall_defined = _hand_ratio(short, long, t == 1, t == 0)
    assert overall_defined
    assert result.overall["ratio"] == pytest.approx(overall, rel=1e-12)
    hand = [_hand_ratio(short, long, (b == k) & (t == 1), (b == k) & (t == 0)) for k in (0, 2, 3)]
    assert [h[1] for h in hand] == [True, True, False], "bins 1 and 3 defined, bin 4 not significant"
    assert table["defined"].tolist() == [True, False, True, False]
    assert np.isnan(table["ratio"].iloc[1])
    for row, (ratio, _) in zip((0, 2, 3), hand):
        assert table["ratio"].iloc[row] == pytest.approx(ratio, rel=1e-12)
    r1, r3 = hand[0][0], hand[1][0]
    assert abs(hand[2][0] - overall) > 0.1, "bin 4's own ratio differs from the overall one"
    probe = np.array([-5.0, 1.0, 12.9, 13.0, 24.5, 25.0, 36.99, 37.0, 48.0, 99.0])
    expected = np.array([r1, r1, r1, overall, overall, r3, r3, overall, overall, overall])
    np.testing.assert_allclose(result.ratio_for(probe), expected, rtol=1e-12)
    # a plan's long-horizon value: Σ τ·r over the customers with this offer, by hand
    tau = np.array([12.0, 13.0, 25.0, 30.0, 40.0, 2.0])
    arm = np.array(["x", "x", "x", "", "x", "y"], dtype=object)
    value = plan_long_value(tau, arm, {"x": result})
    assert value == pytest.approx(12.0 * r1 + 13.0 * overall + 25.0 * r3 + 40.0 * overall, rel=1e-12)
