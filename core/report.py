"""The stakeholder report: one self-contained HTML file of a scenario.

Everything in it is computed by the same ``core`` functions the pages and the CLI call, from
the scenario's dataset, mapping and saved choices, so its numbers equal theirs.  Plotly's
JavaScript is embedded once, inline: the file opens offline and loads nothing from outside.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
import plotly.io as pio

from . import charts
from .decision.allocate import Frontier, allocate_fast
from .decision.policy import budget_text, candidates_for_plan
from .decision.summary import plan_summary
from .diagnostics import run_diagnostics
from .diagnostics.overlap import estimate_propensities
from .errors import UserError
from .evaluation import evaluate
from .evaluation.horizon import allocation_long_value
from .evaluation.leaderboard import leaderboard, stored_time_splits
from .format import format_table
from .monitoring.campaign import model_key, monitor_series
from .monitoring.daily import Pacing, Thresholds
from .ope import compare
from .ope.estimators import reward_models
from .schema import ColumnMap, ExperimentLog
from .uplift.names import model_title
from .uplift.persist import load_model

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #2A9D8F;padding-bottom:.2rem}
.muted{color:#666}.light{display:inline-block;padding:.4rem .8rem;border-radius:.4rem;margin:.2rem .4rem .2rem 0}
.green{background:#e6f4ea}.amber{background:#fff4e0}.red{background:#fde8e8}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
"""


def _table(frame: pd.DataFrame) -> str:
    return format_table(frame).to_html(index=False, border=0, na_rep="—")


class _Figures:
    """Embeds Plotly's JavaScript with the first figure only."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        # The charts' tight margins suit the app, whose theme grows them to fit; a standalone
        # page does not, so every axis reserves room for its tick labels and title here.
        fig.update_xaxes(automargin=True)
        fig.update_yaxes(automargin=True)
        fig.update_layout(template="plotly_white")
        out = pio.to_html(fig, full_html=False, include_plotlyjs=self.first, config={"displaylogo": False})
        self.first = False
        return out


def build_report(frame: pd.DataFrame, config: dict, *, workspace=None, title: str = "Uplift Studio report",
                 n_boot: int = 500) -> tuple[str, list[str]]:
    """HTML of the report and the list of its sections.

    Parameters
    ----------
    frame : DataFrame
        The scenario's dataset.
    config : dict
        The scenario's config: ``mapping`` and optionally ``diagnostics``, ``models``,
        ``allocation``, ``policies`` as the pages save them.
    workspace : core.workspace.Workspace, optional
        Needed to load recorded models.
    """
    if "mapping" not in config:
        raise UserError("the scenario has no column mapping; open it on the Data page and save it first")
    log = ExperimentLog.from_frame(frame, ColumnMap.from_dict(config["mapping"]))
    figure = _Figures()
    sections, body = [], []
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body.append(f"<h1>{html.escape(title)}</h1><p class='muted'>{log.n:,} customers · {len(log.labels)} arms · control "
                f"'{html.escape(log.control)}' · generated {stamp}</p>")

    sections.append("data")
    summary = log.arm_summary()
    body.append("<h2>Data</h2>" + _table(summary) + figure(charts.arm_summary_figure(summary)))

    sections.append("diagnostics")
    settings = {"split_mode": "propensity" if log.columns.propensity else "equal", **config.get("diagnostics", {})}
    diagnostics = run_diagnostics(log, settings, None if log.propensity is not None else estimate_propensities(log))
    overlap_result, lights, ro = diagnostics["overlap"], diagnostics["lights"], diagnostics["readout"]
    body.append("<h2>Diagnostics</h2>" + "".join(
        f"<div class='light {l.status}'><b>{l.name}: {l.status}</b><br>{html.escape(l.message)}</div>" for l in lights))
    body.append("<h3>Average effect of each offer</h3>" + _table(ro.effects.drop(columns=["n_arm", "n_control"], errors="ignore"))
                + (_table(ro.cpi) if not ro.cpi.empty else "") + figure(charts.readout_figure(ro)))

    models = {k: v for k, v in config.get("models", {}).items() if v.get("fingerprint") == log.fingerprint}
    loaded, evaluations = {}, {}
    if models and workspace is not None:
        sections.append("models")
        for key, record in models.items():
            loaded[key] = load_model(record["model_id"], workspace)
            evaluations[key] = evaluate(log, loaded[key].oof_)
        board = leaderboard(evaluations, loaded, stored_time_splits(config, models),
                            titles={k: model_title(k, m) for k, m in loaded.items()})
        best, why = board.best, board.why
        verdict = (f"Recommended: <b>{html.escape(board.title(best))}</b> — {html.escape(why)}."
                   if best is not None else f"<b>{html.escape(why[:1].upper() + why[1:])}.</b>")
        body.append(f"<h2>Models</h2><p>{verdict}</p>" + _table(board.to_frame()))
        for key, model in loaded.items():
            if getattr(model, "selection_", None) is not None:
                body.append(f"<p>{html.escape(model_title(key, model))}: {html.escape(model.selection_.reason)}.</p>"
                            + _table(model.selection_.to_frame()))
            if getattr(model, "rank_bins_", None):
                limit = (f"; its selection keeps incremental cost per incremental value ≤ {model.cpi_max_:.4g}"
                         if model.cpi_max_ is not None else "")
                bins = model.rank_bins_frame()
                body.append(f"<p>{html.escape(model_title(key, model))} ranks customers by one learned score per offer"
                            f"{html.escape(limit)}. Its τ value and τ cost are estimated per score bin from the log, with "
                            "95% intervals:</p>"
                            + _table(bins[["offer", "bin", "n_offer", "n_control", "tau_value", "tau_value_low",
                                           "tau_value_high", "tau_cost", "tau_cost_low", "tau_cost_high"]])
                            + figure(charts.rank_bins_figure(model.rank_bins_)))

    allocation = config.get("allocation")
    if allocation and allocation.get("model") in loaded:
        sections.append("allocation")
        candidates = candidates_for_plan(loaded[allocation["model"]].oof_, allocation)
        frontier = Frontier(candidates)
        plan = allocate_fast(candidates, allocation["budget"], log.control, frontier)
        per_offer = plan_summary(plan, candidates)
        cpi = f"{allocation['cpi_max']:g}" if allocation.get("cpi_max") is not None else "none"
        spent = (f"<b>{plan.total_cost:,.0f}</b> offers sent" if allocation.get("cost_basis") == "count"
                 else f"expected cost <b>{plan.total_cost:,.0f}</b>")
        body.append(f"<h2>Allocation</h2><p>{html.escape(budget_text(allocation)).capitalize()}, CPI limit {cpi}: expected "
                    f"incremental value <b>{plan.total_value:,.0f}</b> at {spent} "
                    f"(within {plan.gap:.3%} of the LP bound).</p>" + _table(per_offer)
                    + figure(charts.frontier_figure(
                        frontier.curve(), {"cost": plan.total_cost, "value": plan.total_value, "lambda": plan.lam},
                        cost_title="offers sent" if allocation.get("cost_basis") == "count" else "expected incremental cost (spend)")))
        if log.value_long is not None:
            horizons = {arm: ev.horizon for arm, ev in evaluations[allocation["model"]].arms.items()}
            body.append(f"<p>In the long-horizon unit <code>{html.escape(log.columns.value_long)}</code>: expected incremental "
                        f"value <b>{allocation_long_value(plan, candidates, horizons):,.0f}</b> (each chosen customer's "
                        "effect times the long/short effect ratio of their score bin).</p>"
                        + _table(pd.concat([h.to_frame().assign(offer=a) for a, h in horizons.items()], ignore_index=True)))
        new = config.get("new_customers")
        if new:
            body.append(f"<p>New customers ({html.escape(str(new.get('file', 'uploaded')))}): {new['n']:,} decided with the "
                        f"same setting, {new['offers']:,} offers; <b>{new['cold_start']:,} cold starts</b> got their "
                        "segment's average effects from the readout (no model features, or a segment the model never "
                        "saw) and are flagged in the allocation file.</p>")
        policies_cfg = config.get("policies")
        if policies_cfg:
            sections.append("policies")
            propensity = log.propensity if log.propensity is not None else overlap_result.propensity
            q_value, q_cost = reward_models(log)
            candidates_ = [compare.no_offer(log), compare.from_allocation(log, plan.choice, candidates.arms, "model policy"),
                           *[compare.treat_all(log, a) for a in log.treatments]]
            if log.propensity is not None:
                candidates_.append(compare.logging_policy(log, propensity))
            estimators = policies_cfg.get("estimators") or ["ips", "dr"]
            rows, warnings = [], []
            for policy in candidates_:
                result = compare.evaluate_policy(log, policy, propensity, q_value, q_cost, estimators=estimators,
                                                 clip=policies_cfg.get("clip"), n_boot=n_boot)
                rows += [{"estimator": e, **result.row(e)} for e in estimators]
                warnings += result.warnings
            table = pd.DataFrame(rows)
            shown = "dr" if "dr" in estimators else estimators[0]
            body.append("<h2>Policy comparison (off-policy)</h2>" + _table(table)
                        + figure(charts.policies_figure(table[table["estimator"] == shown], shown))
                        + "".join(f"<p class='warning'>{html.escape(w)}</p>" for w in warnings))

    monitoring = config.get("monitoring") or {}
    if monitoring.get("series") and workspace is not None and workspace.series_info(monitoring["series"]):
        sections.append("monitoring")
        chosen = model_key(config, loaded)
        campaign = monitor_series(workspace, monitoring["series"], frame, loaded[chosen] if chosen else None,
                                  thresholds=Thresholds(**monitoring.get("thresholds", {})),
                                  pacing=Pacing(**monitoring["pacing"]) if monitoring.get("pacing") else None)
        result = campaign.result
        alerts = result.alerts_frame()
        body.append(f"<h2>Monitoring: {html.escape(monitoring['series'])}</h2><p>{len(result.days)} day(s) from "
                    f"{result.days[0]['day']} to {result.days[-1]['day']}, {sum(d['n'] for d in result.days):,} customers; "
                    + (f"<b>{len(alerts)} alert(s)</b>, the first on {alerts['day'].min()}.</p>" if len(alerts)
                       else "no alert under the thresholds set.</p>")
                    + (_table(alerts[["day", "kind", "subject", "message"]]) if len(alerts) else "")
                    + figure(charts.monitor_volume_figure(result))
                    + (figure(charts.monitor_psi_figure(result)) if result.features else ""))
        calibration = result.calibration_frame()
        if not calibration.empty:
            body.append("<p>Observed uplift on the randomised customers against the model's prediction, per day:</p>"
                        + figure(charts.monitor_calibration_figure(calibration)))

    html_text = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                 f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    return html_text, sections
