"""The engine seam: every statistic written as a partial adds up over any split of the rows.

The local engine with ``batch_rows`` runs each partial on consecutive batches and adds the
results, as the Spark engine does per partition.  Every number must come out as on one batch
(floats to 1e-9 relative: only the order of the additions differs), including the row
positions an error names and the bootstrap's keyed counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.decision.allocate import allocate_fast
from core.decision.frontier_plan import fast_plan
from core.decision.policy import candidates_for_plan
from core.diagnostics.balance import balance_of
from core.diagnostics.overlap import overlap_of
from core.diagnostics.readout import readout_of
from core.diagnostics.srm import propensity_check
from core.engines.local import LocalEngine
from core.errors import UserError
from core.evaluation import evaluate
from core.evaluation.arms import evaluate_of
from core.monitoring.daily import monitor_of, with_plan_and_scores
from core.ope.compare import PolicySpec, evaluate_policy_of
from core.schema import ColumnMap, ExperimentLog
from core.simulate import simulate

ONE, SPLIT = LocalEngine(), LocalEngine(batch_rows=137)
MAP = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                features=("tenure_months", "orders_12m", "channel", "region", "pre_revenue"), id="customer_id",
                segment="lifecycle", time="send_date")


def same(a, b, path=""):
    """Where two results differ beyond float rounding (1e-9 relative)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        return [d for k in a for d in same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{path}[{i}]")]
    if isinstance(a, (float, np.floating)) and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [(path, a, b)]
    return [] if a == b or (a != a and b != b) else [(path, a, b)]


@pytest.fixture(scope="module")
def log():
    return ExperimentLog.from_frame(simulate(1500, seed=5).log, MAP)


def test_the_split_engine_really_splits(log):
    sizes = []
    SPLIT.reduce(log, lambda batch: sizes.append((batch.n, batch.positions[0])) or 0)
    assert sizes[:3] == [(137, 0), (137, 137), (137, 274)] and sum(n for n, _ in sizes) == log.n


@pytest.mark.parametrize("cuped", [None, "pre_revenue"])
def test_the_readout_adds_up_over_batches(log, cuped):
    assert same(readout_of(ONE, log, 0.1, cuped).to_dict(), readout_of(SPLIT, log, 0.1, cuped).to_dict()) == []


def test_overlap_balance_and_the_propensity_check_add_up_over_batches(log):
    assert same(overlap_of(ONE, log, 0.02, estimated=False).to_dict(), overlap_of(SPLIT, log, 0.02, estimated=False).to_dict()) == []
    assert same(balance_of(ONE, log, MAP.propensity).to_dict(), balance_of(SPLIT, log, MAP.propensity).to_dict()) == []
    assert same(propensity_check(ONE, log).to_dict(), propensity_check(SPLIT, log).to_dict()) == []


@pytest.fixture(scope="module")
def scored(log):
    rng = np.random.default_rng(3)
    arrays = {}
    for arm in log.treatments:
        arrays[f"tau_value__{arm}"] = rng.normal(1.0, 2.0, log.n).round(1)  # ties across batches
        arrays[f"tau_cost__{arm}"] = np.abs(rng.normal(2.0, 1.0, log.n))
    return log.with_columns(arrays), pd.DataFrame(arrays)


def test_the_evaluation_adds_up_over_batches(scored):
    joined, _ = scored
    one = evaluate_of(ONE, joined, list(joined.treatments), 7)
    assert same(one.to_dict(), evaluate_of(SPLIT, joined, list(joined.treatments), 7).to_dict()) == []
    assert one.to_dict()["coupon_20"]["calibration"][0]["n"] > 0


def test_the_evaluation_names_the_first_unscored_row_whatever_the_batch(scored):
    joined, scores = scored
    bad = scores.copy()
    bad.loc[[300, 900], "tau_value__coupon_20"] = np.nan
    with pytest.raises(UserError, match=r"has 2 missing or non-numeric values \(first at row 301\)"):
        evaluate_of(SPLIT, joined.with_columns({"tau_value__coupon_20": bad["tau_value__coupon_20"].to_numpy()}),
                    ["coupon_20"], 10)
    assert same(evaluate(joined, scores).to_dict(), evaluate_of(SPLIT, joined, list(joined.treatments), 10).to_dict()) == []


@pytest.mark.parametrize("spec", [PolicySpec("arm", "treat-all:coupon_20", arm=1), PolicySpec("random", "random"),
                                  PolicySpec("logging", "logging")])
def test_off_policy_sums_and_keyed_bootstrap_add_up_over_batches(log, spec):
    kwargs = dict(q=False, estimators=("ips", "snips"), n_boot=50, seed=4)
    one, split = evaluate_policy_of(ONE, log, spec, **kwargs), evaluate_policy_of(SPLIT, log, spec, **kwargs)
    assert same({k: v.to_dict() for k, v in one.value.items()}, {k: v.to_dict() for k, v in split.value.items()}) == []
    assert same({k: v.to_dict() for k, v in one.cost_increment.items()},
                {k: v.to_dict() for k, v in split.cost_increment.items()}) == []
    assert (one.ess, one.max_weight) == pytest.approx((split.ess, split.max_weight), rel=1e-12)


def test_monitoring_adds_up_over_batches(log, scored):
    _, scores = scored
    predictions = scores.assign(id=log.ids)
    one = monitor_of(ONE, with_plan_and_scores(ONE, log, None, predictions), has_scores=True)
    split = monitor_of(SPLIT, with_plan_and_scores(SPLIT, log, None, predictions), has_scores=True)
    assert same(one.to_dict(), split.to_dict()) == []
    assert len(one.days) == log.frame["send_date"].nunique() and one.days[0]["calibration"]


@pytest.mark.parametrize("budget", [50.0, 400.0, 1e9])
def test_the_fast_plan_by_batches_is_the_in_memory_frontier(scored, budget):
    _, scores = scored
    table = scores.assign(id=np.arange(len(scores)).astype(str))
    in_memory = allocate_fast(candidates_for_plan(table, {}), budget, "no_offer")
    for engine in (ONE, SPLIT):
        plan = fast_plan(engine, table, {}, budget, "no_offer")
        expected = in_memory.to_dict()
        assert same({k: plan.result[k] for k in ("total_value", "total_cost", "counts", "upper_bound", "gap", "lambda")},
                    {k: expected[k] for k in ("total_value", "total_cost", "counts", "upper_bound", "gap", "lambda")}) == []
        rows = plan.rows()
        pd.testing.assert_frame_equal(rows.reset_index(drop=True),
                                      in_memory.to_frame(table["id"].to_numpy(), candidates_for_plan(table, {})),
                                      check_dtype=False)
