"""Step 6 · Policies: what would each candidate policy have earned, at what cost, with honest intervals?"""

import numpy as np
import pandas as pd
import streamlit as st

import ui
from core import charts
from core.decision.policy import budget_text
from core.errors import UserError
from core.io import read_table
from core.ope import compare
from core.ope.estimators import ESTIMATORS
from ui import cached, state
from ui.widgets import remembered, require_log, show_error, table as show_table

ui.page_setup()

st.title("Policies")
st.caption("Off-policy evaluation: reweight the logged customers to estimate what each candidate policy would "
           "have produced — value, cost and the increment over sending nothing — without running it.")
cur, log = require_log()

if log.propensity is not None:
    propensity, matrix, source = log.propensity, None, "logged"
else:
    with st.status("Estimating propensities (none are logged)…", expanded=False) as status:
        bar = st.progress(0.0)
        matrix = cached.estimated_propensities(cur.dataset_id, cur.mapping, lambda f, m: bar.progress(min(f, 1.0), text=m))
        status.update(label="Propensities estimated with cross-fitted LightGBM", state="complete")
    propensity = matrix[np.arange(log.n), [log.labels.index(a) for a in log.action]]
    source = "estimated"
st.caption(f"Propensities: **{source}**.")

options = ["no-offer", *[f"treat-all:{a}" for a in log.treatments], "logging", "random"]
models = state.fitted_models(log.fingerprint)
allocation = cur.config.get("allocation")
if models and allocation and allocation.get("model") in models:
    options.append("model policy")
if log.columns.segment:
    options.append("segment rule")
options.append("uploaded CSV")
c1, c2 = st.columns([3, 2])
chosen = c1.multiselect("Candidate policies", options, key=remembered("ope_policies", [o for o in options if o in
                        ("no-offer", "logging", "model policy")] + [f"treat-all:{a}" for a in log.treatments][:2]))
estimators = c2.multiselect("Estimators", list(ESTIMATORS), key=remembered("ope_estimators", ["ips", "snips", "dr", "sndr"]))
c3, c4, c5, c6 = st.columns(4)
clip_label = c3.selectbox("Propensity clip", ["none", "0.005", "0.01", "0.02", "0.05"], key=remembered("ope_clip", "none"),
                          help="Floor propensities before weighting: less variance, some bias. Reported with every result.")
clip = None if clip_label == "none" else float(clip_label)
tau_label = c4.selectbox("Switch-DR threshold τ", ["∞ (= DR)", "5", "10", "20", "50"], key=remembered("ope_tau", "∞ (= DR)"))
tau = np.inf if tau_label.startswith("∞") else float(tau_label)
n_boot = c5.select_slider("Bootstrap resamples", [200, 500, 1000], key=remembered("ope_boot", 1000))
chartable = estimators or ["dr"]
shown = c6.selectbox("Chart estimator", chartable, index=chartable.index("dr") if "dr" in chartable else 0)

policies, problems = [], []
for name in chosen:
    try:
        if name == "no-offer":
            policies.append(compare.no_offer(log))
        elif name.startswith("treat-all:"):
            policies.append(compare.treat_all(log, name.split(":", 1)[1]))
        elif name == "logging":
            policies.append(compare.logging_policy(log, propensity, matrix))
        elif name == "random":
            policies.append(compare.random_policy(log))
        elif name == "model policy":
            candidates, plan = cached.saved_plan(models[allocation["model"]]["model_id"], allocation, log.control)
            policies.append(compare.from_allocation(log, plan.choice, candidates.arms,
                                                    f"model policy ({budget_text(allocation)})"))
        elif name == "segment rule":
            segments = sorted(log.frame[log.columns.segment].astype("string").fillna("(missing)").unique())
            rule_table = pd.DataFrame({"segment": segments, "offer": [cur.config.get("segment_rule", {}).get(s, log.control) for s in segments]})
            edited = st.data_editor(rule_table, hide_index=True, disabled=["segment"], key="segment_rule_editor",
                                    column_config={"offer": st.column_config.SelectboxColumn(options=list(log.labels), required=True)})
            rule = dict(zip(edited["segment"], edited["offer"]))
            cur.config["segment_rule"] = rule
            policies.append(compare.segment_rule(log, rule))
        elif name == "uploaded CSV":
            upload = st.file_uploader("Policy file: an `action` column or `prob__<offer>` columns, with `id` to join",
                                      type=["csv", "gz", "parquet"], key="policy_upload")
            if upload is not None:
                policies.append(compare.from_frame(log, read_table(upload.getvalue(), name=upload.name), upload.name))
    except UserError as exc:
        problems.append((name, exc))
for name, exc in problems:
    show_error(exc, f"Policy '{name}' cannot be evaluated")
if not policies or not estimators:
    st.info("Choose at least one policy and one estimator.")
    st.stop()

with st.status("Fitting the cross-fitted reward model…", expanded=False) as status:
    bar = st.progress(0.0)
    q_value, q_cost = cached.reward_models(cur.dataset_id, cur.mapping, lambda f, m: bar.progress(min(f, 1.0), text=m))
    status.update(label="Reward model ready", state="complete")

rows, warnings = [], []
for policy in policies:
    try:
        result = compare.evaluate_policy(log, policy, propensity, q_value, q_cost, estimators=estimators, clip=clip,
                                         tau=tau, n_boot=n_boot)
    except UserError as exc:
        show_error(exc, f"Policy '{policy.name}' cannot be evaluated")
        continue
    for estimator in estimators:
        rows.append({"estimator": estimator, **result.row(estimator)})
    warnings += result.warnings
if not rows:
    st.stop()
table = pd.DataFrame(rows)
cur.config["policies"] = {"chosen": chosen, "estimators": estimators, "clip": clip, "tau": None if np.isinf(tau) else tau}
st.plotly_chart(charts.policies_figure(table[table["estimator"] == shown], shown))
for warning in warnings:
    st.warning(warning)
show_table(table)
st.caption("Value and cost are per customer. DM relies entirely on the reward model; its interval ignores the model's "
           "own error. IPS, SNIPS, DR and SNDR intervals are seeded percentile bootstraps.")
st.download_button("Download policy comparison (CSV)", table.to_csv(index=False).encode(), "policies.csv", "text/csv")
