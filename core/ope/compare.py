"""Candidate policies and their side-by-side off-policy evaluation.

A policy is a probability over the log's arms for every logged customer (an n × arms matrix in
``log.labels`` order, rows summing to 1).  Candidates: no offer, treat-all with one offer, the
logging policy itself, a uniformly random policy, the model's allocation at a budget, a rule per
lifecycle segment, and a policy uploaded as CSV (an ``action`` column, or ``prob__<arm>``
columns).  Each is evaluated for the value and the cost outcome, and its increment over no
offer comes from the same bootstrap resamples (a paired interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from .estimators import ESTIMATORS, Estimate, _from_sums, _stats_matrix, normal_replicates, policy_weights


@dataclass(frozen=True)
class Policy:
    name: str
    matrix: np.ndarray
    logged_prob: np.ndarray | None = None  # π(a_i|x_i) when it differs from matrix[i, a_i] (the logging policy)


def _index(log) -> np.ndarray:
    labels = list(log.labels)
    return np.array([labels.index(a) for a in log.action])


def deterministic(log, name: str, arms) -> Policy:
    labels = list(log.labels)
    arms = np.asarray(arms, dtype=object)
    unknown = sorted(set(arms) - set(labels))
    if unknown:
        raise UserError(f"policy '{name}' uses arm(s) {', '.join(map(repr, unknown[:5]))} that are not in the log; arms: {', '.join(labels)}")
    matrix = np.zeros((log.n, len(labels)))
    matrix[np.arange(log.n), [labels.index(a) for a in arms]] = 1.0
    return Policy(name, matrix)


def no_offer(log) -> Policy:
    return deterministic(log, "no-offer", [log.control] * log.n)


def treat_all(log, arm: str) -> Policy:
    if arm not in log.labels:
        raise UserError(f"treat-all arm '{arm}' is not in the log; arms: {', '.join(log.labels)}")
    return deterministic(log, f"treat-all:{arm}", [arm] * log.n)


def random_policy(log) -> Policy:
    k = len(log.labels)
    return Policy("random", np.full((log.n, k), 1.0 / k))


def logging_policy(log, propensity: np.ndarray, estimated: np.ndarray | None = None) -> Policy:
    """The policy that produced the log: weights are exactly 1; DM uses the estimated
    propensity matrix when there is one, else the logged arm itself."""
    matrix = estimated if estimated is not None else np.eye(len(log.labels))[_index(log)]
    return Policy("logging", np.asarray(matrix, dtype=float), np.asarray(propensity, dtype=float))


def segment_rule(log, rule: dict, name: str = "segment rule") -> Policy:
    """One arm per value of the log's segment column; unlisted segments get no offer."""
    if not log.columns.segment:
        raise UserError("a segment rule needs a segment column (e.g. lifecycle); map one in step 1")
    segment = log.frame[log.columns.segment].astype("string").fillna("(missing)").to_numpy()
    unknown = sorted(set(rule) - set(segment))
    if unknown:
        raise UserError(f"the rule names segment(s) {', '.join(map(repr, unknown))} not found in '{log.columns.segment}'")
    return deterministic(log, name, [rule.get(s, log.control) for s in segment])


def from_allocation(log, choice: np.ndarray, arms, name: str = "model policy") -> Policy:
    """From an allocation's choice vector (index into ``arms``, −1 = no offer)."""
    choice = np.asarray(choice)
    labels = np.array(list(arms), dtype=object)
    return deterministic(log, name, np.where(choice >= 0, labels[np.maximum(choice, 0)], log.control))


def from_frame(log, frame: pd.DataFrame, name: str = "uploaded") -> Policy:
    """From a CSV: an ``action`` column or ``prob__<arm>`` columns; joined on ``id`` when the
    log has an id column and the file an ``id`` column, else row-aligned."""
    if log.columns.id and "id" in frame.columns:
        keyed = frame.assign(id=frame["id"].astype(str))
        if keyed["id"].duplicated().any():
            raise UserError(f"the policy file has duplicated ids (e.g. {keyed.loc[keyed['id'].duplicated(), 'id'].iloc[0]!r})")
        ids = pd.Series(log.ids).astype(str)
        missing = ~ids.isin(keyed["id"])
        if missing.any():
            raise UserError(f"the policy file has no row for {int(missing.sum()):,} customers of the log (e.g. id {ids[missing].iloc[0]!r}); "
                            "every logged customer needs a decision")
        frame = keyed.set_index("id").loc[ids].reset_index(drop=True)
    elif len(frame) != log.n:
        raise UserError(f"the policy file has {len(frame):,} rows but the log has {log.n:,}; add an id column (and map --id) to join them")
    prob_cols = [c for c in frame.columns if str(c).startswith("prob__")]
    if "action" in frame.columns and not prob_cols:
        return deterministic(log, name, frame["action"].astype(str).to_numpy())
    if not prob_cols:
        raise UserError("the policy file needs an 'action' column or prob__<arm> columns")
    unknown = [c[len("prob__"):] for c in prob_cols if c[len("prob__"):] not in log.labels]
    if unknown:
        raise UserError(f"the policy file has probabilities for arm(s) {', '.join(map(repr, unknown))} not in the log")
    matrix = np.zeros((log.n, len(log.labels)))
    for c in prob_cols:
        values = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
            raise UserError(f"column '{c}' must hold probabilities between 0 and 1 in every row")
        matrix[:, list(log.labels).index(c[len("prob__"):])] = values
    return Policy(name, matrix)


def check_policy(log, policy: Policy, propensity: np.ndarray) -> None:
    """Refuse policies that cannot be evaluated on this log, naming why."""
    matrix = policy.matrix
    if matrix.shape != (log.n, len(log.labels)):
        raise UserError(f"policy '{policy.name}' has shape {matrix.shape}; expected ({log.n}, {len(log.labels)})")
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise UserError(f"policy '{policy.name}': probabilities of row {bad[0] + 1} sum to {sums[bad[0]]:.6g}, not 1 "
                        f"({len(bad):,} rows affected)")
    logged = np.bincount(_index(log), minlength=len(log.labels))
    for j, label in enumerate(log.labels):
        if logged[j] == 0 and (matrix[:, j] > 0).any():
            raise UserError(f"policy '{policy.name}' sends '{label}' to {int((matrix[:, j] > 0).sum()):,} customers, but '{label}' "
                            "was never logged: there is no support to evaluate it")
    p = np.asarray(propensity, dtype=float)
    if (p <= 0).any() or np.isnan(p).any():
        raise UserError(f"{int(((p <= 0) | np.isnan(p)).sum()):,} rows have a propensity of 0 (or none); a logged action "
                        "with probability 0 cannot be reweighted")


@dataclass(frozen=True)
class PolicyEvaluation:
    name: str
    value: dict[str, Estimate]
    cost: dict[str, Estimate] | None
    value_increment: dict[str, Estimate]
    cost_increment: dict[str, Estimate] | None
    ess: float
    max_weight: float
    share_clipped: float
    rare_arms: list
    offer_share: float = float("nan")  # share of customers the policy sends an offer (any arm but the control)

    def row(self, estimator: str) -> dict:
        out = {"policy": self.name, "offer_share": self.offer_share, "value": self.value[estimator].value, "value_low": self.value[estimator].ci_low,
               "value_high": self.value[estimator].ci_high, "increment": self.value_increment[estimator].value,
               "increment_low": self.value_increment[estimator].ci_low, "increment_high": self.value_increment[estimator].ci_high,
               "ess": self.ess, "max_weight": self.max_weight}
        if self.cost is not None:
            out.update(cost=self.cost[estimator].value, cost_low=self.cost[estimator].ci_low, cost_high=self.cost[estimator].ci_high,
                       cost_increment=self.cost_increment[estimator].value)
        return out


@dataclass
class RowSums:
    """What OPE needs from the rows, as sums that add up over any split of them: the per-row
    statistics' sums and cross-products, their Poisson-bootstrap replicate sums (exact
    resampling), and the importance weights' Σw, Σw², max and clipped count."""

    n: int
    sums: np.ndarray
    cross: np.ndarray
    reps: np.ndarray | None
    sum_w: float
    sum_w2: float
    max_w: float
    n_clipped: int

    def __add__(self, other: "RowSums") -> "RowSums":
        reps = None if self.reps is None else self.reps + other.reps
        return RowSums(self.n + other.n, self.sums + other.sums, self.cross + other.cross, reps, self.sum_w + other.sum_w,
                       self.sum_w2 + other.sum_w2, max(self.max_w, other.max_w), self.n_clipped + other.n_clipped)


def policy_rows(y_value, y_cost, q_value, q_cost, index, control_index: int, matrix, logged_prob, propensity,
                clip: float | None, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row statistics of one policy: 6 columns for its value, 6 for no offer's value (the
    reference of the paired increments), and the same 12 for the cost when ``y_cost`` and
    ``q_cost`` are given.  Returns the statistics, the weights w and the clipped-row mask."""
    rows = np.arange(len(index))
    p = np.asarray(propensity, dtype=float)
    w, _ = policy_weights(logged_prob, p, clip)
    w_ref, _ = policy_weights((index == control_index).astype(float), p, clip)
    blocks = []
    for y, q in ((y_value, q_value), (y_cost, q_cost)):
        if y is None or q is None:
            continue
        y = np.asarray(y, dtype=float)
        q_logged = q[rows, index]
        blocks.append(_stats_matrix(y, q_logged, (matrix * q).sum(axis=1), w, tau))
        blocks.append(_stats_matrix(y, q_logged, q[:, control_index], w_ref, tau))
    clipped = p < clip if clip is not None else np.zeros(len(p), dtype=bool)
    return np.concatenate(blocks, axis=1), w, clipped


def row_sums(stats: np.ndarray, w: np.ndarray, clipped: np.ndarray, keys: np.ndarray, n_boot: int, seed: int,
             exact: bool) -> RowSums:
    """The :class:`RowSums` of a block of rows (the whole log, or one partition of it)."""
    from ..engines.keys import bootstrap_sums as keyed_sums

    reps = keyed_sums(stats, keys, n_boot, seed) if exact else None
    return RowSums(len(w), stats.sum(axis=0), stats.T @ stats, reps, float(w.sum()), float((w**2).sum()),
                   float(w.max()) if len(w) else 0.0, int(clipped.sum()))


def exact_bootstrap(n: int, n_boot: int, exact_limit: float | None = None) -> bool:
    """Resample rows exactly (Poisson counts) or use the normal limit (see :func:`bootstrap_sums`)."""
    from .estimators import EXACT_LIMIT

    return n * n_boot <= (EXACT_LIMIT if exact_limit is None else exact_limit)


def _interval(point: float, reps: np.ndarray, alpha: float) -> Estimate:
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return Estimate(float(point), float(np.nanpercentile(reps, lo)), float(np.nanpercentile(reps, hi)), float(np.nanstd(reps, ddof=1)))


def evaluation_from_sums(name: str, sums: RowSums, labels, control: str, estimators, n_boot: int, alpha: float, seed: int,
                         logged_share: np.ndarray, used: np.ndarray, rare_share: float = 0.01) -> PolicyEvaluation:
    """Estimates, paired increments over no offer, and intervals from a policy's :class:`RowSums`."""
    reps = sums.reps if sums.reps is not None else normal_replicates(sums.sums, sums.cross, n_boot, seed)
    results = []
    for block in range(sums.sums.shape[0] // 12):
        at = slice(12 * block, 12 * block + 6), slice(12 * block + 6, 12 * block + 12)
        point, ref = _from_sums(sums.sums[at[0]]), _from_sums(sums.sums[at[1]])
        a, b = _from_sums(reps[:, at[0]]), _from_sums(reps[:, at[1]])
        results.append(({e: _interval(point[e], a[e], alpha) for e in estimators},
                        {e: _interval(point[e] - ref[e], a[e] - b[e], alpha) for e in estimators}))
    value, value_inc = results[0]
    cost, cost_inc = results[1] if len(results) > 1 else (None, None)
    ess = sums.sum_w**2 / sums.sum_w2 if sums.sum_w2 > 0 else 0.0
    rare = [label for j, label in enumerate(labels) if used[j] > 0 and logged_share[j] < rare_share]
    offer_share = float(1.0 - used[list(labels).index(control)])
    return PolicyEvaluation(name, value, cost, value_inc, cost_inc, float(ess), sums.max_w, sums.n_clipped / max(sums.n, 1),
                            rare, offer_share)


def evaluate_policy(log, policy: Policy, propensity: np.ndarray, q_value: np.ndarray, q_cost: np.ndarray | None = None,
                    *, estimators=ESTIMATORS, clip: float | None = None, tau: float = np.inf, n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0, rare_share: float = 0.01, keys: np.ndarray | None = None,
                    exact_limit: float | None = None) -> PolicyEvaluation:
    """Value and cost of ``policy`` by every estimator, and the increments over no offer.

    Bootstrap resample b gives each row the Poisson count keyed by ``keys`` (default: the row
    positions, see :mod:`core.engines.keys`); the increments use the same resamples (paired).
    """
    from .estimators import check_settings

    check_settings(estimators, alpha, n_boot, clip)
    check_policy(log, policy, propensity)
    index = _index(log)
    rows = np.arange(log.n)
    logged_prob = policy.logged_prob if policy.logged_prob is not None else policy.matrix[rows, index]
    control_index = list(log.labels).index(log.control)
    stats, w, clipped = policy_rows(log.value, log.cost, q_value, q_cost, index, control_index, policy.matrix, logged_prob,
                                    propensity, clip, tau)
    keys = rows if keys is None else keys
    sums = row_sums(stats, w, clipped, keys, n_boot, seed, exact_bootstrap(log.n, n_boot, exact_limit))
    logged_share = np.bincount(index, minlength=len(log.labels)) / log.n
    return evaluation_from_sums(policy.name, sums, log.labels, log.control, estimators, n_boot, alpha, seed, logged_share,
                                policy.matrix.mean(axis=0), rare_share)
