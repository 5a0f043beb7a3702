"""Numbers for people: thousands separators, about three significant digits, p-values that
say how small they are.  Used on screen (through ``ui``) and in the report, so both read alike.

- ``format_number(22236.0542)`` → ``"22,236"``; ``0.076612`` → ``"0.0766"``; ``12.345`` →
  ``"12.3"``; never ``1.23e+04``.  Magnitudes below 0.0001 keep scientific notation (``1.2e-05``),
  which is clearer than a row of zeros.
- ``format_p(2.3e-142)`` → ``"p = 2.3e-142"``; ``0.0234`` → ``"p = 0.023"``; an underflow to 0
  → ``"p < 1e-300"``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

SIGNIFICANT = 3
P_VALUE_COLUMNS = re.compile(r"(^|_)p(_value|value)?$|^p[ _-]?value", re.I)


def _missing(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and not math.isfinite(x)) or x is pd.NA


def decimals_for(magnitude: float, sig: int = SIGNIFICANT) -> int:
    """Decimals that show ``sig`` significant digits of a number of this magnitude (0 for ≥ 10^(sig−1))."""
    if magnitude <= 0 or not math.isfinite(magnitude):
        return 0
    return int(min(max(sig - 1 - math.floor(math.log10(magnitude)), 0), 8))


def format_number(x, sig: int = SIGNIFICANT) -> str:
    """A number as people read it (see the module docstring); ``"—"`` for missing."""
    if _missing(x):
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    magnitude = abs(x)
    if magnitude == 0:
        return "0"
    if magnitude < 1e-4:
        return f"{x:.{sig - 1}e}"
    return f"{x:,.{decimals_for(magnitude, sig)}f}"


def format_p(p, prefix: bool = True) -> str:
    """A p-value with its relation: ``p = 0.023``, ``p = 2.3e-142``, ``p < 1e-300``; ``—`` if missing.

    ``prefix=False`` for a table cell: ``0.023``, ``2.3e-142``, ``< 1e-300``.
    """
    if _missing(p):
        return "—"
    p = float(p)
    if p < 1e-300:
        text = "p < 1e-300"
    elif p < 0.001:
        text = f"p = {p:.1e}"
    else:
        text = f"p = {p:.3f}"
    return text if prefix else text.removeprefix("p = ").removeprefix("p ")


def is_p_column(name) -> bool:
    return bool(P_VALUE_COLUMNS.search(str(name)))


def column_printf(values) -> str | None:
    """A printf format (Streamlit's NumberColumn) for a float column: thousands separators and
    about three significant digits at the column's typical (median non-zero) magnitude."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    if finite.size == 0:
        return None
    return f"%,.{decimals_for(float(np.median(finite)))}f"


def format_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every number as text for people: p-value columns through :func:`format_p`
    (without the ``p =``), others through :func:`format_number`."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if is_p_column(column) and pd.api.types.is_numeric_dtype(values):
            out[column] = [format_p(v, prefix=False) for v in values]
        elif pd.api.types.is_bool_dtype(values):
            continue
        elif pd.api.types.is_numeric_dtype(values):
            out[column] = [format_number(v) for v in values]
    return out
