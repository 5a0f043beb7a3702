"""Issue 24, item 6: ``deploy`` with the predictions of every offer (``--scores``).

The value exploration gives up is then exact, Σ_i [τ(i, plan_i) − Σ_a π(a | i)·τ(i, a)], and is
not flagged as an upper bound; each offer's τ must land in that offer's column of π.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.design.deploy import deploy

CONTROL = "ctl"
OFFERS = ("a", "b", "c", "d")  # "d" is never planned: only exploration sends it


def _allocation_and_scores(n: int = 40, seed: int = 3):
    rng = np.random.default_rng(seed)
    plan = rng.choice([CONTROL, "a", "b", "c"], n, p=[0.3, 0.3, 0.2, 0.2])
    # distinct, signed effects per offer so that a τ in the wrong column changes the loss
    tau = {"a": rng.normal(2.0, 1.0, n), "b": rng.normal(-1.0, 2.0, n), "c": rng.normal(5.0, 0.5, n),
           "d": rng.normal(-3.0, 1.0, n)}
    plan_tau = np.array([0.0 if p == CONTROL else tau[p][i] for i, p in enumerate(plan)])
    allocation = pd.DataFrame({"id": [f"cust{i:03d}" for i in range(n)], "action": plan, "tau_value": plan_tau})
    # columns deliberately not in the sorted offer order, plus a column deploy must ignore
    scores = pd.DataFrame({"tau_value__d": tau["d"], "tau_cost__a": rng.uniform(1, 2, n), "tau_value__c": tau["c"],
                           "tau_value__a": tau["a"], "tau_value__b": tau["b"]})
    return allocation, scores, tau


def _hand_pi(plan, actions, holdout, explore, floor=None):
    """π(a | i) = H·1[a = control] + E·q_i(a) + (1 − H − E)·1[a = plan_i], one customer at a time."""
    k = len(actions)
    out = np.zeros((len(plan), k))
    for i, p in enumerate(plan):
        for j, a in enumerate(actions):
            if floor is None:
                q = 1.0 / k
            else:
                q = floor / explore + ((1.0 - k * floor / explore) if a == p else 0.0)
            out[i, j] = holdout * (a == CONTROL) + explore * q + (1.0 - holdout - explore) * (a == p)
    return out


def _hand_loss(plan, tau, pi, actions):
    total = 0.0
    for i, p in enumerate(plan):
        tau_i = {a: (0.0 if a == CONTROL else tau[a][i]) for a in actions}
        total += tau_i[p] - sum(pi[i, j] * tau_i[a] for j, a in enumerate(actions))
    return total


@pytest.mark.parametrize("floor", [None, 0.04])
def test_value_given_up_with_every_offers_predictions_is_exact(floor):
    allocation, scores, tau = _allocation_and_scores()
    holdout, explore = 0.1, 0.25
    out = deploy(allocation, CONTROL, holdout=holdout, explore=explore, min_propensity=floor, salt="s1",
                 offers=list(OFFERS), scores=scores)
    actions = (CONTROL, *OFFERS)
    assert out.actions == actions
    plan = allocation["action"].to_numpy()
    pi = _hand_pi(plan, actions, holdout, explore, floor)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-14)
    hand = _hand_loss(plan, tau, pi, actions)
    assert out.expected_value_loss == pytest.approx(hand, rel=1e-10, abs=1e-10)
    assert out.loss_is_upper_bound is False
    assert out.plan_value == pytest.approx(float(allocation["tau_value"].sum()), rel=1e-12)
    d = out.to_dict()
    assert d["value_loss_is_upper_bound"] is False and d["expected_value_loss"] == out.expected_value_loss
    # every row's propensity is π of the action it got
    got = [actions.index(a) for a in out.frame["action"]]
    np.testing.assert_allclose(out.frame["propensity"], pi[np.arange(len(plan)), got], rtol=1e-14)
    # without the predictions only the plan's own τ is known: Σ τ_plan·(1 − π(plan)), an upper bound
    without = deploy(allocation, CONTROL, holdout=holdout, explore=explore, min_propensity=floor, salt="s1",
                     offers=list(OFFERS))
    planned = [actions.index(p) for p in plan]
    upper = float(np.sum(allocation["tau_value"].to_numpy() * (1.0 - pi[np.arange(len(plan)), planned])))
    assert without.expected_value_loss == pytest.approx(upper, rel=1e-10, abs=1e-10)
    assert without.loss_is_upper_bound is True
    assert abs(upper - hand) > 1.0, "the example separates the exact loss from the bound"


def test_deploy_cli_with_scores_reports_the_exact_loss(tmp_path, capsys):
    allocation, scores, tau = _allocation_and_scores(n=30, seed=8)
    allocation.to_csv(tmp_path / "alloc.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    args = ["deploy", "--allocation", tmp_path / "alloc.csv", "--control", CONTROL, "--holdout", "0.05", "--explore", "0.3",
            "--salt", "cli", "--offers", ",".join(OFFERS), "--out", tmp_path / "assign.csv"]
    code = main([str(a) for a in [*args, "--scores", tmp_path / "scores.csv"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    actions = (CONTROL, *OFFERS)
    plan = allocation["action"].to_numpy()
    pi = _hand_pi(plan, actions, 0.05, 0.3)
    assert result["expected_value_loss"] == pytest.approx(_hand_loss(plan, tau, pi, actions), rel=1e-10, abs=1e-10)
    assert result["value_loss_is_upper_bound"] is False
    assigned = pd.read_csv(tmp_path / "assign.csv")
    assert len(assigned) == 30
    got = [actions.index(a) for a in assigned["action"]]
    np.testing.assert_allclose(assigned["propensity"], pi[np.arange(30), got], rtol=1e-12)
    # the same command without --scores: an upper bound
    assert main([str(a) for a in args]) == 0
    assert json.loads(capsys.readouterr().out)["value_loss_is_upper_bound"] is True
