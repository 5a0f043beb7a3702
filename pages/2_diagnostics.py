"""Step 2 · Diagnostics: can this experiment identify effects at all?"""

import streamlit as st

from core import charts
from core.errors import UserError
from core.format import format_p
import ui
from ui import cached, state
from ui.widgets import NONE, require_log, show_error, table, traffic_light

ui.page_setup()

st.title("Diagnostics")
st.caption("Before trusting any model: were customers split as intended, are the arms comparable, "
           "and was every offer tried on every kind of customer?")
cur, log = require_log()
saved = cur.config.get("diagnostics", {})

with st.expander("Settings", expanded=False):
    modes = (["propensity"] if log.columns.propensity else []) + ["equal", "custom"]
    titles = {"propensity": "Implied by the logged propensities", "equal": "Equal split", "custom": "Custom weights"}
    mode = st.radio("Intended split", modes, index=modes.index(saved.get("split_mode", modes[0])) if saved.get("split_mode") in modes else 0,
                    format_func=titles.get, horizontal=True, key=f"diag_mode_{cur.revision}",
                    help="The split the experiment meant to produce. With a targeting policy, the logged propensities say it row by row.")
    weights = None
    if mode == "custom":
        import pandas as pd

        existing = saved.get("weights") or {}
        weights_table = pd.DataFrame({"arm": list(log.labels), "weight": [float(existing.get(l, 1.0)) for l in log.labels]})
        edited = st.data_editor(weights_table, hide_index=True, disabled=["arm"], key=f"diag_weights_{cur.revision}")
        weights = {r["arm"]: float(r["weight"]) if r["weight"] is not None else float("nan") for _, r in edited.iterrows()}
    c1, c2, c3 = st.columns(3)
    alpha = c1.select_slider("SRM alarm level α", [0.0001, 0.001, 0.01, 0.05], value=saved.get("alpha", 0.001),
                             key=f"diag_alpha_{cur.revision}", help="0.001 is the industry convention: SRM checks run often.")
    clip = c2.select_slider("Propensity clip ε", [0.001, 0.002, 0.005, 0.01, 0.02, 0.05], value=saved.get("clip", 0.01),
                            key=f"diag_clip_{cur.revision}")
    group_options = list(dict.fromkeys([NONE] + [c for c in [log.columns.segment, *log.features]
                                                 if c and log.frame[c].nunique() <= 50]))
    by_default = saved.get("by", log.columns.segment) or NONE
    by = c3.selectbox("SRM by", group_options, key=f"diag_by_{cur.revision}",
                      index=group_options.index(by_default) if by_default in group_options else 0)
    numeric = [f for f in log.features if log.frame[f].dtype.kind in "fiu"]
    cuped_options = [NONE] + numeric
    cuped_default = saved.get("cuped", next((f for f in numeric if f.lower().startswith("pre")), None)) or NONE
    cuped = st.selectbox("CUPED pre-period covariate", cuped_options, key=f"diag_cuped_{cur.revision}",
                         index=cuped_options.index(cuped_default) if cuped_default in cuped_options else 0,
                         help="A number measured before the offer (e.g. last quarter's revenue) that narrows the readout's intervals.")
    by, cuped = (None if by == NONE else by), (None if cuped == NONE else cuped)
    check_logged = bool(log.columns.propensity) and st.checkbox(
        "Also estimate propensities to check the logged ones", value=saved.get("check_logged", False),
        key=f"diag_check_{cur.revision}")

settings = {"split_mode": mode, "weights": weights, "alpha": alpha, "clip": clip, "by": by, "cuped": cuped,
            "check_logged": check_logged}
cur.config["diagnostics"] = settings

needs_estimate = log.columns.propensity is None or check_logged
try:
    if needs_estimate:
        with st.status("Estimating propensities (cross-fitted LightGBM)…", expanded=False) as status:
            bar = st.progress(0.0)
            result = cached.diagnostics(cur.dataset_id, cur.mapping, settings,
                                        progress=lambda f, msg: bar.progress(min(f, 1.0), text=msg))
            status.update(label="Propensities estimated", state="complete")
    else:
        result = cached.diagnostics(cur.dataset_id, cur.mapping, settings)
except UserError as exc:
    show_error(exc)
    st.stop()

lights = result["lights"]
state.record_lights(log.fingerprint, {l.name: l.status for l in lights})
for column, light in zip(st.columns(3), lights):
    with column:
        traffic_light(light)

red = [l.name for l in lights if l.status == "red"]
if red:
    acked = state.acknowledged(log.fingerprint)
    st.markdown("**Red lights must be acknowledged before models are fitted.**")
    chosen = [name for name in red if st.checkbox(
        f"I have looked into the {name} problem and want to model this data anyway", value=name in acked,
        key=f"ack_{name}_{log.fingerprint[:12]}")]
    state.set_acknowledged(log.fingerprint, chosen)
blockers = state.fit_blockers(log.fingerprint)
if blockers:
    st.error("Model fitting is blocked: " + " ".join(blockers), icon=":material/block:")
else:
    st.success("Model fitting is allowed for this dataset and mapping.", icon=":material/lock_open:")

tab_readout, tab_srm, tab_balance, tab_overlap = st.tabs(["Readout", "Sample ratio", "Balance", "Overlap"])

with tab_readout:
    ro = result["readout"]
    how = "inverse-propensity-weighted means" if ro.weighted else "plain arm means"
    st.caption(f"Average effect of each offer against '{log.control}' ({how}; {1 - ro.alpha:.0%} intervals"
               + (f"; CUPED on `{ro.cuped_column}`" if ro.cuped_column else "") + ").")
    st.plotly_chart(charts.readout_figure(ro))
    table(ro.effects)
    if not ro.cpi.empty:
        st.markdown("**Cost per incremental unit of value (CPI)**: delta-method interval; undefined when the value effect is not significant.")
        table(ro.cpi)
    st.download_button("Download readout (CSV)", ro.effects.to_csv(index=False).encode(), "readout.csv", "text/csv")

with tab_srm:
    srm_result = result["srm"]
    check = result["propensity_check"]
    if check is not None:
        st.markdown("**Propensity check**: inverse-propensity counts per arm relative to n — "
                    + ", ".join(f"{k}: {v:.3f}" for k, v in check.ratio.items())
                    + f" (χ² = {check.chi2:.2f}, {format_p(check.p_value)}). Each should be close to 1.")
        st.caption("The equal-split test below is shown for reference; a targeted log is not meant to be equal.")
    st.plotly_chart(charts.srm_figure(srm_result))
    srm_table = srm_result.table()
    table(srm_table)
    st.download_button("Download SRM tests (CSV)", srm_table.to_csv(index=False).encode(), "srm.csv", "text/csv")

with tab_balance:
    bal = result["balance"]
    st.caption("Standardised mean difference of each feature, arm vs control; |SMD| > 0.1 is flagged. "
               "Weighted: after inverse-propensity weighting, which is what identification needs under targeting.")
    st.plotly_chart(charts.love_plot(bal))
    frame = bal.to_frame()
    table(frame)
    st.download_button("Download balance table (CSV)", frame.to_csv(index=False).encode(), "balance.csv", "text/csv")

with tab_overlap:
    ov = result["overlap"]
    st.caption(f"Propensities: **{ov.propensity_source}**. ESS = (Σw)²/Σw² of each arm's inverse-propensity weights.")
    st.plotly_chart(charts.propensity_histograms(ov))
    import pandas as pd

    per_arm = pd.DataFrame({"n": ov.n_by_arm, "min propensity": ov.min_propensity, "ESS": ov.ess,
                            "ESS / n": ov.ess_ratio, "share below clip": ov.share_below_clip_by_arm}).rename_axis("arm").reset_index()
    table(per_arm)
    st.markdown(f"**Suggested clip**: {ov.suggested_clip:g} (the smallest clip with ESS ≥ 30% of rows in every arm).")
    table(ov.clip_table())
    disagree = ov.disagreement()
    if ov.estimated_for_logged is not None:
        st.markdown(f"**Logged vs estimated**: {len(disagree):,} rows differ by more than 3×.")
        table(disagree.head(200))
    st.download_button("Download per-arm overlap (CSV)", per_arm.to_csv(index=False).encode(), "overlap.csv", "text/csv")
