"""Issue 24, item 7: who is cold and which effects a cold customer gets.

A row with one of two features missing is still scored by the model (warm); a segment of the
training log that lacks an arm has no segment row, and its customers get the all-customer effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.design.cold_start import ALL, score_with_cold_start, segment_effects
from core.schema import ColumnMap, ExperimentLog

MAP = ColumnMap(action="arm", control="ctl", value="value", cost="cost", segment="seg", features=("f1", "f2"))


def _training_log() -> ExperimentLog:
    # s1 has every arm; s2 never got offer b
    rows = [
        ("s1", "ctl", 1.0, 0.0), ("s1", "ctl", 3.0, 0.0), ("s1", "ctl", 2.0, 0.5),
        ("s1", "a", 6.0, 1.0), ("s1", "a", 4.0, 2.0), ("s1", "a", 8.0, 3.0),
        ("s1", "b", 10.0, 4.0), ("s1", "b", 12.0, 6.0),
        ("s2", "ctl", 7.0, 0.0), ("s2", "ctl", 9.0, 1.0),
        ("s2", "a", 20.0, 2.0), ("s2", "a", 30.0, 4.0), ("s2", "a", 25.0, 3.0),
    ]
    frame = pd.DataFrame(rows, columns=["seg", "arm", "value", "cost"])
    frame["f1"] = np.arange(len(frame), dtype=float)
    frame["f2"] = np.arange(len(frame), dtype=float) ** 2
    return ExperimentLog.from_frame(frame, MAP)


def _hand_effects(frame: pd.DataFrame) -> dict:
    """Plain arm-mean differences against the control (no propensities: the readout's means)."""
    mean = frame.groupby("arm")[["value", "cost"]].mean()
    return {f"tau_{head}__{arm}": mean.loc[arm, head] - mean.loc["ctl", head] for arm in ("a", "b") for head in ("value", "cost")}


class _Model:
    """A stand-in for a fitted model: a known function of the features, NaN treated as 0."""

    features_ = ("f1", "f2")

    @staticmethod
    def formula(f1, f2, arm_shift):
        return 100.0 * arm_shift + 10.0 * np.nan_to_num(f1) + np.nan_to_num(f2)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        f1, f2 = frame["f1"].to_numpy(dtype=float), frame["f2"].to_numpy(dtype=float)
        return pd.DataFrame({"tau_value__a": self.formula(f1, f2, 1), "tau_cost__a": self.formula(f1, f2, 2),
                             "tau_value__b": self.formula(f1, f2, 3), "tau_cost__b": self.formula(f1, f2, 4)})


def test_a_segment_missing_an_arm_has_no_row_and_the_all_customer_row_is_the_readout():
    log = _training_log()
    effects = segment_effects(log)
    assert list(effects.index) == [ALL, "s1"]
    frame = log.frame
    for key, hand in _hand_effects(frame).items():
        assert effects.loc[ALL, key] == pytest.approx(hand, rel=1e-12, abs=1e-12), key
    for key, hand in _hand_effects(frame[frame["seg"] == "s1"]).items():
        assert effects.loc["s1", key] == pytest.approx(hand, rel=1e-12, abs=1e-12), key


def test_one_missing_feature_stays_warm_and_cold_customers_get_their_segments_or_all_effects():
    log = _training_log()
    effects = segment_effects(log)
    nan = np.nan
    new = pd.DataFrame({
        "seg": ["s1", "s1", "s1", "s1", "s2", "s2", "s9"],
        "f1": [1.0, nan, 2.0, nan, 1.0, nan, 3.0],
        "f2": [2.0, 3.0, nan, nan, 1.0, nan, 1.0],
    })
    out = score_with_cold_start(_Model(), new, effects, segment="seg")
    expected_cold = [False, False, False, True, True, True, True]
    assert out["cold_start"].tolist() == expected_cold
    assert out["cold_start_reason"].tolist() == ["", "", "", "every model feature empty", "segment not seen in the training log",
                                                 "every model feature empty", "segment not seen in the training log"]
    every = _hand_effects(log.frame)
    s1 = _hand_effects(log.frame[log.frame["seg"] == "s1"])
    shifts = {"tau_value__a": 1, "tau_cost__a": 2, "tau_value__b": 3, "tau_cost__b": 4}
    for i in range(len(new)):
        for column, shift in shifts.items():
            if not expected_cold[i]:
                want = _Model.formula(new["f1"].iloc[i], new["f2"].iloc[i], shift)  # the model's own prediction
            elif new["seg"].iloc[i] == "s1":
                want = s1[column]
            else:  # s2 (an arm missing in training) and the unseen s9: the all-customer effects
                want = every[column]
            assert out[column].iloc[i] == pytest.approx(want, rel=1e-12, abs=1e-12), (i, column)
