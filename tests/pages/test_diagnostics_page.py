"""The Diagnostics page: lights, the acknowledgement gate, settings."""

import io

import pytest

from core.simulate import simulate
from tests.pages.helpers import new_app, texts

@pytest.fixture
def app():
    return new_app()


def open_diagnostics(at):
    return at.switch_page("pages/2_diagnostics.py").run()


def test_opening_the_page_first_uses_the_sample(app):
    at = app.run()
    at.session_state["current"].dataset_id = None
    open_diagnostics(at)
    assert not at.exception
    assert any("Working on the shipped sample" in c.value for c in at.caption)
    assert texts(at.success).count(": green") == 3


def test_sample_is_green_and_fitting_allowed(app):
    at = open_diagnostics(app.run())
    assert not at.exception
    assert texts(at.success).count(": green") == 3
    assert "Model fitting is allowed" in texts(at.success)
    assert at.radio[0].value == "propensity" and at.radio[0].options[0] == "Implied by the logged propensities"


def test_red_light_blocks_fitting_until_acknowledged(app):
    buffer = io.StringIO()
    simulate(4000, seed=12, srm_drop={"coupon_20": 0.5}).log.to_csv(buffer, index=False)
    at = app.run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value(("broken_logging.csv", buffer.getvalue().encode(), "text/csv")).run()
    assert not at.exception and not at.error
    open_diagnostics(at)
    assert not at.exception
    assert "SRM: red" in texts(at.error)
    assert "Model fitting is blocked" in texts(at.error)
    fingerprint = at.session_state["current"].config["diagnostics_status"]["fingerprint"]
    [ack] = [c for c in at.checkbox if "SRM problem" in c.label]
    assert ack.value is False
    ack.check().run()
    assert not at.exception
    assert "Model fitting is allowed" in texts(at.success)
    assert at.session_state["current"].config["acknowledged"][fingerprint] == ["SRM"]
    # Changing the data changes the fingerprint: the acknowledgement does not carry over.
    at.switch_page("pages/1_data.py").run()
    at.radio(key="data_source").set_value("Sample data").run()
    open_diagnostics(at)
    assert "Model fitting is allowed" in texts(at.success)


def test_hillstrom_estimates_propensities_and_tests_the_equal_split(app):
    at = app.run()
    at.selectbox[0].set_value("hillstrom").run()
    open_diagnostics(at)
    assert not at.exception
    assert texts(at.success).count(": green") == 3, texts(at.error) + texts(at.warning)
    assert "Arm counts fit the intended split" in texts(at.success)
    assert any("Propensities: **estimated**" in c.value for c in at.caption)
    assert [o for o in at.radio[0].options] == ["Equal split", "Custom weights"]
    at.radio[0].set_value("custom").run()
    assert not at.exception
    assert "SRM: green" in texts(at.success), "equal custom weights by default"
