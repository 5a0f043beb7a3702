import itertools
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.decision.allocate import Frontier, allocate, allocate_exact, allocate_fast
from core.decision.pacing import pacing
from core.decision.policy import candidates_from_scores, prune
from core.errors import UserError, cli_spelling


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
    """Core names the setting; the CLI spells it as its flag (the message above)."""
    with pytest.raises(UserError) as caught:
        call()
    assert re.search(message, str(caught.value.spelled(cli_spelling))), str(caught.value)


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


# --- logs without a cost, CPI range, empty plans (issue 13, items 1, 3, 11) -----------------------

def test_plan_offer_costs_per_send_and_count():
    from core.decision.policy import candidates_for_plan, plan_offer_costs

    scores = pd.DataFrame({"tau_value__a": [0.2, 0.1], "tau_value__b": [0.05, 0.3],
                           "tau_cost__a": np.nan, "tau_cost__b": np.nan})
    assert plan_offer_costs("count", ["a", "b"]) == {"a": 1.0, "b": 1.0}
    assert plan_offer_costs("model", ["a"]) is None
    per_send = candidates_for_plan(scores, {"cost_basis": "per_send", "offer_costs": {"a": 0.15, "b": 2}})
    np.testing.assert_array_equal(per_send.tau_cost, [[0.15, 2.0], [0.15, 2.0]])
    # CPI = cost / value: 0.15/0.2 = 0.75 and 0.15/0.1 = 1.5 for a; 40 and 6.67 for b
    limited = candidates_for_plan(scores, {"cost_basis": "per_send", "offer_costs": {"a": 0.15, "b": 2}, "cpi_max": 1.5})
    np.testing.assert_array_equal(limited.mask, [[True, False], [True, False]])
    with pytest.raises(UserError, match=r"the predictions have no cost for a, b \(no cost was mapped"):
        candidates_for_plan(scores, {})
    with pytest.raises(UserError, match=r"the cost per offer sent for 'b' must be a number ≥ 0, got -1"):
        plan_offer_costs("per_send", ["a", "b"], {"a": 1, "b": -1})
    with pytest.raises(UserError, match=r"cost basis 'euros' is not one of model, per_send, count"):
        plan_offer_costs("euros", ["a"])


def test_count_budget_gives_the_n_largest_effects():
    from core.decision.policy import candidates_for_plan

    rng = np.random.default_rng(3)
    scores = pd.DataFrame({"tau_value__a": rng.normal(0.01, 0.02, 500), "tau_cost__a": np.nan})
    candidates = candidates_for_plan(scores, {"cost_basis": "count"})
    plan = allocate_fast(candidates, 40, "none", Frontier(candidates))
    top = np.sort(scores["tau_value__a"].to_numpy())[-40:]
    assert (plan.choice >= 0).sum() == 40 and plan.total_cost == 40
    assert plan.total_value == pytest.approx(top.sum())


def test_cpi_scale_follows_the_data_not_a_fixed_range():
    from core.decision.policy import cpi_scale

    # a $0.15 send for a 1% purchase lift: CPI ≈ 15 — far above the old fixed 0–2 slider
    rng = np.random.default_rng(1)
    tau_value = rng.uniform(0.005, 0.015, 1000)
    upper, start = cpi_scale(tau_value, np.full(1000, 0.15))
    cpi = 0.15 / tau_value
    assert start == pytest.approx(np.median(cpi))
    assert upper == 50.0  # 99th percentile ≈ 29.4, rounded up to 1/2/5 × 10^k
    assert 20 < np.quantile(cpi, 0.99) <= upper
    small_upper, _ = cpi_scale(np.array([1.0, 2.0, -1.0]), np.array([0.3, 0.3, 5.0]))
    assert small_upper == 0.5  # CPIs 0.3 and 0.15; the offer that loses value is ignored
    assert cpi_scale(np.array([-1.0]), np.array([1.0])) == (1.0, 0.5)


@pytest.mark.parametrize("tau_value,tau_cost,cpi_max,budget,expected", [
    ([-0.1, 0.0], [1.0, 1.0], None, 10, r"no offer is predicted to add value"),
    ([0.01, 0.02], [0.15, 0.15], 2.0, 10, r"the CPI limit 2 removes every offer: the lowest cost per incremental unit of value of any offer is 7\.5"),
    ([0.01, 0.02], [0.15, 0.30], None, 0.1, r"the budget 0\.1 is below the cheapest worthwhile offer's expected cost 0\.15"),
])
def test_empty_plan_is_explained(tau_value, tau_cost, cpi_max, budget, expected):
    from core.decision.policy import empty_plan_reason

    reason = empty_plan_reason(np.array([tau_value]).T, np.array([tau_cost]).T, cpi_max, budget)
    assert reason is not None
    assert re.search(expected, reason), reason
    candidates = prune(("a",), np.array([tau_value]).T, np.array([tau_cost]).T, cpi_max)
    assert (allocate_fast(candidates, budget, "none").choice < 0).all()


def test_a_plan_that_fits_has_no_empty_reason_and_free_offers_are_counted():
    from core.decision.policy import empty_plan_reason, free_picks

    tau_value, tau_cost = np.array([[0.5], [0.4], [0.3]]), np.array([[-0.2], [0.0], [1.0]])
    assert empty_plan_reason(tau_value, tau_cost, None, 0.0) is None  # the free offers fit a budget of 0
    candidates = prune(("a",), tau_value, tau_cost)
    plan = allocate_fast(candidates, 0.0, "none")
    assert list(plan.choice) == [0, 0, -1]  # at budget 0 exactly the two offers with cost ≤ 0
    assert free_picks(candidates, plan.choice) == 2
