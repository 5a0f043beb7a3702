"""Step 5 · Allocation: who gets which offer under a budget and a CPI threshold."""

import numpy as np
import pandas as pd
import streamlit as st

import ui
from core import charts
from core.decision.allocate import AUTO_EXACT_LIMIT, allocate, allocate_fast
from core.decision.pacing import pacing
from core.errors import UserError
from core.uplift.learners import model_title
from ui import cached
from ui.widgets import remembered, require_log, require_models, show_error

ui.page_setup()

st.title("Allocation")
st.caption("Set a budget and the most you will pay per unit of incremental value (CPI). Every customer gets at "
           "most one offer; the plan maximises expected incremental value within the budget.")
cur, log = require_log()
models = require_models(log, "Allocation needs a fitted model with value and cost predictions.")
if not log.has_cost:
    st.warning("No cost is mapped: every offer looks free. Map a cost column or a constant cost per offer in step 1.")

saved = cur.config.get("allocation", {})
keys = list(models)
default_model = saved.get("model") or cur.config.get("recommended_model") or keys[0]
model_key = st.selectbox("Predictions of", keys, format_func=lambda k: model_title(k, cached.stored_model(models[k]["model_id"])),
                         help="The recommended model of step 4 is preselected.",
                         key=remembered(f"alloc_model_{log.fingerprint[:12]}", default_model if default_model in keys else keys[0]))
model_id = models[model_key]["model_id"]

use_cpi = st.toggle("Limit the cost per incremental value (CPI)", key=remembered("alloc_use_cpi", saved.get("cpi_max") is not None))
cpi_max = None
if use_cpi:
    cpi_max = st.slider("Highest acceptable CPI (cost per unit of incremental value)", 0.0, 2.0, step=0.01,
                        key=remembered("alloc_cpi", float(saved.get("cpi_max") or 0.5)),
                        help="An offer whose predicted τ cost / τ value is above this is never sent.")
try:
    candidates, frontier = cached.frontier(model_id, cpi_max)
except UserError as exc:
    show_error(exc)
    st.stop()

full = frontier.curve(points=2)["cost"].iloc[-1]
max_budget = float(np.ceil(max(full, 1.0)))
budget = st.slider("Budget (expected incremental cost)", 0.0, max_budget, step=float(max(max_budget / 500, 0.01)),
                   key=remembered("alloc_budget", float(saved.get("budget", round(max_budget * 0.3))), clamp=(0.0, max_budget)),
                   help=f"Spending {max_budget:,.0f} would give every customer their best worthwhile offer.")
cur.config["allocation"] = {"model": model_key, "cpi_max": cpi_max, "budget": budget}

plan = allocate_fast(candidates, budget, log.control, frontier)
point = frontier.at(budget)
st.plotly_chart(charts.frontier_figure(frontier.curve(), {"cost": plan.total_cost, "value": plan.total_value, "lambda": plan.lam}))

c1, c2, c3, c4 = st.columns(4)
c1.metric("Expected incremental value", f"{plan.total_value:,.0f}")
c2.metric("Expected spend", f"{plan.total_cost:,.0f}", help=f"Budget {budget:,.0f}")
c3.metric("Customers with an offer", f"{int((plan.choice >= 0).sum()):,}")
c4.metric("Marginal CPI", f"{1 / plan.lam:.3g}" if plan.lam > 0 else "—",
          help="Cost per incremental unit of value of the last offer added: what one more unit of budget buys.")
st.caption(f"LP upper bound {point['upper_bound']:,.1f}; this plan is within {plan.gap:.4%} of the best possible.")

frame = plan.to_frame(log.ids, candidates)
per_offer = frame.groupby("action").agg(customers=("id", "size"), spend=("tau_cost", "sum"),
                                        incremental_value=("tau_value", "sum")).reindex(list(log.labels)).fillna(0)
st.dataframe(per_offer.reset_index(), hide_index=True)

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
        option_candidates, option_frontier = cached.frontier(model_id, limit)
        option = allocate_fast(option_candidates, float(row["budget"]), log.control, option_frontier)
        compared.append({"setting": f"#{i + 1}", "budget": float(row["budget"]), "CPI limit": limit,
                         "incremental value": option.total_value, "spend": option.total_cost, **option.counts})
    cur.config["allocation"]["whatif"] = settings.head(3).astype(object).where(settings.head(3).notna(), None).to_dict("records")
    if compared:
        st.dataframe(pd.DataFrame(compared), hide_index=True)

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
    table = st.data_editor(outstanding, hide_index=True, disabled=["offer"], key="pacing_table")
    try:
        pace = pacing(period, spent, int(days), [dict(offer=r["offer"], outstanding=int(r["outstanding"]),
                                                      redemption_rate=float(r["redemption_rate"]),
                                                      face_value=float(r["face_value"])) for _, r in table.iterrows()])
    except UserError as exc:
        show_error(exc)
    else:
        st.metric("Today's budget", f"{pace.today:,.2f}", help=f"Expected liability {pace.liability:,.2f}; remaining {pace.remaining:,.2f}")
        if pace.overcommitted:
            st.error("Spent plus expected redemptions already exceed the period budget.")
