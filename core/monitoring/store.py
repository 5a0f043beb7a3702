"""Daily logs appended to a monitoring series in the workspace, idempotently.

A file (one day or several) is split by its day column.  A day already stored with the same
content (the same rows, in any order) is skipped: uploading a file twice changes nothing.  The
whole file is refused, and nothing stored altered, when a day is stored with different content,
when its columns differ from the series', or when a day lies in the future.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import frame_fingerprint


def day_fingerprint(rows: pd.DataFrame) -> str:
    """Content hash of a day's rows, independent of row and column order."""
    ordered = rows[sorted(rows.columns)]
    row_hashes = np.sort(pd.util.hash_pandas_object(ordered, index=False).to_numpy())
    digest = hashlib.sha256(frame_fingerprint(ordered.head(0)).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def split_days(frame: pd.DataFrame, day_column: str, today: date | None = None) -> dict[str, pd.DataFrame]:
    """The file's rows per day (``YYYY-MM-DD``); refuses missing or unreadable days and days after ``today``."""
    if day_column not in frame.columns:
        raise UserError(f"day column '{day_column}' is not in the file; columns: {', '.join(map(str, frame.columns[:20]))}")
    parsed = pd.to_datetime(frame[day_column], errors="coerce", format="ISO8601")
    if parsed.isna().any():
        bad = frame[day_column][parsed.isna()].iloc[0]
        raise UserError(f"day column '{day_column}' has {int(parsed.isna().sum())} empty or unreadable dates (e.g. {bad!r}); "
                        "expected dates such as 2026-11-02")
    today = today or datetime.now(timezone.utc).date()
    future = sorted({d for d in parsed.dt.date if d > today})
    if future:
        raise UserError(f"the file has rows dated in the future ({', '.join(map(str, future[:3]))}; today is {today}); "
                        "check the day column")
    days = parsed.dt.strftime("%Y-%m-%d")
    return {day: frame[days == day].reset_index(drop=True) for day in sorted(days.unique())}


def append_days(workspace, series: str, frame: pd.DataFrame, day_column: str, mapping: dict | None = None,
                today: date | None = None) -> dict:
    """Add the file's days to ``series`` (created on first use); returns which days were added
    and which were already there unchanged.  Every refusal names the day or column."""
    if not series or not str(series).strip():
        raise UserError("name the monitoring series (e.g. the campaign's name)")
    if frame is None or len(frame) == 0:
        raise UserError("the file has no rows")
    info = workspace.series_info(series)
    columns = [str(c) for c in frame.columns]
    if info is not None:
        if info["day_column"] != day_column:
            raise UserError(f"series '{series}' reads its days from column '{info['day_column']}', not '{day_column}'")
        missing = [c for c in info["columns"] if c not in columns]
        extra = [c for c in columns if c not in info["columns"]]
        if missing or extra:
            parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
                [f"new {', '.join(map(repr, extra))}"] if extra else [])
            raise UserError(f"the file's columns differ from series '{series}': {'; '.join(parts)}; nothing was stored")
        frame = frame[info["columns"]]
    stored = workspace.series_days(series).set_index("day") if info is not None else pd.DataFrame()
    added, unchanged, conflicts = {}, [], []
    for day, rows in split_days(frame, day_column, today).items():
        fingerprint = day_fingerprint(rows)
        if day in stored.index:
            if stored.loc[day, "fingerprint"] == fingerprint:
                unchanged.append(day)
            else:
                conflicts.append(f"{day} (stored {int(stored.loc[day, 'n_rows']):,} rows, this file {len(rows):,} rows)")
            continue
        added[day] = (fingerprint, rows)
    if conflicts:
        raise UserError(f"day(s) already stored in series '{series}' with different content: {', '.join(conflicts)}; "
                        "a stored day is never replaced — nothing was stored")
    if added:
        workspace.store_days(series, columns if info is None else info["columns"], day_column, mapping, added)
    return {"series": series, "added": sorted(added), "unchanged": unchanged,
            "rows_added": int(sum(len(r) for _, r in added.values()))}
