"""Issue 24, item 9: monitoring's observed uplift, outstanding liability and the fairness
audit's eligible rate, each against a hand computation.

- no bucket column: every customer counts, weighted by 1/propensity (Hájek means), SE of two
  independent weighted means;
- liability: what each offer sent may still cost, max(predicted cost − realised cost, 0) per
  customer, summed over the last ``redemption_days`` days;
- eligible: the customer's best offer has a predicted τ value > 0 (a missing τ never counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.monitoring.daily import Pacing, monitor
from core.monitoring.fairness import audit_log
from core.schema import ColumnMap, ExperimentLog

MAP = ColumnMap(action="arm", control="ctl", value="y", cost="spend", propensity="p", time="day", id="cid",
                features=("f",))
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]


def _live(seed: int = 2, per_day: int = 15):
    rng = np.random.default_rng(seed)
    n = per_day * len(DAYS)
    arm = np.tile(np.array(["ctl", "a", "b"]), n // 3)
    p = rng.choice([0.2, 0.3, 0.5], n)
    y = rng.gamma(2.0, 3.0, n) + (arm == "a") * 2.0 + (arm == "b") * 1.0
    # realised cost: 0 for no offer; some offers not redeemed yet (0), some above their prediction
    spend = np.where(arm == "ctl", 0.0, rng.choice([0.0, 1.0, 6.0], n))
    frame = pd.DataFrame({"cid": [f"c{i:03d}" for i in range(n)], "day": np.repeat(DAYS, per_day), "arm": arm, "p": p,
                          "y": y, "spend": spend, "f": rng.normal(size=n),
                          "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])})
    tau_a = np.round(rng.normal(0.0, 1.0, n), 1)
    tau_b = np.round(rng.normal(0.0, 1.0, n), 1)
    # the cases that separate 'best offer > 0' from its look-alikes
    tau_a[:6], tau_b[:6] = [0.0, 0.5, -0.2, np.nan, np.nan, 0.0], [0.0, -0.5, 0.0, 0.7, np.nan, -1.0]
    scores = pd.DataFrame({"cid": frame["cid"], "tau_value__a": tau_a, "tau_value__b": tau_b,
                           "tau_cost__a": rng.uniform(1.0, 3.0, n), "tau_cost__b": rng.uniform(2.0, 4.0, n)})
    scores = scores.rename(columns={"cid": "id"}).sample(frac=1.0, random_state=0)  # joined on id, not by position
    return ExperimentLog.from_frame(frame, MAP), frame, scores


def _hajek(y, w):
    m = np.sum(w * y) / np.sum(w)
    return m, np.sum(w**2 * (y - m) ** 2) / np.sum(w) ** 2


def test_observed_uplift_without_buckets_is_the_inverse_propensity_hajek_difference():
    log, frame, scores = _live()
    result = monitor(log, scores=scores)
    tau = scores.set_index("id").loc[frame["cid"]]
    z = stats.norm.ppf(0.975)
    checked = 0
    for entry, day in zip(result.days, DAYS):
        assert entry["day"] == day
        for offer in ("a", "b"):
            for head, column in (("value", "y"), ("cost", "spend")):
                rows = (frame["day"] == day).to_numpy() & ~np.isnan(tau[f"tau_value__{offer}"].to_numpy())
                t, c = rows & (frame["arm"] == offer).to_numpy(), rows & (frame["arm"] == "ctl").to_numpy()
                w = 1.0 / frame["p"].to_numpy()
                y = frame[column].to_numpy()
                (mt, vt), (mc, vc) = _hajek(y[t], w[t]), _hajek(y[c], w[c])
                check = entry["calibration"][offer] if head == "value" else entry["calibration"][offer]["cost"]
                assert check["n_offer"] == int(t.sum()) and check["n_control"] == int(c.sum())
                assert check["observed"] == pytest.approx(mt - mc, rel=1e-10, abs=1e-12), (day, offer, head)
                assert check["se"] == pytest.approx(np.sqrt(vt + vc), rel=1e-10), (day, offer, head)
                assert check["ci_low"] == pytest.approx(mt - mc - z * np.sqrt(vt + vc), rel=1e-10, abs=1e-12)
                assert check["ci_high"] == pytest.approx(mt - mc + z * np.sqrt(vt + vc), rel=1e-10, abs=1e-12)
                predicted = tau[f"tau_{head}__{offer}"].to_numpy()[rows]
                assert check["predicted"] == pytest.approx(predicted.mean(), rel=1e-12)
                checked += 1
    assert checked == 16
    # unweighted means differ here: the weights matter
    rows = (frame["day"] == DAYS[0]).to_numpy()
    t, c = rows & (frame["arm"] == "a").to_numpy(), rows & (frame["arm"] == "ctl").to_numpy()
    plain = frame["y"].to_numpy()[t].mean() - frame["y"].to_numpy()[c].mean()
    assert abs(result.days[0]["calibration"]["a"]["observed"] - plain) > 1e-3


@pytest.mark.parametrize("redemption_days", [1, 2, 14])
def test_outstanding_liability_is_clipped_per_customer_and_summed_over_the_redemption_window(redemption_days):
    log, frame, scores = _live()
    budget = 400.0
    result = monitor(log, scores=scores, pacing=Pacing(budget, 4, redemption_days))
    tau = scores.set_index("id").loc[frame["cid"]]
    per_day = []
    for day in DAYS:
        total = 0.0
        for i in np.flatnonzero((frame["day"] == day).to_numpy()):
            offer = frame["arm"].iloc[i]
            if offer != "ctl":
                total += max(tau[f"tau_cost__{offer}"].iloc[i] - frame["spend"].iloc[i], 0.0)
        per_day.append(total)
    spent = 0.0
    for k, (entry, day) in enumerate(zip(result.days, DAYS), start=1):
        spent += frame.loc[frame["day"] == day, "spend"].sum()
        liability = sum(per_day[max(0, k - redemption_days):k])
        assert entry["pacing"]["liability"] == pytest.approx(liability, rel=1e-12), (k, redemption_days)
        assert entry["pacing"]["spent"] == pytest.approx(spent, rel=1e-12)
        assert entry["pacing"]["planned"] == pytest.approx(budget * k / 4, rel=1e-12)
        assert entry["pacing"]["remaining"] == pytest.approx(budget - spent - liability, rel=1e-12)
    # some offers cost more than predicted: without the clip the liability would be lower
    unclipped = sum(tau[f"tau_cost__{o}"].iloc[i] - frame["spend"].iloc[i]
                    for i, o in enumerate(frame["arm"]) if o != "ctl" and frame["day"].iloc[i] == DAYS[0])
    assert unclipped < per_day[0] - 1.0


def test_fairness_eligible_rate_is_the_share_whose_best_offer_helps():
    log, frame, scores = _live()
    audit = audit_log(log, "region", scores)
    tau = scores.set_index("id").loc[frame["cid"]]
    eligible = np.array([any(v > 0 for v in (tau["tau_value__a"].iloc[i], tau["tau_value__b"].iloc[i]) if not np.isnan(v))
                         for i in range(len(frame))])
    assert eligible[:6].tolist() == [False, True, False, True, False, False]
    benefit = np.array([0.0 if o == "ctl" else np.nan_to_num(tau[f"tau_value__{o}"].iloc[i])
                        for i, o in enumerate(frame["arm"])])
    offered = (frame["arm"] != "ctl").to_numpy()
    table = audit.table.set_index("group")
    assert sorted(table.index) == ["east", "north", "south"]
    assert audit.reference == frame["region"].value_counts().idxmax()
    for group in table.index:
        rows = (frame["region"] == group).to_numpy()
        assert table.loc[group, "n"] == int(rows.sum())
        assert table.loc[group, "eligible_rate"] == pytest.approx(eligible[rows].mean(), rel=1e-12), group
        assert table.loc[group, "offer_rate_among_eligible"] == pytest.approx(offered[rows & eligible].mean(), rel=1e-12)
        assert table.loc[group, "offer_rate"] == pytest.approx(offered[rows].mean(), rel=1e-12)
        assert table.loc[group, "spend_per_customer"] == pytest.approx(frame["spend"].to_numpy()[rows].mean(), rel=1e-12)
        assert table.loc[group, "benefit_per_customer"] == pytest.approx(benefit[rows].mean(), rel=1e-12, abs=1e-12)
