"""The Policies page: candidates side by side, warnings, the model policy from the allocation step."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def compared(module_workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/2_diagnostics.py").run()
    at.switch_page("pages/3_models.py").run()
    at.slider[0].set_value(2)
    [b for b in at.button if b.label == "Fit models"][0].click().run()
    at.switch_page("pages/5_allocation.py").run()
    at.switch_page("pages/6_policies.py").run()
    return at


def test_default_candidates_are_compared(compared):
    at = compared
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    policies = set(table["policy"])
    assert {"no-offer", "logging"} <= policies
    assert any(p.startswith("model policy (budget") for p in policies)
    assert set(table["estimator"]) == {"ips", "snips", "dr", "sndr"}
    no_offer = table[table["policy"] == "no-offer"]
    assert (no_offer["increment"].abs() < 1e-9).all(), "no offer has no increment over itself"
    assert (table["value_low"] <= table["value"]).all() and (table["value"] <= table["value_high"]).all()


def test_model_policy_beats_no_offer(compared):
    table = compared.dataframe[0].value
    model = table[table["policy"].str.startswith("model policy") & (table["estimator"] == "dr")].iloc[0]
    assert model["increment_low"] > 0, "the allocated plan earns more than sending nothing"
    assert model["cost_increment"] > 0


def test_random_policy_and_clip_are_reported(compared):
    at = compared
    at.multiselect[0].set_value(["no-offer", "random"]).run()
    at.selectbox[0].set_value("0.05").run()
    assert not at.exception
    assert set(at.dataframe[0].value["policy"]) == {"no-offer", "random"}
    assert at.session_state["current"].config["policies"]["clip"] == 0.05
