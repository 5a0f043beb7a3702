"""Shared widgets: error display and the column-mapping editor."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.datasets import SAMPLES
from core.design.power import is_rate
from core.errors import UserError
from core.format import column_printf, format_p, is_p_column
from core.io import arm_column_problem, pick_control
from core.schema import NUMERIC_ROLES, ColumnMap, incomplete_rows
from ui import cached, state

NONE = "—"


def table(frame: pd.DataFrame, column_config: dict | None = None, **kwargs) -> None:
    """``st.dataframe`` with numbers for people: thousands separators and about three
    significant digits per float column (the data stay numbers, so columns still sort), and
    p-values written out (``2.3e-142``, ``0.023``).  ``column_config`` entries win."""
    shown = frame.copy()
    config: dict = {}
    for column in shown.columns:
        values = shown[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if is_p_column(column):
            shown[column] = [format_p(v, prefix=False) for v in values]
        elif pd.api.types.is_integer_dtype(values):
            config[column] = st.column_config.NumberColumn(format="%,d")
        elif (fmt := column_printf(values)) is not None:
            config[column] = st.column_config.NumberColumn(format=fmt)
    config.update(column_config or {})
    st.dataframe(shown, hide_index=True, column_config=config, **kwargs)


# how the app spells the settings core's messages name (core.errors.setting): the widget's label
SETTING_LABELS = {
    "alpha": "“Significance α”", "power": "“Power”", "ratio": "“Control size ÷ offer size”",
    "arms": "“Offers in the test”", "correction": "“Several offers against one control”",
    "mde": "“Smallest effect worth detecting”", "n": "“Customers per offer”", "holdout": "“Permanent holdout”",
    "explore": "“Exploration share”", "min_propensity": "“Floor”", "clip": "“Propensity clip”",
    "bootstrap": "“Bootstrap resamples”", "estimators": "“Estimators”", "budget": "“Budget”",
    "cpi_max": "the CPI limit", "cap": "the cap per offer", "method": "“Solve exactly”", "folds": "“Cross-fitting folds”",
    "learner": "“Learners”", "candidates": "“Learners”", "bagging": "“Bootstrap refits per fold”",
    "tuning": "“LightGBM complexity”", "ranking_scorer": "the ranking model's scorer", "psi_bins": "the PSI bins",
    "time": "“Day column of the daily logs”", "by": "“SRM by”", "expected": "“Intended split”",
    "baseline_sd": "“Standard deviation”", "baseline_rate": "“Baseline conversion rate”",
    "id": "the customer id column (step 1, Data)", "action_cost": "the constant cost per offer (step 1, Data)",
}


def show_error(exc: UserError, title: str | None = None) -> None:
    """A readable ``st.error``: the summary, then one bullet per problem, with every setting
    named as the app labels it."""
    exc = exc.spelled(SETTING_LABELS)
    lines = [f"**{title or exc.summary[:1].upper() + exc.summary[1:]}**"]
    lines += [f"- {p}" for p in exc.problems] if exc.problems else ([] if title is None else [str(exc)])
    st.error("\n".join(lines), icon=":material/error:")


def _pick(label: str, options: list, current, key: str, help: str, allow_none: bool = True):
    choices = ([NONE] if allow_none else []) + list(options)
    index = choices.index(current) if current in choices else 0
    chosen = st.selectbox(label, choices, index=index, key=key, help=help)
    return None if chosen == NONE else chosen


def mapping_editor(frame: pd.DataFrame, mapping: dict, detected: dict, key: str) -> dict:
    """Widgets for every role of DESIGN.md §2, pre-filled from ``mapping``.

    Returns the mapping as the user set it (a dict of :class:`core.schema.ColumnMap` fields).
    ``key`` must change when ``mapping`` is replaced from outside (a scenario opened).
    """
    columns = [str(c) for c in frame.columns]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
    out: dict = {}

    why = detected.get("why", {})
    c1, c2, c3 = st.columns(3)
    with c1:
        out["action"] = _pick("Action (arm) column", columns, mapping.get("action"), f"{key}_action",
                              "The arm each customer was logged with, including the no-offer arm. An arm column has "
                              "a few levels, each logged for many customers.")
        labels: list[str] = []
        if out["action"] is None:
            st.warning(why.get("action", "Choose the column that holds the arm."), icon=":material/help:")
        else:
            problem = arm_column_problem(frame, out["action"])
            if problem:
                st.warning(f"{problem[:1].upper()}{problem[1:]}. Is this really the arm column?", icon=":material/warning:")
            elif out["action"] == detected.get("action") and why.get("action"):
                st.caption(f"Detected: {why['action']}.")
            counts = frame[out["action"]].astype("string").value_counts().head(50).to_dict()
            labels = sorted(counts)
        default_control, control_why = mapping.get("control"), None
        if default_control not in labels:
            default_control, control_why = pick_control(labels, counts) if labels else (None, None)
        elif out["action"] == detected.get("action") and default_control == detected.get("control"):
            control_why = why.get("control")
        out["control"] = _pick("Control (no offer) label", labels, default_control, f"{key}_control",
                               "The arm that received nothing: effects are measured against it.", allow_none=False) if labels else None
        if control_why and out["control"] == default_control:
            st.caption(f"Control: {control_why}.")
    with c2:
        # numeric columns first, but a column with some text ("n/a") stays choosable: the check
        # below names its bad rows instead of the column silently vanishing from the list
        ordered = numeric + [c for c in columns if c not in numeric]
        out["value"] = _pick("Value outcome", ordered, mapping.get("value"), f"{key}_value",
                             "What the offer should increase: revenue, margin, conversion…")
        out["value_long"] = _pick("Long-horizon value (optional)", [c for c in numeric if c != out["value"]],
                                  mapping.get("value_long"), f"{key}_value_long",
                                  "e.g. 12-month revenue beside the 30-day value: models still rank on the value "
                                  "outcome; plans and the report are also given in this unit.")
        out["value_unit"] = None
        if out["value"] in numeric and is_rate(frame[out["value"]].dropna()):
            out["value_unit"] = st.number_input(
                "One conversion is worth (money)", min_value=0.0, value=mapping.get("value_unit"), step=1.0,
                key=f"{key}_value_unit", placeholder="leave empty to count conversions",
                help=f"`{out['value']}` is 0/1. Say what one conversion is worth and every effect, CPI and budget "
                     "is in money; leave it empty to work in conversions.") or None
        modes = ["Cost column", "Constant cost per arm", "No cost"]
        mode_default = 0 if mapping.get("cost") else 1 if mapping.get("action_cost") else 2
        mode = st.radio("Incentive cost", modes, index=mode_default, key=f"{key}_cost_mode", horizontal=True,
                        help="Realised cost per customer (paid only when redeemed), or a fixed cost per customer sent each offer.")
        out["cost"], out["action_cost"] = None, None
        if mode == modes[0]:
            out["cost"] = _pick("Cost column", ordered, mapping.get("cost"), f"{key}_cost",
                                "Realised incentive cost of each row.", allow_none=False)
        elif mode == modes[1]:
            existing = mapping.get("action_cost") or {}
            arms = [l for l in labels if l != out["control"]]
            table = pd.DataFrame({"arm": arms, "cost per customer": [float(existing.get(a, 0.0)) for a in arms]})
            edited = st.data_editor(table, key=f"{key}_action_cost", hide_index=True, disabled=["arm"],
                                    column_config={"cost per customer": st.column_config.NumberColumn(min_value=0.0, format="%.4f")})
            out["action_cost"] = {str(r["arm"]): float(r["cost per customer"] or 0.0) for _, r in edited.iterrows()}
            free = [a for a, c in out["action_cost"].items() if c == 0]
            if free:
                st.warning(f"{', '.join(free)} cost{'s' if len(free) == 1 else ''} 0 per customer, so "
                           f"{'it looks' if len(free) == 1 else 'they look'} free to every later step: enter what one "
                           "offer sent costs.", icon=":material/warning:")
    with c3:
        out["propensity"] = _pick("Logged propensity", numeric, mapping.get("propensity"), f"{key}_propensity",
                                  "Probability with which the logged arm was chosen. Leave empty to have it estimated.")
        out["segment"] = _pick("Lifecycle segment", columns, mapping.get("segment"), f"{key}_segment",
                               "new / active / lapsed …: diagnostics and models can split by it.")
        out["time"] = _pick("Decision day / time", columns, mapping.get("time"), f"{key}_time",
                            "Send day: SRM by day, time-split stability, pacing.")
        out["id"] = _pick("Customer id", columns, mapping.get("id"), f"{key}_id",
                          "Unique per row; joins predictions and allocations back to customers.")

    out.update(incomplete_rows_editor(frame, out, mapping, key))

    used = {v for k, v in out.items() if k in ("action", "value", "value_long", "cost", "propensity", "time", "id") and v}
    candidates = [c for c in columns if c not in used]
    wanted = mapping.get("features")
    if wanted is None:
        wanted = [c for c in detected.get("features", []) if c in candidates]
        if out.get("segment") and out["segment"] not in wanted and out["segment"] in candidates:
            pass
    default = [c for c in wanted if c in candidates]
    excluded = [c for c in detected.get("excluded_features", []) if c in candidates]
    help_text = "Columns known before the offer was sent. Outcomes and anything measured afterwards leak the offer into the model."
    out["features"] = st.multiselect("Model features", candidates, default=default, key=f"{key}_features", help=help_text)
    if excluded:
        st.caption("Left out of the default features because they look like outcomes or post-treatment measurements: "
                   + ", ".join(f"`{c}`" for c in excluded))
    if out.get("segment") and out["segment"] in out["features"]:
        out["features"] = [f for f in out["features"] if f != out["segment"]]
        st.caption(f"`{out['segment']}` is the segment column, so it is not also used as a feature.")
    return out


def incomplete_rows_editor(frame: pd.DataFrame, chosen: dict, mapping: dict, key: str) -> dict:
    """Text or missing values in the mapped arm/value/cost/propensity columns: name them, and
    offer to treat text as missing and to leave the incomplete rows out (the file is unchanged).

    Returns ``{"text_as_missing": bool, "drop_incomplete": bool}``; shows nothing when the
    columns are complete and neither option is set.
    """
    problems = []
    for role in ("action", *NUMERIC_ROLES):
        col = chosen.get(role)
        if not col or col not in frame.columns:
            continue
        values = frame[col]
        if role != "action":
            text = pd.to_numeric(values, errors="coerce").isna() & values.notna()
            if text.any():
                rows = ", ".join(f"row {i + 1}: {values.iloc[i]!r}" for i in text.to_numpy().nonzero()[0][:3])
                problems.append(f"{role} column `{col}` has {int(text.sum()):,} text value{'s' if text.sum() > 1 else ''} ({rows})")
        if values.isna().any():
            problems.append(f"{role} column `{col}` has {int(values.isna().sum()):,} empty values")
    flags = {"text_as_missing": bool(mapping.get("text_as_missing")), "drop_incomplete": bool(mapping.get("drop_incomplete"))}
    if not problems and not any(flags.values()):
        return {"text_as_missing": False, "drop_incomplete": False}
    st.markdown("**Rows with text or missing values**")
    for problem in problems:
        st.caption(f":material/warning: {problem[:1].upper()}{problem[1:]}.")
    text_as_missing = st.checkbox("Treat text in the value, cost and propensity columns as missing", value=flags["text_as_missing"],
                                  key=f"{key}_text_as_missing", help="'n/a', 'twelve dollars' and the like become empty values.")
    probe = ColumnMap(**{**{k: chosen.get(k) for k in ("action", "value", "cost", "propensity")}, "control": chosen.get("control"),
                         "text_as_missing": text_as_missing})
    incomplete, per_arm = incomplete_rows(frame, probe)
    count = int(incomplete.sum())
    label = (f"Leave out the {count:,} incomplete rows (" + ", ".join(f"{a}: {n:,}" for a, n in per_arm.items()) + ")"
             if count else "Leave out incomplete rows (none now)")
    drop = st.checkbox(label, value=flags["drop_incomplete"], key=f"{key}_drop_incomplete",
                       help="Only the analysis leaves them out; the file in the workspace keeps every row. "
                            "The per-arm counts are re-checked below, and the SRM test in step 2 runs on the rows kept.")
    return {"text_as_missing": text_as_missing, "drop_incomplete": drop}


def open_default_sample() -> None:
    """Put the first shipped sample, with its mapping, into this session."""
    key = next(iter(SAMPLES))
    dataset_id = cached.sample_dataset_id(key, str(cached.workspace().path))
    state.set_dataset(dataset_id, SAMPLES[key].title, f"sample:{key}", SAMPLES[key].mapping)


def require_log():
    """The session's validated log, or a pointer back to the Data step (and stop)."""
    ws = cached.workspace()
    problem = state.restore_from_url(ws)
    if problem:
        st.warning(problem)
    cur = state.current()
    if cur.dataset_id is None or not cur.mapping:
        open_default_sample()
        st.caption("Working on the shipped sample campaign. Open your own data in step 1.")
        cur = state.current()
    try:
        log = cached.experiment_log(cur.dataset_id, cur.mapping)
    except UserError as exc:
        show_error(exc, "The column mapping does not fit the data yet")
        st.page_link("pages/1_data.py", label="Fix it in step 1 · Data", icon=":material/arrow_back:")
        st.stop()
    return cur, log


LIGHT_ICONS = {"green": ":material/check_circle:", "amber": ":material/warning:", "red": ":material/cancel:"}


def traffic_light(light) -> None:
    """One diagnostics light as a coloured callout."""
    box = {"green": st.success, "amber": st.warning, "red": st.error}[light.status]
    box(f"**{light.name}: {light.status}**  \n{light.message}", icon=LIGHT_ICONS[light.status])


def remembered(key: str, default, clamp: tuple | None = None) -> str:
    """A widget key whose first value comes from ``default`` (e.g. a saved scenario choice).

    Passing a changing ``value=`` to a widget changes its identity and resets it on every
    rerun; seeding ``st.session_state`` once and passing only the key does not.  ``clamp``
    (low, high) keeps a remembered number inside a range that may have changed.
    """
    if key not in st.session_state:
        st.session_state[key] = default
    if clamp is not None:
        low, high = clamp
        st.session_state[key] = min(max(st.session_state[key], low), high)
    return key


def slider_with_input(label: str, high: float, key: str, default: float, step: float, typed_label: str = "Type it",
                      whole: bool = False, help: str | None = None) -> float:
    """A slider from 0 to ``high`` with a number box beside it holding the same value: drag it,
    or type it exactly.  Each widget's change callback copies its value into the other.
    ``whole``: show whole numbers (a count).  Returns the value."""
    typed_key = key + "_typed"
    remembered(key, float(default), clamp=(0.0, high))
    remembered(typed_key, st.session_state[key], clamp=(0.0, high))

    def typed():
        st.session_state[key] = min(max(float(st.session_state[typed_key]), 0.0), high)

    def dragged():
        st.session_state[typed_key] = st.session_state[key]

    left, right = st.columns([4, 1])
    left.slider(label, 0.0, high, step=step, key=key, on_change=dragged, format="%.0f" if whole else None, help=help)
    right.number_input(typed_label, min_value=0.0, max_value=high,
                       step=1.0 if whole else float(max(round(high / 100), 1)), key=typed_key, on_change=typed,
                       format="%.0f" if whole else "%.2f", help="The same value, typed exactly.")
    return float(st.session_state[key])


def require_models(log, message: str) -> dict:
    """The models fitted on ``log`` in this session, or ``message`` with a link to step 3 (and stop)."""
    models = state.fitted_models(log.fingerprint)
    if not models:
        st.info(message)
        st.page_link("pages/3_models.py", label="Go to step 3 · Models", icon=":material/arrow_back:")
        st.stop()
    return models
