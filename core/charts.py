"""Plotly figures built from result objects.  No statistics are computed here."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
