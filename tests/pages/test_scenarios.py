"""Saved scenarios change only when saved (issue 13, item 4): unsaved edits stay in the browser
session; a colleague opening the link sees the saved version; the CPI limit and budget come back."""

import pytest
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from tests.pages.helpers import fit_quick_model, new_app

SHARED_WORKSPACE = True


def save_on_data_page(at, name=None):
    at.switch_page("pages/1_data.py").run()
    if name:
        [t for t in at.text_input if t.label == "Scenario name"][0].input(name)
    [b for b in at.button if b.label == "Save scenario"][0].click().run()
    return at.session_state["current"].scenario_id


def slider(at, start):
    return [s for s in at.slider if s.label.startswith(start)][0]


@pytest.fixture(scope="module")
def shared(module_workspace):
    at = new_app().run()
    save_on_data_page(at, "Shared plan")
    fit_quick_model(at).switch_page("pages/5_allocation.py").run()
    at.toggle[0].set_value(True).run()
    slider(at, "Highest acceptable CPI").set_value(0.3).run()
    slider(at, "Budget").set_value(5000.0).run()
    scenario_id = save_on_data_page(at)
    return at, scenario_id


def colleague(scenario_id) -> AppTest:
    fresh = new_app()
    fresh.query_params["scenario"] = scenario_id
    fresh.run()
    return fresh.switch_page("pages/5_allocation.py").run()


def test_cpi_limit_and_budget_are_saved_and_restored_on_reload(shared):
    at, scenario_id = shared
    saved = Workspace().get_scenario(scenario_id).config["allocation"]
    assert saved["cpi_max"] == pytest.approx(0.3) and saved["budget"] == 5000.0
    fresh = colleague(scenario_id)
    assert not fresh.exception and not fresh.error
    assert fresh.toggle[0].value is True
    assert slider(fresh, "Highest acceptable CPI").value == pytest.approx(0.3)
    assert slider(fresh, "Budget").value == 5000.0


def test_an_unsaved_budget_move_is_not_seen_by_a_colleague(shared):
    at, scenario_id = shared
    at.switch_page("pages/5_allocation.py").run()
    slider(at, "Budget").set_value(9000.0).run()
    assert at.session_state["current"].config["allocation"]["budget"] == 9000.0
    assert Workspace().get_scenario(scenario_id).config["allocation"]["budget"] == 5000.0
    assert slider(colleague(scenario_id), "Budget").value == 5000.0
    save_on_data_page(at)
    assert slider(colleague(scenario_id), "Budget").value == 9000.0


def test_unsaved_changes_save_and_discard():
    """The sidebar's state behind *Save changes* / *Discard*, in one session."""

    def script():
        import pandas as pd
        import streamlit as st

        from ui import cached, state

        ws = cached.workspace()
        step = int(st.query_params.get("step", 0))  # survives the discard, which clears the session
        st.query_params["step"] = str(step + 1)
        if step == 0:
            dataset = ws.save_dataset(pd.DataFrame({"arm": ["a", "b"], "y": [1.0, 2.0]}), "tiny")
            scenario = ws.save_scenario("tiny plan", dataset.id, {"mapping": {"action": "arm"}, "allocation": {"budget": 10}})
            state.open_scenario(ws, scenario.id)
            st.session_state["alloc_budget_widget"] = 10
        cur = state.current()
        if step == 1:
            cur.config["allocation"] = {"budget": 25}
            st.session_state["alloc_budget_widget"] = 25
        st.text(f"unsaved={state.unsaved_changes()}")
        if step == 2:
            state.discard_changes()
            st.text(f"after discard: budget={state.current().config['allocation']['budget']} "
                    f"widget={'alloc_budget_widget' in st.session_state} unsaved={state.unsaved_changes()}")
        if step == 3:
            cur.config["allocation"] = {"budget": 40}
            state.save_changes()
            saved = ws.get_scenario(cur.scenario_id).config["allocation"]["budget"]
            st.text(f"after save: workspace budget={saved} unsaved={state.unsaved_changes()}")

    at = AppTest.from_function(script).run()
    assert at.text[0].value == "unsaved=False"
    at.run()
    assert at.text[0].value == "unsaved=True"
    at.run()
    assert at.text[1].value == "after discard: budget=10 widget=False unsaved=False"
    at.run()
    assert at.text[1].value == "after save: workspace budget=40 unsaved=False"
