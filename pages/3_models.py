"""Step 3 · Models: value and cost uplift for every offer, cross-fitted."""

import pandas as pd
import streamlit as st

import ui
from core import charts
from core.errors import UserError
from core.uplift.direct_ranking import SCORERS
from core.uplift.model import AUTO_CF_MAX_ROWS
from core.uplift.names import LEARNERS, RANKERS, model_title, tuning_frame
from ui import cached, state
from ui.labels import LEARNER_CHOICES, TUNING
from ui.widgets import require_log, show_error, table

ui.page_setup()

st.title("Models")
st.caption("For every customer and offer: the extra value the offer brings (τ value) and the extra cost it "
           "causes (τ cost), each from its own model. Every prediction is out-of-fold: a customer is scored "
           "by models that never saw them.")
cur, log = require_log()
saved = cur.config.get("model_settings", {})
if (cur.source or "").startswith("spark:"):
    st.info(f"This log was read on Spark. Models are fitted on this machine, on the {log.n:,} rows the Data page kept; "
            "scoring every customer runs on Spark with `python -m core predict --engine spark`.", icon=":material/info:")

c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
learners = c1.multiselect("Learners", LEARNER_CHOICES, default=saved.get("learners", ["auto"]), format_func=LEARNERS.get,
                          help="Auto (the default) fits the S-, T-, X- and DR-learners in one pass (and the causal forest "
                          f"on logs of up to {AUTO_CF_MAX_ROWS:,} rows) and keeps the one with the lowest doubly robust "
                          "loss on out-of-fold predictions; step 4 explains the criteria. Add others to compare them.")
folds = c2.slider("Cross-fitting folds", 2, 10, saved.get("folds", 5))
bagging = c3.number_input("Bootstrap refits per fold", 0, 10, saved.get("bagging", 0),
                          help="0 = off. Refits on resamples give the stability checks of step 4; each costs a full fit.")
by_segment = c4.toggle("One model per segment", value=saved.get("by_segment", False), disabled=not log.columns.segment,
                       help="Needs a segment column (e.g. lifecycle) with at least 50 customers per offer in every segment.")
tuning = st.radio("LightGBM complexity", list(TUNING), index=list(TUNING).index(saved.get("tuning", "auto")),
                  format_func=TUNING.get, horizontal=True,
                  help="Chosen from the data: per head (value, cost) and fold, three settings from regularised to "
                  "flexible are tried on half of the training rows and scored on the other half; the number of trees "
                  "comes from early stopping. The rows a model is evaluated on are never used to choose.")
ranking = {}
if any(learner in RANKERS for learner in learners):
    r1, r2 = st.columns(2)
    ranking["ranking_scorer"] = r1.selectbox(
        "Direct ranking: scorer", list(SCORERS), index=list(SCORERS).index(saved.get("ranking_scorer", "lightgbm")),
        format_func=SCORERS.get, help="The model behind the ranking score. LightGBM (the default) ranked best on the "
        "benchmark's simulators; the linear and MLP scorers are faster and smoother.")
    if "cdrm" in learners:
        typed = r2.number_input("Constrained ranking: CPI limit (0 = the offers' average)", min_value=0.0,
                                value=float(saved.get("cpi_max") or 0.0), format="%.4g",
                                help="The incremental cost per unit of incremental value the ranking's selection must "
                                "keep to. 0 takes the median of the offers' average CPI in this log.")
        ranking["cpi_max"] = typed or None
    st.caption("Direct ranking learns one score per offer that puts the customers with the most incremental value per "
               "incremental cost first (Du et al., 2019; arXiv 2507.05510), then estimates τ value and τ cost per score "
               "bin from the log. Bootstrap refits and per-segment models do not apply to it.")
cur.config["model_settings"] = {"learners": learners, "folds": folds, "bagging": int(bagging), "by_segment": by_segment,
                                "tuning": tuning, **ranking}

cost_note = {"column": f"a model of '{log.columns.cost}'", "constant": "the constant cost per arm (no model needed)"}
st.caption(f"Value head: a model of '{log.columns.value}'. Cost head: "
           + cost_note.get("column" if log.columns.cost else "constant" if log.columns.action_cost else "", "none (no cost mapped)") + ".")

blockers = state.fit_blockers(log.fingerprint)
if blockers:
    st.error("Fitting is blocked. " + " ".join(blockers), icon=":material/block:")
    st.page_link("pages/2_diagnostics.py", label="Go to step 2 · Diagnostics", icon=":material/arrow_back:")
fit = st.button("Fit models", type="primary", disabled=bool(blockers) or not learners)

fitted = dict(cur.config.get("models", {}))
if fit:
    for learner in learners:
        params = {"learner": learner, "folds": folds, "bagging": int(bagging), "by_segment": by_segment, "tuning": tuning}
        if learner in RANKERS:
            params.update(bagging=0, by_segment=False, ranking_scorer=ranking["ranking_scorer"],
                          cpi_max=ranking.get("cpi_max") if learner == "cdrm" else None)
        with st.status(f"Fitting the {LEARNERS[learner]}…", expanded=True) as status:
            bar = st.progress(0.0, text="starting")
            try:
                model, model_id, reused = cached.fit_model(cur.dataset_id, cur.mapping, params, scenario_id=cur.scenario_id,
                                                   progress=lambda f, msg: bar.progress(min(f, 1.0), text=msg))
            except UserError as exc:
                status.update(label=f"{LEARNERS[learner]} could not be fitted", state="error")
                show_error(exc)
                continue
            bar.progress(1.0, text="done")
            done = (f"{model_title(learner, model)}: already fitted with these settings (that fit took "
                    f"{model.report_.seconds:.1f} s) — reused, nothing refitted" if reused
                    else f"{model_title(learner, model)} fitted in {model.report_.seconds:.1f} s")
            status.update(label=done, state="complete", expanded=False)
        for note in model.report_.notes:
            st.warning(f"{model_title(learner, model)}: {note}.")
        fitted[learner] = {"model_id": model_id, "params": params, "fingerprint": log.fingerprint}
    cur.config["models"] = fitted

current = state.fitted_models(log.fingerprint)
if not current:
    st.info("No model fitted on this dataset and mapping yet.")
    st.stop()

models = {k: cached.stored_model(v["model_id"]) for k, v in current.items()}
readout = cached.diagnostics(cur.dataset_id, cur.mapping, cur.config.get("diagnostics") or {}).get("readout")

st.subheader("Fitted models")
rows = []
for key, model in models.items():
    row = {"learner": model_title(key, model), "seconds": round(model.report_.seconds, 1), "folds": model.report_.folds,
           "bagging": model.report_.bagging, "segments": len(model.report_.segments), "model id": current[key]["model_id"]}
    for head, info in model.report_.tuning.items():
        row[f"complexity · {head}"] = info["chosen"]
    for arm in model.treatments_:
        row[f"mean τ value · {arm}"] = model.oof_[f"tau_value__{arm}"].mean()
    rows.append(row)
board = pd.DataFrame(rows)
table(board)
for key, model in models.items():
    if model.selection_ is not None:
        name = LEARNERS[model.learner_]
        st.info(f"**Auto chose the {name}:** {model.selection_.reason.removeprefix(name + ': ')}.", icon=":material/star:")
        with st.expander("Every candidate auto scored"):
            table(model.selection_.to_frame())
            for learner, why in model.selection_.skipped.items():
                st.caption(f"{LEARNERS[learner]} not scored: {why}.")
            st.caption("Step 4 · Evaluation explains the criteria.")
rankers = {k: m for k, m in models.items() if k in RANKERS}
for key, model in rankers.items():
    limit = f" with incremental cost per incremental value ≤ {model.cpi_max_:.4g}" if model.cpi_max_ is not None else ""
    st.markdown(f"**{model_title(key, model)}** ({SCORERS[model.ranking_scorer]} scorer{limit}): τ value and τ cost "
                "estimated per bin of the out-of-fold ranking score, with 95% intervals. Allocation, policies and the "
                "report use these; step 4 ranks customers by the score itself.")
    st.plotly_chart(charts.rank_bins_figure(model.rank_bins_), key=f"rank_bins_{key}")
    with st.expander(f"{model_title(key, model)}: effects per score bin (table)"):
        table(model.rank_bins_frame()[["offer", "bin", "score_low", "score_high", "n_offer", "n_control", "tau_value",
                                       "tau_value_low", "tau_value_high", "tau_cost", "tau_cost_low", "tau_cost_high"]])
with st.expander("LightGBM complexity chosen per head and fold"):
    table(tuning_frame(models))
    st.caption("regularised: 7 leaves, ≥ 200 customers per leaf, strong L2 · balanced: 15 leaves, ≥ 50 · flexible: "
               "LightGBM's defaults (31 leaves, ≥ 20). Leaf minimums shrink on small folds. Trees: early stopping.")
if readout is not None:
    effects = readout.effects.query("outcome == 'value'").set_index("arm")["effect"]
    st.caption("Sanity check: the mean predicted τ value of each offer should sit near the readout's average effect ("
               + ", ".join(f"{a}: {v:.3g}" for a, v in effects.items()) + "). Step 4 ranks the models properly.")

choice = st.selectbox("Show predictions of", list(models), format_func=lambda k: model_title(k, models[k]))
model = models[choice]
st.plotly_chart(charts.uplift_distribution_figure(model.oof_, model.treatments_))
download = model.oof_.copy()
download.insert(0, "id", log.ids)
st.download_button("Download out-of-fold predictions (CSV)", download.to_csv(index=False).encode(),
                   f"predictions_{choice}.csv", "text/csv")
