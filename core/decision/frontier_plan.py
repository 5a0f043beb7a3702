"""The fast allocation of a scores table too large for one machine, on any engine.

The same plan as :class:`~core.decision.allocate.Frontier` (see its module), from partials over
batches of customers:

1. per batch, every customer's hull segments (a table) and the option table's summary (sums);
2. the engine sorts the segments by efficiency (ties in customer order) and finds where their
   running cost first passes the budget (:meth:`~core.engines.base.Engine.crossing`): the
   segments before it are taken whole, the one at it gives λ and the LP bound;
3. per batch, each customer's next segment that fits the budget left over (the fill
   candidates), filled best first on this machine;
4. per batch, each customer's choice (segments before the crossing, plus a fill), whose totals
   and counts add up, and the allocation table's rows.

Every formula is the in-memory one: a batch builds its :class:`Frontier` and reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engines.base import Sums
from .allocate import Allocation, Frontier, validate_budget
from .policy import candidates_for_plan

ORDER = (("eff", True), ("unit", False), ("pos", False))
SEGMENTS = {"unit": "long", "pos": "long", "d_cost": "double", "d_value": "double", "eff": "double",
            "from_arm": "long", "to_arm": "long"}
ROWS = {"id": "string", "action": "string", "tau_value": "double", "tau_cost": "double", "score": "double",
        "reason": "string"}


def _frontier(batch: pd.DataFrame, setting: dict) -> tuple:
    candidates = candidates_for_plan(batch.reset_index(drop=True), setting)
    return candidates, Frontier(candidates)


def hull_segments(batch: pd.DataFrame, setting: dict) -> pd.DataFrame:
    """Step 1's table: every customer's hull segments, ``unit`` its row position."""
    _, frontier = _frontier(batch, setting)
    segments = frontier.segments()
    segments["unit"] = batch.index.to_numpy()[segments["unit"].to_numpy()]
    return segments


def options_summary(batch: pd.DataFrame, setting: dict) -> Sums:
    """Step 1's sums: customers, options, pruned per offer, and the starting vertices' value,
    cost and arm counts (index 0 = no offer, j + 1 = offer j)."""
    candidates, frontier = _frontier(batch, setting)
    start = frontier.choice_at(np.zeros(candidates.n, dtype=np.int64))
    return Sums(n=candidates.n, options=int(candidates.mask.sum()),
                pruned=np.array(list(candidates.pruned_counts().values())), base_value=frontier.base_value,
                base_cost=frontier.base_cost, base_counts=np.bincount(start + 1, minlength=len(candidates.arms) + 1))


def _taken(frontier: Frontier, units: np.ndarray, key: tuple | None) -> np.ndarray:
    """How many hull segments each customer takes: those sorted before the crossing ``key``."""
    n = frontier.hull_length.shape[0]
    if key is None:
        return frontier.hull_length - 1
    eff, unit, pos = key
    at = units[frontier.seg_unit]
    before = (frontier.efficiency > eff) | ((frontier.efficiency == eff)
                                            & ((at < unit) | ((at == unit) & (frontier.seg_pos < pos))))
    return np.bincount(frontier.seg_unit[before], minlength=n)


def fill_candidates(batch: pd.DataFrame, setting: dict, key: tuple | None, left: float) -> pd.DataFrame:
    """Step 3's partial: each customer's next segment when it fits in ``left``."""
    _, frontier = _frontier(batch, setting)
    units = batch.index.to_numpy()
    position = _taken(frontier, units, key)
    nxt = np.flatnonzero(position < frontier.hull_length - 1)
    d_cost, d_value = frontier.step(nxt, position[nxt])
    fits = d_cost <= left + 1e-9
    return pd.DataFrame({"unit": units[nxt[fits]], "d_cost": d_cost[fits], "d_value": d_value[fits]})


def greedy_fill(candidates: pd.DataFrame, left: float) -> set:
    """Step 3's finish: the customers whose next segment fills the budget left, best value per
    cost first (ties in customer order), as :meth:`Frontier.plan` fills it."""
    candidates = candidates.sort_values("unit", kind="stable")
    units, dc, dv = (candidates[c].to_numpy() for c in ("unit", "d_cost", "d_value"))
    filled = set()
    for i in np.argsort(-(dv / np.where(dc > 0, dc, 1e-300)), kind="stable"):
        if dc[i] <= left + 1e-9:
            filled.add(int(units[i]))
            left -= dc[i]
    return filled


def _choice(batch: pd.DataFrame, setting: dict, key: tuple | None, filled: set):
    candidates, frontier = _frontier(batch, setting)
    units = batch.index.to_numpy()
    extra = np.isin(units, np.fromiter(filled, dtype=np.int64, count=len(filled)))
    return candidates, frontier.choice_at(_taken(frontier, units, key) + extra), extra


def plan_sums(batch: pd.DataFrame, setting: dict, key: tuple | None, filled: set) -> Sums:
    """Step 4's sums: the plan's value, cost and customers per arm."""
    candidates, choice, _ = _choice(batch, setting, key, filled)
    rows = np.flatnonzero(choice >= 0)
    return Sums(value=float(candidates.tau_value[rows, choice[rows]].sum()),
                cost=float(candidates.tau_cost[rows, choice[rows]].sum()),
                counts=np.bincount(choice + 1, minlength=len(candidates.arms) + 1))


def plan_rows(batch: pd.DataFrame, setting: dict, key: tuple | None, filled: set, lam: float, control: str) -> pd.DataFrame:
    """Step 4's table: the allocation's rows of a batch (see :meth:`Allocation.to_frame`)."""
    candidates, choice, extra = _choice(batch, setting, key, filled)
    plan = Allocation(candidates.arms, control, choice, 0.0, 0.0, 0.0, "fast", 0.0, 0.0, lam, extra)
    ids = batch["id"].astype(str).to_numpy() if "id" in batch.columns else batch.index.astype(str).to_numpy()
    table = plan.to_frame(ids, candidates)
    if "cold_start" in batch.columns:
        table["cold_start"] = batch["cold_start"].astype(bool).to_numpy()
    table.index = batch.index
    return table


@dataclass(frozen=True)
class FastPlan:
    """A fast plan made by batches: its result (as :meth:`Allocation.to_dict`), and how to
    build its allocation table."""

    result: dict
    rows: object


def fast_plan(engine, scores, setting: dict, budget: float, control: str) -> FastPlan:
    """The fast allocation of ``scores`` at ``budget`` wherever its rows are (module docstring)."""
    start = time.perf_counter()
    budget = validate_budget(budget)
    summary = engine.reduce(scores, lambda batch: options_summary(batch, setting))
    segments = engine.map(scores, lambda batch: hull_segments(batch, setting), SEGMENTS)
    limit = budget - summary["base_cost"] + 1e-9
    cross = engine.crossing(segments, ORDER, "d_cost", limit, ["d_cost", "d_value"])
    engine.release(segments)
    spent_value = summary["base_value"] + cross["sums"]["d_value"]
    spent_cost = summary["base_cost"] + cross["sums"]["d_cost"]
    bound, lam, key = spent_value, 0.0, None
    after = cross["next"]
    if after is not None:
        d_cost = float(after["d_cost"])
        fraction = (budget - spent_cost) / d_cost if d_cost > 0 else 0.0
        bound += max(0.0, min(1.0, fraction)) * float(after["d_value"])
        lam = float(after["eff"])
        key = (float(after["eff"]), int(after["unit"]), int(after["pos"]))
    filled = set()
    if key is not None:
        left = budget - spent_cost
        filled = greedy_fill(engine.reduce(scores, lambda batch: fill_candidates(batch, setting, key, left),
                                           lambda a, b: pd.concat([a, b], ignore_index=True)), left)
    totals = engine.reduce(scores, lambda batch: plan_sums(batch, setting, key, filled))
    arms = [c[len("tau_value__"):] for c in scores.columns if str(c).startswith("tau_value__")]
    counts = {control: int(totals["counts"][0]), **{a: int(totals["counts"][j + 1]) for j, a in enumerate(arms)}}
    value = totals["value"]
    result = {"total_value": value, "total_cost": totals["cost"], "counts": counts, "upper_bound": max(bound, value),
              "gap": max(0.0, (bound - value) / bound) if bound > 0 else 0.0, "method": "fast",
              "seconds": time.perf_counter() - start, "budget": budget, "lambda": lam, "solver": None,
              "pruned": dict(zip(arms, (int(x) for x in summary["pruned"])))}
    schema = {**ROWS, **({"cold_start": "boolean"} if "cold_start" in scores.columns else {})}
    return FastPlan(result, lambda: engine.map(scores, lambda batch: plan_rows(batch, setting, key, filled, lam, control),
                                               schema))
