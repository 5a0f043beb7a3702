"""The Data page through Streamlit's AppTest, against a real temporary workspace."""

import io

import numpy as np
import pandas as pd

import pytest
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from tests.conftest import ROOT

TIMEOUT = 60


@pytest.fixture
def app():
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def by_label(elements, label):
    matches = [e for e in elements if e.label == label]
    assert matches, f"no widget labelled {label!r}"
    return matches[0]


def errors(at):
    return " ".join(e.value for e in at.error)


def test_opens_on_the_sample_with_no_upload(app):
    at = app.run()
    assert not at.exception
    assert errors(at) == ""
    assert "50,000 customers, 4 arms, control 'no_offer'" in at.success[0].value
    assert by_label(at.selectbox, "Action (arm) column").value == "offer"
    assert by_label(at.selectbox, "Logged propensity").value == "propensity"
    summary = at.dataframe[-1].value
    assert summary["arm"].tolist() == ["no_offer", "coupon_20", "free_shipping", "pct10_off"]
    assert summary["n"].sum() == 50_000


def test_hillstrom_sample_with_constant_costs(app):
    at = app.run()
    by_label(at.selectbox, "Sample").set_value("hillstrom").run()
    assert not at.exception and errors(at) == ""
    assert "64,000 customers, 3 arms, control 'No E-Mail'" in at.success[0].value
    assert set(by_label(at.multiselect, "Model features").value) == {
        "recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"}
    summary = at.dataframe[-1].value.set_index("arm")
    assert summary.loc["Mens E-Mail", "n"] == 21307


def test_bad_mapping_shows_a_readable_error(app):
    at = app.run()
    by_label(at.selectbox, "Logged propensity").set_value("revenue").run()
    assert not at.exception
    assert "propensity column 'revenue' has" in errors(at) and "outside (0, 1]" in errors(at)


def test_save_scenario_then_reopen_from_the_url(app):
    at = app.run()
    by_label(at.selectbox, "Value outcome").set_value("pre_revenue").run()
    by_label(at.text_input, "Scenario name").input("Spring test")
    at.button[0].click().run()
    assert not at.exception and errors(at) == ""
    [scenario] = Workspace().list_scenarios()
    assert scenario.name == "Spring test" and scenario.config["mapping"]["value"] == "pre_revenue"
    assert at.query_params["scenario"] == [scenario.id] or at.query_params["scenario"] == scenario.id

    # A new browser session (a reload or a shared link) reopens the same scenario.
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    fresh.query_params["scenario"] = scenario.id
    fresh.run()
    assert not fresh.exception
    assert by_label(fresh.selectbox, "Value outcome").value == "pre_revenue"
    assert fresh.radio(key="data_source").value == "Saved scenario"


def test_unknown_scenario_in_the_url_is_explained(app):
    app.query_params["scenario"] = "sc_doesnotexist"
    at = app.run()
    assert not at.exception
    assert any("cannot be opened" in w.value for w in at.warning)
    assert "50,000 customers" in at.success[0].value


def upload(at, name, content):
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, content, "application/octet-stream")).run()
    return at


def test_upload_a_csv_is_detected_and_stored(app):
    from core.simulate import simulate

    buffer = io.StringIO()
    simulate(600, seed=4).log.to_csv(buffer, index=False)
    at = upload(app.run(), "my_campaign.csv", buffer.getvalue().encode())
    assert not at.exception and errors(at) == ""
    assert "600 customers, 4 arms" in at.success[0].value
    assert any(d.source == "upload:my_campaign.csv" for d in Workspace().list_datasets())


@pytest.mark.parametrize("name,content,message", [
    ("empty.csv", b"", "is empty (0 bytes)"),
    ("junk.parquet", bytes(range(256)) * 8, "not a CSV or Parquet file"),
    ("header.csv", b"offer,revenue\n", "has a header but no data rows"),
])
def test_bad_uploads_leave_saved_scenarios_intact(app, name, content, message):
    at = app.run()
    by_label(at.text_input, "Scenario name").input("Keep me")
    at.button[0].click().run()
    before = [(s.id, s.config) for s in Workspace().list_scenarios()]
    upload(at, name, content)
    assert not at.exception
    assert f"'{name}' cannot be used" in errors(at) and message in errors(at)
    assert [(s.id, s.config) for s in Workspace().list_scenarios()] == before


def test_upload_over_the_limit_is_refused(app):
    from streamlit import config

    original = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        at = upload(app.run(), "big.csv", b"offer,revenue\n" + b"a,1\n" * 400_000)
    finally:
        config.set_option("server.maxUploadSize", original)
    assert not at.exception
    assert "above the upload limit of 1.0 MB" in errors(at)


def test_manage_saved_scenarios(app):
    at = app.run()
    by_label(at.text_input, "Scenario name").input("Original")
    [b for b in at.button if b.label == "Save scenario"][0].click().run()
    at.radio(key="data_source").set_value("Saved scenario").run()
    [name] = [t for t in at.text_input if t.label == "Name"]
    name.input("Renamed").run()
    [b for b in at.button if b.label == "Rename"][0].click().run()
    assert [s.name for s in Workspace().list_scenarios()] == ["Renamed"]
    [b for b in at.button if b.label == "Duplicate"][0].click().run()
    names = sorted(s.name for s in Workspace().list_scenarios())
    assert names == ["Renamed", "Renamed (copy)"]
    copy_id = at.session_state["current"].scenario_id
    assert Workspace().get_scenario(copy_id).name == "Renamed (copy)"
    delete = [b for b in at.button if b.label == "Delete"][0]
    assert delete.disabled, "deleting needs a confirmation"
    [c for c in at.checkbox if c.label == "Yes, delete it"][0].check().run()
    [b for b in at.button if b.label == "Delete"][0].click().run()
    assert not at.exception
    [remaining] = Workspace().list_scenarios()
    assert remaining.name == "Renamed"
    # the deleted scenario is gone from the session too: the list now opens the one left
    assert at.session_state["current"].scenario_id == remaining.id != copy_id


def test_detection_explains_its_arm_and_never_guesses_a_bad_one(app):
    """Issue 13, item 7: the arm column and control come with a reason; when no column fits, the
    user is asked instead of being given the first column (an id or a village number)."""
    from tests.core.test_io import _cash_field_experiment

    frame = _cash_field_experiment()
    at = upload(app.run(), "cash.csv", frame.to_csv(index=False).encode())
    assert by_label(at.selectbox, "Action (arm) column").value == "transfer"
    assert by_label(at.selectbox, "Control (no offer) label").value == "control"
    captions = " ".join(c.value for c in at.caption)
    assert "Detected: 'transfer' holds the no-offer-like label 'control' and has 3 levels" in captions
    assert "Control: 'control' is named like a no-offer arm" in captions
    # choosing the village number as the arm is questioned
    by_label(at.selectbox, "Action (arm) column").set_value("village").run()
    assert "'village' has 124 distinct values" in " ".join(w.value for w in at.warning)

    unnamed = frame.assign(transfer=np.where(frame["transfer"] == "control", "A", "B"))
    at = upload(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run(), "unnamed.csv", unnamed.to_csv(index=False).encode())
    assert by_label(at.selectbox, "Action (arm) column").value == "—"
    assert "choose the column that holds the arm" in " ".join(w.value for w in at.warning)
    assert "The mapping has no action column" in errors(at)


def test_a_constant_cost_of_zero_is_flagged(app):
    """Issue 13, item 8: a constant cost per arm that starts at 0 makes every offer look free."""
    at = app.run()
    by_label(at.selectbox, "Sample").set_value("hillstrom").run()
    assert not [w for w in at.warning if "per customer" in w.value], "the sample's costs are 0.10"
    by_label(at.radio, "Incentive cost").set_value("No cost").run()
    by_label(at.radio, "Incentive cost").set_value("Constant cost per arm").run()
    warnings = " ".join(w.value for w in at.warning)
    assert "Mens E-Mail, Womens E-Mail cost 0 per customer, so they look free to every later step" in warnings


def test_text_and_missing_values_are_named_and_can_be_left_out(app):
    """Issue 13, items 5 and 6: a value column with some text stays choosable, its bad rows are
    named, and incomplete rows can be left out (counted per arm, the split re-checked)."""
    rng = np.random.default_rng(2)
    n = 400
    frame = pd.DataFrame({"customer_id": np.arange(n), "offer": rng.choice(["none", "coupon"], n),
                          "revenue": rng.gamma(2, 10, n).round(2).astype(object), "age": rng.integers(18, 80, n)})
    frame.loc[[3, 10], "revenue"] = ["n/a", "twelve dollars"]
    frame.loc[[20, 21, 22], "revenue"] = None
    at = upload(app.run(), "messy.csv", frame.to_csv(index=False).encode())
    assert by_label(at.selectbox, "Value outcome").value == "revenue"
    captions = " ".join(c.value for c in at.caption)
    # the reader already takes 'n/a' for an empty cell; the other text is named with its row
    assert "Value column `revenue` has 1 text value (row 11: 'twelve dollars')" in captions
    assert "Value column `revenue` has 4 empty values" in captions
    assert "value column 'revenue' has 1 non-numeric value (row 11: 'twelve dollars')" in errors(at)
    by_label(at.checkbox, "Treat text in the value, cost and propensity columns as missing").check().run()
    assert "value column 'revenue' has 5 missing values" in errors(at)
    drop = [c for c in at.checkbox if c.label.startswith("Leave out the 5 incomplete rows")][0]
    drop.check().run()
    assert not at.exception and errors(at) == ""
    assert "395 customers, 2 arms" in at.success[0].value
    notes = " ".join(i.value for i in at.info)
    assert "5 incomplete rows are left out of the analysis (the file keeps them)" in notes
    assert "The drop is even across arms (χ² test, p = " in notes
    assert len(cached_frame(at)) == n, "the stored dataset keeps every row"


def cached_frame(at):
    from core.workspace import Workspace

    return Workspace().load_dataset(at.session_state["current"].dataset_id)


def test_a_conversion_can_be_given_a_money_value(app):
    from tests.pages.helpers import promo_log_csv

    at = upload(app.run(), "promo.csv", promo_log_csv(2000, seed=5))
    before = at.dataframe[-1].value.set_index("arm")["mean_value"]
    by_label(at.number_input, "One conversion is worth (money)").set_value(10.0).run()
    assert not at.exception and errors(at) == ""
    after = at.dataframe[-1].value.set_index("arm")["mean_value"]
    assert after.to_dict() == pytest.approx((10 * before).to_dict())
    assert at.session_state["current"].mapping["value_unit"] == 10.0
