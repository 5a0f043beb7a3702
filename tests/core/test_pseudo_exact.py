"""Issue 24, item 3: the doubly robust pseudo-outcome clips the propensity on both sides.

``ψ = μ̂ₖ − μ̂₀ + 1[A=k](Y − μ̂ₖ)/q − 1[A=0](Y − μ̂₀)/(1 − q)`` with ``q`` clipped to
[CLIP, 1 − CLIP] = [0.01, 0.99]: a treated row at q = 0 is divided by 0.01, a control row at
q = 1 (or 0.999) by 1 − 0.99 = 0.01.  The expected values below are worked out by hand.
"""

from __future__ import annotations

import numpy as np

from core.evaluation.pseudo import CLIP, dr_pseudo_outcome


def test_the_clip_bounds_are_one_percent():
    assert CLIP == 0.01


def test_propensity_is_clipped_at_both_ends_by_hand():
    """Catches a clip on one side only (``np.maximum(q, CLIP)`` or ``np.minimum(q, 1 − CLIP)``),
    a clip of the control row's 1 − q missing, and swapped treated/control terms.

    Every row: Y = 3, μ̂ₖ = 2, μ̂₀ = 1, so μ̂ₖ − μ̂₀ = 1, a treated row's residual Y − μ̂ₖ = 1 and a
    control row's Y − μ̂₀ = 2.
    """
    q = np.array([1.0, 0.999, 0.995, 0.5, 0.2, 0.0, 0.004, 1.0, 0.0])
    treated = np.array([False, False, False, False, True, True, True, True, False])
    expected = np.array([
        1 - 2 / 0.01,   # control, q = 1     → q = 0.99, 1 − q = 0.01
        1 - 2 / 0.01,   # control, q = 0.999 → q = 0.99
        1 - 2 / 0.01,   # control, q = 0.995 → q = 0.99
        1 - 2 / 0.5,    # control, q = 0.5   (inside: unchanged)
        1 + 1 / 0.2,    # treated, q = 0.2   (inside: unchanged)
        1 + 1 / 0.01,   # treated, q = 0     → 0.01
        1 + 1 / 0.01,   # treated, q = 0.004 → 0.01
        1 + 1 / 0.99,   # treated, q = 1     → 0.99
        1 - 2 / 0.99,   # control, q = 0     → 0.01, 1 − q = 0.99
    ])
    n = len(q)
    psi = dr_pseudo_outcome(np.full(n, 3.0), treated, np.full(n, 2.0), np.full(n, 1.0), q)
    np.testing.assert_allclose(psi, expected, rtol=1e-12)
    assert np.isfinite(psi).all()


def test_pseudo_outcome_by_formula_on_random_rows():
    """The same on random rows with propensities spread over [0, 1] (a quarter beyond the clip
    bounds), against the formula written with an explicit loop."""
    rng = np.random.default_rng(4)
    n = 200
    y, mu1, mu0 = rng.normal(5, 2, n), rng.normal(5, 1, n), rng.normal(4, 1, n)
    treated = rng.uniform(size=n) < 0.5
    q = np.concatenate([rng.uniform(0, 0.01, 25), rng.uniform(0.99, 1.0, 25), rng.uniform(0, 1, n - 50)])
    q[:2], q[25:27] = 0.0, 1.0
    expected = np.empty(n)
    for i in range(n):
        qi = min(max(q[i], 0.01), 0.99)
        if treated[i]:
            expected[i] = mu1[i] - mu0[i] + (y[i] - mu1[i]) / qi
        else:
            expected[i] = mu1[i] - mu0[i] - (y[i] - mu0[i]) / (1 - qi)
    np.testing.assert_allclose(dr_pseudo_outcome(y, treated, mu1, mu0, q), expected, rtol=1e-12)
    # both clip bounds were exercised by treated and by control rows
    for low in (True, False):
        beyond = q < 0.01 if low else q > 0.99
        assert (beyond & treated).any() and (beyond & ~treated).any()
