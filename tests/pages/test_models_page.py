"""The Models page: gated by the diagnostics, fits real models, survives a revisit."""

import io

import pytest

from core.simulate import simulate
from core.workspace import Workspace
from tests.pages.helpers import new_app, texts

@pytest.fixture
def app():
    return new_app()


def fit_button(at):
    [button] = [b for b in at.button if b.label == "Fit models"]
    return button


def upload(at, frame, name):
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, buffer.getvalue().encode(), "text/csv")).run()
    assert not at.exception and not at.error, texts(at.error)


def test_fitting_needs_the_diagnostics_first(app):
    at = app.run().switch_page("pages/3_models.py").run()
    assert not at.exception
    assert "Run the diagnostics on this dataset and mapping first" in texts(at.error)
    assert fit_button(at).disabled


def test_red_light_blocks_fitting_until_acknowledged_then_fits(app):
    at = app.run()
    upload(at, simulate(2500, seed=12, srm_drop={"coupon_20": 0.5}).log, "broken_logging.csv")
    at.switch_page("pages/2_diagnostics.py").run()
    assert "SRM: red" in texts(at.error)

    at.switch_page("pages/3_models.py").run()
    assert "The SRM light is red and not acknowledged" in texts(at.error)
    assert fit_button(at).disabled

    at.switch_page("pages/2_diagnostics.py").run()
    [ack] = [c for c in at.checkbox if "SRM problem" in c.label]
    ack.check().run()
    at.switch_page("pages/3_models.py").run()
    assert not fit_button(at).disabled and "blocked" not in texts(at.error)

    at.slider[0].set_value(2)
    assert at.multiselect[0].value == ["auto"], "auto is the default learner"
    fit_button(at).click().run()
    assert not at.exception and not at.error, texts(at.error)
    board = at.dataframe[0].value
    model = at.session_state["current"].config["models"]["auto"]
    chosen = {"S-learner", "T-learner", "X-learner", "DR-learner"}
    assert board["learner"].iloc[0].startswith("Auto → ") and board["learner"].iloc[0][7:] in chosen
    assert board["folds"].tolist() == [2] and board["complexity · value"].iloc[0] in ("regularised", "balanced", "flexible")
    assert f"Auto chose the {board['learner'].iloc[0][7:]}:**" in texts(at.info)
    assert "doubly robust loss" in texts(at.info)
    [record] = Workspace().list_models().to_dict("records")
    assert record["learner"] == "auto" and record["id"] == board["model id"][0] == model["model_id"]

    first_label = [e.label for e in at.status if "fitted in" in (e.label or "")]
    assert first_label and "reused" not in first_label[0]
    # Fitting again with the same settings reuses the fit and says so, not "fitted in <old seconds>".
    fit_button(at).click().run()
    labels = [e.label for e in at.status if e.label]
    assert any("already fitted with these settings" in l and "reused, nothing refitted" in l for l in labels), labels

    # A revisit shows the fitted model without fitting again.
    at.switch_page("pages/1_data.py").run()
    at.switch_page("pages/3_models.py").run()
    assert at.dataframe[0].value["model id"].tolist() == [record["id"]]
    assert len(Workspace().list_models()) == 1


def test_later_choices_of_a_saved_scenario_survive_a_reload_once_saved(app):
    at = app.run()
    [t for t in at.text_input if t.label == "Scenario name"][0].input("Keeps everything")
    [b for b in at.button if b.label == "Save scenario"][0].click().run()
    scenario_id = at.session_state["current"].scenario_id
    at.switch_page("pages/2_diagnostics.py").run()
    at.switch_page("pages/3_models.py").run()
    at.slider[0].set_value(2)
    fit_button(at).click().run()
    model_id = at.session_state["current"].config["models"]["auto"]["model_id"]
    at.run()
    # saving is explicit: until then the workspace's scenario is unchanged and the sidebar says so
    assert "models" not in Workspace().get_scenario(scenario_id).config
    # (the sidebar's Save changes runs in app.py, which AppTest's page runs skip: the browser test clicks it)
    at.switch_page("pages/1_data.py").run()
    [b for b in at.button if b.label == "Save scenario"][0].click().run()
    # the workspace holds the fitted model's record in the scenario: a reload finds it
    assert Workspace().get_scenario(scenario_id).config["models"]["auto"]["model_id"] == model_id
    fresh = new_app()
    fresh.query_params["scenario"] = scenario_id
    fresh.run()
    fresh.switch_page("pages/3_models.py").run()
    assert not fresh.exception
    assert fresh.dataframe[0].value["model id"].tolist() == [model_id]
