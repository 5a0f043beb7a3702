"""Step 9 · Monitor: the live campaign day by day — sends, spend, drift, calibration, alerts, fairness."""

import pandas as pd
import streamlit as st

import ui
from core import charts
from core.errors import UserError
from core.io import read_table
from core.monitoring.campaign import model_key
from core.monitoring.drift import BANDS
from core.monitoring.fairness import audit_log
from core.monitoring.store import append_days
from core.workspace import Workspace
from ui import cached, state
from ui.widgets import require_log, show_error, table

ui.page_setup()

st.title("Monitor")
st.caption("After launch: load each day's log of the campaign and watch sends against the plan, spend against the "
           "budget, whether customers drift away from the training log, whether the offers still do what the model "
           "predicted on the randomised customers (holdout and exploration), and who gets offers.")
cur, log = require_log()
saved = dict(cur.config.get("monitoring", {}))
workspace = Workspace()

c1, c2 = st.columns([2, 1])
series = c1.text_input("Campaign name", value=saved.get("series") or f"{cur.dataset_name or 'campaign'} · live",
                       help="Every day's log is stored under this name in your workspace; re-uploading a day changes nothing.")
day_choices = [c for c in log.frame.columns if c not in log.columns.role_columns().values() or c == log.columns.time]
day_column = log.columns.time or c2.selectbox("Day column of the daily logs", day_choices,
                                              help="Map a decision day column in step 1 to skip this choice.")
saved["series"] = series

tab_load, tab_dash, tab_alerts, tab_fair = st.tabs(["Daily logs", "Dashboard", "Alerts", "Fairness"])

with tab_load:
    st.caption("Upload one or more daily logs with the training log's columns (the offer, value, cost, id and "
               "features as mapped in step 1, and the day). A day already stored with the same rows is skipped; a day "
               "stored with other rows, other columns or a date in the future is refused and nothing is stored.")
    uploads = st.file_uploader("Daily logs (CSV, CSV.GZ or Parquet)", type=["csv", "gz", "parquet"],
                               accept_multiple_files=True, key="monitor_upload")
    if uploads and st.button("Store these days", type="primary"):
        mapping = {**cur.mapping, "time": day_column, "features": list(log.features)}
        for upload in uploads:
            try:
                frame = read_table(upload.getvalue(), name=upload.name, str_columns=[log.columns.action],
                                   max_bytes=cached.upload_limit_bytes())
                done = append_days(workspace, series, frame, day_column, mapping)
            except UserError as exc:
                show_error(exc, f"{upload.name} was not stored: {exc.summary}")
                continue
            st.success(f"{upload.name}: {len(done['added'])} new day(s) stored ({done['rows_added']:,} rows)"
                       + (f"; {len(done['unchanged'])} day(s) already stored unchanged" if done["unchanged"] else ""),
                       icon=":material/check:")
    stored = workspace.series_days(series)
    if stored.empty:
        st.info(f"No day stored for '{series}' yet.")
    else:
        table(stored[["day", "n_rows", "loaded_at"]])
    plan_file = st.file_uploader("Deployment file (optional: step 8's assignment.csv — id, action, propensity, bucket)",
                                 type=["csv"], key="monitor_plan",
                                 help="Sends are compared with it, and its buckets mark the randomised customers. "
                                 "Not needed when the daily logs carry a bucket column.")

with st.expander("Alert thresholds and budget pacing"):
    t = saved.get("thresholds", {})
    a1, a2, a3, a4 = st.columns(4)
    thresholds = {
        "psi_alert": a1.number_input("PSI alert at", 0.0, 10.0, float(t.get("psi_alert", BANDS[1])), 0.05,
                                     help="0.1–0.25 is a moderate shift, 0.25 and above a major one."),
        "calibration_z": a2.number_input("Calibration: standard errors", 0.5, 10.0, float(t.get("calibration_z", 3.0)), 0.5,
                                         help="Alert when the day's observed uplift differs from the prediction by more."),
        "volume_tolerance": a3.number_input("Sends off plan by more than", 0.0, 1.0, float(t.get("volume_tolerance", 0.1)),
                                            0.05, format="%.2f"),
        "clip": a4.number_input("Propensity below", 0.0, 0.5, float(t.get("clip", 0.01)), 0.005, format="%.3f"),
    }
    p = saved.get("pacing") or {}
    b1, b2, b3 = st.columns(3)
    budget = b1.number_input("Campaign budget (0 = no pacing)", 0.0, value=float(p.get("budget", 0.0)), step=1000.0)
    campaign_days = b2.number_input("Campaign length (days)", 1, 365, int(p.get("days", 28)))
    redemption = b3.number_input("Redemption window (days)", 1, 90, int(p.get("redemption_days", 14)),
                                 help="Offers this recent may still be redeemed: their expected cost is outstanding.")
saved["thresholds"] = thresholds
saved["pacing"] = {"budget": budget, "days": int(campaign_days), "redemption_days": int(redemption)} if budget > 0 else None
cur.config["monitoring"] = saved

if stored.empty:
    for tab in (tab_dash, tab_alerts, tab_fair):
        with tab:
            st.info("Store the first day's log (tab *Daily logs*) to see the campaign.")
    st.stop()

models = state.fitted_models(log.fingerprint)
chosen = model_key(cur.config, models)
model_id = models[chosen]["model_id"] if chosen else None
settings = {"thresholds": thresholds, "pacing": saved["pacing"]}
try:
    with st.spinner("Reading the campaign's days…"):
        campaign = cached.campaign(series, cur.dataset_id, model_id,
                                   plan_file.getvalue() if plan_file is not None else None, settings)
except UserError as exc:
    show_error(exc)
    st.stop()
result = campaign.result
saved["days"] = len(result.days)
cur.config["monitoring"] = saved

with tab_dash:
    last = result.days[-1]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Days stored", len(result.days))
    m2.metric(f"Customers on {last['day']}", f"{last['n']:,}")
    m3.metric("No-offer share (last day)", f"{last['shares']['no_offer']:.1%}")
    m4.metric("Alerts", len(result.alerts))
    st.plotly_chart(charts.monitor_volume_figure(result))
    if result.features:
        st.markdown("**Feature drift** (population stability index against the training log)")
        st.plotly_chart(charts.monitor_psi_figure(result))
    calibration = result.calibration_frame()
    if not calibration.empty:
        st.markdown("**Calibration drift**: each offer's observed uplift on the randomised customers (95% interval) "
                    "against the model's prediction for the same customers.")
        st.plotly_chart(charts.monitor_calibration_figure(calibration), key="monitor_calibration_value")
        cost_frame = result.calibration_frame("cost")
        if not cost_frame.empty:
            st.plotly_chart(charts.monitor_calibration_figure(cost_frame, "cost"), key="monitor_calibration_cost")
    elif model_id is None:
        st.caption("Fit a model and save an allocation (steps 3–5) to check calibration drift.")
    shares = pd.DataFrame({d["day"]: d["shares"] for d in result.days}).T
    st.markdown("**Shares per day** (no offer; the plan, exploration and holdout buckets when known)")
    table(shares.reset_index(names="day"))
    if "volume" in last:
        st.markdown("**Sends against the deployment file** (customers planned / sent per arm)")
        table(pd.DataFrame([{"day": d["day"], **{f"{arm} planned": v["planned"] for arm, v in d["volume"].items()},
                             **{f"{arm} sent": v["sent"] for arm, v in d["volume"].items()}} for d in result.days]))
    if "propensity" in last:
        st.markdown(f"**Logged propensities** (overlap: the share below {thresholds['clip']:g} leaves off-policy "
                    "estimates leaning on few customers)")
        table(pd.DataFrame([{"day": d["day"], "lowest": d["propensity"]["min"],
                             "share below the clip": d["propensity"]["share_below_clip"],
                             **{f"mean · {arm}": v for arm, v in d["propensity"]["mean_by_action"].items()}}
                            for d in result.days if "propensity" in d]))
    for note in result.notes:
        st.caption(note[:1].upper() + note[1:] + ".")

with tab_alerts:
    alerts = result.alerts_frame()
    if alerts.empty:
        st.success("No alert on any day under the current thresholds.", icon=":material/check:")
    else:
        st.warning(f"{len(alerts)} alert(s) — first on {alerts['day'].min()}: "
                   + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in alerts['kind'].value_counts().items()),
                   icon=":material/warning:")
        table(alerts[["day", "kind", "subject", "message", "value", "threshold"]])
        st.download_button("Download the alerts (CSV)", alerts.to_csv(index=False).encode(), "alerts.csv", "text/csv")

with tab_fair:
    candidates = [c for c in campaign.log.frame.columns if c not in campaign.log.columns.role_columns().values()
                  and campaign.log.frame[c].nunique() <= 50]
    attribute = st.selectbox("Audit by", candidates, index=candidates.index(saved["fairness"]) if saved.get("fairness")
                             in candidates else 0, help="A customer attribute with a few groups: region, age band, channel…")
    saved["fairness"] = attribute
    try:
        audit = audit_log(campaign.log, attribute, campaign.scores)
    except UserError as exc:
        show_error(exc)
    else:
        st.caption(f"Ratios to the largest group ('{audit.reference}'), with 95% intervals. Spend is the realised cost; "
                   "benefit the model's predicted incremental value of each customer's offer.")
        table(audit.table)
        for note in audit.notes:
            st.markdown(f"- {note}.")
