"""The model leaderboard and its recommendation, with the stability each model is ranked by.

One rule for every place that recommends a model — the Evaluation page, the report and
``evaluate --model``: each fitted model's row is its :meth:`~core.evaluation.Evaluation.summary`
plus :func:`model_stability`, and :func:`~core.evaluation.recommend` picks from those rows
(its thresholds: calibration slope within 0.5–1.5, stability at least 0.6, enough outcome
events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import recommend
from .stability import bag_rank_correlation

# the columns of a leaderboard row, in the order the page and the report show them
COLUMNS = ("qini", "auuc", "aucc", "calibration_slope", "calibration_slope_cost", "monotonicity", "min_events",
           "stability")


def model_stability(model, time_split: float | None = None) -> float | None:
    """The stability a model is ranked by.

    The mean over offers of the rank correlation across its bootstrap refits (its bagged
    out-of-fold value predictions, ``oof_bags_["value"]``, at least two bags); else
    ``time_split``, the early/late rank correlation measured for it (see
    :func:`stored_time_splits`); else ``None`` (not measured).
    """
    bags = (getattr(model, "oof_bags_", None) or {}).get("value")
    if bags is not None and len(bags) >= 2:
        return float(np.mean(bag_rank_correlation(bags)))
    return None if time_split is None else float(time_split)


def stored_time_splits(config: Mapping, records: Mapping[str, Mapping]) -> dict[str, float | None]:
    """Per model key, the time-split stability kept in a scenario's config (``time_split``: model
    id → mean early/late rank correlation, written by the Evaluation page's Stability tab), or
    ``None``.  ``records``: the config's ``models`` entries (key → record with ``model_id``)."""
    saved = config.get("time_split") or {}
    return {key: saved.get(record.get("model_id")) for key, record in records.items()}


@dataclass(frozen=True)
class Leaderboard:
    """Every model's averages over offers, its stability, and the recommended model.

    Attributes
    ----------
    rows : dict
        Model key → the :data:`COLUMNS` values (``stability`` is ``None`` when not measured).
    best : str or None
        The recommended model's key; ``None`` when nothing is recommended.
    why : str
        The reason for the recommendation (or for none).
    titles : dict
        Model key → its name for people.
    """

    rows: dict
    best: str | None
    why: str
    titles: dict

    def title(self, key: str) -> str:
        return self.titles.get(key, key)

    def to_frame(self) -> pd.DataFrame:
        """One row per model: ``model`` (its title), the :data:`COLUMNS`, ``recommended``."""
        return pd.DataFrame([{"model": self.title(key), **{c: row.get(c) for c in COLUMNS}, "recommended": key == self.best}
                             for key, row in self.rows.items()], columns=["model", *COLUMNS, "recommended"])

    def to_dict(self) -> dict:
        """``leaderboard`` (one entry per model: ``model`` key, ``title``, the :data:`COLUMNS`,
        ``recommended``), ``recommended`` (a key or ``None``) and ``why``."""
        return {"leaderboard": [{"model": key, "title": self.title(key), **{c: row.get(c) for c in COLUMNS},
                                 "recommended": key == self.best} for key, row in self.rows.items()],
                "recommended": self.best, "why": self.why}


def leaderboard(evaluations: Mapping, models: Mapping, time_split: Mapping | None = None,
                titles: Mapping | None = None) -> Leaderboard:
    """The leaderboard of fitted models and the model it recommends.

    Parameters
    ----------
    evaluations : mapping of key to core.evaluation.Evaluation
        Each model's evaluation of its out-of-fold predictions on the log.
    models : mapping of key to fitted model
        The same keys: their bagged predictions give the stability (:func:`model_stability`).
    time_split : mapping of key to float, optional
        A measured time-split stability per key, used for a model without bootstrap refits.
    titles : mapping of key to str, optional
        Names for people (default: the keys).
    """
    time_split = time_split or {}
    rows = {key: {**evaluation.summary(), "stability": model_stability(models[key], time_split.get(key))}
            for key, evaluation in evaluations.items()}
    best, why = recommend(rows)
    return Leaderboard(rows, best, why, {key: (titles or {}).get(key, key) for key in rows})
