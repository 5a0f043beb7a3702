"""Every metric of every offer against control, from partials over batches of rows.

The log carries each row's predictions as columns (``tau_value__<arm>``, ``tau_cost__<arm>``,
``score__<arm>``: joined by the engine, :meth:`core.engines.base.Engine.join`).  Four passes,
each a partial that adds up over any split of the rows:

A. counts: rows and outcome events per arm, the predictions' missing values and ranges, the
   propensities' range (are the metrics weighted?);
B. per arm, the sums per distinct score (:class:`~core.evaluation.curves.ScoreGroups`) of the
   ranking, of the ideal rankings the normalised areas divide by, of the cost ranking, and of the
   predicted τ for the calibration bins;
C. per calibration bin, each arm's rows, Σw and Σw·y (its Hájek mean) and Σ of the prediction;
D. per bin, Σw²(y − mean)² (the variance of that mean).

On one batch (the local engine) every sum is the one the array functions of
:mod:`~core.evaluation.curves` and :mod:`~core.evaluation.calibration` compute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..engines.base import Extremes, Sums
from ..errors import UserError
from .calibration import Calibration, bin_row, bins_from_counts, calibration_from_rows
from .horizon import horizon_ratios
from .results import MIN_EVENTS, TOP_FRACTIONS, ArmEvaluation, Evaluation
from .curves import (ScoreGroups, _area, _normalised, cost_curve_from_groups, cost_ranking, finite_ranking,
                     perfect_uplift_score, qini_from_groups, uplift_at_top_from_groups, uplift_from_groups)



def _arm_rows(batch, arm: str):
    action = batch.action
    rows = (action == arm) | (action == batch.control)
    return rows, (action[rows] == arm).astype(int)


def _column(batch, name: str) -> np.ndarray:
    return pd.to_numeric(batch.frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def counts_pass(batch, arms, has_cost_column: dict, value_columns: dict) -> Extremes:
    """Pass A over a batch (see module docstring)."""
    out = Extremes()
    p = batch.propensity
    out[("low", "p")], out[("high", "p")] = ((-float(p.min()), float(p.max())) if p is not None and len(p)
                                             else (-np.inf, -np.inf))
    positions = batch.positions
    for arm in arms:
        rows, t = _arm_rows(batch, arm)
        y = batch.value[rows]
        out[("treated", arm)] = int(t.sum())
        out[("events_t", arm)] = int(np.count_nonzero(y[t == 1]))
        out[("events_c", arm)] = int(np.count_nonzero(y[t == 0]))
        out[("control_responders", arm)] = int(np.sum((y == 1) & (t == 0)))
        out[("treated_non_responders", arm)] = int(np.sum((y == 0) & (t == 1)))
        score = _column(batch, value_columns[arm])
        bad = np.isnan(score)
        out[("bad", arm)] = int(bad.sum())
        out[("low", "first_bad", arm)] = -float(positions[np.flatnonzero(bad)[0]]) if bad.any() else -np.inf
        if has_cost_column[arm]:
            cost = _column(batch, f"tau_cost__{arm}")
            out[("cost_missing", arm)] = int(np.isnan(cost).sum())
            inside = cost[rows]
            inside = inside[~np.isnan(inside)]
            out[("low", "cost", arm)] = -float(inside.min()) if len(inside) else -np.inf
            out[("high", "cost", arm)] = float(inside.max()) if len(inside) else -np.inf
    return out


def _weights(batch, weighted: bool) -> np.ndarray | None:
    return 1.0 / batch.propensity if weighted else None


def groups_pass(batch, plans: dict, weighted: bool) -> dict:
    """Pass B over a batch: per arm, the :class:`ScoreGroups` its plan asks for."""
    w_all = _weights(batch, weighted)
    out = {}
    for arm, plan in plans.items():
        rows, t = _arm_rows(batch, arm)
        t = t.astype(float)
        y = batch.value[rows]
        w = None if w_all is None else w_all[rows]
        rank = _column(batch, plan["rank"])[rows]
        out[(arm, "rank")] = ScoreGroups.of(y, rank, t, w)
        out[(arm, "perfect_qini")] = ScoreGroups.of(y, y * t - y * (1 - t), t, w)
        out[(arm, "perfect_uplift")] = ScoreGroups.of(y, perfect_uplift_score(y, t, plan["summand_is_y"]).astype(float), t, w)
        if plan["cost_rank"] is not None:
            cost_rank = (_column(batch, plan["cost_rank"]) if plan["cost_rank"] != "ratio" else
                         cost_ranking(_column(batch, f"tau_value__{arm}"), _column(batch, f"tau_cost__{arm}")))
            out[(arm, "cost")] = ScoreGroups.of(y, finite_ranking(cost_rank[rows]), t, w, extra=[batch.cost[rows]])
        for head, column in plan["calibration"].items():
            out[(arm, "bins", head)] = ScoreGroups.of(y, _column(batch, column)[rows], t, w)
    return Sums(out)


def _bin_of(score: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.maximum(np.searchsorted(starts, score, side="right") - 1, 0)


def bins_pass(batch, bins: dict, weighted: bool, means: dict | None = None) -> Sums:
    """Pass C (``means`` None) or D over a batch: per arm, head and calibration bin, each arm
    side's rows, Σw, Σw·y and Σ prediction, or Σw²(y − mean)²."""
    w_all = _weights(batch, weighted)
    out = Sums()
    for (arm, head), (column, starts, n_bins) in bins.items():
        rows, t = _arm_rows(batch, arm)
        y = (batch.value if head == "value" else batch.cost)[rows]
        w = np.ones(int(rows.sum())) if w_all is None else w_all[rows]
        score = _column(batch, column)[rows]
        which = _bin_of(score, starts)
        for b in range(n_bins):
            in_bin = which == b
            for side, mask in (("t", in_bin & (t == 1)), ("c", in_bin & (t == 0))):
                if means is None:
                    out[(arm, head, b, side)] = np.array([mask.sum(), w[mask].sum(), (w[mask] * y[mask]).sum()])
                else:
                    out[(arm, head, b, side)] = np.array([(w[mask] ** 2 * (y[mask] - means[(arm, head, b, side)]) ** 2).sum()])
            if means is None:
                out[(arm, head, b, "score")] = np.array([in_bin.sum(), score[in_bin].sum()])
    return out


def _calibration(arm: str, head: str, n_bins: int, first: Sums, second: Sums, alpha: float) -> Calibration:
    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for b in range(n_bins):
        n_in, score_sum = first[(arm, head, b, "score")]
        moments = []
        for side in ("t", "c"):
            n, total, weighted_sum = first[(arm, head, b, side)]
            n = int(n)
            if n < 2:
                moments.append(None)
                continue
            var = float(second[(arm, head, b, side)][0] / total**2) * (n / (n - 1))
            moments.append((float(weighted_sum / total), var))
        n_t, n_c = int(first[(arm, head, b, "t")][0]), int(first[(arm, head, b, "c")][0])
        rows.append(bin_row(b, n_t, n_c, float(score_sum / n_in) if n_in else float("nan"), *moments, z))
    return calibration_from_rows(rows)


def _bin_plan(groups: ScoreGroups, column: str, n_bins: int) -> tuple[str, np.ndarray, int]:
    """The calibration bins of one prediction: equal counts, ties in one bin
    (:func:`~core.evaluation.calibration.bins_from_counts`), as the lowest score of each bin; a
    bin a tie skipped starts where the next one does, so no row falls in it."""
    counts = groups.sums[::-1, 0]  # ascending scores
    n_bins = max(int(min(n_bins, len(counts))), 1)
    of_group = bins_from_counts(counts, n_bins)
    scores = groups.scores[::-1]
    starts = np.full(n_bins, np.inf)
    for b in range(n_bins - 1, -1, -1):
        inside = scores[of_group == b]
        starts[b] = inside.min() if len(inside) else (starts[b + 1] if b + 1 < n_bins else np.inf)
    return column, starts, n_bins


def _horizons(engine, log, plans: dict, weighted: bool):
    local = engine.collect(log, why="the long-horizon ratios are computed")
    w_all = _weights(local, weighted)

    def horizon(arm: str):
        rows, t = _arm_rows(local, arm)
        rank = _column(local, plans[arm]["rank"])[rows]
        return horizon_ratios(local.value[rows], local.value_long[rows], rank, t, None if w_all is None else w_all[rows])

    return horizon


def evaluate_of(engine, log, arms, n_bins: int = 10, score_column: str | None = None) -> Evaluation:
    """The :class:`~core.evaluation.Evaluation` of the predictions joined to ``log`` as columns,
    wherever its rows are (see module docstring).  ``score_column``: instead, one column of the
    log ranks the one arm of ``arms`` (the curves and the cost curve) and is its calibration's
    prediction.  With a long-horizon value, its ratio to the short one per score bin is computed
    on this machine (:func:`~core.evaluation.horizon.horizon_ratios`)."""
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise UserError(f"the number of bins must be a whole number ≥ 2, got {n_bins!r}")
    columns = set(log.frame.columns)
    has_cost_column = {arm: f"tau_cost__{arm}" in columns and not score_column for arm in arms}
    value_columns = {arm: score_column or f"tau_value__{arm}" for arm in arms}
    first = engine.reduce(log, lambda batch: counts_pass(batch, arms, has_cost_column, value_columns))
    for arm in arms:
        if first[("bad", arm)]:
            row = int(-first[("low", "first_bad", arm)]) + 1
            raise UserError(f"score column 'tau_value__{arm}' has {first[('bad', arm)]} missing or non-numeric values "
                            f"(first at row {row})")
        if not first[("treated", arm)]:
            raise UserError(f"arm '{arm}' has no rows in the log")
    weighted = log.columns.propensity is not None and first[("high", "p")] + first[("low", "p")] >= 1e-12
    has_cost = log.columns.cost is not None or bool(log.columns.action_cost)
    plans = {}
    for arm in arms:
        complete_cost = has_cost_column[arm] and first[("cost_missing", arm)] == 0
        ranking = f"score__{arm}" if f"score__{arm}" in columns else value_columns[arm]
        # one score ranks both curves (a ranking model's, or a column of the log)
        cost_rank = ranking if ranking != f"tau_value__{arm}" else "ratio" if complete_cost else None
        calibration = {"value": value_columns[arm]}
        if has_cost and complete_cost and first[("high", "cost", arm)] + first[("low", "cost", arm)] > 0:
            calibration["cost"] = f"tau_cost__{arm}"
        plans[arm] = {"rank": ranking, "cost_rank": cost_rank if has_cost else None, "calibration": calibration,
                      "summand_is_y": first[("control_responders", arm)] > first[("treated_non_responders", arm)]}
    horizon = _horizons(engine, log, plans, weighted) if log.columns.value_long else None
    groups = engine.reduce(log, lambda batch: groups_pass(batch, plans, weighted))
    bins = {(arm, head): _bin_plan(groups[(arm, "bins", head)], column, n_bins)
            for arm, plan in plans.items() for head, column in plan["calibration"].items()}
    bin_sums = engine.reduce(log, lambda batch: bins_pass(batch, bins, weighted))
    means = {key: (s[2] / s[1] if s[1] else 0.0) for key, s in bin_sums.items() if key[3] in ("t", "c")}
    squares = engine.reduce(log, lambda batch: bins_pass(batch, bins, weighted, means))
    results, notes = {}, []
    for arm, plan in plans.items():
        ranked = groups[(arm, "rank")].sums
        qini = qini_from_groups(ranked)
        arm_aucc = None
        if (arm, "cost") in groups:
            try:
                x, curve = cost_curve_from_groups(groups[(arm, "cost")].sums)
                arm_aucc = float(np.trapezoid(curve, x))
            except UserError as exc:
                notes.append(f"{arm}: no cost curve ({exc})")
        calibrations = {head: _calibration(arm, head, bins[(arm, head)][2], bin_sums, squares, 0.05)
                        for head in plan["calibration"]}
        events = (first[("events_t", arm)], first[("events_c", arm)])
        results[arm] = ArmEvaluation(
            arm=arm, n=int(ranked[:, 0].sum()), events=events, horizon=horizon(arm) if horizon else None,
            qini_normalized=_normalised(qini, qini_from_groups(groups[(arm, "perfect_qini")].sums)),
            auuc_normalized=_normalised(uplift_from_groups(ranked), uplift_from_groups(groups[(arm, "perfect_uplift")].sums)),
            qini_coefficient=_area(*qini) - qini[0][-1] * qini[1][-1] / 2.0, aucc=arm_aucc,
            uplift_at_top={f: uplift_at_top_from_groups(ranked, f) for f in TOP_FRACTIONS},
            calibration=calibrations["value"], calibration_cost=calibrations.get("cost"))
        if results[arm].rare:
            notes.append(f"Offer '{arm}': only {events[0]:,} non-zero outcomes under the offer and {events[1]:,} under "
                         f"'{log.control}' — fewer than {MIN_EVENTS} in an arm, so its curves and Qini are noise; "
                         "do not rank customers on them")
    return Evaluation(results, weighted, notes)
