"""Cached access to ``core``: frames with ``st.cache_data``, shared objects with ``st.cache_resource``.

Everything is keyed by content (dataset id = content fingerprint) plus parameters, so a
revisit is instant and two sessions never see each other's unsaved state.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st

from core.datasets import SAMPLES, load_sample
from core.decision.allocate import Frontier, allocate_fast
from core.decision.policy import candidates_for_plan
from core.design import cold_start
from core.diagnostics import run_diagnostics
from core.diagnostics.overlap import estimate_propensities
from core.engines import configured, open_engine
from core.errors import UserError
from core.evaluation import evaluate, inverse_propensity_weights, rankings
from core.evaluation.curves import aucc_interval, cost_curve, curve_bands
from core.io import detect_mapping, read_table
from core.monitoring.campaign import monitor_series
from core.monitoring.daily import Pacing, Thresholds
from core.ope.estimators import reward_models as fit_reward_models
from core.schema import ColumnMap, ExperimentLog
from core.uplift.model import UpliftModel
from core.uplift.persist import load_model, save_model
from core.uplift.stability import time_split_stability
from core.workspace import Workspace, default_path


def workspace() -> Workspace:
    """The workspace of this server (``UPLIFT_STUDIO_WORKSPACE`` or the home default)."""
    return _workspace(str(default_path()))


@st.cache_resource(show_spinner=False)
def _workspace(path: str) -> Workspace:
    return Workspace(path)


def upload_limit_bytes() -> int:
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


@st.cache_resource(show_spinner="Opening the sample…")
def sample_dataset_id(key: str, workspace_path: str) -> str:
    """Store a shipped sample in the workspace once per server; return its dataset id."""
    sample = SAMPLES[key]
    return Workspace(workspace_path).save_dataset(load_sample(key), sample.title, source=f"sample:{key}").id


@st.cache_data(show_spinner="Loading the dataset…", max_entries=8)
def dataset_frame(dataset_id: str, workspace_path: str) -> pd.DataFrame:
    return Workspace(workspace_path).load_dataset(dataset_id)


def store_upload(data: bytes, name: str) -> tuple[str, pd.DataFrame]:
    """Read an upload and store it in the workspace at once, so it is never lost."""
    frame = read_table(data, name=name, max_bytes=upload_limit_bytes())
    record = workspace().save_dataset(frame, name, source=f"upload:{name}")
    return record.id, frame


def store_cluster_log(path: str) -> tuple[str, int, int]:
    """Read a Parquet log on the configured Spark engine and store the rows the app works on (all
    of them, or a sample for one machine) in the workspace: (dataset id, rows in the log, rows
    kept)."""
    frame, n_total = open_engine(*configured()).sample_frame(path)
    name = path.rstrip("/").rsplit("/", 1)[-1] or path
    record = workspace().save_dataset(frame, name, source=f"spark:{path}")
    return record.id, n_total, len(frame)


@st.cache_data(show_spinner=False, max_entries=32)
def detected_mapping(dataset_id: str, workspace_path: str) -> dict:
    return detect_mapping(dataset_frame(dataset_id, workspace_path))


@st.cache_resource(show_spinner="Checking the log…", max_entries=16)
def _experiment_log(dataset_id: str, workspace_path: str, mapping_json: str) -> ExperimentLog:
    mapping = json.loads(mapping_json)
    frame = dataset_frame(dataset_id, workspace_path)
    return ExperimentLog.from_frame(frame, ColumnMap.from_dict(mapping), require_value=True)


def experiment_log(dataset_id: str, mapping: dict) -> ExperimentLog:
    """The validated log for a dataset and mapping (raises :class:`core.errors.UserError`)."""
    return _experiment_log(dataset_id, str(default_path()), json.dumps(mapping, sort_keys=True))


# --- diagnostics --------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _memo() -> tuple[threading.Lock, OrderedDict]:
    return threading.Lock(), OrderedDict()


def is_memoised(key: tuple) -> bool:
    """Whether :func:`memoised` already holds ``key`` (the next call returns at once)."""
    lock, store = _memo()
    with lock:
        return key in store


def memoised(key: tuple, compute, keep: int = 8):
    """A small shared memo for long computations that report progress.

    ``st.cache_*`` replays the elements a cached function draws, so a function that moves a
    progress bar cannot be cached by it; this keeps the last ``keep`` results instead.
    """
    lock, store = _memo()
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    value = compute()
    with lock:
        store[key] = value
        while len(store) > keep:
            store.popitem(last=False)
    return value


def estimated_propensities(dataset_id: str, mapping: dict, progress=None):
    """Cross-fitted propensity estimates, computed once per dataset and mapping."""
    path, mapping_json = str(default_path()), json.dumps(mapping, sort_keys=True)
    return memoised(("propensities", path, dataset_id, mapping_json),
                    lambda: estimate_propensities(_experiment_log(dataset_id, path, mapping_json), progress=progress))


@st.cache_resource(show_spinner=False, max_entries=16)
def _diagnostics(dataset_id: str, workspace_path: str, mapping_json: str, settings_json: str, _estimated=None):
    log = _experiment_log(dataset_id, workspace_path, mapping_json)
    return run_diagnostics(log, json.loads(settings_json), estimated=_estimated)


def diagnostics(dataset_id: str, mapping: dict, settings: dict, progress=None) -> dict:
    """SRM, propensity check, overlap, balance and readout for a log and settings (cached).

    Raises :class:`core.errors.UserError` for settings the log does not support.
    """
    estimated = None
    if not mapping.get("propensity") or settings.get("check_logged"):
        estimated = estimated_propensities(dataset_id, mapping, progress)
    # The settings key includes check_logged, and the estimates follow from dataset + mapping.
    return _diagnostics(dataset_id, str(default_path()), json.dumps(mapping, sort_keys=True),
                        json.dumps(settings, sort_keys=True), _estimated=estimated)


# --- uplift models --------------------------------------------------------------------------------

def fit_model(dataset_id: str, mapping: dict, params: dict, progress=None, scenario_id: str | None = None):
    """Fit (once per dataset, mapping and parameters) and record an uplift model.

    Returns ``(model, model_id, reused)``: ``reused`` is true when the same fit was already
    made on this server (nothing was refitted).  The DR-learner gets cross-fitted propensities
    when the log has none.
    """

    path, mapping_json = str(default_path()), json.dumps(mapping, sort_keys=True)

    def compute():
        log = _experiment_log(dataset_id, path, mapping_json)
        propensity = None
        if params.get("learner") == "dr" and log.propensity is None:
            matrix = estimated_propensities(dataset_id, mapping)
            propensity = matrix[np.arange(log.n), [log.labels.index(a) for a in log.action]]
        model = UpliftModel(**params).fit(log, propensity=propensity, progress=progress)
        return model, save_model(model, log, Workspace(path), scenario_id)

    key = ("model", path, dataset_id, mapping_json, json.dumps(params, sort_keys=True))
    reused = is_memoised(key)
    return (*memoised(key, compute, keep=12), reused)


def stored_model(model_id: str):
    """A model recorded in the workspace (signature-checked), loaded once per server."""
    return _stored_model(model_id, str(default_path()))


@st.cache_resource(show_spinner="Loading the saved model…", max_entries=12)
def _stored_model(model_id: str, workspace_path: str):
    return load_model(model_id, Workspace(workspace_path))


# --- evaluation -----------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Evaluating…", max_entries=24)
def _evaluation(dataset_id: str, workspace_path: str, mapping_json: str, model_id: str, n_bins: int):
    log = _experiment_log(dataset_id, workspace_path, mapping_json)
    return evaluate(log, _stored_model(model_id, workspace_path).oof_, n_bins=n_bins)


def evaluation(dataset_id: str, mapping: dict, model_id: str, n_bins: int = 10):
    """Every metric of a recorded model's out-of-fold predictions, per arm."""
    return _evaluation(dataset_id, str(default_path()), json.dumps(mapping, sort_keys=True), model_id, int(n_bins))


@st.cache_resource(show_spinner="Bootstrapping the curves…", max_entries=48)
def _curves(dataset_id: str, workspace_path: str, mapping_json: str, model_id: str, arm: str, n_boot: int):

    log = _experiment_log(dataset_id, workspace_path, mapping_json)
    oof = _stored_model(model_id, workspace_path).oof_
    rows = (log.action == arm) | (log.action == log.control)
    t = (log.action[rows] == arm).astype(int)
    w = inverse_propensity_weights(log.propensity)
    w = None if w is None else w[rows]
    score, cost_score = rankings(oof, arm)
    out = {"bands": curve_bands(log.value[rows], score[rows], t, w, n_boot=n_boot, seed=0), "cost": None,
           "aucc": None}
    if log.cost is not None and cost_score is not None:
        try:
            out["cost"] = cost_curve(log.value[rows], log.cost[rows], cost_score[rows], t, w)
            out["aucc"] = aucc_interval(log.value[rows], log.cost[rows], cost_score[rows], t, w, n_boot=n_boot)
        except UserError:  # no positive incremental cost: no cost curve for this arm
            out["cost"] = out["aucc"] = None
    return out


def curves(dataset_id: str, mapping: dict, model_id: str, arm: str, n_boot: int = 200) -> dict:
    """Qini/uplift bands and the cost curve of one model and arm."""
    return _curves(dataset_id, str(default_path()), json.dumps(mapping, sort_keys=True), model_id, arm, int(n_boot))


def time_split(dataset_id: str, mapping: dict, params: dict, progress=None):
    """Early-half vs late-half models: how stably they rank customers (memoised)."""
    path, mapping_json = str(default_path()), json.dumps(mapping, sort_keys=True)
    return memoised(("time_split", path, dataset_id, mapping_json, json.dumps(params, sort_keys=True)),
                    lambda: time_split_stability(_experiment_log(dataset_id, path, mapping_json), params, progress))


# --- allocation -----------------------------------------------------------------------------------

PLAN_KEYS = ("cost_basis", "offer_costs", "cpi_max")


@st.cache_resource(show_spinner="Building the budget frontier…", max_entries=16)
def _frontier(model_id: str, workspace_path: str, setting_json: str):
    candidates = candidates_for_plan(_stored_model(model_id, workspace_path).oof_, json.loads(setting_json))
    return candidates, Frontier(candidates)


def frontier(model_id: str, setting: dict):
    """Candidates and the LP frontier of a model's predictions under an allocation setting
    (cost basis, costs per offer sent, CPI limit), built once per setting."""
    key = json.dumps({k: setting.get(k) for k in PLAN_KEYS}, sort_keys=True)
    return _frontier(model_id, str(default_path()), key)


def saved_plan(model_id: str, allocation: dict, control: str):
    """The plan of a saved allocation setting (step 5): ``(candidates, plan)``."""
    candidates, built = frontier(model_id, allocation)
    return candidates, allocate_fast(candidates, allocation["budget"], control, built)


@st.cache_resource(show_spinner="Measuring each segment's effects…", max_entries=8)
def _segment_effects(dataset_id: str, workspace_path: str, mapping_json: str):
    return cold_start.segment_effects(_experiment_log(dataset_id, workspace_path, mapping_json))


def segment_effects(dataset_id: str, mapping: dict):
    """The readout's effects per segment of the log (cold-start decisions), computed once."""
    return _segment_effects(dataset_id, str(default_path()), json.dumps(mapping, sort_keys=True))


# --- off-policy evaluation ------------------------------------------------------------------------

def reward_models(dataset_id: str, mapping: dict, progress=None):
    """Cross-fitted q̂ for value and cost (see :func:`core.ope.estimators.reward_models`), computed once."""
    path, mapping_json = str(default_path()), json.dumps(mapping, sort_keys=True)
    return memoised(("reward", path, dataset_id, mapping_json),
                    lambda: fit_reward_models(_experiment_log(dataset_id, path, mapping_json), progress=progress))


# --- monitoring -----------------------------------------------------------------------------------

def campaign(series: str, dataset_id: str, model_id: str | None, plan_csv: bytes | None, settings: dict):
    """A stored campaign (read with its stored mapping) monitored against the scenario's training
    log ``dataset_id`` (memoised per stored days, model, deployment file and settings)."""

    path = str(default_path())
    workspace = Workspace(path)
    days = tuple(workspace.series_days(series)["fingerprint"])
    plan_key = hashlib.sha256(plan_csv).hexdigest() if plan_csv else None
    key = ("campaign", path, series, days, dataset_id, model_id, plan_key, json.dumps(settings, sort_keys=True))

    def compute():
        reference = dataset_frame(dataset_id, path)
        plan = read_table(plan_csv, name="deployment.csv") if plan_csv else None
        pacing = settings.get("pacing")
        return monitor_series(workspace, series, reference, _stored_model(model_id, path) if model_id else None, plan,
                              Thresholds(**settings.get("thresholds", {})),
                              Pacing(**pacing) if pacing else None, settings.get("psi_bins", 10))

    return memoised(key, compute, keep=6)
