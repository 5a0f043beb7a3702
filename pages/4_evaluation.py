"""Step 4 · Evaluation: does each model rank customers well, can its numbers be trusted, is it stable?"""

import numpy as np
import pandas as pd
import streamlit as st

import ui
from core import charts
from core.errors import UserError
from core.evaluation.leaderboard import leaderboard, stored_time_splits
from core.evaluation.stability import bag_rank_correlation
from core.uplift.names import model_title
from ui import cached
from ui.widgets import require_log, require_models, show_error, table

ui.page_setup()

SELECTION_HELP = """
Auto scores every candidate on its **out-of-fold** predictions, with criteria that need no true effects.

**Primary: the doubly robust loss.** For offer *k* against no offer, each customer of either arm gets a
pseudo-outcome from out-of-fold outcome models μ̂ and the out-of-fold probability q̂ of offer *k*
(among customers of the two arms):

ψ = μ̂ₖ(x) − μ̂₀(x) + 1[offer k]·(Y − μ̂ₖ(x)) / q̂ − 1[no offer]·(Y − μ̂₀(x)) / (1 − q̂)

Its average given x is the true effect whenever μ̂ or q̂ is right (q̂ is, in a randomised test), so
mean((ψ − τ̂)²) differs between two candidates by exactly the difference of their errors against the truth,
plus noise. Each head's and offer's loss is divided by that of a constant effect (1 = no better than
giving everyone the average); the criterion is their mean. **Lower is better.**

**Near-ties: stability.** Candidates within one standard error of the best (paired over customers) are tied;
the tie goes to the one whose cross-fitting fold models rank the same probe customers most alike (mean
pairwise Spearman correlation).

**Also shown:** calibration slope and intercept of observed on predicted uplift in
ten bins (1 and 0 are ideal) and the monotonicity of observed uplift across the bins (1 is ideal).
"""

BOARD_COLUMNS = {"qini": "Qini (norm.)", "auuc": "AUUC (norm.)", "aucc": "AUCC",
                 "calibration_slope": "calibration slope · value", "calibration_slope_cost": "calibration slope · cost"}

st.title("Evaluation")
st.caption("Ranking (Qini, uplift and cost curves), face value (calibration by bins, for the value and the cost "
           "head) and stability, on the out-of-fold predictions of every fitted model.")
cur, log = require_log()
models = require_models(log, "No model has been fitted on this dataset and mapping yet.")

saved = cur.config.get("evaluation_settings", {})
c1, c2 = st.columns(2)
n_bins = c1.slider("Calibration bins", 4, 20, saved.get("bins", 10), help="Deciles by default: equal-sized groups of predicted effect.")
n_boot = c2.select_slider("Bootstrap resamples for the bands", [100, 200, 500, 1000], value=saved.get("boot", 200))
cur.config["evaluation_settings"] = {"bins": n_bins, "boot": n_boot}

results = {k: cached.evaluation(cur.dataset_id, cur.mapping, v["model_id"], n_bins) for k, v in models.items()}
fitted = {k: cached.stored_model(v["model_id"]) for k, v in models.items()}
board = leaderboard(results, fitted, stored_time_splits(cur.config, models),
                    titles={k: model_title(k, m) for k, m in fitted.items()})
best, why = board.best, board.why
cur.config["recommended_model"] = best

tab_board, tab_curves, tab_cal, tab_stab = st.tabs(["Leaderboard", "Curves", "Calibration", "Stability"])

with tab_board:
    shown = board.to_frame().drop(columns="min_events").rename(columns=BOARD_COLUMNS)
    if best is None:
        st.warning(f"**{why[:1].upper()}{why[1:]}.** Allocation can still use a model, but its ranking is not "
                   "supported by this log.", icon=":material/block:")
    else:
        st.success(f"Recommended: **{board.title(best)}** — {why}.", icon=":material/star:")
    shown["stability"] = [f"{v:.2f}" if v is not None and np.isfinite(v) else "not measured" for v in shown["stability"]]
    table(shown)
    st.caption("Averages over offers. Qini: 0 = random, 1 = the curve of a perfect ranking (scikit-uplift's "
               "normalisation). AUUC uses the same reference, which is not the highest possible uplift curve, so it can "
               "exceed 1 (with continuous or rare outcomes); compare models by it, do not read it as a share. "
               "AUCC: 0.5 = random. Calibration slope: 1 = predicted differences are real to scale. "
               "Stability: rank correlation across bootstrap refits or an early/late time split; \"not measured\" "
               "until you fit with bootstrap refits (step 3) or run the time-split check.")
    per_arm = pd.DataFrame([{"model": model_title(k, fitted[k]), "offer": arm, **{m: v for m, v in res.to_dict().items()
                                                                    if not isinstance(v, (list, dict))}}
                            for k, r in results.items() for arm, res in r.arms.items()])
    st.download_button("Download per-offer metrics (CSV)", per_arm.to_csv(index=False).encode(), "evaluation.csv", "text/csv")
    for note in {n for r in results.values() for n in r.notes}:
        st.warning(note)
    for key, model in fitted.items():
        if model.selection_ is not None:
            st.markdown(f"**How {model_title(key, model)} was chosen.** {model.selection_.reason}.")
            table(model.selection_.to_frame())
    with st.expander("How auto chooses a learner (the criteria)"):
        st.markdown(SELECTION_HELP)

with tab_curves:
    arm = st.selectbox("Offer", list(log.treatments), key="eval_arm_curves")
    curves = {model_title(k, fitted[k]): cached.curves(cur.dataset_id, cur.mapping, v["model_id"], arm, n_boot) for k, v in models.items()}
    st.plotly_chart(charts.ranking_curves_figure({k: c["bands"] for k, c in curves.items()}, "qini",
                                                 f"Qini curve · {arm} vs {log.control} ({n_boot} resamples, 95% bands)"))
    st.plotly_chart(charts.ranking_curves_figure({k: c["bands"] for k, c in curves.items()}, "uplift", "Uplift curve"))
    cost = {k: c["cost"] for k, c in curves.items() if c["cost"] is not None}
    if cost:
        st.markdown("**Cost curve**: customers ranked by predicted τ value / τ cost (a direct ranking model: by its "
                    "score); the higher the curve, the more value per unit spent.")
        st.plotly_chart(charts.cost_curves_figure(cost))
        table(pd.DataFrame([{"model": k, "AUCC": c["aucc"]["aucc"], "95% CI low": c["aucc"]["ci_low"],
                             "95% CI high": c["aucc"]["ci_high"]} for k, c in curves.items() if c["aucc"] is not None]))
        st.caption(f"AUCC of {arm} with a percentile bootstrap interval ({n_boot} resamples of the customers). "
                   "0.5 = random targeting; intervals that overlap do not separate two models.")

with tab_cal:
    c1, c2 = st.columns(2)
    model_key = c1.selectbox("Model", list(models), format_func=lambda k: model_title(k, fitted[k]), key="eval_model_cal")
    arm = c2.selectbox("Offer", list(log.treatments), key="eval_arm_cal")
    res = results[model_key].arms[arm]
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.calibration_figure(res.calibration, "Value head"))
    with right:
        if res.calibration_cost is not None:
            st.plotly_chart(charts.calibration_figure(res.calibration_cost, "Cost head"))
        else:
            st.info("The cost head is a constant per offer (or no cost is mapped): nothing to calibrate.")
    table(res.calibration.table)

with tab_stab:
    for key, model in fitted.items():
        bags = model.oof_bags_.get("value") if model.oof_bags_ else None
        if bags is not None and len(bags) >= 2:
            corr = bag_rank_correlation(bags)
            st.markdown(f"**{model_title(key, model)}** — rank correlation across {len(bags)} bootstrap refits: "
                        + ", ".join(f"{a} {c:.2f}" for a, c in zip(model.treatments_, corr)))
        else:
            st.markdown(f"**{model_title(key, model)}** — no bootstrap refits (set them in step 3 to measure this).")
    if log.columns.time:
        key = st.selectbox("Time-split check for", list(models), format_func=lambda k: model_title(k, fitted[k]),
                           key="eval_model_time")
        if st.button("Fit on the early and the late half and compare"):
            params = {**models[key]["params"], "bagging": 0}
            with st.status("Fitting on each half…", expanded=True) as status:
                bar = st.progress(0.0)
                try:
                    split = cached.time_split(cur.dataset_id, cur.mapping, params,
                                              progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
                except UserError as exc:
                    status.update(label="The time-split check could not run", state="error")
                    show_error(exc)
                    st.stop()
                status.update(label="Done", state="complete", expanded=False)
            cur.config.setdefault("time_split", {})[models[key]["model_id"]] = float(np.mean(list(split.correlation.values())))
            st.markdown(f"Split at {split.cut}: {split.n_early:,} early and {split.n_late:,} late rows. Rank correlation "
                        "of the two models' τ value: " + ", ".join(f"{a} {c:.2f}" for a, c in split.correlation.items()))
    else:
        st.caption("Map a decision day column in step 1 for the early/late time-split check.")
