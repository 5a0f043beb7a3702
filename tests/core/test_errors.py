"""Messages in the user's terms: core names a setting once; the CLI spells it as its flag, the
app as its widget's label, and a message printed as it is reads plainly."""

from __future__ import annotations

import pytest

from core.decision.allocate import validate_budget
from core.errors import UserError, cli_spelling, setting, spell


def test_a_setting_is_spelled_by_each_interface():
    exc = UserError(f"{setting('cpi_max')} must be ≥ 0", [f"{setting('budget')} is missing", "no setting here"])
    assert str(exc) == "the CPI limit must be ≥ 0: budget is missing; no setting here"
    assert "\x1f" not in str(exc)  # the marker never reaches the user
    cli = exc.spelled(cli_spelling)
    assert str(cli) == "--cpi-max must be ≥ 0: --budget is missing; no setting here"
    assert cli.problems == ["--budget is missing", "no setting here"]
    assert str(exc.spelled({"budget": "“Budget”"})) == "the CPI limit must be ≥ 0: “Budget” is missing; no setting here"
    assert spell("no marker {x} stays", cli_spelling) == "no marker {x} stays"


def test_core_checks_name_the_setting_and_the_app_uses_the_widget_label():
    from ui.widgets import SETTING_LABELS

    with pytest.raises(UserError, match=r"^budget must be a finite number ≥ 0, got -1") as caught:
        validate_budget(-1)
    assert str(caught.value.spelled(cli_spelling)).startswith("--budget must be a finite number ≥ 0")
    assert str(caught.value.spelled(SETTING_LABELS)).startswith("“Budget” must be a finite number ≥ 0")
