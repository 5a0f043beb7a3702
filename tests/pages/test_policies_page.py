"""The Policies page: candidates side by side, warnings, the model policy from the allocation step."""

import pytest

from tests.pages.helpers import fit_quick_model, new_app

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def compared(module_workspace):
    at = fit_quick_model(new_app().run())
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


def test_report_page_and_cli_agree(compared, capsys, tmp_path):
    """The report built in the app and by `python -m core report` from the saved scenario."""
    import json

    from core.cli import main

    at = compared
    at.switch_page("pages/1_data.py").run()
    [t for t in at.text_input if t.label == "Scenario name"][0].input("Report test")
    [b for b in at.button if b.label == "Save scenario"][0].click().run()
    scenario_id = at.session_state["current"].scenario_id
    at.switch_page("pages/7_report.py").run()
    [b for b in at.button if b.label == "Build the report"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Report ready: data, diagnostics, models, allocation, policies" in at.success[0].value
    page_html = at.session_state["report_html"]
    assert 'src="http' not in page_html and "<script" in page_html, "self-contained: no external scripts"

    out = tmp_path / "report.html"
    assert main(["report", "--scenario", scenario_id, "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sections"] == ["data", "diagnostics", "models", "allocation", "policies"]
    cli_html = out.read_text()
    # same numbers: the allocation sentence and the tables agree between page and CLI
    import re

    sentence = re.compile(r"expected incremental value <b>([\d,]+)</b> at expected cost <b>([\d,]+)</b>")
    assert sentence.search(page_html).groups() == sentence.search(cli_html).groups()
    tables = re.compile(r"<table.*?</table>", re.S)
    assert tables.findall(page_html)[:3] == tables.findall(cli_html)[:3], "data, readout and CPI tables"
