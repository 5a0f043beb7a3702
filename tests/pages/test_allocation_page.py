"""The Allocation page: the budget slider moves the plan; downloads and pacing work."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def allocated(module_workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/5_allocation.py").run()
    before = [i.value for i in at.info]
    at.switch_page("pages/2_diagnostics.py").run()
    at.switch_page("pages/3_models.py").run()
    at.slider[0].set_value(2)
    [b for b in at.button if b.label == "Fit models"][0].click().run()
    at.switch_page("pages/5_allocation.py").run()
    return at, before


def metrics(at):
    return {m.label: m.value for m in at.metric}


def number(text):
    return float(text.replace(",", ""))


def test_needs_a_model_first(allocated):
    assert any("needs a fitted model" in text for text in allocated[1])


def test_budget_slider_changes_the_plan(allocated):
    at, _ = allocated
    assert not at.exception and not at.error
    budget = [s for s in at.slider if s.label.startswith("Budget")][0]
    budget.set_value(2000.0).run()
    small = metrics(at)
    assert number(small["Expected spend"]) <= 2000
    budget = [s for s in at.slider if s.label.startswith("Budget")][0]
    budget.set_value(20000.0).run()
    large = metrics(at)
    assert number(large["Expected incremental value"]) > number(small["Expected incremental value"])
    assert number(large["Customers with an offer"]) > number(small["Customers with an offer"])
    table = at.dataframe[0].value
    assert table["customers"].sum() == 50_000 and table["spend"].sum() <= 20000 + 1e-6
    assert at.session_state["current"].config["allocation"]["budget"] == 20000.0


def test_cpi_threshold_prunes_offers(allocated):
    at, _ = allocated
    before = number(metrics(at)["Customers with an offer"])
    at.toggle[0].set_value(True).run()
    [s for s in at.slider if s.label.startswith("Highest acceptable CPI")][0].set_value(0.05).run()
    assert not at.exception
    assert number(metrics(at)["Customers with an offer"]) < before
