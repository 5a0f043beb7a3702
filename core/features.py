"""Feature frames for LightGBM: numbers stay numbers, text becomes pandas ``category``; and
the float matrix of such a frame that the fit backends train on."""

from __future__ import annotations

import numpy as np
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
        A column training read as a number is read as one here too, even when it arrives as
        text.

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
        elif categories is not None and col not in categories:
            # a number in training, text here (a CSV read as text): read it as the number it is
            out[col] = _as_number(values)
        else:
            text = values.astype("string")
            known = (categories or {}).get(col)
            if known is None:
                known = sorted(text.dropna().unique().tolist())
            levels[col] = list(known)
            out[col] = pd.Categorical(text.astype(object).where(text.notna(), None), categories=known)
    return pd.DataFrame(out, index=frame.index), levels


def _as_number(values: pd.Series) -> pd.Series:
    """Text that writes numbers (or true/false) as floats; anything else is missing."""
    text = values.astype("string").str.strip().str.lower()
    flags = text.map({"true": 1.0, "false": 0.0})
    return pd.to_numeric(text, errors="coerce").astype(float).where(flags.isna(), flags.astype(float))


def numeric_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """LightGBM frame → float matrix (category codes, unseen/missing = NaN) + categorical indices."""
    cols, cat_idx = [], []
    for i, col in enumerate(frame.columns):
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy(dtype=float)
            codes[codes < 0] = np.nan
            cols.append(codes)
            cat_idx.append(i)
        else:
            cols.append(values.to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.empty((len(frame), 0)), cat_idx
