"""``UpliftModel(learner="drm" | "cdrm")``: a direct ranking model per offer, cross-fitted
(:mod:`core.uplift.direct_ranking`); τ value and τ cost estimated per bin of its out-of-fold
score, so allocation, OPE and the report use it like any other model."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ..diagnostics.readout import readout
from ..errors import UserError, setting
from ..evaluation import inverse_propensity_weights
from .direct_ranking import DirectRanker, check_rankable, cross_fit, rank_bins
from .fit_report import FitReport
from .names import LEARNERS


def fit_ranking(model, log, x, t, p, tracker, start):
    """Fit ``model`` (learner ``drm`` or ``cdrm``) on ``log`` (``x`` its feature matrix, ``t``
    the arm codes, ``p`` the propensities); sets its fitted attributes and returns it."""
    from threadpoolctl import threadpool_limits  # deferred: threadpoolctl is slow to import

    cost = log.cost
    check_rankable(x, cost)
    value = log.value
    weight = inverse_propensity_weights(p)
    model.cpi_max_ = ranking_cpi(model.cpi_max, log, p) if model.learner == "cdrm" else None
    tracker.plan(model.folds * len(model.treatments_))

    def make(seed):
        return DirectRanker(model.ranking_scorer, cpi_max=model.cpi_max_, seed=seed)

    workers = max(int(model.n_jobs), 1)
    # one BLAS thread per worker: the scorers' small matrix products lose time to BLAS's
    # own threads when the workers already use every core
    with ThreadPoolExecutor(max_workers=workers) as pool, threadpool_limits(limits=1, user_api="blas"):
        def run(fn, tasks):
            return tracker.wait(pool if workers > 1 else None, fn, tasks)

        oof, model.rankers_ = cross_fit(x, t, value, cost, weight, model.folds, model.seed, make, model.cat_idx_,
                                        run=run, step=lambda m: tracker.step(f"{LEARNERS[model.learner]} · {m}"))
    model.rank_bins_ = {}
    notes = []
    for k, arm in enumerate(model.treatments_):
        rows = (t == k + 1) | (t == 0)
        bins = rank_bins(oof[rows, k], t[rows] == k + 1, value[rows], cost[rows],
                         None if weight is None else weight[rows])
        model.rank_bins_[arm] = bins
        if len(bins) == 1:
            notes.append(f"offer '{arm}': the ranking's score bins had to be merged into one (too few customers of "
                         f"an arm per bin), so every customer gets the offer's average effect")
    notes += segment_gaps(model.treatments_, log)
    model.learner_ = model.learner
    model.models_ = {}
    model.selection_ = None
    model.segment_column_ = None
    model.oof_ = model._ranking_frame(oof)
    model.oof_bags_ = {}
    ranking = {"scorer": model.ranking_scorer, "cpi_max": model.cpi_max_,
               "fits": {arm: [r.info_ for r in model.rankers_[k + 1]] for k, arm in enumerate(model.treatments_)},
               "bins": {arm: bins.to_dict("records") for arm, bins in model.rank_bins_.items()}}
    model.report_ = FitReport(model.learner, model.labels_, log.n, time.perf_counter() - start, ("value", "cost"),
                              model.folds, 0, ("all",), {}, None, ranking, tuple(notes))
    return model


def ranking_cpi(cpi_max, log, propensity) -> float:
    """``cdrm``'s CPI limit: the one given, else the median of the readout's average CPI of
    the offers that add value at a positive cost."""
    if cpi_max is not None:
        return float(cpi_max)
    effects = readout(log, propensity).effects.pivot(index="arm", columns="outcome", values="effect")
    cpis = [row["cost"] / row["value"] for _, row in effects.iterrows() if row["value"] > 0 and row["cost"] > 0]
    if not cpis:
        raise UserError("no offer adds value at a positive cost on average, so there is no default CPI limit for "
                        f"the constrained ranking; give one ({setting('cpi_max')})")
    return float(np.median(cpis))


def segment_gaps(treatments, log) -> list[str]:
    """Notes on segments in which an offer was never sent: the ranking extrapolates there."""
    if not log.columns.segment:
        return []
    seg = log.frame[log.columns.segment].astype("string").fillna("(missing)")
    counts = pd.crosstab(seg, pd.Series(log.action, index=seg.index))
    notes = []
    for arm in treatments:
        empty = [str(s) for s in counts.index if arm not in counts.columns or counts.loc[s, arm] == 0]
        if empty:
            notes.append(f"offer '{arm}' was never sent in segment(s) {', '.join(map(repr, empty[:5]))} of "
                         f"'{log.columns.segment}': the ranking's scores for those customers are extrapolated")
    return notes
