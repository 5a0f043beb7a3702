"""Population stability index (PSI) of a feature between a reference sample (the training log)
and a current one (a day of the live campaign).

Conventions (the CLI contract's): bins are the deciles of the reference for a numeric feature
(right-closed: (−∞, q1], (q1, q2], …, (q9, ∞); tied deciles merge) or the reference's levels
for a categorical one, plus one bin for missing values and, for a categorical feature, one for
levels the reference never had.  Every bin's share is floored at 1e-4 (an empty bin would make
the logarithm infinite), and

    PSI = Σ_bins (a − e) · ln(a / e),     a = current share, e = reference share.

The usual reading: below 0.1 stable, 0.1–0.25 a moderate shift, 0.25 and above a major one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FLOOR = 1e-4
BANDS = (0.1, 0.25)


def psi_band(value: float, bands=BANDS) -> str:
    """"stable", "moderate" or "major" for a PSI value."""
    if not np.isfinite(value):
        return "not measured"
    return "stable" if value < bands[0] else "moderate" if value < bands[1] else "major"


@dataclass(frozen=True)
class Binning:
    """How one feature is binned, fixed by the reference sample."""

    numeric: bool
    edges: np.ndarray | None = None  # inner edges (numeric)
    levels: tuple = ()  # reference levels (categorical)

    @classmethod
    def from_reference(cls, values: pd.Series, bins: int = 10) -> "Binning":
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            present = values.dropna().to_numpy(dtype=float)
            if len(present) == 0:
                return cls(True, np.array([]))
            inner = np.quantile(present, np.arange(1, bins) / bins)
            return cls(True, np.unique(inner))
        levels = tuple(sorted(values.dropna().astype(str).unique()))
        return cls(False, levels=levels)

    @property
    def labels(self) -> list[str]:
        if self.numeric:
            edges = [f"{e:.4g}" for e in self.edges]
            inner = [f"({lo}, {hi}]" for lo, hi in zip(edges[:-1], edges[1:])]
            names = ([f"≤ {edges[0]}"] + inner + [f"> {edges[-1]}"]) if edges else ["all values"]
            return names + ["(missing)"]
        return list(self.levels) + ["(other level)", "(missing)"]

    def shares(self, values: pd.Series) -> np.ndarray:
        """Share of ``values`` in each bin (missing last), unfloored."""
        return self.shares_from_counts(self.counts(values), len(values))

    def shares_from_counts(self, counts: np.ndarray, n: int) -> np.ndarray:
        """:meth:`shares` from :meth:`counts` of ``n`` values (what adds up over batches)."""
        return np.full(len(self.labels), np.nan) if n == 0 else counts / n

    def counts(self, values: pd.Series) -> np.ndarray:
        """How many of ``values`` fall in each bin (missing last)."""
        missing = values.isna().to_numpy()
        if self.numeric:
            present = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)[~missing]
            index = np.searchsorted(self.edges, present, side="left")
            counts = np.bincount(index, minlength=len(self.edges) + 1).astype(float)
        else:
            text = values[~missing].astype(str)
            lookup = {level: i for i, level in enumerate(self.levels)}
            index = text.map(lookup).fillna(len(self.levels)).to_numpy(dtype=int)
            counts = np.bincount(index, minlength=len(self.levels) + 1).astype(float)
        return np.append(counts, missing.sum())


def psi(expected_shares, actual_shares, floor: float = FLOOR) -> float:
    """PSI of two share vectors over the same bins (shares floored at ``floor``)."""
    e = np.maximum(np.asarray(expected_shares, dtype=float), floor)
    a = np.maximum(np.asarray(actual_shares, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """PSI of one feature, binned on ``reference`` as the module docstring says."""
    binning = Binning.from_reference(reference, bins)
    return psi(binning.shares(reference), binning.shares(current))
