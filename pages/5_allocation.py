"""Step 5 · Allocation: who gets which offer under a budget and a CPI threshold."""

import numpy as np
import pandas as pd
import streamlit as st

import ui
from core import charts
from core.decision.allocate import AUTO_EXACT_LIMIT, allocate, allocate_fast
from core.decision.pacing import pacing
from core.decision.policy import cpi_scale, empty_plan_reason, free_picks
from core.decision.summary import plan_summary
from core.errors import UserError
from core.evaluation.horizon import allocation_long_value
from core.format import format_number
from core.uplift.names import model_title
from ui import cached
from ui.widgets import remembered, require_log, require_models, show_error, slider_with_input, table

ui.page_setup()

st.title("Allocation")
st.caption("Set a budget and the most you will pay per unit of incremental value (CPI). Every customer gets at "
           "most one offer; the plan maximises expected incremental value within the budget.")
cur, log = require_log()
models = require_models(log, "Allocation needs a fitted model with value and cost predictions.")

saved = cur.config.get("allocation", {})
keys = list(models)
default_model = saved.get("model") or cur.config.get("recommended_model") or keys[0]
model_key = st.selectbox("Predictions of", keys, format_func=lambda k: model_title(k, cached.stored_model(models[k]["model_id"])),
                         help="The recommended model of step 4 is preselected.",
                         key=remembered(f"alloc_model_{log.fingerprint[:12]}", default_model if default_model in keys else keys[0]))
model_id = models[model_key]["model_id"]
model = cached.stored_model(model_id)
arms = list(model.treatments_)

# What an offer costs: the model's cost head, or — for a log without cost — a cost per offer sent or a count budget.
bases = (["model"] if getattr(model, "cost_mode_", "none") != "none" else []) + ["count", "per_send"]
basis_names = {"model": "Predicted incremental cost (the model's cost head)", "count": "Number of offers",
               "per_send": "A fixed cost per offer sent"}
if "model" not in bases:
    st.info("This log has no cost, so the model predicts no incremental cost. Budget a **number of offers**, "
            "or give **a fixed cost per offer sent** and budget money.", icon=":material/info:")
basis = st.radio("Budget in", bases, format_func=basis_names.get, horizontal=True,
                 key=remembered(f"alloc_basis_{model_id}", saved.get("cost_basis") if saved.get("cost_basis") in bases else bases[0]),
                 help="Per send: every customer sent offer a costs its amount whether or not they respond.")
offer_costs = None
if basis == "per_send":
    known = saved.get("offer_costs") or cur.mapping.get("action_cost") or {}
    cost_table = pd.DataFrame({"offer": arms, "cost per offer sent": [float(known.get(a, 1.0)) for a in arms]})
    edited_costs = st.data_editor(cost_table, hide_index=True, disabled=["offer"], key=f"offer_costs_{model_id}",
                                  column_config={"cost per offer sent": st.column_config.NumberColumn(min_value=0.0, format="%.4f")})
    offer_costs = {str(r["offer"]): float(r["cost per offer sent"]) if pd.notna(r["cost per offer sent"]) else 0.0
                   for _, r in edited_costs.iterrows()}
    if not any(offer_costs.values()):
        st.warning("Every offer costs 0 here, so the budget limits nothing: enter what one offer sent costs.")
setting = {"cost_basis": basis, "offer_costs": offer_costs}
counting = basis == "count"

try:
    everything, _ = cached.frontier(model_id, setting)
except UserError as exc:
    show_error(exc)
    st.stop()
cpi_upper, cpi_start = cpi_scale(everything.tau_value, everything.tau_cost)
cpi_label = ("Most offers per incremental unit of value" if counting
             else "Highest acceptable CPI (cost per unit of incremental value)")
use_cpi = st.toggle("Limit the cost per incremental value (CPI)", key=remembered("alloc_use_cpi", saved.get("cpi_max") is not None))
cpi_max = None
if use_cpi:
    cpi_key = f"alloc_cpi_{model_id}_{basis}"
    cpi_default = saved.get("cpi_max") if saved.get("cpi_max") is not None and saved.get("cost_basis", "model") == basis else cpi_start
    cpi_max = st.slider(cpi_label, 0.0, cpi_upper, step=cpi_upper / 500,
                        key=remembered(cpi_key, float(min(cpi_default, cpi_upper)), clamp=(0.0, cpi_upper)),
                        help=f"An offer whose predicted τ cost / τ value is above this is never sent. The range reaches the "
                             f"99th percentile of the offers' CPI; their median is {cpi_start:.3g}.")
setting["cpi_max"] = cpi_max
candidates, frontier = cached.frontier(model_id, setting)

full = frontier.curve(points=2)["cost"].iloc[-1]
max_budget = float(np.ceil(max(full, 1.0)))
saved_budget = saved.get("budget") if saved.get("cost_basis", "model") == basis else None
full_text = f"{max_budget:,.0f} offers" if counting else f"{max_budget:,.0f}"
budget = slider_with_input(
    "Budget: at most this many offers" if counting else "Budget (expected incremental cost)", max_budget,
    key=f"alloc_budget_{model_id}_{basis}", default=saved_budget if saved_budget is not None else round(max_budget * 0.3),
    step=1.0 if counting else float(max(max_budget / 500, 0.01)), typed_label="Type a budget", whole=counting,
    help=f"Spending {full_text} would give every customer their best worthwhile offer.")
cur.config["allocation"] = {"model": model_key, "cost_basis": basis, "offer_costs": offer_costs, "cpi_max": cpi_max, "budget": budget}

plan = allocate_fast(candidates, budget, log.control, frontier)
point = frontier.at(budget)
st.plotly_chart(charts.frontier_figure(frontier.curve(), {"cost": plan.total_cost, "value": plan.total_value, "lambda": plan.lam},
                                      cost_title="offers sent" if counting else "expected incremental cost (spend)"))

sent = int((plan.choice >= 0).sum())
if sent == 0:
    reason = empty_plan_reason(everything.tau_value, everything.tau_cost, cpi_max, budget)
    st.warning(f"**Nobody gets an offer:** {reason or 'no offer is worth its cost at this budget'}.", icon=":material/block:")
free = free_picks(candidates, plan.choice)
if free:
    st.info(f"{free:,} of the {sent:,} offers have a predicted incremental cost of 0 or below (counted as free), so they "
            "are in the plan at any budget, including 0.", icon=":material/info:")

c1, c2, c3, c4 = st.columns(4)
c1.metric("Expected incremental value", format_number(plan.total_value))
c2.metric("Offers sent" if counting else "Expected spend", f"{plan.total_cost:,.0f}" if counting else format_number(plan.total_cost),
          help=f"Budget {format_number(budget)}")
c3.metric("Customers with an offer", f"{sent:,}")
c4.metric("Marginal CPI", f"{1 / plan.lam:.3g}" if plan.lam > 0 else "—",
          help=f"{'Offers' if counting else 'Cost'} per incremental unit of value of the last offer added: what one more "
               "unit of budget buys.")
st.caption(f"LP upper bound {point['upper_bound']:,.1f}; this plan is within {plan.gap:.4%} of the best possible.")
if log.value_long is not None:
    horizons = {arm: ev.horizon for arm, ev in cached.evaluation(cur.dataset_id, cur.mapping, model_id).arms.items()}
    long_value = allocation_long_value(plan, candidates, horizons)
    st.metric(f"Expected incremental value in `{log.columns.value_long}` (long horizon)", f"{long_value:,.0f}",
              help="Each chosen customer's predicted effect times the long/short effect ratio of their score bin.")
    with st.expander(f"Long vs short horizon: `{log.columns.value_long}` ÷ `{log.columns.value}` effect per score bin"):
        table(pd.concat([h.to_frame().assign(offer=arm) for arm, h in horizons.items()], ignore_index=True))
        st.caption("Ratio of the observed effects on the two outcomes within each bin of predicted effect "
                   "(delta-method 95% interval, shown when the bin's short-horizon effect is significant).")

frame = plan.to_frame(log.ids, candidates)
table(plan_summary(plan, candidates))

with st.expander("What-if: compare up to three budget / CPI settings"):
    st.caption("Each setting reuses the fitted model: nothing is refitted. Leave CPI empty for no limit.")
    saved_whatif = saved.get("whatif") or [{"budget": round(budget * f), "cpi_max": cpi_max} for f in (0.5, 1.0, 2.0)]
    settings = st.data_editor(pd.DataFrame(saved_whatif, columns=["budget", "cpi_max"]), num_rows="fixed", hide_index=True,
                              key=f"whatif_{model_id}",
                              column_config={"budget": st.column_config.NumberColumn("budget", min_value=0.0),
                                             "cpi_max": st.column_config.NumberColumn("CPI limit", min_value=0.0)})
    compared = []
    for i, row in settings.head(3).iterrows():
        limit = None if pd.isna(row["cpi_max"]) else float(row["cpi_max"])
        if pd.isna(row["budget"]):
            continue
        option_candidates, option_frontier = cached.frontier(model_id, {**setting, "cpi_max": limit})
        option = allocate_fast(option_candidates, float(row["budget"]), log.control, option_frontier)
        compared.append({"setting": f"#{i + 1}", "budget": float(row["budget"]), "CPI limit": limit,
                         "incremental value": option.total_value, "spend": option.total_cost, **option.counts})
    cur.config["allocation"]["whatif"] = settings.head(3).astype(object).where(settings.head(3).notna(), None).to_dict("records")
    if compared:
        table(pd.DataFrame(compared))

with st.expander("Caps and exact check"):
    caps_table = pd.DataFrame({"offer": list(candidates.arms), "cap (empty = none)": [saved.get("caps", {}).get(a) for a in candidates.arms]})
    edited = st.data_editor(caps_table, hide_index=True, disabled=["offer"], key=f"caps_{model_id}")
    caps = {r["offer"]: int(r["cap (empty = none)"]) for _, r in edited.iterrows() if pd.notna(r["cap (empty = none)"])}
    cur.config["allocation"]["caps"] = caps
    options = int(candidates.mask.sum())
    st.caption(f"{options:,} candidate offers. The exact MILP (CBC, relative gap 1e-9) is quick up to about "
               f"{AUTO_EXACT_LIMIT:,}; beyond that it may take minutes.")
    if st.button("Solve exactly" + (" with caps" if caps else "")):
        with st.spinner("Solving the MILP…"):
            try:
                exact = allocate(candidates, budget, log.control, method="exact", caps=caps)
            except UserError as exc:
                show_error(exc)
            else:
                st.success(f"Exact plan: value {exact.total_value:,.1f} at cost {exact.total_cost:,.1f} "
                           f"({exact.seconds:.1f} s); counts " + ", ".join(f"{k}: {v:,}" for k, v in exact.counts.items()))
                frame = exact.to_frame(log.ids, candidates)

st.download_button("Download the allocation (CSV)", frame.to_csv(index=False).encode(), "allocation.csv", "text/csv")

with st.expander("Pacing: today's budget"):
    st.caption("Issued offers that may still be redeemed are money already promised.")
    p1, p2, p3 = st.columns(3)
    period = p1.number_input("Period budget", 0.0, value=float(saved.get("period", max_budget)), step=100.0)
    spent = p2.number_input("Spent so far", 0.0, value=0.0, step=100.0)
    days = p3.number_input("Days left (including today)", 1, 366, 14)
    outstanding = pd.DataFrame({"offer": list(candidates.arms), "outstanding": [0] * len(candidates.arms),
                                "redemption_rate": [0.3] * len(candidates.arms), "face_value": [0.0] * len(candidates.arms)})
    edited_outstanding = st.data_editor(outstanding, hide_index=True, disabled=["offer"], key="pacing_table")
    try:
        pace = pacing(period, spent, int(days), [dict(offer=r["offer"], outstanding=int(r["outstanding"]),
                                                      redemption_rate=float(r["redemption_rate"]),
                                                      face_value=float(r["face_value"])) for _, r in edited_outstanding.iterrows()])
    except UserError as exc:
        show_error(exc)
    else:
        st.metric("Today's budget", f"{pace.today:,.2f}", help=f"Expected liability {pace.liability:,.2f}; remaining {pace.remaining:,.2f}")
        if pace.overcommitted:
            st.error("Spent plus expected redemptions already exceed the period budget.")
