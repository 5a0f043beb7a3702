import re

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError, cli_spelling
from core.schema import ColumnMap, ExperimentLog, frame_fingerprint, parse_action_cost


def small_frame():
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "arm": ["ctrl", "a", "b", "ctrl", "a", "b"],
        "y": [1.0, 2.0, 4.0, 3.0, 6.0, 0.0],
        "c": [0.0, 1.0, 2.0, 0.0, 0.0, 2.0],
        "p": [0.5, 0.25, 0.25, 0.5, 0.25, 0.25],
        "x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    })


CMAP = ColumnMap(action="arm", control="ctrl", value="y", cost="c", propensity="p", id="id")


def test_valid_log_orders_control_first_and_summarises_by_hand():
    log = ExperimentLog.from_frame(small_frame(), CMAP)
    assert log.labels == ("ctrl", "a", "b")
    assert log.treatments == ("a", "b")
    assert log.features == ("x",)
    summary = log.arm_summary().set_index("arm")
    assert summary.loc["ctrl", "n"] == 2 and summary.loc["ctrl", "share"] == pytest.approx(1 / 3)
    assert summary.loc["a", "mean_value"] == pytest.approx((2.0 + 6.0) / 2)
    assert summary.loc["b", "mean_cost"] == pytest.approx(2.0)
    assert list(summary.index) == ["ctrl", "a", "b"]


def test_constant_cost_per_arm_and_control_costs_nothing():
    cmap = ColumnMap(action="arm", control="ctrl", value="y", action_cost={"a": 0.5, "b": 2.0})
    log = ExperimentLog.from_frame(small_frame(), cmap)
    np.testing.assert_allclose(log.cost, [0.0, 0.5, 2.0, 0.0, 0.5, 2.0])
    assert log.has_cost


def test_numeric_arms_are_compared_as_text():
    frame = pd.DataFrame({"t": [0, 1, 0, 1], "y": [1.0, 2.0, 3.0, 4.0]})
    log = ExperimentLog.from_frame(frame, ColumnMap(action="t", control="0", value="y"))
    assert log.labels == ("0", "1")
    assert frame["t"].dtype.kind == "i", "the user's frame is never altered"


def _with(frame, **changes):
    frame = frame.copy()
    for col, values in changes.items():
        frame[col] = values
    return frame


BAD = [
    ("missing action column", small_frame().drop(columns="arm"), CMAP, r"action column 'arm' is not in the file"),
    ("single arm", _with(small_frame(), arm=["ctrl"] * 6), CMAP, r"has 1 arm\(s\) \(ctrl\); an experiment needs at least 2"),
    ("no control label", small_frame(), ColumnMap(action="arm", control="none", value="y"),
     r"control label 'none' is not an arm of 'arm'; arms found: a, b, ctrl"),
    ("propensity 0", _with(small_frame(), p=[0.0, 0.25, 0.25, 0.5, 0.25, 0.25]), CMAP,
     r"propensity column 'p' has 1 values outside \(0, 1\] \(row 1: 0\.0\)"),
    ("propensity above 1", _with(small_frame(), p=[0.5, 1.5, 0.25, 0.5, 0.25, 0.25]), CMAP,
     r"propensity column 'p' has 1 values outside \(0, 1\] \(row 2: 1\.5\)"),
    ("NaN value", _with(small_frame(), y=[1.0, np.nan, 4.0, 3.0, 6.0, 0.0]), CMAP,
     r"value column 'y' has 1 missing values \(first at row 2\)"),
    ("text value", _with(small_frame(), y=["1", "2", "lots", "3", "6", "0"]), CMAP,
     r"value column 'y' has 1 non-numeric value \(row 3: 'lots'\); expected numbers"),
    ("duplicated ids", _with(small_frame(), id=[1, 2, 2, 4, 5, 5]), CMAP,
     r"id column 'id' has 2 duplicated ids \(e\.g\. 2, 5\); ids must be unique"),
    ("no value mapped", small_frame(), ColumnMap(action="arm", control="ctrl"), r"no value column is mapped"),
    ("cost for unknown arm", small_frame(), ColumnMap(action="arm", control="ctrl", value="y", action_cost={"zz": 1.0}),
     r"constant cost given for unknown arm\(s\) zz"),
    ("both cost kinds", small_frame(), ColumnMap(action="arm", control="ctrl", value="y", cost="c", action_cost={"a": 1.0}),
     r"both a cost column 'c' and constant per-arm costs are given"),
    ("unknown feature", small_frame(), ColumnMap(action="arm", control="ctrl", value="y", features=("x", "nope")),
     r"feature column\(s\) 'nope' not in the file"),
    ("feature is a role", small_frame(), ColumnMap(action="arm", control="ctrl", value="y", features=("x", "y")),
     r"feature\(s\) 'y' are also mapped to a role"),
    ("same column two roles", small_frame(), ColumnMap(action="arm", control="ctrl", value="y", cost="y"),
     r"column 'y' is mapped to several roles \(value, cost\)"),
    ("empty action", _with(small_frame(), arm=["ctrl", None, "b", "ctrl", "a", "b"]), CMAP,
     r"action column 'arm' has 1 empty values \(first at row 2\)"),
]


@pytest.mark.parametrize("label,frame,cmap,message", BAD, ids=[b[0] for b in BAD])
def test_bad_logs_name_the_column_and_value(label, frame, cmap, message):
    with pytest.raises(UserError, match=message):
        ExperimentLog.from_frame(frame, cmap)


def test_every_problem_is_reported_at_once():
    frame = _with(small_frame(), p=[0.0] * 6, y=[np.nan] * 6, id=[1] * 6)
    with pytest.raises(UserError, match=r"\(3 problems\)") as info:
        ExperimentLog.from_frame(frame, CMAP)
    assert len(info.value.problems) == 3
    assert any("propensity column 'p'" in p for p in info.value.problems)
    assert any("value column 'y'" in p for p in info.value.problems)
    assert any("id column 'id'" in p for p in info.value.problems)


def test_fingerprints_follow_content_and_mapping():
    a = ExperimentLog.from_frame(small_frame(), CMAP)
    b = ExperimentLog.from_frame(small_frame(), CMAP)
    assert a.fingerprint == b.fingerprint
    changed = _with(small_frame(), y=[1.0, 2.0, 4.0, 3.0, 6.0, 0.5])
    assert ExperimentLog.from_frame(changed, CMAP).data_fingerprint != a.data_fingerprint
    other_map = ColumnMap(action="arm", control="ctrl", value="x", cost="c", propensity="p", id="id", features=())
    c = ExperimentLog.from_frame(small_frame(), other_map)
    assert c.data_fingerprint == a.data_fingerprint and c.fingerprint != a.fingerprint
    assert frame_fingerprint(small_frame()) != frame_fingerprint(small_frame().iloc[::-1])


def test_column_map_round_trip():
    cmap = ColumnMap(action="arm", control="ctrl", value="y", action_cost={"a": 1.5}, features=["x"], segment="s")
    back = ColumnMap.from_dict(cmap.to_dict())
    assert back == cmap
    assert back.action_cost_map == {"a": 1.5}
    with pytest.raises(UserError, match=r"no action column"):
        ColumnMap.from_dict({"control": "x"})
    with pytest.raises(UserError, match=r"no control label for action column 'arm'"):
        ColumnMap.from_dict({"action": "arm"})


@pytest.mark.parametrize("text,message", [
    ("a", r"entry 'a' is not of the form LABEL=AMOUNT"),
    ("a=x", r"amount 'x' for arm 'a' is not a number"),
    ("a=-1", r"must be a finite number ≥ 0, got -1"),
    (",", r"--action-cost is empty"),
])
def test_parse_action_cost_errors(text, message):
    """Core names the setting; the CLI spells it as its flag (the message above)."""
    with pytest.raises(UserError) as caught:
        parse_action_cost(text)
    assert re.search(message, str(caught.value.spelled(cli_spelling))), str(caught.value)


def test_parse_action_cost_ok():
    assert parse_action_cost("Yes=0.15, coupon=2") == {"Yes": 0.15, "coupon": 2.0}


# --- text and missing values (issue 13, items 5 and 6) -------------------------------------------

def _messy_frame():
    return pd.DataFrame({"arm": ["a", "b", "a", "b", None, "a", "b", "a"],
                         "revenue": [1.0, "n/a", 3.0, "twelve dollars", 5.0, None, 7.0, 8.0],
                         "x": [1, 2, 3, 4, 5, 6, 7, 8]})


def test_text_in_the_value_column_is_named_with_its_rows():
    with pytest.raises(UserError) as err:
        ExperimentLog.from_frame(_messy_frame(), ColumnMap(action="arm", control="a", value="revenue"))
    problems = " ".join(err.value.problems)
    assert "value column 'revenue' has 2 non-numeric values (row 2: 'n/a', row 4: 'twelve dollars')" in problems
    assert "or treat such text as missing" in problems


def test_incomplete_rows_are_dropped_on_request_and_counted_per_arm():
    from core.schema import incomplete_rows

    frame = _messy_frame()
    cmap = ColumnMap(action="arm", control="a", value="revenue", text_as_missing=True)
    with pytest.raises(UserError, match=r"value column 'revenue' has 3 missing values \(first at row 2\); expected a number in every row, or drop"):
        ExperimentLog.from_frame(frame, cmap)
    mask, per_arm = incomplete_rows(frame, cmap)
    assert mask.tolist() == [False, True, False, True, True, True, False, False]
    assert per_arm == {"b": 2, "(missing)": 1, "a": 1}
    log = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="a", value="revenue", text_as_missing=True,
                                                    drop_incomplete=True))
    assert log.n == 4 and log.dropped == per_arm
    assert log.value.tolist() == [1.0, 3.0, 7.0, 8.0] and list(log.frame["x"]) == [1, 3, 7, 8]
    assert frame["revenue"].tolist()[1] == "n/a", "the user's frame is never altered"
    # a different cleaning is a different log: caches keyed by the fingerprint cannot mix them
    plain = ExperimentLog.from_frame(frame.dropna().query("revenue not in ['n/a', 'twelve dollars']"),
                                     ColumnMap(action="arm", control="a", value="revenue"))
    assert plain.fingerprint != log.fingerprint


def test_the_dropped_rows_check_flags_uneven_missingness():
    from scipy.stats import chi2_contingency

    from core.diagnostics.srm import dropped_rows_check

    even = dropped_rows_check({"a": 950, "b": 950}, {"a": 50, "b": 50})
    assert even["p_value"] == pytest.approx(1.0) and even["rate"] == {"a": 0.05, "b": 0.05}
    uneven = dropped_rows_check({"a": 990, "b": 900}, {"a": 10, "b": 100})
    chi2, p, dof, _ = chi2_contingency([[990, 900], [10, 100]], correction=False)
    assert (uneven["chi2"], uneven["p_value"], uneven["dof"]) == pytest.approx((chi2, p, dof))
    assert uneven["p_value"] < 1e-10


def test_a_binary_outcome_can_be_given_a_money_value():
    """Issue 13, item 9: what one conversion is worth puts value, effects and CPI in money."""
    from core.diagnostics.readout import readout

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"arm": rng.choice(["No", "Yes"], 2000), "purchase": rng.integers(0, 2, 2000), "x": 1.0})
    counted = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="No", value="purchase", action_cost={"Yes": 0.15}))
    money = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="No", value="purchase", action_cost={"Yes": 0.15},
                                                      value_unit=10.0))
    np.testing.assert_array_equal(money.value, 10.0 * counted.value)
    plain, scaled = readout(counted), readout(money)
    assert scaled.effects.iloc[0]["effect"] == pytest.approx(10 * plain.effects.iloc[0]["effect"])
    assert scaled.cpi.iloc[0]["cpi"] == pytest.approx(plain.cpi.iloc[0]["cpi"] / 10)
    assert money.fingerprint != counted.fingerprint
    with pytest.raises(UserError, match=r"the worth of one unit of 'purchase' must be a number > 0, got -1"):
        ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="No", value="purchase", value_unit=-1.0))
