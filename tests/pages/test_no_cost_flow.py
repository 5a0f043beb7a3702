"""A foreign log with no cost column and a binary outcome reaches a plan, a policy comparison
with the model policy, and a full report (issue 13, items 1, 3, 11)."""

import pytest

from tests.pages.helpers import fit_quick_model, new_app, promo_log_csv, texts, upload

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def planned(module_workspace):
    at = upload(new_app().run(), "promo.csv", promo_log_csv())
    assert not at.exception and not at.error, texts(at.error)
    fit_quick_model(at).switch_page("pages/5_allocation.py").run()
    return at


def metrics(at):
    return {m.label: float(m.value.replace(",", "")) for m in at.metric if m.value != "—"}


def basis_radio(at):
    return [r for r in at.radio if r.label == "Budget in"][0]


def budget_slider(at):
    return [s for s in at.slider if s.label.startswith("Budget")][0]


def test_count_budget_is_the_default_and_gives_a_plan(planned):
    at = planned
    assert not at.exception and not at.error, texts(at.error)
    assert "has no cost" in texts(at.info)
    assert basis_radio(at).value == "count"
    budget_slider(at).set_value(150.0).run()
    shown = metrics(at)
    assert shown["Customers with an offer"] == 150 and shown["Offers sent"] == 150
    assert shown["Expected incremental value"] > 0
    saved = at.session_state["current"].config["allocation"]
    assert saved["cost_basis"] == "count" and saved["budget"] == 150.0


def test_typed_budget_moves_the_slider(planned):
    at = planned
    typed = [n for n in at.number_input if n.label == "Type a budget"][0]
    typed.set_value(80.0).run()
    assert budget_slider(at).value == 80.0 and metrics(at)["Customers with an offer"] == 80


def test_cost_per_send_and_a_cpi_range_from_the_data(planned):
    at = planned
    basis = basis_radio(at)
    basis.set_value("per_send").run()
    assert not at.exception and not at.error, texts(at.error)
    # the cost table starts at 1 per send; a purchase lift of a few % makes CPI ≈ 20–100, far above 2
    at.toggle[0].set_value(True).run()
    cpi = [s for s in at.slider if s.label.startswith("Highest acceptable CPI")][0]
    assert cpi.max > 2
    cpi.set_value(cpi.max).run()
    assert metrics(at)["Customers with an offer"] > 0
    # an impossible limit gives an empty plan that says why
    [s for s in at.slider if s.label.startswith("Highest acceptable CPI")][0].set_value(0.0).run()
    assert metrics(at)["Customers with an offer"] == 0
    assert "Nobody gets an offer" in texts(at.warning) and "the CPI limit 0 removes every offer" in texts(at.warning)
    at.toggle[0].set_value(False).run()
    basis = basis_radio(at)
    basis.set_value("count").run()


def test_policies_compare_the_model_policy_and_the_report_has_every_section(planned):
    at = planned
    at.switch_page("pages/6_policies.py").run()
    assert not at.exception and not at.error, texts(at.error)
    table = at.dataframe[0].value
    assert any(p.startswith("model policy (at most") for p in table["policy"])
    at.switch_page("pages/7_report.py").run()
    checklist = " ".join(m.value for m in at.markdown)
    # icons that every font renders, not emoji that show as empty boxes (issue 13, item 14)
    assert ":material/check_box: Allocation" in checklist and "✅" not in checklist and "⬜" not in checklist
    [b for b in at.button if b.label == "Build the report"][0].click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "data, diagnostics, models, allocation, policies" in texts(at.success)
