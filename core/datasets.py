"""The datasets shipped in ``data/``: where they are and how their columns map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import UserError
from .io import read_table

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Sample:
    key: str
    title: str
    filename: str
    description: str
    mapping: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return DATA_DIR / self.filename


SAMPLES: dict[str, Sample] = {
    "campaign": Sample(
        key="campaign",
        title="Sample campaign (simulated, 50,000 customers, 3 offers)",
        filename="sample_campaign.parquet",
        description=(
            "A simulated 14-day campaign: no offer, 10% off, free shipping or a $20 coupon. "
            "Logged propensities (exploration bucket plus targeting), revenue over 30 days and "
            "the incentive cost paid on redemption. The true effects are known "
            "(sample_campaign.parquet.truth.parquet)."
        ),
        mapping={"action": "offer", "control": "no_offer", "value": "revenue", "cost": "incentive_cost",
                 "propensity": "propensity", "segment": "lifecycle", "time": "send_date", "id": "customer_id"},
    ),
    "hillstrom": Sample(
        key="hillstrom",
        title="Hillstrom e-mail experiment (real, 64,000 customers, 2 e-mails)",
        filename="hillstrom.csv.gz",
        description=(
            "Kevin Hillstrom's MineThatData challenge (2008): customers randomised in thirds to a "
            "men's e-mail, a women's e-mail or none; visits, conversions and spend over two weeks. "
            "No cost is logged: enter a cost per e-mail."
        ),
        mapping={"action": "segment", "control": "No E-Mail", "value": "spend",
                 "features": ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]},
    ),
}


def load_sample(key: str) -> pd.DataFrame:
    """Read a shipped dataset by key (``campaign`` or ``hillstrom``)."""
    if key not in SAMPLES:
        raise UserError(f"unknown sample '{key}'; choose one of {', '.join(SAMPLES)}")
    sample = SAMPLES[key]
    if not sample.path.exists():
        raise UserError(f"the shipped file '{sample.path}' is missing; reinstall or run `python -m core simulate`")
    return read_table(sample.path, str_columns=[sample.mapping["action"]])
