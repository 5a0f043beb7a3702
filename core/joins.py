"""Joining a file to the log's rows: the one rule, and the messages each caller gives it.

A scores, policy or predictions file is joined on the id (compared as text) when the log maps an
id column and the file has an ``id`` column; otherwise row by row, which needs the same number
of rows.  The Spark engine joins by the same rule with the same messages
(:meth:`core.engines.base.Engine.join`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import UserError, setting


@dataclass(frozen=True)
class JoinMessages:
    """What a join to the log says when it fails (written by the caller, in its own terms):
    ``duplicated`` with ``{id}``, ``missing`` with ``{n}`` and ``{id}``, ``rows`` with ``{rows}``
    and ``{n}``."""

    duplicated: str
    missing: str
    rows: str


def scores_messages(source: str) -> JoinMessages:
    """What joining a predictions file (``evaluate``'s scores) says when it fails."""
    return JoinMessages(duplicated=f"{source} has duplicated ids (e.g. {{id!r}})",
                        missing=f"{source} has no row for {{n:,}} ids of the log (e.g. {{id!r}})",
                        rows=f"{source} has {{rows:,}} rows but the log has {{n:,}}; give {setting('id')} so they can be joined on id")


POLICY_MESSAGES = JoinMessages(
    duplicated="the policy file has duplicated ids (e.g. {id!r})",
    missing="the policy file has no row for {n:,} customers of the log (e.g. id {id!r}); every logged customer needs a decision",
    rows="the policy file has {rows:,} rows but the log has {n:,}; add an id column (and map " + setting("id") + ") to join them")


def joins_on_id(log, table_columns) -> bool:
    """Whether a table joins the log on the id (else by position)."""
    return bool(log.columns.id) and "id" in table_columns


def log_id_text(log) -> pd.Series:
    """The log's ids as text (the join key)."""
    return pd.Series(log.ids).astype(str)


def align_to_log(log, table: pd.DataFrame, messages: JoinMessages) -> pd.DataFrame:
    """``table`` row-aligned with the log (see module docstring): every logged row needs exactly
    one row of the table."""
    if joins_on_id(log, table.columns):
        keyed = table.assign(id=table["id"].astype(str))
        repeated = keyed["id"].duplicated()
        if repeated.any():
            raise UserError(messages.duplicated.format(id=keyed.loc[repeated, "id"].iloc[0]))
        ids = log_id_text(log)
        missing = ~ids.isin(keyed["id"])
        if missing.any():
            raise UserError(messages.missing.format(n=int(missing.sum()), id=ids[missing].iloc[0]))
        return keyed.set_index("id").loc[ids].reset_index(drop=True)
    if len(table) != log.n:
        raise UserError(messages.rows.format(rows=len(table), n=log.n))
    return table.reset_index(drop=True)


def lookup_on_id(log, table: pd.DataFrame | None, what: str) -> pd.DataFrame | None:
    """``table`` (keyed by ``id``) row-aligned with the log where it has the id, empty rows where
    it has not (a live log's customers need not all be in the plan); the first row of a repeated
    id counts.  ``None`` for no table."""
    if table is None:
        return None
    if "id" not in table.columns:
        raise UserError(f"the {what} has no 'id' column to join on")
    if not log.columns.id:
        raise UserError(f"the log maps no id column ({setting('id')}), so the {what} cannot be joined to it")
    keyed = table.drop_duplicates("id")
    # object-dtype keys: hashing them is much faster than pandas' Arrow strings
    keyed.index = pd.Index(keyed["id"].astype(str).to_numpy(dtype=object))
    ids = pd.Index(np.asarray(log.ids).astype(str).astype(object))
    if (keyed.index.get_indexer(ids) < 0).all():
        raise UserError(f"no id of the log is in the {what} (e.g. {ids[0]!r})")
    return keyed.reindex(ids).reset_index(drop=True)
