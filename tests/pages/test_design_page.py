"""The Next-test page: the sample size equals statsmodels' (and the CLI's); the deployment keeps its
shares and gives a downloadable assignment with propensities."""

import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.pages.helpers import fit_quick_model, new_app, texts

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def designed(module_workspace):
    at = new_app().run()
    at.switch_page("pages/8_design.py").run()
    return at


def metric(at, label):
    return [m.value for m in at.metric if m.label == label][0]


def test_sample_size_from_the_log_matches_statsmodels(designed):
    from statsmodels.stats.power import NormalIndPower

    at = designed
    assert not at.exception and not at.error, texts(at.error)
    [m for m in at.number_input if m.label.startswith("Smallest effect worth detecting")][0].set_value(2.0).run()
    sample = pd.read_parquet(ROOT / "data" / "sample_campaign.parquet")
    sd = sample.loc[sample["offer"] == "no_offer", "revenue"].std(ddof=1)
    n = NormalIndPower().solve_power(2.0 / sd, nobs1=None, alpha=0.05, power=0.8, ratio=1.0)
    assert metric(at, "Customers per offer") == f"{math.ceil(n):,}"
    assert metric(at, "Customers in the test") == f"{4 * math.ceil(n):,}"
    # Bonferroni over the three offers
    [r for r in at.radio if r.label == "Several offers against one control"][0].set_value("bonferroni").run()
    n = NormalIndPower().solve_power(2.0 / sd, nobs1=None, alpha=0.05 / 3, power=0.8, ratio=1.0)
    assert metric(at, "Customers per offer") == f"{math.ceil(n):,}"
    # CUPED on the pre-period revenue shrinks it
    [s for s in at.selectbox if s.label.startswith("Pre-period covariate")][0].set_value("pre_revenue").run()
    assert "CUPED on `pre_revenue`: variance ×" in texts(at.info)


def test_typed_in_rate(designed):
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    at = designed
    [r for r in at.radio if r.label == "Outcome spread"][0].set_value("Type it in").run()
    [r for r in at.radio if r.label == "Several offers against one control"][0].set_value("none").run()
    [r for r in at.radio if r.label == "Outcome"][0].set_value("Conversion rate").run()
    [m for m in at.number_input if m.label == "Baseline conversion rate"][0].set_value(0.0076).run()
    [m for m in at.number_input if m.label.startswith("Smallest effect worth detecting")][0].set_value(0.0095).run()
    assert not at.error, texts(at.error)
    n = NormalIndPower().solve_power(proportion_effectsize(0.0171, 0.0076), nobs1=None, alpha=0.05, power=0.8)
    assert metric(at, "Customers per offer") == f"{math.ceil(n):,}"


def test_deployment_needs_a_plan_then_keeps_its_shares(designed):
    at = designed
    assert "set a budget in step 5" in texts(at.info)
    fit_quick_model(at).switch_page("pages/5_allocation.py").run()
    at.switch_page("pages/8_design.py").run()
    assert not at.exception and not at.error, texts(at.error)
    holdout, explore, plan = (int(metric(at, label).replace(",", "")) for label in ("Holdout", "Explore", "Plan"))
    assert holdout + explore + plan == 50_000
    assert abs(holdout / 50_000 - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 50_000)
    assert abs(explore / 50_000 - 0.10) < 4 * np.sqrt(0.10 * 0.90 / 50_000)
    ess = at.dataframe[-1].value
    assert set(ess["action"]) == {"no_offer", "pct10_off", "free_shipping", "coupon_20"}
    assert (ess["effective sample size"] > 0).all()
    [t for t in at.toggle if t.label == "Floor on every offer's probability"][0].set_value(True).run()
    [m for m in at.number_input if m.label == "Floor"][0].set_value(0.02).run()
    assert float(metric(at, "Smallest propensity")) >= 0.02
    [m for m in at.number_input if m.label == "Floor"][0].set_value(0.05).run()
    assert "cannot be met with 4 actions" in texts(at.error)


def test_new_customers_get_decisions_with_cold_starts_flagged(designed):
    at = designed
    [t for t in at.toggle if t.label == "Floor on every offer's probability"][0].set_value(False).run()
    sample = pd.read_parquet(ROOT / "data" / "sample_campaign.parquet").head(300).copy()
    sample.loc[:19, "lifecycle"] = "vip"
    sample.loc[20:24, ["tenure_months", "orders_12m", "avg_order_value", "days_since_last_order", "email_engagement",
                       "channel", "region", "age", "pre_revenue"]] = None
    upload = [u for u in at.file_uploader if u.label.startswith("Customers to decide for")][0]
    upload.set_value(("new.csv", sample.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert metric(at, "New customers") == "300" and metric(at, "Cold starts (segment-level decision)") == "25"
    assert "segment not seen in the training log (20)" in " ".join(c.value for c in at.caption)
    assert at.session_state["current"].config["new_customers"]["cold_start"] == 25
    from core.report import build_report
    from core.workspace import Workspace

    cur = at.session_state["current"]
    html, _ = build_report(Workspace().load_dataset(cur.dataset_id), {**cur.config, "mapping": cur.mapping},
                           workspace=Workspace(), n_boot=50)
    assert "<b>25 cold starts</b>" in html
