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

from ..diagnostics.overlap import ESTIMATED
from ..engines.local import LocalEngine
from ..errors import UserError
from ..joins import POLICY_MESSAGES, align_to_log
from ..resample import bootstrap_sums as keyed_sums
from ..resample import row_keys
from .estimators import (EXACT_LIMIT, ESTIMATORS, Estimate, _from_sums, _stats_matrix, check_settings, normal_replicates,
                         policy_weights)


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
    frame = align_to_log(log, frame, POLICY_MESSAGES)
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


@dataclass
class PolicyCheck:
    """What refusing a policy needs from a batch of rows, adding up over any split of them:
    rows whose probabilities do not sum to 1 (and the first), customers per arm the policy
    sends it to, rows logged per arm, rows without a usable propensity, arms a file names that
    the log has not and probability columns with values outside [0, 1]."""

    bad_rows: int
    first_bad: tuple
    positive: np.ndarray
    logged: np.ndarray
    p_bad: int
    unknown: frozenset = frozenset()
    prob_bad: frozenset = frozenset()

    @classmethod
    def of(cls, matrix, index, propensity, positions, unknown=frozenset(), prob_bad=frozenset()) -> "PolicyCheck":
        sums = matrix.sum(axis=1)
        bad = np.abs(sums - 1.0) > 1e-6
        first_bad = ((int(positions[bad].min()), float(sums[bad][np.argmin(positions[bad])])) if bad.any()
                     else (np.iinfo(np.int64).max, 0.0))
        p = np.asarray(propensity, dtype=float)
        return cls(int(bad.sum()), first_bad, (matrix > 0).sum(axis=0),
                   np.bincount(index, minlength=matrix.shape[1]).astype(float), int(((p <= 0) | np.isnan(p)).sum()),
                   unknown, prob_bad)

    def __add__(self, other: "PolicyCheck") -> "PolicyCheck":
        return PolicyCheck(self.bad_rows + other.bad_rows, min(self.first_bad, other.first_bad),
                           self.positive + other.positive, self.logged + other.logged, self.p_bad + other.p_bad,
                           self.unknown | other.unknown, self.prob_bad | other.prob_bad)

    def refuse(self, name: str, labels) -> None:
        """Raise the first reason the policy cannot be evaluated on this log, naming it."""
        labels = list(labels)
        if self.prob_bad:
            raise UserError(f"column 'prob__{sorted(self.prob_bad)[0]}' must hold probabilities between 0 and 1 in every row")
        if self.unknown:
            raise UserError(f"policy '{name}' uses arm(s) {', '.join(map(repr, sorted(self.unknown)[:5]))} that are not in "
                            f"the log; arms: {', '.join(labels)}")
        if self.bad_rows:
            raise UserError(f"policy '{name}': probabilities of row {self.first_bad[0] + 1} sum to {self.first_bad[1]:.6g}, "
                            f"not 1 ({self.bad_rows:,} rows affected)")
        for j, label in enumerate(labels):
            if self.logged[j] == 0 and self.positive[j] > 0:
                raise UserError(f"policy '{name}' sends '{label}' to {int(self.positive[j]):,} customers, but '{label}' "
                                "was never logged: there is no support to evaluate it")
        if self.p_bad:
            raise UserError(f"{self.p_bad:,} rows have a propensity of 0 (or none); a logged action with probability 0 "
                            "cannot be reweighted")


def check_policy(log, policy: Policy, propensity: np.ndarray) -> None:
    """Refuse policies that cannot be evaluated on this log, naming why."""
    if policy.matrix.shape != (log.n, len(log.labels)):
        raise UserError(f"policy '{policy.name}' has shape {policy.matrix.shape}; expected ({log.n}, {len(log.labels)})")
    PolicyCheck.of(policy.matrix, _index(log), propensity, log.positions).refuse(policy.name, log.labels)


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
    n: int = 0
    clip: float | None = None

    @property
    def warnings(self) -> list[str]:
        """What the log cannot support about this policy: few effective customers, clipped
        propensities, offers the log rarely tried."""
        out = []
        if self.n and self.ess < 0.1 * self.n and self.name != "logging":
            out.append(f"'{self.name}': effective sample size {self.ess:,.0f} is under 10% of the {self.n:,} customers "
                       "— wide intervals.")
        if self.clip is not None and self.share_clipped > 0:
            out.append(f"'{self.name}': {self.share_clipped:.1%} of rows had their propensity clipped at {self.clip}.")
        if self.rare_arms:
            out.append(f"'{self.name}' uses offer(s) {', '.join(self.rare_arms)} that the log rarely tried (< 1% of rows).")
        return out

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
    reps = keyed_sums(stats, keys, n_boot, seed) if exact else None
    return RowSums(len(w), stats.sum(axis=0), stats.T @ stats, reps, float(w.sum()), float((w**2).sum()),
                   float(w.max()) if len(w) else 0.0, int(clipped.sum()))


def exact_bootstrap(n: int, n_boot: int, exact_limit: float | None = None) -> bool:
    """Resample rows exactly (Poisson counts) or use the normal limit (see :func:`bootstrap_sums`)."""
    return n * n_boot <= (EXACT_LIMIT if exact_limit is None else exact_limit)


def _interval(point: float, reps: np.ndarray, alpha: float) -> Estimate:
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return Estimate(float(point), float(np.nanpercentile(reps, lo)), float(np.nanpercentile(reps, hi)), float(np.nanstd(reps, ddof=1)))


def evaluation_from_sums(name: str, sums: RowSums, labels, control: str, estimators, n_boot: int, alpha: float, seed: int,
                         logged_share: np.ndarray, used: np.ndarray, rare_share: float = 0.01,
                         clip: float | None = None) -> PolicyEvaluation:
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
                            rare, offer_share, sums.n, clip)


Q_VALUE, Q_COST, POLICY = "__qv__", "__qc__", "__pi__"  # per-arm columns attached to the log (j = arm index)
LOGGED_PROB, PROPENSITY = "__lp", "__p"


@dataclass(frozen=True)
class PolicySpec:
    """A policy as every batch of the log can build its rows: ``kind`` ``arm`` (every customer
    gets arm ``arm``), ``random``, ``logging`` (weights 1; DM uses the estimated propensities
    ``__pm__<j>`` when ``estimated``), ``action`` (an arm per customer in column ``__pa``) or
    ``probs`` (probabilities per arm in columns ``__pi__<j>``; the logged arm's own in
    :data:`LOGGED_PROB` when given)."""

    kind: str
    name: str
    arm: int | None = None
    estimated: bool = False
    logged_prob: bool = False


@dataclass
class PolicyPart:
    """One batch's contribution: the :class:`RowSums`, the arms' use and the :class:`PolicyCheck`."""

    sums: RowSums
    used: np.ndarray
    check: PolicyCheck

    def __add__(self, other: "PolicyPart") -> "PolicyPart":
        return PolicyPart(self.sums + other.sums, self.used + other.used, self.check + other.check)


def _columns(batch, prefix: str, k: int) -> np.ndarray:
    return np.column_stack([pd.to_numeric(batch.frame[f"{prefix}{j}"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                            for j in range(k)])


def policy_rows_of(batch, spec: PolicySpec, labels) -> tuple[np.ndarray, np.ndarray, frozenset, frozenset]:
    """A batch's policy matrix (n × arms, ``labels`` order), each row's probability of its
    logged arm under the policy, the unknown arms a file names and the bad probability columns."""
    k, n = len(labels), batch.n
    index = pd.Categorical(batch.action, categories=labels).codes.astype(np.int64)
    eye = np.eye(k)
    unknown, prob_bad = frozenset(), frozenset()
    if spec.kind == "arm":
        matrix = np.tile(eye[spec.arm], (n, 1))
    elif spec.kind == "random":
        matrix = np.full((n, k), 1.0 / k)
    elif spec.kind == "logging":
        matrix = _columns(batch, "__pm__", k) if spec.estimated else eye[index]
    elif spec.kind == "action":
        chosen = pd.Categorical(batch.frame["__pa"].astype(str), categories=labels).codes
        unknown = frozenset(batch.frame["__pa"].astype(str)[chosen < 0].tolist())
        matrix = eye[np.maximum(chosen, 0)]
    else:
        matrix = np.zeros((n, k))
        for j in range(k):
            if f"{POLICY}{j}" in batch.frame.columns:
                values = pd.to_numeric(batch.frame[f"{POLICY}{j}"], errors="coerce").to_numpy(dtype=float)
                if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
                    prob_bad |= {labels[j]}
                matrix[:, j] = values
    if spec.kind == "logging":
        logged = _propensity(batch)
    elif spec.logged_prob:
        logged = batch.frame[LOGGED_PROB].to_numpy(dtype=float)
    else:
        logged = matrix[np.arange(n), index]
    return matrix, logged, unknown, prob_bad


def _propensity(batch) -> np.ndarray:
    """The propensity of each row's logged arm OPE weights by: given, estimated, or logged."""
    frame = batch.frame
    for column in (PROPENSITY, ESTIMATED):
        if column in frame.columns:
            return frame[column].to_numpy(dtype=float)
    return batch.propensity


def policy_part(batch, spec: PolicySpec, labels, control: str, q: bool, clip, tau, keys_of, n_boot: int, seed: int,
                exact: bool) -> PolicyPart:
    """The OPE partial of one batch (see :class:`PolicyPart`)."""
    k, n = len(labels), batch.n
    matrix, logged_prob, unknown, prob_bad = policy_rows_of(batch, spec, labels)
    index = pd.Categorical(batch.action, categories=labels).codes.astype(np.int64)
    propensity = _propensity(batch)
    if q:
        q_value = _columns(batch, Q_VALUE, k)
        q_cost = _columns(batch, Q_COST, k) if batch.cost is not None and f"{Q_COST}0" in batch.frame.columns else None
    else:  # IPS and SNIPS use no reward model: zeros stand in for q̂ and change neither estimate
        q_value = np.zeros((n, k))
        q_cost = np.zeros((n, k)) if batch.cost is not None else None
    stats, w, clipped = policy_rows(batch.value, batch.cost, q_value, q_cost, index, labels.index(control), matrix,
                                    logged_prob, propensity, clip, tau)
    return PolicyPart(row_sums(stats, w, clipped, keys_of(batch), n_boot, seed, exact), matrix.sum(axis=0),
                      PolicyCheck.of(matrix, index, propensity, batch.positions, unknown, prob_bad))


KEYS = "__key"  # bootstrap keys attached to the log (see :func:`batch_keys`)


def batch_keys(batch) -> np.ndarray:
    """The counter-based bootstrap's row keys: attached ones, else hashed ids when the log maps
    an id, else the row positions."""
    if KEYS in batch.frame.columns:
        return batch.frame[KEYS].to_numpy(dtype=np.uint64)
    return row_keys(ids=batch.ids) if batch.columns.id else row_keys(positions=batch.positions)


def evaluate_policy_of(engine, log, spec: PolicySpec, *, q: bool, estimators=ESTIMATORS, clip: float | None = None,
                       tau: float = np.inf, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                       rare_share: float = 0.01, exact_limit: float | None = None, n: int | None = None) -> PolicyEvaluation:
    """Value and cost of a policy by every estimator, and the increments over no offer, wherever
    the log's rows are (one partial per batch, :class:`PolicyPart`).  ``q``: the reward models'
    predictions are attached as ``__qv__<j>`` / ``__qc__<j>``."""
    check_settings(estimators, alpha, n_boot, clip)
    labels = list(log.labels)
    n = engine.n_rows(log) if n is None else n
    exact = exact_bootstrap(n, n_boot, exact_limit)
    control = log.control  # the partial travels to the engine's workers: it must not hold the log
    part = engine.reduce(log, lambda batch: policy_part(batch, spec, labels, control, q, clip, tau, batch_keys, n_boot,
                                                         seed, exact))
    name = spec.name
    part.check.refuse(name, labels)
    return evaluation_from_sums(name, part.sums, labels, log.control, estimators, n_boot, alpha, seed, part.check.logged / n,
                                part.used / n, rare_share, clip)


def evaluate_policy(log, policy: Policy, propensity: np.ndarray, q_value: np.ndarray, q_cost: np.ndarray | None = None,
                    *, estimators=ESTIMATORS, clip: float | None = None, tau: float = np.inf, n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0, rare_share: float = 0.01, keys: np.ndarray | None = None,
                    exact_limit: float | None = None) -> PolicyEvaluation:
    """Value and cost of ``policy`` (an n × arms matrix) by every estimator, and the increments
    over no offer: :func:`evaluate_policy_of` on the log in memory.

    Bootstrap resample b gives each row the Poisson count keyed by ``keys`` (default: the row
    positions, see :mod:`core.resample`); the increments use the same resamples (paired).
    """
    check_settings(estimators, alpha, n_boot, clip)
    k = len(log.labels)
    if policy.matrix.shape != (log.n, k):
        raise UserError(f"policy '{policy.name}' has shape {policy.matrix.shape}; expected ({log.n}, {k})")
    arrays = {f"{POLICY}{j}": policy.matrix[:, j] for j in range(k)}
    arrays[PROPENSITY] = np.asarray(propensity, dtype=float)
    arrays.update({f"{Q_VALUE}{j}": q_value[:, j] for j in range(k)})
    if q_cost is not None:
        arrays.update({f"{Q_COST}{j}": q_cost[:, j] for j in range(k)})
    if policy.logged_prob is not None:
        arrays[LOGGED_PROB] = policy.logged_prob
    arrays[KEYS] = row_keys(positions=np.arange(log.n)) if keys is None else np.asarray(keys, dtype=np.uint64)
    spec = PolicySpec("probs", policy.name, logged_prob=policy.logged_prob is not None)
    return evaluate_policy_of(LocalEngine(), log.with_columns(arrays), spec, q=True, estimators=estimators, clip=clip,
                              tau=tau, n_boot=n_boot, alpha=alpha, seed=seed, rare_share=rare_share,
                              exact_limit=exact_limit)
