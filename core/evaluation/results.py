"""The results of evaluating predictions: every metric of one offer, and of all of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calibration import Calibration

TOP_FRACTIONS = (0.1, 0.2, 0.3)
# Fewer outcome events (non-zero outcomes: conversions, purchases) than this in an offer's arm or
# in the control and ranking metrics are noise: a Qini built on a handful of conversions moves by
# more than the gap between models when one customer changes sides.
MIN_EVENTS = 50


@dataclass(frozen=True)
class ArmEvaluation:
    """Every metric of one arm against control (rows of that arm and of the control only)."""

    arm: str
    n: int
    qini_normalized: float
    auuc_normalized: float
    qini_coefficient: float
    aucc: float | None
    uplift_at_top: dict
    calibration: Calibration
    calibration_cost: Calibration | None = None
    events: tuple[int, int] = (0, 0)  # non-zero outcomes in (this arm, control)
    horizon: object | None = None  # HorizonRatios when a long-horizon value is mapped

    @property
    def rare(self) -> bool:
        """Too few outcome events in this arm or the control to rank customers (see MIN_EVENTS)."""
        return min(self.events) < MIN_EVENTS

    def to_dict(self) -> dict:
        out = {"qini_normalized": self.qini_normalized, "auuc_normalized": self.auuc_normalized,
               "qini_coefficient": self.qini_coefficient,
               "calibration": self.calibration.table[["bin", "n", "predicted", "observed", "ci_low", "ci_high"]].to_dict("records"),
               "calibration_slope": self.calibration.slope, "calibration_intercept": self.calibration.intercept,
               "monotonicity": self.calibration.monotonicity, "n": self.n,
               "events": {"arm": self.events[0], "control": self.events[1]}, "too_few_events": self.rare,
               "uplift_at_top": {f"{int(f * 100)}%": v for f, v in self.uplift_at_top.items()}}
        if self.aucc is not None:
            out["aucc"] = self.aucc
        if self.horizon is not None:
            out["horizon_ratio"] = self.horizon.to_dict()
        if self.calibration_cost is not None:
            out["calibration_cost"] = self.calibration_cost.table[["bin", "n", "predicted", "observed", "ci_low", "ci_high"]].to_dict("records")
            out["calibration_cost_slope"] = self.calibration_cost.slope
        return out


@dataclass(frozen=True)
class Evaluation:
    arms: dict[str, ArmEvaluation]
    weighted: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {arm: result.to_dict() for arm, result in self.arms.items()}

    def summary(self) -> dict:
        """Averages over arms, for the leaderboard."""
        arms = list(self.arms.values())

        def mean(values):
            values = [v for v in values if v is not None and np.isfinite(v)]
            return float(np.mean(values)) if values else float("nan")

        return {"qini": mean([a.qini_normalized for a in arms]), "auuc": mean([a.auuc_normalized for a in arms]),
                "aucc": mean([a.aucc for a in arms]), "calibration_slope": mean([a.calibration.slope for a in arms]),
                "calibration_slope_cost": mean([a.calibration_cost.slope for a in arms if a.calibration_cost is not None]),
                "monotonicity": mean([a.calibration.monotonicity for a in arms]),
                "min_events": min(min(a.events) for a in arms) if arms else 0}
