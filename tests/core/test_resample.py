"""The counter-based Poisson generator behind every bootstrap that two engines must agree on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.resample import bootstrap_sums, poisson_counts, row_keys, uniforms
from core.ope import compare
from core.schema import ColumnMap, ExperimentLog
from core.simulate import simulate


def test_counts_follow_poisson_one_and_are_independent_across_resamples_and_seeds():
    counts = poisson_counts(np.arange(100_000), np.arange(20), seed=4).astype(int)
    observed = np.bincount(counts.ravel(), minlength=7)[:7]
    expected = stats.poisson.pmf(np.arange(7), 1.0) * counts.size
    # chi-square goodness of fit on 0..5 and the ≥6 tail together (7 cells, 6 dof)
    observed = np.r_[observed[:6], counts.size - observed[:6].sum()]
    expected = np.r_[expected[:6], counts.size - expected[:6].sum()]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    # neighbouring resamples and seeds are uncorrelated: |r| within 4 standard errors of 0
    se = 1 / np.sqrt(100_000)
    assert abs(np.corrcoef(counts[0], counts[1])[0, 1]) < 4 * se
    other_seed = poisson_counts(np.arange(100_000), [0], seed=5)[0]
    assert abs(np.corrcoef(counts[0], other_seed)[0, 1]) < 4 * se
    u = uniforms(np.arange(50_000), 3, seed=1)[0]
    assert stats.kstest(u, "uniform").pvalue > 0.001


def test_a_rows_count_depends_only_on_its_key_resample_and_seed():
    keys = np.array([7, 3, 99, 12], dtype=np.uint64)
    whole = poisson_counts(keys, np.arange(5), seed=2)
    np.testing.assert_array_equal(poisson_counts(keys[::-1], np.arange(5), seed=2), whole[:, ::-1])
    np.testing.assert_array_equal(poisson_counts(keys[2:3], [4], seed=2), whole[4:5, 2:3])
    assert not np.array_equal(poisson_counts(keys, np.arange(5), seed=3), whole)


def test_bootstrap_sums_add_up_over_any_split_of_the_rows():
    rng = np.random.default_rng(0)
    stats_rows = rng.normal(size=(1000, 3))
    keys = np.arange(1000)
    whole = bootstrap_sums(stats_rows, keys, 50, seed=9)
    parts = bootstrap_sums(stats_rows[:400], keys[:400], 50, seed=9) + bootstrap_sums(stats_rows[400:], keys[400:], 50, seed=9)
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-12)
    # by hand: replicate b is the counts of resample b times the rows
    np.testing.assert_allclose(whole[17], poisson_counts(keys, [17], seed=9)[0] @ stats_rows, rtol=1e-12)


def test_id_keys_follow_the_id_text_not_the_row_order():
    ids = pd.Series([101, 202, 303])
    np.testing.assert_array_equal(row_keys(ids=ids), row_keys(ids=ids.astype(str)))
    np.testing.assert_array_equal(row_keys(ids=ids[::-1].to_numpy()), row_keys(ids=ids.to_numpy())[::-1])
    np.testing.assert_array_equal(row_keys(positions=[0, 5]), np.array([0, 5], dtype=np.uint64))


MAP = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                id="customer_id", features=("tenure_months", "orders_12m"))


def test_ope_intervals_keyed_by_id_do_not_depend_on_the_row_order():
    frame = simulate(3000, seed=5).log
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    results = []
    for data in (frame, shuffled):
        log = ExperimentLog.from_frame(data, MAP)
        zeros = np.zeros((log.n, len(log.labels)))
        results.append(compare.evaluate_policy(log, compare.treat_all(log, "coupon_20"), log.propensity, zeros, zeros,
                                               estimators=["ips", "snips"], n_boot=200, seed=3,
                                               keys=row_keys(ids=log.ids)))
    for name in ("ips", "snips"):
        a, b = results[0].value[name], results[1].value[name]
        assert a.value == pytest.approx(b.value, rel=1e-12)
        assert (a.ci_low, a.ci_high) == pytest.approx((b.ci_low, b.ci_high), rel=1e-12)


def test_ope_interval_is_the_percentiles_of_the_keyed_replicates():
    frame = simulate(2000, seed=8).log
    log = ExperimentLog.from_frame(frame, MAP)
    zeros = np.zeros((log.n, len(log.labels)))
    result = compare.evaluate_policy(log, compare.treat_all(log, "pct10_off"), log.propensity, zeros, zeros,
                                     estimators=["ips"], n_boot=300, seed=6)
    # by hand: IPS of each resample = Σ k·w·y / Σ k with k the keyed Poisson counts
    j = list(log.labels).index("pct10_off")
    index = np.array([list(log.labels).index(a) for a in log.action])
    w = (index == j) / log.propensity
    counts = poisson_counts(np.arange(log.n), np.arange(300), seed=6)
    reps = (counts @ (w * log.value)) / counts.sum(axis=1)
    assert result.value["ips"].value == pytest.approx(np.mean(w * log.value), rel=1e-12)
    assert result.value["ips"].ci_low == pytest.approx(np.percentile(reps, 2.5), rel=1e-12)
    assert result.value["ips"].ci_high == pytest.approx(np.percentile(reps, 97.5), rel=1e-12)
