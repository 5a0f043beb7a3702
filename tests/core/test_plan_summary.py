"""The per-offer summary of a plan, shown by the Allocation page and the report (issue 23, item 4)."""

import numpy as np
import pandas as pd

from core.decision.allocate import Allocation, allocate
from core.decision.policy import Candidates
from core.decision.summary import plan_summary


def test_per_offer_sums_by_hand():
    # 5 customers, offers a, b, c; the plan sends a to customers 0, 3 and 4, b to customer 2, nothing to customer 1
    # and c to nobody.
    tau_value = np.array([[10, 4, 1], [3, 2, 1], [8, 9, 1], [6, 1, 1], [5, 5, 1]], dtype=float)
    tau_cost = np.array([[2, 1, 0.5], [1, 1, 1], [4, 3, 1], [2.5, 0.5, 1], [1, 2, 1]])
    candidates = Candidates(("a", "b", "c"), tau_value, tau_cost, np.ones((5, 3), dtype=bool))
    plan = Allocation(("a", "b", "c"), "none", np.array([0, -1, 1, 0, 0]), total_value=30.0, total_cost=8.5,
                      upper_bound=30.0, method="fast", seconds=0.0, budget=9.0, lam=1.0)
    expected = pd.DataFrame({"action": ["none", "a", "b", "c"],
                             "customers": [1, 3, 1, 0],
                             "spend": [0.0, 2 + 2.5 + 1, 3.0, 0.0],
                             "incremental_value": [0.0, 10 + 6 + 5, 9.0, 0.0]})
    pd.testing.assert_frame_equal(plan_summary(plan, candidates), expected)


def test_summary_of_a_solved_plan_adds_up_to_its_totals():
    # budget 3: customer 0 takes a (value 5 for cost 1), customer 1 takes b (6 for 2); customer 2's offers cost 5.
    candidates = Candidates(("a", "b"), np.array([[5.0, 1.0], [4.0, 6.0], [1.0, 2.0]]),
                            np.array([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]]), np.ones((3, 2), dtype=bool))
    plan = allocate(candidates, 3.0, "none", method="exact")
    summary = plan_summary(plan, candidates)
    assert summary.to_dict("list") == {"action": ["none", "a", "b"], "customers": [1, 1, 1], "spend": [0.0, 1.0, 2.0],
                                       "incremental_value": [0.0, 5.0, 6.0]}
    assert summary["spend"].sum() == plan.total_cost and summary["incremental_value"].sum() == plan.total_value
    assert dict(zip(summary["action"], summary["customers"])) == plan.counts
