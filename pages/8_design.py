"""Step 8 · Next test: how many customers it needs, and how to send the plan so it can be analysed."""

import pandas as pd
import streamlit as st

import ui
from core.decision.allocate import allocate_fast
from core.decision.policy import budget_text, candidates_for_plan
from core.design.cold_start import score_with_cold_start
from core.design.deploy import deploy
from core.design.power import design, design_from_log, is_rate
from core.errors import UserError
from core.format import format_number
from core.io import read_table
from ui import cached, state
from ui.widgets import NONE, remembered, require_log, show_error, table

ui.page_setup()

st.title("Next test")
st.caption("Plan the next experiment: the customers each offer needs to show an effect worth having, and an "
           "assignment that sends the plan while keeping a holdout and some exploration, so next month's log can "
           "still measure every offer.")
cur, log = require_log()
saved = cur.config.get("design", {})


def new_customers_tab(model_id: str, allocation: dict) -> None:
    """Decide for customers outside the log: the model where it can score them, their segment's
    readout where it cannot (cold start), within the saved budget and CPI limit."""
    st.caption("Upload the customers to decide for (the model's feature columns, an id and, if mapped, the segment). "
               "Customers the model cannot score — no features, or a segment it never saw — get their segment's "
               "average effects from the readout, flagged as cold starts.")
    upload = st.file_uploader("Customers to decide for (CSV, CSV.GZ or Parquet)", type=["csv", "gz", "parquet"],
                              key="new_customers_upload")
    if upload is None:
        return
    try:
        frame = read_table(upload.getvalue(), name=upload.name, max_bytes=cached.upload_limit_bytes())
        scores = score_with_cold_start(cached.stored_model(model_id), frame, cached.segment_effects(cur.dataset_id, cur.mapping),
                                       log.columns.segment)
        candidates = candidates_for_plan(scores, allocation)
    except UserError as exc:
        show_error(exc, f"'{upload.name}' cannot be decided for")
        return
    plan = allocate_fast(candidates, allocation["budget"], log.control)
    ids = frame[log.columns.id].to_numpy() if log.columns.id and log.columns.id in frame.columns else range(len(frame))
    result = plan.to_frame(ids, candidates)
    result["cold_start"] = scores["cold_start"].to_numpy()
    result["cold_start_reason"] = scores["cold_start_reason"].to_numpy()
    cold = int(result["cold_start"].sum())
    cur.config["new_customers"] = {"file": upload.name, "n": len(result), "cold_start": cold,
                                   "offers": int((plan.choice >= 0).sum())}
    n1, n2, n3 = st.columns(3)
    n1.metric("New customers", f"{len(result):,}")
    n2.metric("Cold starts (segment-level decision)", f"{cold:,}")
    n3.metric("Offers sent", f"{int((plan.choice >= 0).sum()):,}", help=f"Same setting as step 5: {budget_text(allocation)}.")
    if cold:
        reasons = result.loc[result["cold_start"], "cold_start_reason"].value_counts()
        st.caption("Cold starts: " + ", ".join(f"{reason} ({count:,})" for reason, count in reasons.items()) + ".")
    table(result.groupby(["action", "cold_start"]).size().rename("customers").reset_index())
    st.download_button("Download the decisions (CSV, with the cold_start flag)", result.to_csv(index=False).encode(),
                       "new_customers_allocation.csv", "text/csv")


tab_size, tab_deploy, tab_new = st.tabs(["Sample size", "Deploy the plan with exploration", "New customers"])

with tab_size:
    c1, c2 = st.columns(2)
    source = c1.radio("Outcome spread", ["From this log", "Type it in"], horizontal=True,
                      key=remembered("design_source", saved.get("source", "From this log")),
                      help="From this log: the no-offer arm's rate (0/1 outcome) or standard deviation.")
    solve = c2.radio("Solve for", ["Customers per offer", "Detectable effect"], horizontal=True,
                     key=remembered("design_solve", saved.get("solve", "Customers per offer")))
    control_values = log.value[log.action == log.control]
    binary = is_rate(control_values)
    baseline = float(control_values.mean())
    sd = rate = None
    if source == "Type it in":
        t1, t2, t3 = st.columns(3)
        kind = t1.radio("Outcome", ["Conversion rate", "Mean and SD"], key=remembered("design_kind", "Conversion rate" if binary else "Mean and SD"))
        if kind == "Conversion rate":
            rate = t2.number_input("Baseline conversion rate", 0.0001, 0.9999, value=min(max(baseline, 0.0001), 0.9999) if binary else 0.05,
                                   format="%.4f", key="design_rate")
        else:
            t2.number_input("Baseline mean", value=baseline, key="design_mean", help="For reference; the size depends on the SD.")
            sd = t3.number_input("Standard deviation", min_value=1e-9, value=float(control_values.std(ddof=1) or 1.0), key="design_sd")
    unit = "rate difference" if (rate is not None or (source == "From this log" and binary)) else "value per customer"
    p1, p2, p3, p4, p5 = st.columns(5)
    if solve == "Customers per offer":
        default_mde = 0.1 * baseline if baseline else 1.0
        mde = p1.number_input(f"Smallest effect worth detecting ({unit})", value=float(saved.get("mde") or default_mde),
                              format="%.6f" if unit == "rate difference" else "%.4f", key="design_mde", help="Absolute: e.g. 0.002 = +0.2 percentage points of conversion.")
        n = None
    else:
        n = int(p1.number_input("Customers per offer", min_value=2, value=int(saved.get("n") or 10_000), step=1000, key="design_n"))
        mde = None
    alpha = p2.number_input("Significance α", 0.001, 0.2, value=0.05, step=0.01, key="design_alpha")
    power = p3.number_input("Power", 0.5, 0.99, value=0.8, step=0.05, key="design_power")
    ratio = p4.number_input("Control size ÷ offer size", 0.1, 10.0, value=1.0, step=0.5, key="design_ratio")
    arms = int(p5.number_input("Offers in the test", 1, 20, value=len(log.treatments), key="design_arms"))
    correction = st.radio("Several offers against one control", ["none", "bonferroni"], horizontal=True, key="design_correction",
                          format_func={"none": "No correction", "bonferroni": "Bonferroni (α ÷ offers)"}.get)
    numeric = [c for c in log.features if pd.api.types.is_numeric_dtype(log.frame[c])]
    cuped = st.selectbox("Pre-period covariate (CUPED)", [NONE, *numeric], key="design_cuped",
                         help="A number measured before the offer: the sample shrinks by 1 − ρ² (ρ measured on the no-offer arm).")
    cuped = None if cuped == NONE or source != "From this log" else cuped
    try:
        if source == "From this log":
            result = design_from_log(log, mde=mde, n=n, alpha=alpha, power=power, ratio=ratio, correction=correction,
                                     cuped=cuped, arms=arms)
        else:
            result = design(mde=mde, n=n, sd=sd, rate=rate, alpha=alpha, power=power, arms=arms, ratio=ratio,
                            correction=correction)
    except UserError as exc:
        show_error(exc)
    else:
        cur.config["design"] = {"source": source, "solve": solve, "mde": mde, "n": n}
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Customers per offer", f"{result.n_per_arm:,}")
        m2.metric("No-offer customers", f"{result.n_control:,}")
        m3.metric("Customers in the test", f"{result.n_total:,}")
        m4.metric("Detectable effect", format_number(result.mde), help=f"Standardised effect size {result.effect_size:.4f}")
        spread = f"baseline rate {result.rate:.4%}" if result.rate is not None else f"SD {format_number(result.sd)}"
        st.caption(f"Two-sided z-test at α = {result.alpha_per_test:.4g} per comparison, power {power:.0%}, {spread}; "
                   "statsmodels' NormalIndPower conventions (Cohen's h for rates).")
        if result.cuped_variance_factor is not None:
            shrink = (f" — {result.n_per_arm_cuped:,} customers per offer instead of {result.n_per_arm:,}"
                      if result.n_per_arm_cuped is not None else "")
            st.info(f"CUPED on `{cuped}`: variance × {result.cuped_variance_factor:.3f} (1 − ρ²){shrink}.", icon=":material/trending_down:")
        cpi = result.extra.get("cpi")
        if cpi:
            st.markdown("**Cost per incremental unit at this size** (the readout's CPI, delta-method interval with the "
                        "log's per-arm variances scaled to the planned arms)")
            table(pd.DataFrame([{"offer": a, **v} for a, v in cpi.items()]))

allocation = cur.config.get("allocation")
models = state.fitted_models(log.fingerprint)
if not allocation or allocation.get("model") not in models:
    for tab in (tab_deploy, tab_new):
        with tab:
            st.info("Deployment and new customers start from a plan: set a budget in step 5 · Allocation first.")
            st.page_link("pages/5_allocation.py", label="Go to step 5 · Allocation", icon=":material/arrow_back:")
    st.stop()
model_id = models[allocation["model"]]["model_id"]
with tab_new:
    new_customers_tab(model_id, allocation)

with tab_deploy:
    candidates, plan = cached.saved_plan(model_id, allocation, log.control)
    d1, d2, d3, d4 = st.columns(4)
    holdout = d1.number_input("Permanent holdout (no offer)", 0.0, 0.5, value=float(saved.get("holdout", 0.05)), step=0.01,
                              key="deploy_holdout", help="Never gets an offer: measures what the whole programme adds.")
    explore = d2.number_input("Exploration share", 0.0, 0.9, value=float(saved.get("explore", 0.10)), step=0.01,
                              key="deploy_explore", help="Offers drawn at random here keep every offer measurable next time.")
    use_floor = d3.toggle("Floor on every offer's probability", key="deploy_use_floor")
    floor = d3.number_input("Floor", 0.0001, 0.5, value=0.01, format="%.4f", key="deploy_floor") if use_floor else None
    salt = d4.text_input("Salt", value=saved.get("salt") or (cur.scenario_id or "uplift-studio"), key="deploy_salt",
                         help="The same salt keeps every customer's bucket across runs; a new salt draws new buckets.")
    frame = plan.to_frame(log.ids, candidates)
    try:
        deployment = deploy(frame[["id", "action", "tau_value"]], log.control, holdout=holdout, explore=explore,
                            min_propensity=floor, salt=salt, offers=list(candidates.arms),
                            scores=cached.stored_model(model_id).oof_)
    except UserError as exc:
        show_error(exc)
        st.stop()
    cur.config["design"] = {**cur.config.get("design", {}), "holdout": holdout, "explore": explore, "salt": salt}
    summary = deployment.to_dict()
    k1, k2, k3, k4, k5 = st.columns(5)
    k1.metric("Holdout", f"{summary['buckets']['holdout']:,}", help="Customers in the permanent no-offer holdout.")
    k2.metric("Explore", f"{summary['buckets']['explore']:,}", help="Customers whose action is drawn at random.")
    k3.metric("Plan", f"{summary['buckets']['plan']:,}", help=f"Customers sent the plan's action (of {summary['n']:,}).")
    k5.metric("Smallest propensity", f"{summary['min_propensity']:.4f}")
    share = summary["expected_value_loss"] / summary["plan_value"] if summary["plan_value"] else 0.0
    k4.metric("Value given up", format_number(summary["expected_value_loss"]),
              help=f"{share:.1%} of the plan's expected incremental value ({format_number(summary['plan_value'])}).")
    st.markdown("**What exploration buys**: the effective sample size the next log will have for measuring each "
                "offer on everyone (n² / Σ 1/π).")
    table(pd.DataFrame([{"action": a, "customers sent": summary["counts"][a], "effective sample size": summary["ess"][a]}
                        for a in deployment.actions]))
    st.download_button("Download the assignment (CSV: id, action, propensity, bucket)",
                       deployment.to_frame().to_csv(index=False).encode(), "assignment.csv", "text/csv")
    st.caption("Send each customer the action in this file and keep the propensity column in the next log: it makes "
               "that log analysable (identification, off-policy evaluation) whatever the plan favoured.")
