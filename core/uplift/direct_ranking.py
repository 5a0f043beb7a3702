"""Direct ranking: one score per customer and offer whose ranking maximises incremental value
per incremental cost (the Direct Ranking Model of Du et al. 2019, "Improve User Retention with
Causal Learning", PMLR 104, and its constrained variant, arXiv 2507.05510).

For one offer against no offer, over the training rows of the two arms, a score ``s(x)`` gives
a *soft selection*: a softmax within each arm,

    p_i = w_i·exp(s_i) / Σ_{j in i's arm} w_j·exp(s_j)        (w = 1/propensity, or 1)

so the p of each arm sum to 1.  The soft selection's incremental value and cost are the
p-weighted treated mean minus the p-weighted control mean,

    Δv = Σ_{treated} p_i v_i − Σ_{control} p_i v_i,    Δc likewise with the cost c,

and the Direct Ranking Model minimises the paper's stabilised ratio

    L = −softplus(Δv) / softplus(Δc),

which equals −Δv/Δc when both are large and stays finite as Δc → 0.  Customers the score puts
first dominate the soft selection, so minimising L ranks the efficient customers first.  The
softmax runs over the **whole training cohort** (no mini-batches, so no mismatch between a
batch's softmax and the cohort's): the gradient of L is a sum over rows, and the numpy scorers
take full-batch Adam steps, the LightGBM scorer one tree per round.

Value and cost enter in units of their average effects (|ATE|, floored at two standard errors),
so that softplus works on numbers of order one whatever the currency.

Gradient with respect to a row's score (group g = the row's arm, sign +1 treated, −1 control):

    ∂Δv/∂s_i = sign_i · p_i · (v_i − v̄_g),   v̄_g = Σ_{j in g} p_j v_j
    ∂L/∂s_i  = sign_i · p_i · [a·(v_i − v̄_g) + b·(c_i − c̄_g)],  a = ∂L/∂Δv, b = ∂L/∂Δc

**Constrained variant** (``cpi_max``): maximise the soft selection's incremental value subject
to its incremental cost per incremental value being at most ``cpi_max``,

    L = −softplus(Δv) + ψ_t(Δc − cpi_max·Δv)

with ψ_t the log-barrier extension of Kervadec et al. (2019, "Constrained deep networks:
Lagrangian optimization via log-barrier extensions"): −log(−z)/t inside the feasible set (up to
z = −1/t²), continued linearly with slope t beyond it, so that training may start infeasible
(a uniform selection has the offer's average CPI) and is pushed back inside.

Scorers (:mod:`core.uplift.ranking_scorers`): ``linear`` and ``mlp`` in numpy with full-batch
Adam; ``lightgbm`` boosts trees on the same gradient with a custom objective.  Every scorer stops
early on a validation fifth of its training rows (its own soft selection).

Scores are not effects.  :func:`rank_bins` turns them into ``tau_value`` / ``tau_cost`` by
estimating both effects per bin of the score from the data (difference of arm means, inverse
propensity weighted when propensities differ, normal intervals), so allocation, OPE and the
report use a ranking model like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..diagnostics.readout import hajek_difference
from ..errors import UserError
from .ranking_scorers import MAX_ROUNDS, Design, fit_lightgbm, fit_numpy

SCORERS = {"lightgbm": "LightGBM (custom objective)", "linear": "linear (numpy)", "mlp": "small MLP (numpy)"}
BARRIER_T = 10.0
VALIDATION_SHARE = 0.2
MIN_BIN_ROWS = 50  # of each arm per score bin
QUANTILES = 1001  # training-score quantiles kept per fitted scorer (to turn scores into percentiles)


def softplus(z):
    """log(1 + e^z), computed without overflow."""
    return np.logaddexp(0.0, z)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def barrier(z, t: float = BARRIER_T):
    """The log-barrier extension ψ_t(z) and its derivative (see the module docstring)."""
    z = float(z)
    if z <= -1.0 / t**2:
        return -np.log(-z) / t, -1.0 / (t * z)
    return t * z - np.log(1.0 / t**2) / t + 1.0 / t, t


def soft_selection(score, treated, weight=None) -> np.ndarray:
    """Softmax of ``score`` within each arm (``treated`` True/False), weighted by ``weight``:
    the probabilities of each arm sum to 1."""
    return Cohort.of(treated, np.zeros(len(treated)), np.zeros(len(treated)), weight).selection(score)


@dataclass(frozen=True)
class Objective:
    """The loss at one score vector, its gradient per row and the positive Hessian approximation."""

    loss: float
    grad: np.ndarray
    hess: np.ndarray
    delta_value: float
    delta_cost: float


class Cohort:
    """Rows the loss is computed over (their own soft selection), stored treated rows first so
    that each arm is a slice: the loss runs once per boosting round and Adam step."""

    def __init__(self, n_treated: int, value: np.ndarray, cost: np.ndarray, weight: np.ndarray | None,
                 order: np.ndarray | None = None):
        self.n_treated = int(n_treated)
        self.value, self.cost, self.weight = value, cost, weight
        self.order = order  # the stored rows' positions in the caller's order (None: the same)
        self.slices = (slice(0, self.n_treated), slice(self.n_treated, len(value)))

    @classmethod
    def of(cls, treated, value, cost, weight=None) -> "Cohort":
        """A group of rows in any order; :meth:`selection` and :meth:`objective` of it take and
        give arrays in that order."""
        treated = np.asarray(treated, dtype=bool)
        order = np.argsort(~treated, kind="stable")
        return cls(int(treated.sum()), np.asarray(value, dtype=float)[order], np.asarray(cost, dtype=float)[order],
                   None if weight is None else np.asarray(weight, dtype=float)[order], order)

    def _sorted(self, score):
        score = np.asarray(score, dtype=float)
        return score if self.order is None else score[self.order]

    def _unsorted(self, values):
        if self.order is None:
            return values
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def _softmax(self, score):
        p = np.zeros(len(score))
        for sl in self.slices:
            if sl.stop > sl.start:
                e = np.exp(score[sl] - score[sl].max())
                if self.weight is not None:
                    e *= self.weight[sl]
                p[sl] = e / e.sum()
        return p

    def selection(self, score) -> np.ndarray:
        return self._unsorted(self._softmax(self._sorted(score)))

    def _increments(self, score):
        """The soft selection and each arm's p-weighted means of value and cost."""
        p = self._softmax(score)
        # multiply-and-sum, not BLAS: a BLAS dot on a busy machine can take milliseconds
        means = [(np.sum(p[sl] * self.value[sl]), np.sum(p[sl] * self.cost[sl])) for sl in self.slices]
        return p, means, means[0][0] - means[1][0], means[0][1] - means[1][1]

    def loss(self, score, cpi_max: float | None = None) -> float:
        """The loss alone (validation and early stopping need no gradient)."""
        _, _, delta_v, delta_c = self._increments(self._sorted(score))
        return _loss_and_slopes(delta_v, delta_c, cpi_max)[0]

    def objective(self, score, cpi_max: float | None = None) -> Objective:
        p, means, delta_v, delta_c = self._increments(self._sorted(score))
        loss, a, b = _loss_and_slopes(delta_v, delta_c, cpi_max)
        centred_v, centred_c = np.empty(len(p)), np.empty(len(p))
        for sl, (mean_v, mean_c) in zip(self.slices, means):
            np.subtract(self.value[sl], mean_v, out=centred_v[sl])
            np.subtract(self.cost[sl], mean_c, out=centred_c[sl])
        grad = p * (a * centred_v + b * centred_c)
        grad[self.slices[1]] *= -1.0
        hess = p * (1.0 - p) * (abs(a) * np.abs(centred_v) + abs(b) * np.abs(centred_c))
        return Objective(float(loss), self._unsorted(grad), self._unsorted(hess), float(delta_v), float(delta_c))


def _loss_and_slopes(delta_v: float, delta_c: float, cpi_max: float | None) -> tuple[float, float, float]:
    """The loss at the soft selection's increments and its slopes a = ∂L/∂Δv, b = ∂L/∂Δc."""
    if cpi_max is None:
        top, bottom = softplus(delta_v), softplus(delta_c)
        return float(-top / bottom), float(-sigmoid(delta_v) / bottom), float(top * sigmoid(delta_c) / bottom**2)
    psi, dpsi = barrier(delta_c - cpi_max * delta_v)
    return float(-softplus(delta_v) + psi), float(-sigmoid(delta_v) - cpi_max * dpsi), float(dpsi)


def objective(score, treated, value, cost, weight=None, cpi_max: float | None = None) -> Objective:
    """The Direct Ranking Model's loss (or, with ``cpi_max``, the constrained variant's) and
    its derivatives with respect to every row's score (formulas in the module docstring)."""
    return Cohort.of(treated, value, cost, weight).objective(score, cpi_max)


def effect_scale(y, treated, weight=None) -> float:
    """|average effect| of ``y``, floored at two standard errors (and at a tiny positive number):
    the unit value and cost are measured in during training."""
    y, treated = np.asarray(y, dtype=float), np.asarray(treated, dtype=bool)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
    effect, se = hajek_difference(y, w, treated, ~treated, small_sample=False)
    scale = max(abs(effect), 2.0 * se)
    return float(scale) if scale > 1e-12 else 1.0


# --- numpy scorers -----------------------------------------------------------------------------

def _validation_split(treated: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices, stratified by arm, each with its treated rows first
    (the layout :class:`Cohort` computes on)."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for group in (np.flatnonzero(treated), np.flatnonzero(~treated)):
        shuffled = rng.permutation(group)
        cut = int(round(len(group) * VALIDATION_SHARE))
        val.append(np.sort(shuffled[:cut]))
        fit.append(np.sort(shuffled[cut:]))
    return np.concatenate(fit), np.concatenate(val)


class DirectRanker:
    """A Direct Ranking Model for one offer against no offer (scikit-learn manners).

    Parameters
    ----------
    scorer : {"lightgbm", "linear", "mlp"}
    cpi_max : float, optional
        The constrained variant: maximise incremental value subject to incremental cost per
        incremental value ≤ ``cpi_max`` (in the log's units).
    max_steps : int
        Adam steps (numpy scorers) or boosting rounds (LightGBM), before early stopping.
    l2 : float
        L2 penalty of the numpy scorers' parameters.
    seed : int

    Attributes (after ``fit``)
    --------------------------
    scale_value_, scale_cost_ : the units value and cost were divided by
    model_ : the fitted scorer
    info_ : dict (steps or rounds, validation loss)
    quantiles_ : training scores' quantiles (to express scores as percentiles)
    """

    def __init__(self, scorer: str = "lightgbm", cpi_max: float | None = None, max_steps: int | None = None,
                 l2: float = 1e-3, seed: int = 0, lgbm_params: dict | None = None):
        self.scorer = scorer
        self.cpi_max = cpi_max
        self.max_steps = max_steps
        self.l2 = l2
        self.seed = seed
        self.lgbm_params = lgbm_params

    def fit(self, x: np.ndarray, treated, value, cost, weight=None, cat_idx=()) -> "DirectRanker":
        if self.scorer not in SCORERS:
            raise UserError(f"ranking scorer '{self.scorer}' is not one of {', '.join(SCORERS)}")
        if self.cpi_max is not None and not (np.isfinite(self.cpi_max) and self.cpi_max > 0):
            raise UserError(f"the constrained ranking's CPI limit must be a positive number, got {self.cpi_max!r}")
        treated = np.asarray(treated, dtype=bool)
        if treated.all() or not treated.any():
            raise UserError("direct ranking needs rows of both the offer and no offer")
        x = np.asarray(x, dtype=float)
        self.cat_idx_ = list(cat_idx)
        self.scale_value_ = effect_scale(value, treated, weight)
        self.scale_cost_ = effect_scale(cost, treated, weight)
        v = np.asarray(value, dtype=float) / self.scale_value_
        c = np.asarray(cost, dtype=float) / self.scale_cost_
        cpi = None if self.cpi_max is None else self.cpi_max * self.scale_value_ / self.scale_cost_
        fit_rows, val_rows = _validation_split(treated, [self.seed, 5])
        w = None if weight is None else np.asarray(weight, dtype=float)
        groups = tuple(Cohort(int(treated[r].sum()), v[r], c[r], None if w is None else w[r]) for r in (fit_rows, val_rows))
        if self.scorer == "lightgbm":
            self.model_, self.info_ = fit_lightgbm((x[fit_rows], x[val_rows]), self.cat_idx_, groups, cpi, self.seed,
                                                   self.max_steps or MAX_ROUNDS, dict(self.lgbm_params or {}))
        else:
            self.design_ = Design(x, self.cat_idx_)
            z = self.design_.transform(x)
            self.model_, self.info_ = fit_numpy(self.scorer, (z[fit_rows], z[val_rows]), groups, cpi, self.seed,
                                                self.max_steps or 500, self.l2, 0.05 if self.scorer == "linear" else 0.02)
        self.quantiles_ = np.quantile(self.score(x), np.linspace(0, 1, QUANTILES))
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (higher = offer first)."""
        x = np.asarray(x, dtype=float)
        if self.scorer == "lightgbm":
            return self.model_.predict(x, num_threads=1)
        return self.model_.score(self.design_.transform(x))

    def percentile(self, x: np.ndarray) -> np.ndarray:
        """Scores as percentiles of the training rows' scores (comparable across fold models)."""
        s = self.score(x)
        lo = np.searchsorted(self.quantiles_, s, side="left")
        hi = np.searchsorted(self.quantiles_, s, side="right")
        return (lo + hi) / (2.0 * len(self.quantiles_))


# --- effects per score bin --------------------------------------------------------------------

def rank_bins(score, treated, value, cost, weight=None, n_bins: int = 10, min_rows: int = MIN_BIN_ROWS,
              alpha: float = 0.05) -> pd.DataFrame:
    """Incremental value and cost per bin of ``score`` (equal-count bins of the rows, merged
    until every bin has ``min_rows`` rows of each arm), with normal intervals.

    Each effect is a difference of arm means (Hájek, weighted by ``weight`` when given) within
    the bin; its standard error is that of two independent means.
    """
    score, treated = np.asarray(score, dtype=float), np.asarray(treated, dtype=bool)
    value = np.asarray(value, dtype=float)
    cost = None if cost is None else np.asarray(cost, dtype=float)
    w = np.ones(len(score)) if weight is None else np.asarray(weight, dtype=float)
    edges = np.unique(np.quantile(score, np.linspace(0, 1, n_bins + 1)))
    edges = _merge_thin_bins(score, treated, edges, min_rows)
    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, len(edges) - 2) if len(edges) > 1 else np.zeros(len(score), int)
    for k in range(max(len(edges) - 1, 1)):
        in_bin = bins == k
        t_rows, c_rows = in_bin & treated, in_bin & ~treated
        row = {"bin": k + 1, "score_low": float(score[in_bin].min()), "score_high": float(score[in_bin].max()),
               "score_mid": float(np.median(score[in_bin])), "n_offer": int(t_rows.sum()), "n_control": int(c_rows.sum())}
        for head, y in (("value", value), ("cost", cost)):
            if y is None:
                continue
            effect, se = hajek_difference(y, w, t_rows, c_rows, small_sample=False)
            row.update({f"tau_{head}": effect, f"tau_{head}_low": effect - z * se,
                        f"tau_{head}_high": effect + z * se, f"tau_{head}_se": se})
        rows.append(row)
    return pd.DataFrame(rows)


def _merge_thin_bins(score, treated, edges, min_rows):
    """Drop inner edges until every bin has ``min_rows`` rows of each arm (or one bin is left)."""
    edges = list(edges)
    while len(edges) > 2:
        bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, len(edges) - 2)
        counts = np.minimum(np.bincount(bins[treated], minlength=len(edges) - 1),
                            np.bincount(bins[~treated], minlength=len(edges) - 1))
        thinnest = int(np.argmin(counts))
        if counts[thinnest] >= min_rows:
            break
        # merge the thinnest bin with its thinner neighbour
        if thinnest == 0:
            drop = 1
        elif thinnest == len(counts) - 1:
            drop = thinnest
        else:
            drop = thinnest if counts[thinnest - 1] <= counts[thinnest + 1] else thinnest + 1
        del edges[drop]
    return np.asarray(edges)


def effects_from_bins(score, bins: pd.DataFrame, head: str) -> np.ndarray:
    """τ of ``head`` at each score: linear between the bins' median scores, flat beyond them
    (so customers keep their order within a bin when the bins' effects rise with the score)."""
    return np.interp(np.asarray(score, dtype=float), bins["score_mid"].to_numpy(), bins[f"tau_{head}"].to_numpy())


# --- cross-fitting every offer ----------------------------------------------------------------

def check_rankable(x: np.ndarray, cost) -> None:
    """Refuse data a ranking cannot learn from, in words."""
    if cost is None:
        raise UserError("direct ranking orders customers by incremental value per incremental cost, and no cost is "
                        "mapped; map a cost column or give a constant cost per offer (or use a two-head learner)")
    if not np.any(np.asarray(cost, dtype=float) != 0):
        raise UserError("every cost in the log is 0, so incremental cost is 0 for every customer and there is no "
                        "value per cost to rank by; use a two-head learner, which ranks by value when costs are 0")
    varies = [np.nanmax(col) > np.nanmin(col) if np.isfinite(col).any() else False for col in np.asarray(x, dtype=float).T]
    if not any(varies):
        raise UserError("every customer has the same features (a single customer type), so a ranking has nothing "
                        "to order; the readout's average effects (step 2) are the whole answer")


def cross_fit(x, t, value, cost, weight, folds: int, seed: int, make_ranker, cat_idx=(), run=None, step=None):
    """Out-of-fold percentile scores of every offer (arm codes 1..K−1 against 0).

    Returns ``(oof, rankers)``: ``oof`` (n × offers) holds, for every row, the percentile score
    of the fold model that did not see it; ``rankers[k]`` the K fold models of offer k+1.
    ``run(fn, tasks)`` maps the tasks (e.g. on threads); ``step(message)`` reports progress.
    """
    from sklearn.model_selection import StratifiedKFold  # deferred: scikit-learn is slow to import

    n_offers = int(t.max())
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(t)), t))
    tasks = [(fold, k) for fold in range(folds) for k in range(1, n_offers + 1)]

    def fit_one(task):
        fold, k = task
        train = splits[fold][0]
        rows = train[(t[train] == k) | (t[train] == 0)]
        ranker = make_ranker(seed + fold).fit(x[rows], t[rows] == k, value[rows], cost[rows],
                                              None if weight is None else weight[rows], cat_idx)
        if step is not None:
            step(f"offer {k} of {n_offers} · fold {fold + 1}/{folds}")
        return ranker

    fitted = (run or (lambda fn, items: [fn(i) for i in items]))(fit_one, tasks)
    oof = np.zeros((len(t), n_offers))
    rankers = {k: [None] * folds for k in range(1, n_offers + 1)}
    for (fold, k), ranker in zip(tasks, fitted):
        test = splits[fold][1]
        oof[test, k - 1] = ranker.percentile(x[test])
        rankers[k][fold] = ranker
    return oof, rankers
