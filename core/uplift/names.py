"""What the uplift models are called: the learners' names for people, a fitted model's title,
the prediction columns' names, and the table of tuning choices labelled with them."""

from __future__ import annotations

import pandas as pd

LEARNERS = {"s": "S-learner", "t": "T-learner", "x": "X-learner", "dr": "DR-learner", "cf": "Causal forest (DML)",
            "auto": "Auto (best of S/T/X/DR/CF)", "drm": "Direct ranking (DRM)",
            "cdrm": "Constrained direct ranking"}
RANKERS = ("drm", "cdrm")  # one learned score per offer (core.uplift.direct_ranking), effects per score bin


def model_title(key: str, model=None) -> str:
    """A fitted model's name for people: "Auto → X-learner" for auto, else the learner's name."""
    if key == "auto" and model is not None and getattr(model, "learner_", "auto") != "auto":
        return f"Auto → {LEARNERS[model.learner_]}"
    return LEARNERS.get(key, key)


def tuning_frame(models: dict) -> pd.DataFrame:
    """One row per fitted model, head and fold: the LightGBM complexity used."""
    rows = []
    for key, model in models.items():
        for head, info in getattr(model.report_, "tuning", {}).items():
            for fold, config in enumerate(info.get("per_fold", []), start=1):
                rows.append({"model": model_title(key, model), "head": head, "fold": fold, "complexity": config})
    return pd.DataFrame(rows, columns=["model", "head", "fold", "complexity"])


def tau_columns(labels, control) -> list[str]:
    """Prediction column names in the contract's order: value then cost per non-control arm."""
    arms = [l for l in labels if l != control]
    return [f"tau_value__{a}" for a in arms] + [f"tau_cost__{a}" for a in arms]
