"""Budget pacing: how much may be committed today without overspending the period?

    today = (period budget − spent − expected liability) / days left
    expected liability = Σ over offers of issued-but-unredeemed count × redemption rate × face value

Issued offers that may still be redeemed are money already promised; ignoring them is how
campaigns overspend in their last week.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError


@dataclass(frozen=True)
class Liability:
    """Issued, not yet redeemed offers of one kind."""

    offer: str
    outstanding: int
    redemption_rate: float
    face_value: float

    @property
    def expected(self) -> float:
        return self.outstanding * self.redemption_rate * self.face_value


@dataclass(frozen=True)
class Pacing:
    period_budget: float
    spent: float
    days_left: int
    liabilities: tuple[Liability, ...] = field(default_factory=tuple)

    @property
    def liability(self) -> float:
        return float(sum(l.expected for l in self.liabilities))

    @property
    def remaining(self) -> float:
        return self.period_budget - self.spent - self.liability

    @property
    def today(self) -> float:
        return max(self.remaining, 0.0) / self.days_left

    @property
    def overcommitted(self) -> bool:
        return self.remaining < 0

    def to_dict(self) -> dict:
        return {"period_budget": self.period_budget, "spent": self.spent, "days_left": self.days_left,
                "liability": self.liability, "remaining": self.remaining, "today": self.today,
                "overcommitted": self.overcommitted,
                "liabilities": [{"offer": l.offer, "outstanding": l.outstanding, "redemption_rate": l.redemption_rate,
                                 "face_value": l.face_value, "expected": l.expected} for l in self.liabilities]}


def pacing(period_budget: float, spent: float, days_left: int, liabilities=()) -> Pacing:
    """Today's budget (see module docstring); every input is checked and named when wrong."""
    if period_budget < 0:
        raise UserError(f"the period budget must be ≥ 0, got {period_budget}")
    if spent < 0:
        raise UserError(f"the amount spent must be ≥ 0, got {spent}")
    if int(days_left) != days_left or days_left < 1:
        raise UserError(f"days left must be a whole number ≥ 1, got {days_left}")
    checked = []
    for item in liabilities:
        item = item if isinstance(item, Liability) else Liability(**item)
        if item.outstanding < 0:
            raise UserError(f"outstanding offers of '{item.offer}' must be ≥ 0, got {item.outstanding}")
        if not 0 <= item.redemption_rate <= 1:
            raise UserError(f"redemption rate of '{item.offer}' must be between 0 and 1, got {item.redemption_rate}")
        if item.face_value < 0:
            raise UserError(f"face value of '{item.offer}' must be ≥ 0, got {item.face_value}")
        checked.append(item)
    return Pacing(float(period_budget), float(spent), int(days_left), tuple(checked))
