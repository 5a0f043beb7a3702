import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.decision.allocate import Frontier, allocate, allocate_exact, allocate_fast
from core.decision.pacing import pacing
from core.decision.policy import candidates_from_scores, prune
from core.errors import UserError


def brute_force(candidates, budget, caps=None):
    """Best total value over every assignment (tiny instances only)."""
    n, k = candidates.tau_value.shape
    caps = caps or {}
    best = 0.0
    for combo in itertools.product(range(-1, k), repeat=n):
        value = cost = 0.0
        counts = np.zeros(k, dtype=int)
        feasible = True
        for i, a in enumerate(combo):
            if a < 0:
                continue
            if not candidates.mask[i, a]:
                feasible = False
                break
            value += candidates.tau_value[i, a]
            cost += candidates.tau_cost[i, a]
            counts[a] += 1
        if feasible and cost <= budget + 1e-9 and all(counts[candidates.arms.index(a)] <= c for a, c in caps.items()):
            best = max(best, value)
    return best


@st.composite
def instances(draw, max_n=5, max_k=3):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    values = draw(st.lists(st.floats(-2, 5, allow_nan=False), min_size=n * k, max_size=n * k))
    costs = draw(st.lists(st.floats(0.01, 3, allow_nan=False), min_size=n * k, max_size=n * k))
    budget = draw(st.floats(0, 8, allow_nan=False))
    cpi = draw(st.one_of(st.none(), st.floats(0.05, 3)))
    return (tuple(f"o{j}" for j in range(k)), np.array(values).reshape(n, k), np.array(costs).reshape(n, k), budget, cpi)


@settings(max_examples=60, deadline=None)
@given(instances())
def test_exact_equals_brute_force_and_fast_is_feasible(instance):
    arms, values, costs, budget, cpi = instance
    candidates = prune(arms, values, costs, cpi_max=cpi)
    best = brute_force(candidates, budget)
    exact = allocate_exact(candidates, budget, "none")
    fast = allocate_fast(candidates, budget, "none")
    assert exact.total_value == pytest.approx(best, abs=1e-7)
    assert fast.total_value <= best + 1e-9
    assert exact.upper_bound >= best - 1e-9 and fast.upper_bound >= best - 1e-9
    for plan in (exact, fast):
        assert plan.total_cost <= budget + 1e-9
        chosen = np.flatnonzero(plan.choice >= 0)
        picked_value = values[chosen, plan.choice[chosen]]
        picked_cost = costs[chosen, plan.choice[chosen]]
        assert (picked_value > 0).all(), "an offer with τv ≤ 0 is never chosen"
        if cpi is not None:
            assert (picked_cost <= cpi * picked_value + 1e-12).all(), "no offer above the CPI threshold"


@settings(max_examples=30, deadline=None)
@given(instances(max_n=4), st.integers(0, 2))
def test_caps_are_never_exceeded(instance, cap):
    arms, values, costs, budget, _ = instance
    candidates = prune(arms, values, costs)
    caps = {arms[0]: cap}
    exact = allocate(candidates, budget, "none", method="auto", caps=caps)
    assert exact.method.startswith("exact")
    assert exact.counts[arms[0]] <= cap
    assert exact.total_value == pytest.approx(brute_force(candidates, budget, caps), abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(instances())
def test_budget_zero_and_huge_budget(instance):
    arms, values, costs, _, cpi = instance
    candidates = prune(arms, values, costs, cpi_max=cpi)
    for method in ("exact", "fast"):
        nothing = allocate(candidates, 0.0, "none", method=method)
        assert nothing.counts["none"] == len(values), "budget 0 → everyone gets no offer"
        everything = allocate(candidates, 1e9, "none", method=method)
        best = np.where(candidates.mask, values, -np.inf).max(axis=1)
        expected = np.where(np.isfinite(best), best, 0.0).sum()
        assert everything.total_value == pytest.approx(expected), "huge budget → everyone's best positive offer"


def random_instance(n, k=4, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(1.0, 2.0, (n, k))
    costs = rng.gamma(2.0, 1.0, (n, k))
    return prune(tuple(f"offer{j}" for j in range(k)), values, costs, cpi_max=3.0)


@pytest.mark.parametrize("seed,budget", [(0, 3000.0), (1, 800.0), (2, 9000.0)])
def test_fast_is_within_a_tenth_of_a_percent_of_exact_on_10k_customers(seed, budget):
    candidates = random_instance(10_000, seed=seed)
    exact = allocate_exact(candidates, budget, "none")
    fast = allocate_fast(candidates, budget, "none")
    assert fast.total_cost <= budget + 1e-6
    assert fast.total_value >= exact.total_value * (1 - 1e-3)
    assert exact.total_value <= fast.upper_bound + 1e-6, "the LP bound bounds the optimum"
    assert fast.gap < 1e-3


def test_frontier_is_monotone_and_concave():
    frontier = Frontier(random_instance(2000, seed=3))
    curve = frontier.curve()
    assert (np.diff(curve["cost"]) >= -1e-9).all() and (np.diff(curve["value"]) >= -1e-9).all()
    assert (np.diff(frontier.efficiency) <= 1e-12).all(), "segments in decreasing efficiency"
    budgets = np.linspace(0, curve["cost"].iloc[-1], 50)
    bounds = [frontier.at(b)["upper_bound"] for b in budgets]
    assert (np.diff(bounds) >= -1e-9).all()


def test_explanations_match_the_lagrangian_score():
    candidates = random_instance(500, seed=4)
    plan = allocate_fast(candidates, 200.0, "none")
    chosen = np.flatnonzero(plan.choice >= 0)
    expected = candidates.tau_value[chosen, plan.choice[chosen]] - plan.lam * candidates.tau_cost[chosen, plan.choice[chosen]]
    frame = plan.to_frame(np.arange(500), candidates)
    score = frame["score"].to_numpy()
    np.testing.assert_allclose(score[chosen], expected)
    at_margin = frame["reason"].to_numpy()[chosen] == "best value net of λ·cost"
    assert at_margin.mean() > 0.9
    assert (score[chosen][at_margin] >= -1e-9).all(), "every pick within the margin is worth the marginal rate"
    assert list(frame.columns)[:5] == ["id", "action", "tau_value", "tau_cost", "score"]
    assert frame["tau_cost"].sum() == pytest.approx(plan.total_cost)


def scores_frame(**overrides):
    frame = pd.DataFrame({"id": [1, 2], "tau_value__a": [1.0, 2.0], "tau_cost__a": [0.5, 0.5]})
    for k, v in overrides.items():
        frame[k] = v
    return frame


@pytest.mark.parametrize("call,message", [
    (lambda: allocate(candidates_from_scores(scores_frame()), -1, "c"), r"--budget must be a finite number ≥ 0, got -1"),
    (lambda: candidates_from_scores(scores_frame(tau_value__a=[1.0, np.nan])), r"column 'tau_value__a' has 1 missing or infinite values \(first at row 2\)"),
    (lambda: allocate(candidates_from_scores(scores_frame()), 1, "c", caps={"vip": 2}), r"--cap names offer\(s\) 'vip' that are not in the scores"),
    (lambda: candidates_from_scores(scores_frame().drop(columns="tau_cost__a")), r"the scores lack column\(s\) tau_cost__a"),
    (lambda: allocate(candidates_from_scores(scores_frame()), 1, "c", method="greedy"), r"--method must be one of auto, exact, fast"),
    (lambda: allocate(candidates_from_scores(scores_frame()), 1, "c", method="fast", caps={"a": 1}), r"the fast method does not handle --cap"),
    (lambda: candidates_from_scores(scores_frame(), cpi_max=-1), r"--cpi-max must be a number ≥ 0"),
])
def test_bad_allocation_inputs(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_negative_predicted_costs_count_as_free():
    candidates = candidates_from_scores(scores_frame(tau_cost__a=[-0.2, 0.5]))
    plan = allocate(candidates, 0.0, "c")
    assert plan.counts == {"c": 1, "a": 1} and plan.total_cost == 0.0


def test_pacing_hand_example():
    pace = pacing(10_000, 4_000, 5, [{"offer": "coupon", "outstanding": 200, "redemption_rate": 0.25, "face_value": 20.0},
                                     {"offer": "ship", "outstanding": 100, "redemption_rate": 0.5, "face_value": 8.0}])
    assert pace.liability == pytest.approx(200 * 0.25 * 20 + 100 * 0.5 * 8)  # 1,400
    assert pace.today == pytest.approx((10_000 - 4_000 - 1_400) / 5)
    assert not pace.overcommitted
    assert pacing(100, 90, 2, [{"offer": "x", "outstanding": 10, "redemption_rate": 1, "face_value": 5}]).today == 0.0
    with pytest.raises(UserError, match=r"redemption rate of 'x' must be between 0 and 1"):
        pacing(100, 0, 2, [{"offer": "x", "outstanding": 1, "redemption_rate": 1.5, "face_value": 5}])
    with pytest.raises(UserError, match=r"days left must be a whole number ≥ 1"):
        pacing(100, 0, 0)
