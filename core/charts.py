"""Plotly figures built from result objects.  No statistics are computed here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .format import format_number

PALETTE = ["#5B6770", "#2A9D8F", "#E9C46A", "#F4A261", "#E76F51", "#264653", "#8AB17D", "#B56576"]


def arm_colors(labels) -> dict[str, str]:
    """One stable colour per arm, the control grey."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def arm_summary_figure(summary: pd.DataFrame) -> go.Figure:
    """Bars of customers per arm and of mean value (and mean cost) per arm.

    ``summary`` is :meth:`core.schema.ExperimentLog.arm_summary`'s frame, control first.
    """
    has_cost = "mean_cost" in summary
    titles = ["Customers per arm", "Mean value per customer"] + (["Mean cost per customer"] if has_cost else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    colors = list(arm_colors(summary["arm"]).values())
    fig.add_bar(x=summary["arm"], y=summary["n"], marker_color=colors, row=1, col=1,
                hovertemplate="%{x}: %{y:,} customers<extra></extra>")
    if "mean_value" in summary:
        fig.add_bar(x=summary["arm"], y=summary["mean_value"], marker_color=colors, row=1, col=2,
                    hovertemplate="%{x}: %{y:.4g}<extra></extra>")
    if has_cost:
        fig.add_bar(x=summary["arm"], y=summary["mean_cost"], marker_color=colors, row=1, col=3,
                    hovertemplate="%{x}: %{y:.4g}<extra></extra>")
    fig.update_layout(showlegend=False, height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def readout_figure(readout) -> go.Figure:
    """Average effect of each offer on value (and cost) with its confidence interval."""
    effects = readout.effects
    outcomes = list(dict.fromkeys(effects["outcome"]))
    fig = make_subplots(rows=1, cols=len(outcomes), subplot_titles=[f"Effect on {o}" for o in outcomes])
    level = f"{1 - readout.alpha:.0%}"
    for col, outcome in enumerate(outcomes, start=1):
        part = effects[effects["outcome"] == outcome]
        fig.add_scatter(x=part["effect"], y=part["arm"], mode="markers", marker=dict(size=11, color=PALETTE[1]),
                        error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["effect"],
                                     arrayminus=part["effect"] - part["ci_low"]),
                        name=outcome, row=1, col=col,
                        hovertemplate="%{y}: %{x:.4g}<extra>" + level + " interval</extra>")
        fig.add_vline(x=0, line_dash="dot", line_color="#888", row=1, col=col)
    fig.update_layout(showlegend=False, height=120 + 45 * effects["arm"].nunique(), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def srm_figure(srm_result) -> go.Figure:
    """Observed against intended share per arm; and, with days, the cumulative p-value."""
    o = srm_result.overall
    labels = list(o.observed)
    has_days = bool(srm_result.cumulative)
    fig = make_subplots(rows=1, cols=2 if has_days else 1,
                        subplot_titles=["Observed vs intended share"] + (["Cumulative p-value by day"] if has_days else []))
    fig.add_bar(x=labels, y=[o.observed[l] / o.n for l in labels], name="observed", marker_color=PALETTE[1], row=1, col=1)
    fig.add_bar(x=labels, y=[srm_result.weights[l] for l in labels], name="intended", marker_color="#BBBBBB", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    if has_days:
        days = list(srm_result.cumulative)
        fig.add_scatter(x=days, y=[srm_result.cumulative[d].p_value for d in days], mode="lines+markers",
                        name="cumulative p", marker_color=PALETTE[4], row=1, col=2)
        fig.add_hline(y=srm_result.alpha, line_dash="dash", line_color=PALETTE[4], row=1, col=2,
                      annotation_text=f"α = {srm_result.alpha:g}")
        fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def love_plot(balance_result) -> go.Figure:
    """Absolute SMD per feature and arm, raw and (when available) after weighting."""
    frame = balance_result.to_frame()
    order = frame.groupby("feature")["smd"].apply(lambda s: s.abs().max()).sort_values().index.tolist()
    fig = go.Figure()
    symbols = ["circle", "diamond", "square", "triangle-up", "x", "star"]
    for i, arm in enumerate(dict.fromkeys(frame["arm"])):
        part = frame[frame["arm"] == arm].set_index("feature").reindex(order)
        fig.add_scatter(x=part["smd"].abs(), y=order, mode="markers", name=f"{arm} (raw)",
                        marker=dict(symbol=symbols[i % len(symbols)], color=PALETTE[4], size=8))
        if "smd_weighted" in part:
            fig.add_scatter(x=part["smd_weighted"].abs(), y=order, mode="markers", name=f"{arm} (weighted)",
                            marker=dict(symbol=symbols[i % len(symbols)], color=PALETTE[1], size=8))
    fig.add_vline(x=balance_result.threshold, line_dash="dash", line_color="#888",
                  annotation_text=f"|SMD| = {balance_result.threshold}")
    fig.update_layout(xaxis_title="|standardised mean difference|", height=160 + 18 * len(order),
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def propensity_histograms(overlap_result) -> go.Figure:
    """Distribution of each arm's propensities, with the clip ε marked."""
    fig = go.Figure()
    colors = arm_colors(overlap_result.labels)
    for label in overlap_result.labels:
        values = overlap_result.propensity[overlap_result.action == label]
        fig.add_histogram(x=values, name=label, opacity=0.6, marker_color=colors[label], nbinsx=50,
                          histnorm="probability")
    fig.add_vline(x=overlap_result.clip, line_dash="dash", line_color=PALETTE[4],
                  annotation_text=f"clip ε = {overlap_result.clip:g}")
    fig.update_layout(barmode="overlay", xaxis_title=f"{overlap_result.propensity_source} propensity of the logged arm",
                      yaxis_title="share of the arm's rows", height=340, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def uplift_distribution_figure(predictions: pd.DataFrame, arms, sample: int = 4000, seed: int = 0) -> go.Figure:
    """Per offer: the distribution of predicted τ value, and τ value against τ cost."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Predicted τ value per customer", "τ value against τ cost (sample)"])
    colors = arm_colors(["(control)", *arms])
    shown = predictions.sample(min(sample, len(predictions)), random_state=seed)
    for arm in arms:
        fig.add_histogram(x=predictions[f"tau_value__{arm}"], name=arm, opacity=0.55, nbinsx=60,
                          marker_color=colors[arm], legendgroup=arm, row=1, col=1)
        fig.add_scatter(x=shown[f"tau_cost__{arm}"], y=shown[f"tau_value__{arm}"], mode="markers", name=arm,
                        marker=dict(size=4, opacity=0.4, color=colors[arm]), legendgroup=arm, showlegend=False, row=1, col=2)
    fig.add_vline(x=0, line_dash="dot", line_color="#888", row=1, col=1)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=1, col=2)
    fig.update_xaxes(title_text="τ value", row=1, col=1)
    fig.update_xaxes(title_text="τ cost", row=1, col=2)
    fig.update_yaxes(title_text="τ value", row=1, col=2)
    fig.update_layout(barmode="overlay", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def rank_bins_figure(bins: dict) -> go.Figure:
    """A ranking model's effects per score bin (τ value and τ cost with 95% intervals), per offer.

    ``bins`` maps an offer to :func:`core.uplift.direct_ranking.rank_bins` output.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["τ value per score bin", "τ cost per score bin"])
    colors = arm_colors(["(control)", *bins])
    for arm, table in bins.items():
        for col, head in ((1, "value"), (2, "cost")):
            fig.add_scatter(x=table["score_mid"], y=table[f"tau_{head}"], mode="markers+lines", name=arm,
                            legendgroup=arm, showlegend=col == 1, marker=dict(size=8, color=colors[arm]),
                            error_y=dict(type="data", symmetric=False, array=table[f"tau_{head}_high"] - table[f"tau_{head}"],
                                         arrayminus=table[f"tau_{head}"] - table[f"tau_{head}_low"]),
                            row=1, col=col)
            fig.update_xaxes(title_text="ranking score (percentile)", tickformat=".0%", row=1, col=col)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=1, col=1)
    fig.update_yaxes(title_text="τ value", row=1, col=1)
    fig.update_yaxes(title_text="τ cost", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def ranking_curves_figure(curves: dict, kind: str = "qini", title: str | None = None) -> go.Figure:
    """Qini or uplift curves of several models for one arm, with bootstrap bands and the random line.

    ``curves`` maps a model name to :func:`core.evaluation.curves.curve_bands` output.
    """
    fig = go.Figure()
    colors = PALETTE[1:]
    for i, (name, bands) in enumerate(curves.items()):
        x = np.r_[0.0, bands["fraction"]]
        color = colors[i % len(colors)]
        low, high = np.r_[0.0, bands[f"{kind}_low"]], np.r_[0.0, bands[f"{kind}_high"]]
        fig.add_scatter(x=np.r_[x, x[::-1]], y=np.r_[high, low[::-1]], fill="toself", fillcolor=color, opacity=0.18,
                        line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=name)
        fig.add_scatter(x=x, y=np.r_[0.0, bands[kind]], mode="lines", name=name, line=dict(color=color, width=2), legendgroup=name)
        end = bands[kind][-1]
    fig.add_scatter(x=[0, 1], y=[0, end], mode="lines", name="random targeting", line=dict(color="#888", dash="dash"))
    fig.update_layout(title=title, xaxis_title="share of customers targeted (highest score first)", xaxis_tickformat=".0%",
                      yaxis_title="Qini: incremental outcome" if kind == "qini" else "uplift × customers",
                      height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def cost_curves_figure(curves: dict) -> go.Figure:
    """Cost curves (share of incremental cost spent vs share of incremental value won)."""
    fig = go.Figure()
    for i, (name, (x, y)) in enumerate(curves.items()):
        fig.add_scatter(x=x, y=y, mode="lines", name=name, line=dict(color=PALETTE[1:][i % (len(PALETTE) - 1)], width=2))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="random (AUCC 0.5)", line=dict(color="#888", dash="dash"))
    fig.update_layout(xaxis_title="share of incremental cost", yaxis_title="share of incremental value",
                      xaxis_tickformat=".0%", yaxis_tickformat=".0%", height=380, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h"))
    return fig


def calibration_figure(calibration, title: str) -> go.Figure:
    """Observed uplift (with interval) against mean prediction per bin, and the diagonal."""
    table = calibration.table.dropna(subset=["observed"])
    fig = go.Figure()
    fig.add_scatter(x=table["predicted"], y=table["observed"], mode="markers+lines", name="observed",
                    marker=dict(size=9, color=PALETTE[1]),
                    error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["observed"],
                                 arrayminus=table["observed"] - table["ci_low"]),
                    hovertemplate="bin %{text}: predicted %{x:.3g}, observed %{y:.3g}<extra></extra>",
                    text=table["bin"].astype(str))
    if len(table):
        lo = float(min(table["predicted"].min(), table["ci_low"].min()))
        hi = float(max(table["predicted"].max(), table["ci_high"].max()))
        fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect calibration", line=dict(color="#888", dash="dash"))
    slope = calibration.slope
    fig.update_layout(title=f"{title} — slope {slope:.2f}" if np.isfinite(slope) else title,
                      xaxis_title="mean predicted effect in the bin", yaxis_title="observed effect (arm − control)",
                      height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def frontier_figure(curve: pd.DataFrame, chosen: dict, exact_point: dict | None = None,
                    cost_title: str = "expected incremental cost (spend)") -> go.Figure:
    """Incremental value against incremental cost along the budget frontier, the chosen plan
    marked with its marginal cost per incremental value (1/λ).  ``cost_title`` names the x axis
    (e.g. "offers sent" for a count budget)."""
    fig = go.Figure()
    fig.add_scatter(x=curve["cost"], y=curve["value"], mode="lines", name="best plan for each budget",
                    line=dict(color=PALETTE[1], width=3), hovertemplate="cost %{x:,.0f} → value %{y:,.0f}<extra></extra>")
    marginal = 1.0 / chosen["lambda"] if chosen.get("lambda") else float("inf")
    label = f"chosen: cost {format_number(chosen['cost'])}, value {format_number(chosen['value'])}" + (
        f"<br>marginal CPI {marginal:.3g}" if np.isfinite(marginal) else "")
    # The frontier is concave: below-right of a point (and above-left of it) is empty space, so
    # the label never covers the curve and stays inside the plot at either end.
    end = float(curve["cost"].max()) if len(curve) else 0.0
    position = "bottom right" if chosen["cost"] <= 0.6 * end else "top left"
    fig.add_scatter(x=[chosen["cost"]], y=[chosen["value"]], mode="markers+text", name="chosen budget", cliponaxis=False,
                    marker=dict(size=14, color=PALETTE[4]), text=[label], textposition=position)
    if exact_point:
        fig.add_scatter(x=[exact_point["cost"]], y=[exact_point["value"]], mode="markers", name="exact check",
                        marker=dict(size=10, symbol="x", color=PALETTE[5]))
    fig.update_layout(xaxis_title=cost_title, yaxis_title="expected incremental value",
                      height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def policies_figure(table: pd.DataFrame, estimator: str) -> go.Figure:
    """Each policy's incremental value against its incremental cost over no offer, with intervals."""
    fig = go.Figure()
    has_cost = "cost_increment" in table and table["cost_increment"].notna().any()
    # without a cost, how many customers a policy sends offers to is what it spends
    x_column = "cost_increment" if has_cost else "offer_share" if "offer_share" in table else None
    x = table[x_column].reset_index(drop=True) if x_column else pd.Series(np.zeros(len(table)))
    for i, row in table.reset_index(drop=True).iterrows():
        fig.add_scatter(x=[x.iloc[i]], y=[row["increment"]], mode="markers+text", name=row["policy"],
                        text=[row["policy"]], textposition="top center", marker=dict(size=12, color=PALETTE[(i + 1) % len(PALETTE)]),
                        error_y=dict(type="data", symmetric=False, array=[row["increment_high"] - row["increment"]],
                                     arrayminus=[row["increment"] - row["increment_low"]]), showlegend=False)
    fig.add_hline(y=0, line_dash="dot", line_color="#888")
    fig.update_layout(title=f"Increment over no offer per customer ({estimator.upper()}, 95% intervals)",
                      xaxis_title={"cost_increment": "incremental cost per customer",
                                   "offer_share": "share of customers sent an offer"}.get(x_column, ""),
                      yaxis_title="incremental value per customer",
                      height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


# --- monitoring ------------------------------------------------------------------------------------

def monitor_volume_figure(result) -> go.Figure:
    """Sends per arm per day, and spend per day with the pacing plan when one is set."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Customers per arm per day", "Cumulative spend"])
    days = [d["day"] for d in result.days]
    arms = list(result.days[0]["counts"]) if result.days else []
    colors = arm_colors(arms)
    for arm in arms:
        fig.add_scatter(x=days, y=[d["counts"][arm] for d in result.days], mode="lines+markers", name=arm,
                        line=dict(color=colors[arm]), row=1, col=1)
    spend = [d.get("spend") for d in result.days]
    if all(s is not None for s in spend):
        fig.add_scatter(x=days, y=np.cumsum(spend), mode="lines+markers", name="spent", line=dict(color=PALETTE[5], width=3),
                        row=1, col=2)
    if result.days and "pacing" in result.days[0]:
        fig.add_scatter(x=days, y=[d["pacing"]["planned"] for d in result.days], mode="lines", name="pacing plan",
                        line=dict(color="#888", dash="dash"), row=1, col=2)
        if result.days[0]["pacing"]["liability"] is not None:
            fig.add_scatter(x=days, y=[d["pacing"]["spent"] + d["pacing"]["liability"] for d in result.days], mode="lines",
                            name="spent + outstanding", line=dict(color=PALETTE[4], dash="dot"), row=1, col=2)
    fig.update_xaxes(type="category")  # one tick per day, not the hours of a time axis
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def monitor_psi_figure(result, bands=(0.1, 0.25)) -> go.Figure:
    """PSI of every feature per day against the training log, with the usual bands."""
    table = result.series("psi")
    fig = go.Figure()
    for i, feature in enumerate(table.columns):
        fig.add_scatter(x=table.index, y=table[feature], mode="lines+markers", name=feature,
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    for level, label in zip(bands, ("moderate shift", "major shift")):
        fig.add_hline(y=level, line_dash="dash", line_color="#888", annotation_text=f"{label} ({level:g})")
    fig.update_xaxes(type="category")
    fig.update_layout(yaxis_title="PSI against the training log", height=360, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h"))
    return fig


def monitor_calibration_figure(frame: pd.DataFrame, head: str = "value") -> go.Figure:
    """Per offer and day: observed uplift on the randomised customers (95% interval) against the
    model's mean prediction for them (``Monitoring.calibration_frame`` output)."""
    offers = list(dict.fromkeys(frame["offer"]))
    fig = make_subplots(rows=1, cols=max(len(offers), 1), subplot_titles=offers, shared_yaxes=True)
    colors = arm_colors(["(control)", *offers])
    for i, offer in enumerate(offers, start=1):
        part = frame[frame["offer"] == offer]
        fig.add_scatter(x=part["day"], y=part["observed"], mode="markers", name=f"{offer} observed", showlegend=i == 1,
                        marker=dict(size=8, color=colors[offer]), legendgroup="observed",
                        error_y=dict(type="data", symmetric=False, array=part["ci_high"] - part["observed"],
                                     arrayminus=part["observed"] - part["ci_low"]), row=1, col=i)
        fig.add_scatter(x=part["day"], y=part["predicted"], mode="lines", name="predicted", showlegend=i == 1,
                        line=dict(color="#555", dash="dash"), legendgroup="predicted", row=1, col=i)
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=f"τ {head} (observed vs predicted)", row=1, col=1)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig
