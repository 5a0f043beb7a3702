"""Feature frames for LightGBM: numbers stay numbers, text becomes pandas ``category``."""

from __future__ import annotations

import pandas as pd


def lgbm_frame(frame: pd.DataFrame, features: list[str], categories: dict[str, list] | None = None) -> tuple[pd.DataFrame, dict[str, list]]:
    """The model matrix LightGBM reads natively.

    Parameters
    ----------
    frame : DataFrame
    features : list of str
    categories : dict, optional
        Levels per categorical column from training; unseen levels become missing, which
        LightGBM routes like a missing value (so scoring new customers never fails on them).

    Returns
    -------
    (DataFrame, dict)
        The matrix and the levels used for each categorical column.
    """
    out = {}
    levels: dict[str, list] = {}
    for col in features:
        values = frame[col]
        if pd.api.types.is_bool_dtype(values):
            out[col] = values.astype(float)
        elif pd.api.types.is_numeric_dtype(values):
            out[col] = values.astype(float)
        else:
            text = values.astype("string")
            known = (categories or {}).get(col)
            if known is None:
                known = sorted(text.dropna().unique().tolist())
            levels[col] = list(known)
            out[col] = pd.Categorical(text.astype(object).where(text.notna(), None), categories=known)
    return pd.DataFrame(out, index=frame.index), levels
