"""The workspace: one embedded DuckDB file holding datasets, scenarios, models and runs.

Location: ``$UPLIFT_STUDIO_WORKSPACE`` when set, else ``~/.uplift_studio/workspace.duckdb``.
Each operation opens and closes its own connection, so the app, several browser sessions
and the CLI can share the file one after another, and a server restart loses nothing that
was saved.  Datasets are stored once per content fingerprint; scenarios hold the mapping and
every later choice as JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .errors import UserError
from .schema import frame_fingerprint

ENV_VAR = "UPLIFT_STUDIO_WORKSPACE"

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
    n_rows BIGINT, n_cols INTEGER, source VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS scenarios (
    id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, dataset_id VARCHAR NOT NULL,
    config JSON NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS models (
    id VARCHAR PRIMARY KEY, scenario_id VARCHAR, dataset_fingerprint VARCHAR NOT NULL,
    learner VARCHAR, params JSON, metrics JSON, seconds DOUBLE, created_at TIMESTAMP,
    digest VARCHAR, payload BLOB);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    id VARCHAR PRIMARY KEY, scenario_id VARCHAR, kind VARCHAR NOT NULL, params JSON,
    result JSON, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS monitor_series (
    name VARCHAR PRIMARY KEY, columns JSON NOT NULL, day_column VARCHAR NOT NULL, mapping JSON,
    created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS monitor_days (
    series VARCHAR NOT NULL, day VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, n_rows BIGINT,
    loaded_at TIMESTAMP, payload BLOB, PRIMARY KEY (series, day));
"""


def default_path() -> Path:
    """The workspace file: the environment variable, else a file under the user's home."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".uplift_studio" / "workspace.duckdb"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    fingerprint: str
    n_rows: int
    n_cols: int
    source: str
    created_at: datetime

    def to_dict(self) -> dict:
        return {**self.__dict__, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class ScenarioRecord:
    id: str
    name: str
    dataset_id: str
    config: dict
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict:
        return {**self.__dict__, "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


class Workspace:
    """Access to one workspace file.

    Parameters
    ----------
    path : path-like, optional
        The DuckDB file; created with its folder when missing.  Default: :func:`default_path`.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the workspace folder '{self.path.parent}': {exc.strerror}") from exc
        with self._connect() as con:
            con.execute(SCHEMA)
            if con.execute("SELECT 1 FROM meta WHERE key = 'signing_key'").fetchone() is None:
                con.execute("INSERT INTO meta VALUES ('signing_key', ?)", [secrets.token_hex(32)])

    @contextmanager
    def _connect(self, retries: int = 40) -> Iterator[Any]:
        # deferred: DuckDB loads only when a workspace is opened
        import duckdb

        delay = 0.05
        for attempt in range(retries):
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                # Another process (the CLI while the app runs) holds the write lock: wait.
                if "lock" not in str(exc).lower() or attempt == retries - 1:
                    raise UserError(f"the workspace '{self.path}' cannot be opened: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        try:
            yield con
        finally:
            con.close()

    # --- datasets -----------------------------------------------------------------------

    def save_dataset(self, frame: pd.DataFrame, name: str, source: str = "upload") -> DatasetRecord:
        """Store a dataset once per content; saving the same content again returns its record."""
        if frame is None or len(frame) == 0:
            raise UserError(f"dataset '{name}' has no rows; nothing to save")
        fingerprint = frame_fingerprint(frame)
        dataset_id = "ds_" + fingerprint[:16]
        existing = self.get_dataset(dataset_id, missing_ok=True)
        if existing is not None:
            return existing
        record = DatasetRecord(dataset_id, name, fingerprint, len(frame), frame.shape[1], source, _now())
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("incoming", frame)
                con.execute(f'CREATE TABLE "{dataset_id}" AS SELECT * FROM incoming')
                con.unregister("incoming")
                con.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [record.id, record.name, record.fingerprint, record.n_rows, record.n_cols, record.source, record.created_at],
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return record

    def get_dataset(self, dataset_id: str, missing_ok: bool = False) -> DatasetRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM datasets WHERE id = ?", [dataset_id]).fetchone()
        if row is None:
            if missing_ok:
                return None
            raise UserError(f"dataset '{dataset_id}' is not in the workspace '{self.path}'")
        return DatasetRecord(*row)

    def load_dataset(self, dataset_id: str) -> pd.DataFrame:
        """The stored frame, columns and dtypes as saved."""
        self.get_dataset(dataset_id)
        if not re.fullmatch(r"ds_[0-9a-f]{16}", dataset_id):
            raise UserError(f"'{dataset_id}' is not a dataset id")
        with self._connect() as con:
            return con.execute(f'SELECT * FROM "{dataset_id}"').df()

    def list_datasets(self) -> list[DatasetRecord]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM datasets ORDER BY created_at DESC").fetchall()
        return [DatasetRecord(*r) for r in rows]

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset; refused while a scenario still uses it."""
        self.get_dataset(dataset_id)
        users = [s.name for s in self.list_scenarios() if s.dataset_id == dataset_id]
        if users:
            raise UserError(f"dataset '{dataset_id}' is used by scenario(s) {', '.join(users)}; delete those first")
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(f'DROP TABLE IF EXISTS "{dataset_id}"')
            con.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])
            con.execute("COMMIT")

    # --- scenarios ----------------------------------------------------------------------

    def save_scenario(self, name: str, dataset_id: str, config: dict, scenario_id: str | None = None) -> ScenarioRecord:
        """Create a scenario, or update ``scenario_id`` in place (its creation time is kept)."""
        name = (name or "").strip()
        if not name:
            raise UserError("a scenario needs a name")
        self.get_dataset(dataset_id)
        payload = json.dumps(config, sort_keys=True, default=str)
        now = _now()
        with self._connect() as con:
            if scenario_id is not None and con.execute("SELECT 1 FROM scenarios WHERE id = ?", [scenario_id]).fetchone():
                con.execute(
                    "UPDATE scenarios SET name = ?, dataset_id = ?, config = ?, updated_at = ? WHERE id = ?",
                    [name, dataset_id, payload, now, scenario_id],
                )
            else:
                scenario_id = scenario_id or _new_id("sc")
                con.execute("INSERT INTO scenarios VALUES (?, ?, ?, ?, ?, ?)", [scenario_id, name, dataset_id, payload, now, now])
        return self.get_scenario(scenario_id)

    def get_scenario(self, scenario_id: str, missing_ok: bool = False) -> ScenarioRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM scenarios WHERE id = ?", [scenario_id]).fetchone()
        if row is None:
            if missing_ok:
                return None
            raise UserError(f"scenario '{scenario_id}' is not in the workspace '{self.path}'")
        sid, name, dataset_id, config, created, updated = row
        return ScenarioRecord(sid, name, dataset_id, json.loads(config), created, updated)

    def list_scenarios(self) -> list[ScenarioRecord]:
        with self._connect() as con:
            rows = con.execute("SELECT id FROM scenarios ORDER BY updated_at DESC").fetchall()
        return [self.get_scenario(r[0]) for r in rows]

    def rename_scenario(self, scenario_id: str, name: str) -> ScenarioRecord:
        record = self.get_scenario(scenario_id)
        return self.save_scenario(name, record.dataset_id, record.config, scenario_id)

    def duplicate_scenario(self, scenario_id: str, name: str | None = None) -> ScenarioRecord:
        record = self.get_scenario(scenario_id)
        return self.save_scenario(name or f"{record.name} (copy)", record.dataset_id, record.config)

    def delete_scenario(self, scenario_id: str) -> None:
        self.get_scenario(scenario_id)
        with self._connect() as con:
            con.execute("DELETE FROM scenarios WHERE id = ?", [scenario_id])

    # --- model records ------------------------------------------------------------------

    def sign(self, payload: bytes) -> str:
        """HMAC-SHA256 of ``payload`` under this workspace's secret key.

        The key never leaves the workspace file, so a matching signature proves that this
        workspace wrote the payload: the only condition under which a model is unpickled.
        """
        with self._connect() as con:
            key = con.execute("SELECT value FROM meta WHERE key = 'signing_key'").fetchone()[0]
        return hmac.new(bytes.fromhex(key), payload, hashlib.sha256).hexdigest()

    def save_model(self, payload: bytes, *, dataset_fingerprint: str, learner: str, params: dict, metrics: dict,
                   seconds: float, scenario_id: str | None = None) -> tuple[str, str]:
        """Store a serialised model with its signature; return (model id, signature)."""
        model_id, digest = _new_id("mdl"), self.sign(payload)
        with self._connect() as con:
            con.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [model_id, scenario_id, dataset_fingerprint, learner, json.dumps(params, default=str),
                         json.dumps(metrics, default=str), seconds, _now(), digest, payload])
        return model_id, digest

    def model_payload(self, model_id: str) -> bytes:
        """The stored payload, after checking its signature."""
        with self._connect() as con:
            row = con.execute("SELECT digest, payload FROM models WHERE id = ?", [model_id]).fetchone()
        if row is None:
            raise UserError(f"model '{model_id}' is not in the workspace '{self.path}'")
        digest, payload = row
        if not hmac.compare_digest(digest, self.sign(bytes(payload))):
            raise UserError(f"model '{model_id}' fails its signature check; refusing to load it")
        return bytes(payload)

    def has_model(self, model_id: str, digest: str) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT digest FROM models WHERE id = ?", [model_id]).fetchone()
        return row is not None and row[0] == digest

    def list_models(self, dataset_fingerprint: str | None = None) -> pd.DataFrame:
        query = "SELECT id, scenario_id, dataset_fingerprint, learner, params, metrics, seconds, created_at FROM models"
        args = []
        if dataset_fingerprint:
            query, args = query + " WHERE dataset_fingerprint = ?", [dataset_fingerprint]
        with self._connect() as con:
            return con.execute(query + " ORDER BY created_at DESC", args).df()

    # --- runs ---------------------------------------------------------------------------

    def record_run(self, kind: str, params: dict, result: dict, scenario_id: str | None = None) -> str:
        """Keep the parameters and result of one computation (an SRM check, an allocation…)."""
        run_id = _new_id("run")
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, scenario_id, kind, json.dumps(params, default=str), json.dumps(result, default=str), _now()],
            )
        return run_id

    def list_runs(self, scenario_id: str | None = None, kind: str | None = None) -> pd.DataFrame:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if scenario_id is not None:
            query, args = query + " AND scenario_id = ?", args + [scenario_id]
        if kind is not None:
            query, args = query + " AND kind = ?", args + [kind]
        with self._connect() as con:
            return con.execute(query + " ORDER BY created_at DESC", args).df()

    # --- live campaign days (monitoring) ------------------------------------------------

    def series_info(self, name: str) -> dict | None:
        """A monitoring series' columns, day column and mapping, or None."""
        with self._connect() as con:
            row = con.execute("SELECT columns, day_column, mapping FROM monitor_series WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        return {"columns": json.loads(row[0]), "day_column": row[1], "mapping": json.loads(row[2]) if row[2] else None}

    def series_days(self, name: str) -> pd.DataFrame:
        """The stored days of a series: day, fingerprint, n_rows, loaded_at."""
        with self._connect() as con:
            return con.execute("SELECT day, fingerprint, n_rows, loaded_at FROM monitor_days WHERE series = ? ORDER BY day",
                               [name]).df()

    def store_days(self, name: str, columns: list[str], day_column: str, mapping: dict | None,
                   days: dict[str, tuple[str, pd.DataFrame]]) -> None:
        """Insert new days (day → (fingerprint, rows)) of a series in one transaction; the
        checks are :func:`core.monitoring.store.append_days`'s."""
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if con.execute("SELECT 1 FROM monitor_series WHERE name = ?", [name]).fetchone() is None:
                    con.execute("INSERT INTO monitor_series VALUES (?, ?, ?, ?, ?)",
                                [name, json.dumps(columns), day_column, json.dumps(mapping) if mapping else None, _now()])
                for day, (fingerprint, rows) in days.items():
                    buffer = io.BytesIO()
                    rows.to_parquet(buffer, index=False)
                    con.execute("INSERT INTO monitor_days VALUES (?, ?, ?, ?, ?, ?)",
                                [name, day, fingerprint, len(rows), _now(), buffer.getvalue()])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def load_series(self, name: str) -> pd.DataFrame:
        """Every stored day of a series, in day order."""
        if self.series_info(name) is None:
            raise UserError(f"no monitoring series '{name}' in the workspace '{self.path}'")
        with self._connect() as con:
            payloads = con.execute("SELECT payload FROM monitor_days WHERE series = ? ORDER BY day", [name]).fetchall()
        if not payloads:
            raise UserError(f"monitoring series '{name}' has no days stored yet")
        return pd.concat([pd.read_parquet(io.BytesIO(p[0])) for p in payloads], ignore_index=True)
