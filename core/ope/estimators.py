"""Off-policy estimators: what a candidate policy would have earned on the logged customers.

Logged data (x_i, a_i, y_i, p_i) with p_i the probability of the logged arm.  For a target
policy π (a probability over arms for every customer), the importance weight is
``w_i = π(a_i | x_i) / p_i`` (with ``clip``: ``p_i`` is floored at the clip first).  With a
cross-fitted reward model ``q̂(x, a)`` (see :func:`reward_model`), the Open Bandit Pipeline's
definitions:

- IPS       = mean(w·y)
- SNIPS     = Σ w·y / Σ w
- DM        = mean(Σ_a π(a|x_i) q̂(x_i, a))
- DR        = DM + mean(w·(y − q̂(x_i, a_i)))
- SNDR      = DM + Σ w·(y − q̂(x_i, a_i)) / Σ w
- Switch-DR = DM + mean(w·(y − q̂(x_i, a_i))·[w ≤ τ])   (τ = ∞ by default, as in OBP: DR)

Every estimator is a smooth function of a handful of sums over rows, so intervals come from
the seeded percentile bootstrap of those sums: exact Poisson(1) resampling weights for small
logs, and for large ones (n × B above a limit) the normal law with the Poisson bootstrap's
exact mean and covariance of the sums, which is what the resampled sums converge to.  The
Poisson counts come from a counter-based generator keyed by row and resample
(:mod:`core.resample`), so the Spark engine draws the same ones partition by partition.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError, setting
from ..features import lgbm_frame, numeric_matrix
from ..lgbm import LGBMFactory
from ..resample import bootstrap_sums as keyed_sums

ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch-dr")
EXACT_LIMIT = 1e7
WEIGHTING_ONLY = {"ips", "snips"}  # estimators that need no reward model


def _stats_matrix(y, q_logged, q_policy, w, tau):
    """Per-row statistics whose sums determine every estimator."""
    residual = y - q_logged
    switch = np.where(w <= tau, w * residual, 0.0)
    return np.column_stack([np.ones_like(y), w, w * y, q_policy, w * residual, switch])


class Estimator:
    """Base of the estimators: each is a function of the six row sums of
    :func:`_stats_matrix` — n, Σw, Σw·y, Σ q̂_π, Σ w·(y − q̂), Σ w·(y − q̂)·[w ≤ τ] — which is what
    lets one vectorised bootstrap serve all of them."""

    name = ""

    @staticmethod
    def parts(s: np.ndarray):
        return tuple(s[..., j] for j in range(6))

    def from_sums(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class IPS(Estimator):
    name = "ips"

    def from_sums(self, s):
        n, _, swy, _, _, _ = self.parts(s)
        return swy / n


class SNIPS(Estimator):
    name = "snips"

    def from_sums(self, s):
        _, sw, swy, _, _, _ = self.parts(s)
        return swy / sw


class DM(Estimator):
    name = "dm"

    def from_sums(self, s):
        n, _, _, sq, _, _ = self.parts(s)
        return sq / n


class DR(Estimator):
    name = "dr"

    def from_sums(self, s):
        n, _, _, sq, swr, _ = self.parts(s)
        return sq / n + swr / n


class SNDR(Estimator):
    name = "sndr"

    def from_sums(self, s):
        n, sw, _, sq, swr, _ = self.parts(s)
        return sq / n + swr / sw


class SwitchDR(Estimator):
    name = "switch-dr"

    def from_sums(self, s):
        n, _, _, sq, _, sswr = self.parts(s)
        return sq / n + sswr / n


REGISTRY: dict[str, Estimator] = {e.name: e for e in (IPS(), SNIPS(), DM(), DR(), SNDR(), SwitchDR())}


def _from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator from summed statistics (… × 6)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: estimator.from_sums(s) for name, estimator in REGISTRY.items()}


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    se: float

    def to_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "se": self.se}


@dataclass(frozen=True)
class OPEResult:
    """Estimates of one policy for one outcome, plus its weight diagnostics."""

    estimates: dict[str, Estimate]
    ess: float
    max_weight: float
    n: int
    share_clipped: float
    replicates: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict:
        return {name: e.to_dict() for name, e in self.estimates.items()}


def bootstrap_sums(stats: np.ndarray, n_boot: int, seed: int, keys: np.ndarray | None = None,
                   exact_limit: float | None = None) -> np.ndarray:
    """Bootstrap replicates of the column sums of ``stats`` (see module docstring).

    Exact resampling gives row i of resample b the counter-based Poisson(1) count keyed by
    ``keys[i]`` (default: the row positions) and ``b`` (:mod:`core.resample`), so any engine
    that sums the same rows draws the same counts.  Above ``exact_limit`` cells (n × B; default
    :data:`EXACT_LIMIT`) the normal law with the same mean and covariance is used instead
    (:func:`normal_replicates`).
    """
    n, m = stats.shape
    limit = EXACT_LIMIT if exact_limit is None else exact_limit
    if n * n_boot <= limit:
        return keyed_sums(stats, np.arange(n) if keys is None else keys, n_boot, seed)
    return normal_replicates(stats.sum(axis=0), stats.T @ stats, n_boot, seed)


def normal_replicates(sums: np.ndarray, cross: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Replicates of Poisson-bootstrapped sums from their exact mean (``sums``) and covariance
    (``cross`` = Σ sᵢ sᵢᵀ): what the resampled sums converge to on large logs."""
    rng = np.random.default_rng(seed)
    eigval, eigvec = np.linalg.eigh(cross)
    root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
    return sums + rng.standard_normal((n_boot, len(sums))) @ root.T


def policy_weights(policy_logged: np.ndarray, propensity: np.ndarray, clip: float | None) -> tuple[np.ndarray, float]:
    """w = π(a_i|x_i) / max(p_i, clip) and the share of rows whose propensity was clipped."""
    p = np.asarray(propensity, dtype=float)
    if clip is not None:
        if not 0 < clip < 1:
            raise UserError(f"{setting('clip')} must be between 0 and 1 (exclusive), got {clip}")
        clipped = float(np.mean(p < clip))
        p = np.maximum(p, clip)
    else:
        clipped = 0.0
    return np.asarray(policy_logged, dtype=float) / p, clipped


def check_settings(estimators, alpha: float, n_boot: int, clip: float | None = None) -> None:
    """Refuse unknown estimators and out-of-range settings, naming the option."""
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise UserError(f"{setting('estimators')} names {', '.join(map(repr, unknown))}; choose from {', '.join(ESTIMATORS)}")
    if not 0 < alpha < 1:
        raise UserError(f"{setting('alpha')} must be between 0 and 1, got {alpha}")
    if n_boot < 2:
        raise UserError(f"{setting('bootstrap')} must be at least 2 resamples, got {n_boot}")
    if clip is not None and not 0 < clip < 1:
        raise UserError(f"{setting('clip')} must be between 0 and 1 (exclusive), got {clip}")


def estimate(y, propensity, policy_logged, q_logged, q_policy, *, estimators=ESTIMATORS, clip: float | None = None,
             tau: float = np.inf, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> OPEResult:
    """All requested estimators with seeded percentile-bootstrap intervals.

    Parameters
    ----------
    y : array
        Logged outcome (value or cost).
    propensity : array
        Probability of each row's logged arm under the logging policy.
    policy_logged : array
        π(a_i | x_i): the target policy's probability of the logged arm.
    q_logged, q_policy : arrays
        q̂(x_i, a_i) and Σ_a π(a|x_i) q̂(x_i, a).
    """
    check_settings(estimators, alpha, n_boot)
    y = np.asarray(y, dtype=float)
    w, clipped = policy_weights(policy_logged, propensity, clip)
    stats = _stats_matrix(y, np.asarray(q_logged, float), np.asarray(q_policy, float), w, tau)
    point = _from_sums(stats.sum(axis=0))
    reps = _from_sums(bootstrap_sums(stats, n_boot, seed))
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    out = {name: Estimate(float(point[name]), float(np.nanpercentile(reps[name], lo)), float(np.nanpercentile(reps[name], hi)),
                          float(np.nanstd(reps[name], ddof=1))) for name in estimators}
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return OPEResult(out, ess, float(w.max()) if len(w) else 0.0, len(y), clipped, {k: reps[k] for k in estimators})


def reward_model(log, y: np.ndarray, folds: int = 2, seed: int = 0, progress=None) -> np.ndarray:
    """Cross-fitted q̂(x, a) for every row and arm: one LightGBM per arm per fold; each row is
    predicted only by models that did not see it.  Returns an (n × arms) matrix in
    ``log.labels`` order."""
    # deferred: scikit-learn is slow to import
    from sklearn.model_selection import StratifiedKFold

    labels = list(log.labels)
    t = np.array([labels.index(a) for a in log.action])
    frame, _ = lgbm_frame(log.frame, list(log.features))
    x, cat_idx = numeric_matrix(frame)
    smallest = int(np.bincount(t, minlength=len(labels)).min())
    factory = LGBMFactory({"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 15,
                           "min_child_samples": int(min(100, max(10, smallest // 10))), "subsample": 0.8, "subsample_freq": 1,
                           "colsample_bytree": 0.8, "random_state": seed, "n_jobs": 2, "verbose": -1, "deterministic": True},
                          cat_idx)
    q = np.zeros((log.n, len(labels)))
    folds = int(max(2, min(folds, smallest)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(x, t)):
        for j in range(len(labels)):
            rows = train[t[train] == j]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model = factory.regressor().fit(x[rows], y[rows])
            q[test, j] = model.predict(x[test])
        if progress:
            progress((k + 1) / folds, f"reward model, fold {k + 1} of {folds}")
    return q


def reward_models(log, folds: int = 2, seed: int = 0, progress=None) -> tuple[np.ndarray, np.ndarray | None]:
    """q̂ for value and for cost (n × arms each, ``log.labels`` order).

    Cost: cross-fitted from a cost column; a constant cost per arm is known exactly, so it is
    tiled rather than modelled; ``None`` when the log has no cost.
    """
    q_value = reward_model(log, log.value, folds=folds, seed=seed, progress=progress)
    if log.columns.cost:
        q_cost = reward_model(log, log.cost, folds=folds, seed=seed)
    elif log.columns.action_cost:
        q_cost = np.tile([log.columns.action_cost_map.get(l, 0.0) for l in log.labels], (log.n, 1))
    else:
        q_cost = None
    return q_value, q_cost
