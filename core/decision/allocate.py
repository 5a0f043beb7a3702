"""Budget-constrained allocation: at most one offer per customer, maximise incremental value.

    maximise   Σ_i τv(i, a_i)
    subject to Σ_i τc(i, a_i) ≤ budget,   #{i: a_i = a} ≤ cap_a,   a_i ∈ candidates(i) ∪ {no offer}

This is a multiple-choice knapsack.  Two solvers:

- ``exact``: the MILP in PuLP, solved to a relative gap of 1e-9 (CBC by default: faster than
  HiGHS on these instances, see bench/RESULTS.md; HiGHS on request).
- ``fast``: the LP relaxation through per-customer upper convex hulls.  Each customer's
  undominated options, sorted by cost, form a concave chain starting at "no offer"; its
  segments have decreasing efficiency Δv/Δc.  One global sort of all segments by efficiency
  gives the LP optimum for *every* budget at once (the frontier): the optimum at budget B takes
  the segments in that order while they fit, the last one fractionally.  The integral plan keeps
  the whole segments that fit and then fills what budget is left with the best next segments.
  Its LP value is an upper bound on any plan, so ``gap = (bound − value) / bound`` bounds the
  distance to the optimum.  Caps are not handled by ``fast``; ``auto`` then uses ``exact``.
- ``auto``: ``exact`` while the instance is small (≤ 20,000 options) or has caps, else ``fast``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError, setting
from .policy import Candidates, explain

AUTO_EXACT_LIMIT = 20_000
MIP_GAP = 1e-9


@dataclass(frozen=True)
class Allocation:
    """One plan: chosen arm per customer (−1 = no offer) and its totals."""

    arms: tuple[str, ...]
    control: str
    choice: np.ndarray = field(repr=False)
    total_value: float
    total_cost: float
    upper_bound: float
    method: str
    seconds: float
    budget: float
    lam: float
    filled: np.ndarray | None = field(default=None, repr=False)

    @property
    def gap(self) -> float:
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.total_value) / self.upper_bound)

    @property
    def counts(self) -> dict[str, int]:
        out = {self.control: int((self.choice < 0).sum())}
        out.update({a: int((self.choice == k).sum()) for k, a in enumerate(self.arms)})
        return out

    def to_dict(self) -> dict:
        method, _, solver = self.method.partition(" ")
        return {"total_value": self.total_value, "total_cost": self.total_cost, "counts": self.counts,
                "upper_bound": self.upper_bound, "gap": self.gap, "method": method, "seconds": self.seconds,
                "budget": self.budget, "lambda": self.lam, "solver": solver.strip("()") or None}

    def explain(self, candidates: Candidates) -> tuple[np.ndarray, list[str]]:
        """Each customer's ``τv − λ·τc`` score and the reason for their decision."""
        return explain(candidates, self.choice, self.lam if np.isfinite(self.lam) else 0.0, self.filled)

    def to_frame(self, ids, candidates: Candidates) -> pd.DataFrame:
        """The allocation CSV: id, action, tau_value, tau_cost, score (+ reason)."""
        score, reasons = self.explain(candidates)
        chosen = self.choice >= 0
        rows = np.flatnonzero(chosen)
        tau_value, tau_cost = np.zeros(len(self.choice)), np.zeros(len(self.choice))
        tau_value[rows] = candidates.tau_value[rows, self.choice[rows]]
        tau_cost[rows] = candidates.tau_cost[rows, self.choice[rows]]
        action = np.where(chosen, np.array(self.arms, dtype=object)[np.maximum(self.choice, 0)], self.control)
        return pd.DataFrame({"id": ids, "action": action, "tau_value": tau_value, "tau_cost": tau_cost,
                             "score": score, "reason": reasons})


def validate_budget(budget) -> float:
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise UserError(f"{setting('budget')} must be a number ≥ 0, got {budget!r}") from None
    if not np.isfinite(budget) or budget < 0:
        raise UserError(f"{setting('budget')} must be a finite number ≥ 0, got {budget:g}")
    return budget


def validate_caps(caps, arms) -> dict[str, int]:
    caps = dict(caps or {})
    unknown = [a for a in caps if a not in arms]
    if unknown:
        raise UserError(f"{setting('cap')} names offer(s) {', '.join(map(repr, unknown))} that are not in the scores; offers: {', '.join(arms)}")
    out = {}
    for arm, cap in caps.items():
        if not float(cap).is_integer() or cap < 0:
            raise UserError(f"{setting('cap')} for '{arm}' must be a whole number ≥ 0, got {cap}")
        out[arm] = int(cap)
    return out


# --- the fast frontier ----------------------------------------------------------------------------

class Frontier:
    """The LP value-vs-budget frontier of a candidate table, built once (see module docstring).

    After construction, :meth:`at` answers any budget in O(log S) and :meth:`plan` builds the
    integral plan for a budget in O(n·K).
    """

    def __init__(self, candidates: Candidates):
        start = time.perf_counter()
        self.candidates = candidates
        n, k = candidates.tau_value.shape
        # options: column 0 is "no offer" at (0, 0); invalid options get cost +inf, value −inf
        cost = np.empty((n, k + 1))
        value = np.empty((n, k + 1))
        cost[:, 0] = value[:, 0] = 0.0
        cost[:, 1:] = np.where(candidates.mask, candidates.tau_cost, np.inf)
        value[:, 1:] = np.where(candidates.mask, candidates.tau_value, -np.inf)
        # sort each customer's options by cost, then by value descending
        order = np.lexsort((-value, cost), axis=-1).astype(np.int8)
        cost = np.take_along_axis(cost, order, axis=1)
        value = np.take_along_axis(value, order, axis=1)
        # drop dominated options: keep an option only when its value beats every cheaper one
        previous_best = np.full((n, k + 1), -np.inf)
        np.maximum.accumulate(value[:, :-1], axis=1, out=previous_best[:, 1:])
        keep = np.isfinite(cost) & (value > previous_best)
        # vectorised upper hull (monotone chain) over at most k+1 points per customer, working
        # only on the customers whose point j is an option; hull holds sorted positions
        hull = np.zeros((n, k + 1), dtype=np.int8)
        length = np.zeros(n, dtype=np.int8)
        for j in range(k + 1):
            active = np.flatnonzero(keep[:, j])
            todo = active[length[active] >= 2]
            for _ in range(k):
                if len(todo) == 0:
                    break
                a = hull[todo, length[todo] - 2]
                b = hull[todo, length[todo] - 1]
                ax, ay, bx, by = cost[todo, a], value[todo, a], cost[todo, b], value[todo, b]
                # pop b when it lies on or below the segment a→j (not strictly concave)
                pop = (bx - ax) * (value[todo, j] - ay) - (by - ay) * (cost[todo, j] - ax) >= 0
                todo = todo[pop]
                length[todo] -= 1
                todo = todo[length[todo] >= 2]
            hull[active, length[active]] = j
            length[active] += 1
        self._cost, self._value, self._order, self._hull = cost, value, order, hull
        self.hull_length = length.astype(np.int64)
        # position 0 (no offer, or a free offer that beats it) is every customer's starting point
        self.base_value = float(value[:, 0].sum())
        self.base_cost = float(cost[:, 0].sum())
        seg_unit, seg_pos = np.nonzero(np.arange(1, k + 1)[None, :] < self.hull_length[:, None])
        frm, to = hull[seg_unit, seg_pos], hull[seg_unit, seg_pos + 1]
        d_cost = cost[seg_unit, to] - cost[seg_unit, frm]
        d_value = value[seg_unit, to] - value[seg_unit, frm]
        with np.errstate(divide="ignore"):
            efficiency = np.where(d_cost > 0, d_value / d_cost, np.inf)
        rank = np.argsort(-efficiency, kind="stable")  # ties keep customer order
        self.seg_unit, self.seg_pos = seg_unit[rank], seg_pos[rank]
        self.d_cost, self.d_value, self.efficiency = d_cost[rank], d_value[rank], efficiency[rank]
        self.cum_cost = np.cumsum(self.d_cost)
        self.cum_value = np.cumsum(self.d_value)
        self.seconds = time.perf_counter() - start

    def segments(self) -> pd.DataFrame:
        """Every customer's hull segments (in efficiency order): customer row, position on the
        hull, cost and value steps, efficiency, and the arm at each end (−1 = no offer)."""
        def arm_at(pos):
            return self._order[self.seg_unit, self._hull[self.seg_unit, pos]].astype(np.int64) - 1

        return pd.DataFrame({"unit": self.seg_unit.astype(np.int64), "pos": self.seg_pos.astype(np.int64),
                             "d_cost": self.d_cost, "d_value": self.d_value, "eff": self.efficiency,
                             "from_arm": arm_at(self.seg_pos), "to_arm": arm_at(self.seg_pos + 1)})

    def choice_at(self, position: np.ndarray) -> np.ndarray:
        """Each customer's arm (−1 = no offer) at hull vertex ``position``."""
        rows = np.arange(self._hull.shape[0])
        return self._order[rows, self._hull[rows, position]].astype(np.int64) - 1

    def step(self, rows: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cost and value steps from hull vertex ``position`` to the next, for ``rows``."""
        _, c0, v0 = self._at_position(rows, position)
        _, c1, v1 = self._at_position(rows, position + 1)
        return c1 - c0, v1 - v0

    def _at_position(self, rows: np.ndarray, position: np.ndarray):
        """Sorted-option index, cost and value of hull vertex ``position`` of each customer."""
        idx = self._hull[rows, position]
        return idx, self._cost[rows, idx], self._value[rows, idx]

    def _whole(self, budget: float) -> int:
        """How many segments fit entirely in ``budget``."""
        return int(np.searchsorted(self.cum_cost, budget - self.base_cost + 1e-9, side="right"))

    def at(self, budget: float) -> dict:
        """LP value, cost and marginal efficiency λ at ``budget`` (O(log S))."""
        k = self._whole(budget)
        value = self.base_value + (self.cum_value[k - 1] if k else 0.0)
        cost = self.base_cost + (self.cum_cost[k - 1] if k else 0.0)
        bound = value
        if k < len(self.d_cost):
            fraction = (budget - cost) / self.d_cost[k] if self.d_cost[k] > 0 else 0.0
            bound += max(0.0, min(1.0, fraction)) * self.d_value[k]
        lam = float(self.efficiency[k]) if k < len(self.efficiency) else 0.0
        return {"segments": k, "value": value, "cost": cost, "upper_bound": bound, "lambda": lam}

    def curve(self, points: int = 400) -> pd.DataFrame:
        """The frontier (cost, value, λ) downsampled for charts; integral prefix points."""
        if len(self.cum_cost) == 0:
            return pd.DataFrame({"cost": [self.base_cost], "value": [self.base_value], "lambda": [0.0]})
        idx = np.unique(np.r_[np.linspace(0, len(self.cum_cost) - 1, points).astype(int)])
        return pd.DataFrame({"cost": np.r_[self.base_cost, self.base_cost + self.cum_cost[idx]],
                             "value": np.r_[self.base_value, self.base_value + self.cum_value[idx]],
                             "lambda": np.r_[self.efficiency[0], self.efficiency[idx]]})

    def plan(self, budget: float, fill: bool = True) -> tuple[np.ndarray, float, np.ndarray]:
        """Integral plan at ``budget``: chosen arm per customer (−1 = none), λ, and which
        customers' picks only fill the budget left over below the margin."""
        k = self._whole(budget)
        n = self._hull.shape[0]
        position = np.bincount(self.seg_unit[:k], minlength=n)  # segments taken per customer
        spent = self.base_cost + (self.cum_cost[k - 1] if k else 0.0)
        filled = np.zeros(n, dtype=bool)
        if fill and k < len(self.d_cost):
            # each customer's next segment, best first, while the rest of the budget allows
            nxt = np.flatnonzero(position < self.hull_length - 1)
            if len(nxt):
                dc, dv = self.step(nxt, position[nxt])
                left = budget - spent
                fits = dc <= left + 1e-9
                nxt, dc, dv = nxt[fits], dc[fits], dv[fits]
                for i in np.argsort(-(dv / np.where(dc > 0, dc, 1e-300)), kind="stable"):
                    if dc[i] <= left + 1e-9:
                        position[nxt[i]] += 1
                        filled[nxt[i]] = True
                        left -= dc[i]
        lam = float(self.efficiency[k]) if k < len(self.efficiency) else 0.0
        return self.choice_at(position), lam, filled


def _sort_options(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per row: indices sorting by cost ascending, then value descending."""
    order = np.argsort(-value, axis=1, kind="stable")
    by_cost = np.argsort(np.take_along_axis(cost, order, axis=1), axis=1, kind="stable")
    return np.take_along_axis(order, by_cost, axis=1)


def _totals(candidates: Candidates, choice: np.ndarray) -> tuple[float, float]:
    rows = np.flatnonzero(choice >= 0)
    return (float(candidates.tau_value[rows, choice[rows]].sum()), float(candidates.tau_cost[rows, choice[rows]].sum()))


def allocate_fast(candidates: Candidates, budget: float, control: str, frontier: Frontier | None = None) -> Allocation:
    start = time.perf_counter()
    budget = validate_budget(budget)
    frontier = frontier or Frontier(candidates)
    choice, lam, filled = frontier.plan(budget)
    value, cost = _totals(candidates, choice)
    return Allocation(candidates.arms, control, choice, value, cost, frontier.at(budget)["upper_bound"], "fast",
                      time.perf_counter() - start, budget, lam, filled)


def allocate_exact(candidates: Candidates, budget: float, control: str, caps=None, solver: str = "cbc",
                   time_limit: float | None = None) -> Allocation:
    """Solve the MILP with PuLP to a relative gap of 1e-9."""
    # deferred: PuLP is slow to import
    import pulp

    start = time.perf_counter()
    budget = validate_budget(budget)
    caps = validate_caps(caps, candidates.arms)
    rows, cols = np.nonzero(candidates.mask)
    if caps:
        keep = np.ones(len(rows), dtype=bool)  # with caps a dominated offer can still be needed
    else:
        # without caps an offer beaten on cost and value by another of the same customer never
        # helps; every undominated one stays (not only hull vertices: the MILP may need them)
        keep = _undominated(candidates)[rows, cols]
    rows, cols = rows[keep], cols[keep]
    problem = pulp.LpProblem("allocation", pulp.LpMaximize)
    x = [pulp.LpVariable(f"x{i}", cat="Binary") for i in range(len(rows))]
    value = candidates.tau_value[rows, cols]
    cost = candidates.tau_cost[rows, cols]
    problem += pulp.lpDot(value, x)
    problem += pulp.lpDot(cost, x) <= budget, "budget"
    by_customer: dict[int, list] = {}
    for var, r in zip(x, rows):
        by_customer.setdefault(int(r), []).append(var)
    for r, group in by_customer.items():
        if len(group) > 1:
            problem += pulp.lpSum(group) <= 1, f"one_{r}"
    for arm, cap in caps.items():
        k = candidates.arms.index(arm)
        problem += pulp.lpSum(v for v, c in zip(x, cols) if c == k) <= cap, f"cap_{k}"
    if solver == "highs":
        engine = pulp.HiGHS(msg=False, gapRel=MIP_GAP, timeLimit=time_limit)
    elif solver == "cbc":
        engine = pulp.PULP_CBC_CMD(msg=False, gapRel=MIP_GAP, timeLimit=time_limit)
    else:
        raise UserError(f"solver '{solver}' is not one of cbc, highs")
    status = problem.solve(engine)
    if pulp.LpStatus[status] != "Optimal":
        raise UserError(f"the exact solver stopped with status '{pulp.LpStatus[status]}'; try {setting('method')} fast")
    chosen = np.array([v.value() is not None and v.value() > 0.5 for v in x], dtype=bool)
    choice = np.full(candidates.n, -1)
    choice[rows[chosen]] = cols[chosen]
    total_value, total_cost = _totals(candidates, choice)
    if caps:
        bound, lam = _lp_bound_with_caps(candidates, budget, caps), float("nan")
    else:
        point = Frontier(candidates).at(budget)
        bound, lam = point["upper_bound"], point["lambda"]
    return Allocation(candidates.arms, control, choice, total_value, total_cost, max(bound, total_value),
                      f"exact ({solver})", time.perf_counter() - start, budget, lam)


def _undominated(candidates: Candidates) -> np.ndarray:
    """Options no other option of the same customer beats on both cost (≤) and value (≥, one strictly)."""
    c, v, m = candidates.tau_cost, candidates.tau_value, candidates.mask
    out = m.copy()
    k = c.shape[1]
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            dominated = m[:, b] & (c[:, b] <= c[:, a]) & (v[:, b] >= v[:, a]) & ((c[:, b] < c[:, a]) | (v[:, b] > v[:, a]) | (b < a))
            out[:, a] &= ~dominated
    return out


def _lp_bound_with_caps(candidates: Candidates, budget: float, caps: dict) -> float:
    """The LP relaxation's value with caps (without caps the frontier gives it directly)."""
    # deferred: PuLP is slow to import
    import pulp

    rows, cols = np.nonzero(candidates.mask)
    problem = pulp.LpProblem("relaxation", pulp.LpMaximize)
    x = [pulp.LpVariable(f"x{i}", lowBound=0, upBound=1) for i in range(len(rows))]
    problem += pulp.lpDot(candidates.tau_value[rows, cols], x)
    problem += pulp.lpDot(candidates.tau_cost[rows, cols], x) <= budget
    by_customer: dict[int, list] = {}
    for var, r in zip(x, rows):
        by_customer.setdefault(int(r), []).append(var)
    for r, group in by_customer.items():
        if len(group) > 1:
            problem += pulp.lpSum(group) <= 1
    for arm, cap in caps.items():
        k = candidates.arms.index(arm)
        problem += pulp.lpSum(v for v, c in zip(x, cols) if c == k) <= cap
    problem.solve(pulp.PULP_CBC_CMD(msg=False))
    return float(pulp.value(problem.objective) or 0.0)


def allocate(candidates: Candidates, budget: float, control: str, method: str = "auto", caps=None,
             solver: str = "cbc") -> Allocation:
    """Allocate offers under ``budget`` with ``method`` ∈ {auto, exact, fast}; the result says which ran."""
    budget = validate_budget(budget)
    caps = validate_caps(caps, candidates.arms)
    if method not in ("auto", "exact", "fast"):
        raise UserError(f"{setting('method')} must be one of auto, exact, fast; got '{method}'")
    if method == "fast" and caps:
        raise UserError(f"the fast method does not handle {setting('cap')}; use {setting('method')} exact or auto")
    if method == "exact" or (method == "auto" and (caps or int(candidates.mask.sum()) <= AUTO_EXACT_LIMIT)):
        return allocate_exact(candidates, budget, control, caps, solver)
    return allocate_fast(candidates, budget, control)
