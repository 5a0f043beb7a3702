"""Typed accessors over ``st.session_state`` and the scenario in the URL.

A browser session holds: the loaded dataset (a workspace id), its column mapping, and the
scenario it belongs to.  The scenario id also lives in the URL (``?scenario=…``) so a reload
or a shared link reopens the same work; saved state lives in the workspace, unsaved state
only in this browser session.  Saving is explicit (step 1's form or the sidebar's *Save
changes*): nobody else ever sees an edit that was not saved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import streamlit as st

from core.errors import UserError
from ui import cached

QUERY_KEY = "scenario"
SAVED_SNAPSHOT = "_saved_snapshot"
# session keys that are not the user's unsaved choices
KEEP_ON_DISCARD = {"current", "_routed_through_app", "upload_ids", SAVED_SNAPSHOT}


@dataclass
class Current:
    """What this browser session is working on."""

    dataset_id: str | None = None
    dataset_name: str | None = None
    source: str | None = None
    mapping: dict = field(default_factory=dict)
    scenario_id: str | None = None
    scenario_name: str | None = None
    config: dict = field(default_factory=dict)
    # Bumped whenever the mapping is replaced from outside the widgets (a scenario opened),
    # so the mapping widgets start again from the new values.
    revision: int = 0


def current() -> Current:
    if "current" not in st.session_state:
        st.session_state["current"] = Current()
    return st.session_state["current"]


def set_dataset(dataset_id: str, name: str, source: str, mapping: dict) -> None:
    """Switch to another dataset; the mapping starts from ``mapping`` and the scenario is new."""
    cur = current()
    if cur.dataset_id == dataset_id:
        return
    cur.dataset_id, cur.dataset_name, cur.source = dataset_id, name, source
    cur.mapping = dict(mapping)
    cur.scenario_id = cur.scenario_name = None
    cur.config = {}
    cur.revision += 1
    if QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def set_mapping(mapping: dict) -> None:
    current().mapping = dict(mapping)


def open_scenario(workspace, scenario_id: str) -> None:
    """Load a saved scenario (dataset + mapping + choices) into this session."""
    record = workspace.get_scenario(scenario_id)
    dataset = workspace.get_dataset(record.dataset_id)
    cur = current()
    cur.dataset_id, cur.dataset_name = dataset.id, dataset.name
    cur.source = record.config.get("source", dataset.source)
    cur.mapping = dict(record.config.get("mapping", {}))
    cur.scenario_id, cur.scenario_name = record.id, record.name
    cur.config = dict(record.config)
    cur.revision += 1
    st.query_params[QUERY_KEY] = record.id
    _mark_saved()


def forget_scenario() -> None:
    """The open scenario was deleted: keep working on its data, unsaved."""
    cur = current()
    cur.scenario_id = cur.scenario_name = None
    if QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def save_scenario(workspace, name: str) -> str:
    """Save the session's dataset, mapping and choices as a scenario; return its id."""
    cur = current()
    if cur.dataset_id is None:
        raise UserError("there is no dataset to save; open a sample or upload a file first")
    config = {**cur.config, "mapping": cur.mapping, "source": cur.source, "dataset_name": cur.dataset_name}
    record = workspace.save_scenario(name, cur.dataset_id, config, cur.scenario_id)
    cur.scenario_id, cur.scenario_name, cur.config = record.id, record.name, dict(record.config)
    st.query_params[QUERY_KEY] = record.id
    _mark_saved()
    return record.id


def _snapshot() -> str:
    cur = current()
    config = {**cur.config, "mapping": cur.mapping, "source": cur.source, "dataset_name": cur.dataset_name}
    return json.dumps(config, sort_keys=True, default=str)


def _mark_saved() -> None:
    st.session_state[SAVED_SNAPSHOT] = _snapshot()


def unsaved_changes() -> bool:
    """Whether the open scenario differs from its saved version.

    Choices made after opening a scenario (budget, models, policies…) stay in this browser
    session until the user saves them: a colleague opening the same link sees the saved
    version, never someone's unsaved edits.
    """
    cur = current()
    return bool(cur.scenario_id) and st.session_state.get(SAVED_SNAPSHOT) != _snapshot()


def save_changes() -> None:
    """Write the open scenario's current choices to the workspace (the sidebar's *Save*)."""
    cur = current()
    if cur.scenario_id:
        save_scenario(cached.workspace(), cur.scenario_name or "scenario")


def discard_changes() -> None:
    """Go back to the open scenario's saved version: forget this session's edits and the widget
    values that held them."""
    cur = current()
    if not cur.scenario_id:
        return
    for key in list(st.session_state.keys()):
        if key not in KEEP_ON_DISCARD:
            del st.session_state[key]
    open_scenario(cached.workspace(), cur.scenario_id)


def keep_scenario_in_url(before_page: bool = False) -> None:
    """Put the open scenario back into the URL: moving to another page through the sidebar
    drops query parameters in the browser, and a reload of that page must still find it.

    The server's copy of the parameters may still hold the scenario the browser dropped, so it
    is set without comparing.  ``before_page``: the page has not read the URL yet, so a link that
    names another scenario is left for it to open.
    """
    scenario_id = current().scenario_id
    if not scenario_id or (before_page and st.query_params.get(QUERY_KEY) not in (None, scenario_id)):
        return
    st.query_params[QUERY_KEY] = scenario_id


def restore_from_url(workspace) -> str | None:
    """Open the scenario named in the URL when this session has not opened it yet.

    Returns a message when the URL names a scenario that does not exist, else ``None``.
    """
    scenario_id = st.query_params.get(QUERY_KEY)
    if not scenario_id or current().scenario_id == scenario_id:
        return None
    try:
        open_scenario(workspace, scenario_id)
    except UserError as exc:
        del st.query_params[QUERY_KEY]
        return f"The link names a scenario that cannot be opened: {exc}"
    return None


# --- the diagnostics gate ---------------------------------------------------------------------

def record_lights(fingerprint: str, lights: dict[str, str]) -> None:
    """Remember the diagnostics lights of the log with this fingerprint (name → status)."""
    cur = current()
    cur.config["diagnostics_status"] = {"fingerprint": fingerprint, "lights": dict(lights)}


def acknowledged(fingerprint: str) -> set[str]:
    return set(current().config.get("acknowledged", {}).get(fingerprint, []))


def set_acknowledged(fingerprint: str, names) -> None:
    cur = current()
    acks = dict(cur.config.get("acknowledged", {}))
    acks[fingerprint] = sorted(set(names))
    cur.config["acknowledged"] = acks


def fit_blockers(fingerprint: str) -> list[str]:
    """Why models may not be fitted on this log yet; empty when they may.

    Diagnostics must have run on exactly this log and mapping, and every red light must have
    been acknowledged.
    """
    status = current().config.get("diagnostics_status")
    if not status or status.get("fingerprint") != fingerprint:
        return ["Run the diagnostics on this dataset and mapping first."]
    red = [name for name, light in status["lights"].items() if light == "red"]
    pending = [name for name in red if name not in acknowledged(fingerprint)]
    return [f"The {name} light is red and not acknowledged." for name in pending]


def fitted_models(fingerprint: str) -> dict:
    """Models recorded in this session for the log with this fingerprint: learner → record."""
    return {k: v for k, v in current().config.get("models", {}).items() if v.get("fingerprint") == fingerprint}


STEPS = ("data", "diagnostics", "models", "evaluation", "allocation", "policies", "report", "design", "monitor")


def step_status() -> dict[str, str]:
    """done / attention / todo for each step, from what this session has done so far."""
    cur = current()
    config = cur.config
    status = dict.fromkeys(STEPS, "todo")
    if cur.dataset_id and cur.mapping:
        status["data"] = "done"
    lights = config.get("diagnostics_status")
    if lights:
        red = [n for n, l in lights["lights"].items() if l == "red"]
        acked = set(config.get("acknowledged", {}).get(lights["fingerprint"], []))
        status["diagnostics"] = "attention" if set(red) - acked else "done"
    for step, key in (("models", "models"), ("evaluation", "recommended_model"), ("allocation", "allocation"),
                      ("policies", "policies"), ("design", "design")):
        if config.get(key):
            status[step] = "done"
    if config.get("monitoring", {}).get("days"):
        status["monitor"] = "done"
    if st.session_state.get("report_html"):
        status["report"] = "done"
    return status
