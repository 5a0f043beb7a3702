"""Monitoring a live campaign: PSI by hand, idempotent daily storage, alerts on the right days
on the simulator with injected faults, pacing, and the fairness audit."""

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.monitoring.daily import Pacing, Thresholds, monitor, uplift_check
from core.monitoring.drift import Binning, feature_psi, psi, psi_band
from core.monitoring.fairness import fairness_audit, ratio_interval
from core.monitoring.store import append_days, day_fingerprint
from core.schema import ColumnMap, ExperimentLog
from core.simulate import simulate_live
from core.workspace import Workspace

FEATURES = ("lifecycle", "tenure_months", "orders_12m", "avg_order_value", "days_since_last_order", "email_engagement",
            "channel", "region", "age")
LIVE_MAP = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                     id="customer_id", time="send_date", features=FEATURES)


def live_log(frame):
    return ExperimentLog.from_frame(frame, LIVE_MAP)


# --- PSI -----------------------------------------------------------------------------------------

def test_psi_matches_a_hand_computed_example():
    reference = pd.Series(np.arange(10.0))
    # deciles at bins=5: 1.8, 3.6, 5.4, 7.2 → bins {0,1} {2,3} {4,5} {6,7} {8,9}, then missing
    binning = Binning.from_reference(reference, bins=5)
    np.testing.assert_allclose(binning.edges, [1.8, 3.6, 5.4, 7.2])
    current = pd.Series([0.0, 0.0, 0.0, 1.8, 2.0, 4.0, 6.0, 8.0, np.nan, np.nan])  # 1.8 sits on an edge: lower bin
    np.testing.assert_allclose(binning.shares(current), [0.4, 0.1, 0.1, 0.1, 0.1, 0.2])
    expected = (0.4 - 0.2) * np.log(0.4 / 0.2) + 4 * (0.1 - 0.2) * np.log(0.1 / 0.2) + (0.2 - 1e-4) * np.log(0.2 / 1e-4)
    assert feature_psi(reference, current, bins=5) == pytest.approx(expected, rel=1e-12)
    assert feature_psi(reference, reference, bins=5) == 0.0


def test_psi_of_a_categorical_feature_has_bins_for_new_levels_and_missing():
    reference = pd.Series(["a"] * 6 + ["b"] * 4)
    current = pd.Series(["a"] * 3 + ["b"] * 3 + ["c"] * 2 + [None] * 2)
    binning = Binning.from_reference(reference)
    assert binning.labels == ["a", "b", "(other level)", "(missing)"]
    np.testing.assert_allclose(binning.shares(current), [0.3, 0.3, 0.2, 0.2])
    expected = ((0.3 - 0.6) * np.log(0.3 / 0.6) + (0.3 - 0.4) * np.log(0.3 / 0.4)
                + 2 * (0.2 - 1e-4) * np.log(0.2 / 1e-4))
    assert feature_psi(reference, current) == pytest.approx(expected, rel=1e-12)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert [psi_band(v) for v in (0.05, 0.1, 0.2499, 0.25)] == ["stable", "moderate", "moderate", "major"]


# --- storing daily logs --------------------------------------------------------------------------

@pytest.fixture
def small_live():
    return simulate_live(days=4, per_day=300, seed=2)


def test_appending_the_same_file_twice_changes_nothing(tmp_path, small_live):
    ws = Workspace(tmp_path / "ws.duckdb")
    first = append_days(ws, "spring", small_live.log, "send_date")
    assert first["added"] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"] and first["rows_added"] == 1200
    stored = ws.load_series("spring")
    shuffled = small_live.log.sample(frac=1.0, random_state=0)[list(reversed(small_live.log.columns))]
    again = append_days(ws, "spring", shuffled, "send_date")
    assert again["added"] == [] and again["unchanged"] == first["added"] and again["rows_added"] == 0
    pd.testing.assert_frame_equal(ws.load_series("spring"), stored)
    assert day_fingerprint(shuffled[shuffled["send_date"] == "2026-11-02"]) == ws.series_days("spring")["fingerprint"][0]


def test_a_changed_day_other_columns_or_future_dates_are_refused_and_nothing_is_altered(tmp_path, small_live):
    ws = Workspace(tmp_path / "ws.duckdb")
    log = small_live.log
    append_days(ws, "spring", log[log["send_date"] <= "2026-11-03"], "send_date")
    before = ws.load_series("spring")
    changed = log.copy()
    changed.loc[changed.index[0], "revenue"] += 1.0  # 2026-11-02 differs now; 11-04 and 11-05 are new
    with pytest.raises(UserError, match=r"2026-11-02 \(stored 300 rows, this file 300 rows\).*nothing was stored"):
        append_days(ws, "spring", changed, "send_date")
    with pytest.raises(UserError, match="columns differ from series 'spring': missing 'age'; new 'age_band'"):
        append_days(ws, "spring", log.rename(columns={"age": "age_band"}), "send_date")
    with pytest.raises(UserError, match=r"dated in the future \(2099-01-01"):
        append_days(ws, "spring", log.assign(send_date="2099-01-01"), "send_date")
    with pytest.raises(UserError, match="day column 'send_date' has 1 empty or unreadable dates"):
        append_days(ws, "spring", log.assign(send_date=["yesterday"] + ["2026-11-04"] * (len(log) - 1)), "send_date")
    pd.testing.assert_frame_equal(ws.load_series("spring"), before)
    assert ws.series_days("spring")["day"].tolist() == ["2026-11-02", "2026-11-03"]


# --- alerts on the simulator ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def faulty():
    """Feature drift from day 3, the coupon's effect halved from day 6."""
    live = simulate_live(days=8, per_day=20000, seed=5, drift_day=3, break_day=6)
    return live, monitor(live_log(live.log), reference=live.reference, plan=live.plan, scores=live.scores)


def test_alerts_fire_on_the_injected_days_and_not_before(faulty):
    live, result = faulty
    days = sorted(live.log["send_date"].unique())
    alerts = result.alerts_frame()
    drift = alerts[alerts["kind"] == "feature_drift"]
    assert set(drift["subject"]) == {"email_engagement"}
    assert drift["day"].tolist() == days[2:]
    calibration = alerts[alerts["kind"] == "calibration"]
    assert set(calibration["subject"]) == {"coupon_20 · value", "coupon_20 · cost"}
    assert sorted(set(calibration["day"])) == days[5:]
    assert set(alerts["kind"]) == {"feature_drift", "calibration"}  # no volume, overlap or pacing alert


def test_calibration_compares_the_randomised_customers_uplift_with_the_prediction(faulty):
    live, result = faulty
    day = sorted(live.log["send_date"].unique())[0]
    frame = live.log[(live.log["send_date"] == day) & live.log["bucket"].isin(["explore", "holdout"])]
    scores = live.scores.set_index("id").loc[frame["customer_id"]]
    t, c = frame["offer"] == "pct10_off", frame["offer"] == "no_offer"
    observed = frame["revenue"][t].mean() - frame["revenue"][c].mean()
    se = np.sqrt(frame["revenue"][t].var(ddof=0) / t.sum() + frame["revenue"][c].var(ddof=0) / c.sum())
    entry = result.days[0]["calibration"]["pct10_off"]
    assert entry["observed"] == pytest.approx(observed) and entry["se"] == pytest.approx(se)
    assert entry["predicted"] == pytest.approx(scores["tau_value__pct10_off"].mean())
    assert entry["ci_high"] - entry["observed"] == pytest.approx(1.959964 * se, rel=1e-6)
    assert entry["n_offer"] == t.sum() and entry["n_control"] == c.sum()


def test_uplift_check_alerts_only_beyond_z_standard_errors_with_enough_rows():
    y = np.r_[np.full(100, 2.0), np.full(100, 1.0)] + np.tile([0.5, -0.5], 100)
    action = np.array(["a"] * 100 + ["none"] * 100)
    base = uplift_check(y, action, "a", "none", np.ones(200), np.full(200, 1.0), 3.0, 100)
    assert base["observed"] == pytest.approx(1.0) and base["se"] == pytest.approx(np.sqrt(0.25 / 100 * 2))
    assert not base["alert"]  # predicted = observed
    far = uplift_check(y, action, "a", "none", np.ones(200), np.full(200, 1.0 - 3.01 * base["se"]), 3.0, 100)
    near = uplift_check(y, action, "a", "none", np.ones(200), np.full(200, 1.0 - 2.99 * base["se"]), 3.0, 100)
    assert far["alert"] and not near["alert"]
    assert not uplift_check(y, action, "a", "none", np.ones(200), np.full(200, -5.0), 3.0, 101)["alert"]


def test_sends_below_the_plan_raise_a_volume_alert_that_day(small_live):
    log = small_live.log.copy()
    day = "2026-11-03"
    unsent = log[(log["send_date"] == day) & (log["offer"] == "coupon_20")].index[:40]
    log.loc[unsent, ["offer", "incentive_cost"]] = ["no_offer", 0.0]  # the e-mails never went out
    result = monitor(live_log(log), plan=small_live.plan, thresholds=Thresholds(min_rows=30))
    volume = result.alerts_frame().query("kind == 'volume'")
    assert set(volume["day"]) == {day} and set(volume["subject"]) == {"coupon_20", "no_offer"}  # 40 fewer, 40 more
    entry = next(d for d in result.days if d["day"] == day)["volume"]["coupon_20"]
    gap = volume.set_index("subject").loc["coupon_20", "value"]
    assert gap == pytest.approx((entry["sent"] - entry["planned"]) / entry["planned"])
    assert entry["planned"] - entry["sent"] == 40


def test_pacing_is_spend_plus_liability_against_the_straight_line_plan(small_live):
    log = live_log(small_live.log)
    days = sorted(small_live.log["send_date"].unique())
    spend = small_live.log.groupby("send_date")["incentive_cost"].sum()
    budget = spend.sum() * 1.5
    result = monitor(log, pacing=Pacing(budget, days=4))
    for k, day in enumerate(days, start=1):
        pacing = result.days[k - 1]["pacing"]
        assert pacing["spent"] == pytest.approx(spend.loc[:day].sum())
        assert pacing["planned"] == pytest.approx(budget * k / 4)
        assert pacing["liability"] is None  # no predictions: not estimated
    tight = monitor(log, pacing=Pacing(spend.iloc[0] * 2, days=4))  # day 1 already spends half the budget
    assert tight.alerts_frame().query("kind == 'pacing'")["day"].tolist() == days
    with pytest.raises(UserError, match="budget must be a positive number"):
        monitor(log, pacing=Pacing(-1.0, days=4))


def test_bad_monitoring_inputs_get_clear_messages(small_live):
    frame = small_live.log
    with pytest.raises(UserError, match="monitoring needs a day column"):
        monitor(ExperimentLog.from_frame(frame, ColumnMap(action="offer", control="no_offer", value="revenue")))
    with pytest.raises(UserError, match="no id of the log is in the deployment file"):
        monitor(live_log(frame), plan=small_live.plan.assign(id=-1))
    with pytest.raises(UserError, match="alert threshold psi_alert must be a number ≥ 0"):
        monitor(live_log(frame), thresholds=Thresholds(psi_alert=-1))


# --- fairness ------------------------------------------------------------------------------------

def test_ratio_interval_is_the_delta_method_on_the_log_scale():
    g, r = np.array([1.0, 0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    ratio, low, high = ratio_interval(g, r)
    se = np.sqrt(g.var() / (4 * 0.75**2) + r.var() / (6 * 0.5**2))
    assert ratio == pytest.approx(1.5)
    assert (low, high) == pytest.approx((1.5 * np.exp(-1.959964 * se), 1.5 * np.exp(1.959964 * se)), rel=1e-6)


def test_fairness_audit_separates_the_models_targeting_from_the_budget():
    rng = np.random.default_rng(0)
    n = 4000
    region = pd.Series(np.where(np.arange(n) < 2500, "north", "south"), name="region")
    # the model finds an offer worth sending to 80% of north and 40% of south; the budget
    # then sends to half of the eligible customers in both regions alike
    eligible = rng.uniform(size=n) < np.where(region == "north", 0.8, 0.4)
    sent = eligible & (rng.uniform(size=n) < 0.5)
    action = np.where(sent, "coupon", "none")
    audit = fairness_audit(region, action, "none", spend=sent * 5.0, benefit=sent * 2.0, eligible=eligible)
    south = audit.table.set_index("group").loc["south"]
    assert audit.reference == "north"
    assert south["offer_rate_ratio"] == pytest.approx(sent[region == "south"].mean() / sent[region == "north"].mean())
    assert south["offer_rate_ratio_high"] < 0.6
    assert south["eligible_offer_rate_ratio_low"] <= 1 <= south["eligible_offer_rate_ratio_high"]
    assert "not from the budget" in audit.notes[0]
    uneven = np.where(eligible & (rng.uniform(size=n) < np.where(region == "north", 0.6, 0.2)), "coupon", "none")
    assert "the budget cut" in fairness_audit(region, uneven, "none", eligible=eligible).notes[0]
    with pytest.raises(UserError, match="attribute 'region' has a single group"):
        fairness_audit(pd.Series(["north"] * 10, name="region"), np.array(["none"] * 10), "none")
