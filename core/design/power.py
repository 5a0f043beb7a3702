"""Power and sample size of the next test, per offer against no offer.

Two-sided z-test for a difference of means between a treated arm of ``n`` customers and a
control of ``ratio · n`` (``statsmodels.stats.power.NormalIndPower``'s conventions, which the
tests compare with):

    d = effect_size · √(n · r / (1 + r)),   power = Φ(d − z) + Φ(−d − z),   z = Φ⁻¹(1 − α/2)

solved for ``n`` (rounded up) or for the effect size.  Means: effect_size = mde / sd.  Rates:
Cohen's h = 2·asin(√(p + mde)) − 2·asin(√p).  With K offers and the Bonferroni correction
every comparison uses α/K.  A pre-period covariate with correlation ρ to the outcome shrinks
the variance, hence the sample, by CUPED's factor 1 − ρ².  The detectable cost per incremental
unit (CPI) follows by the delta method with the log's per-arm variances scaled to the planned n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import optimize, stats

from ..diagnostics.readout import effect_ratio
from ..errors import UserError, setting

CORRECTIONS = ("none", "bonferroni")


def power_of(effect_size: float, n: float, alpha: float, ratio: float = 1.0) -> float:
    """Power of the two-sided z-test with ``n`` treated and ``ratio · n`` control customers."""
    z = stats.norm.isf(alpha / 2)
    d = abs(effect_size) * math.sqrt(n * ratio / (1.0 + ratio))
    return float(stats.norm.sf(z - d) + stats.norm.cdf(-z - d))


def solve_n(effect_size: float, alpha: float, power: float, ratio: float = 1.0) -> float:
    """Treated-arm size (not rounded) at which the test reaches ``power``."""
    if effect_size == 0:
        raise UserError("the minimum detectable effect must not be 0")
    z = stats.norm.isf(alpha / 2)
    # start from the one-tail closed form and refine with the other tail included
    guess = ((z + stats.norm.isf(1 - power)) / abs(effect_size)) ** 2 * (1.0 + ratio) / ratio
    low, high = guess * 0.5, guess * 2.0 + 1.0
    return float(optimize.brentq(lambda n: power_of(effect_size, n, alpha, ratio) - power, low, high, xtol=1e-12, rtol=1e-15))


def solve_effect_size(n: float, alpha: float, power: float, ratio: float = 1.0) -> float:
    """Smallest standardised effect detectable with ``n`` treated customers."""
    z = stats.norm.isf(alpha / 2)
    guess = (z + stats.norm.isf(1 - power)) / math.sqrt(n * ratio / (1.0 + ratio))
    return float(optimize.brentq(lambda es: power_of(es, n, alpha, ratio) - power, guess * 0.5, guess * 2.0 + 1e-9,
                                 xtol=1e-14, rtol=1e-15))


def cohens_h(p: float, mde: float) -> float:
    """Cohen's h between the rates ``p + mde`` and ``p``."""
    return 2 * math.asin(math.sqrt(p + mde)) - 2 * math.asin(math.sqrt(p))


def rate_mde(p: float, h: float) -> float:
    """The rate difference whose Cohen's h from ``p`` is ``h`` (upwards)."""
    target = 2 * math.asin(math.sqrt(p)) + h
    if target > math.pi:
        raise UserError(f"no rate above {p:g} is detectable at this sample size and power; add customers")
    return math.sin(target / 2) ** 2 - p


@dataclass(frozen=True)
class Design:
    """The sample size (or detectable effect) of one comparison, in the contract's keys."""

    n_per_arm: int
    n_control: int
    n_total: int
    mde: float
    power: float
    alpha: float
    alpha_per_test: float
    sd: float | None
    effect_size: float
    arms: int
    ratio: float
    rate: float | None = None
    n_exact: float = float("nan")
    cuped_variance_factor: float | None = None
    n_per_arm_cuped: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"n_per_arm": self.n_per_arm, "n_control": self.n_control, "n_total": self.n_total, "mde": self.mde,
               "power": self.power, "alpha": self.alpha, "alpha_per_test": self.alpha_per_test, "sd": self.sd,
               "effect_size": self.effect_size, "test": "two-sided z", "arms": self.arms, "ratio": self.ratio,
               "n_exact": self.n_exact}
        if self.rate is not None:
            out["baseline_rate"] = self.rate
        if self.cuped_variance_factor is not None:
            out["cuped_variance_factor"] = self.cuped_variance_factor
            out["n_per_arm_cuped"] = self.n_per_arm_cuped
        out.update(self.extra)
        return out


def _check(alpha, power, arms, ratio, correction):
    if not (0 < alpha < 1):
        raise UserError(f"{setting('alpha')} must be between 0 and 1, got {alpha}")
    if not (0 < power < 1):
        raise UserError(f"{setting('power')} must be between 0 and 1, got {power}")
    if power <= alpha:
        raise UserError(f"{setting('power')} {power} must exceed {setting('alpha')} {alpha}")
    if int(arms) != arms or arms < 1:
        raise UserError(f"{setting('arms')} must be a whole number ≥ 1, got {arms}")
    if not (ratio > 0 and math.isfinite(ratio)):
        raise UserError(f"{setting('ratio')} (control size / treated arm size) must be a number > 0, got {ratio}")
    if correction not in CORRECTIONS:
        raise UserError(f"{setting('correction')} must be one of {', '.join(CORRECTIONS)}, got '{correction}'")


def design(*, mde: float | None = None, n: int | None = None, sd: float | None = None, rate: float | None = None,
           alpha: float = 0.05, power: float = 0.8, arms: int = 1, ratio: float = 1.0, correction: str = "none",
           cuped_variance_factor: float | None = None) -> Design:
    """Customers per arm for a minimum detectable effect ``mde``, or the ``mde`` for ``n`` per arm.

    Give ``sd`` (means) or ``rate`` (a conversion rate, Cohen's h), and exactly one of ``mde``
    and ``n``.  ``ratio`` = control size / treated arm size; ``arms`` = treated arms sharing the
    control; ``correction="bonferroni"`` tests each at α/arms.
    """
    _check(alpha, power, arms, ratio, correction)
    if (mde is None) == (n is None):
        raise UserError(f"give exactly one of {setting('mde')} and {setting('n')}: the effect to detect, or the customers per treated arm")
    if (sd is None) == (rate is None):
        raise UserError(f"give the outcome's spread: {setting('baseline_sd')} (means) or {setting('baseline_rate')} (conversion rates), or a log")
    if sd is not None and not (sd > 0 and math.isfinite(sd)):
        raise UserError(f"the standard deviation must be a number > 0, got {sd}")
    if rate is not None and not (0 < rate < 1):
        raise UserError(f"the baseline rate must be between 0 and 1, got {rate}")
    alpha_per_test = alpha / arms if correction == "bonferroni" else alpha
    if mde is not None:
        if not math.isfinite(mde) or mde == 0:
            raise UserError(f"{setting('mde')} must be a number other than 0, got {mde}")
        if rate is not None and not (0 < rate + mde < 1):
            raise UserError(f"the baseline rate {rate} plus the effect {mde} must stay between 0 and 1")
        effect_size = mde / sd if sd is not None else cohens_h(rate, mde)
        n_exact = solve_n(effect_size, alpha_per_test, power, ratio)
    else:
        if int(n) != n or n < 2:
            raise UserError(f"{setting('n')} must be a whole number ≥ 2, got {n}")
        n_exact = float(n)
        effect_size = solve_effect_size(n_exact, alpha_per_test, power, ratio)
        mde = effect_size * sd if sd is not None else rate_mde(rate, effect_size)
    n_per_arm = int(math.ceil(n_exact - 1e-9))
    n_control = int(math.ceil(n_exact * ratio - 1e-9))
    n_cuped = None
    if cuped_variance_factor is not None:
        n_cuped = int(math.ceil(n_exact * cuped_variance_factor - 1e-9)) if mde is not None else None
    return Design(n_per_arm=n_per_arm, n_control=n_control, n_total=arms * n_per_arm + n_control, mde=float(mde),
                  power=power, alpha=alpha, alpha_per_test=alpha_per_test, sd=sd, effect_size=float(effect_size),
                  arms=int(arms), ratio=float(ratio), rate=rate, n_exact=n_exact,
                  cuped_variance_factor=cuped_variance_factor, n_per_arm_cuped=n_cuped)


def is_rate(values) -> bool:
    """A 0/1 outcome (a conversion), whose spread is its rate's."""
    values = np.asarray(values, dtype=float)
    return bool(np.isin(values, (0.0, 1.0)).all())


def cuped_factor(y, x) -> float:
    """CUPED's variance factor 1 − ρ² for outcome ``y`` and pre-period covariate ``x``."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 1.0
    rho = float(np.corrcoef(y, x)[0, 1])
    return 1.0 - rho**2


def design_from_log(log, *, mde: float | None = None, n: int | None = None, alpha: float = 0.05, power: float = 0.8,
                    ratio: float = 1.0, correction: str = "none", cuped: str | None = None,
                    arms: int | None = None) -> Design:
    """:func:`design` with the spread measured on a log's control arm (the baseline the next
    test's no-offer arm will resemble): its rate for a 0/1 value, else its SD.  ``cuped`` names a
    pre-period column whose variance factor (within the control arm) is reported.  Per offer
    (when ``mde`` is given and a cost is mapped), ``extra["cpi"]`` gives the readout's CPI and its
    delta-method SE scaled to the planned arm sizes."""
    control = log.action == log.control
    y = log.value[control]
    if len(y) < 2:
        raise UserError(f"the control arm '{log.control}' has fewer than 2 rows; cannot measure the outcome's spread")
    rate = float(y.mean()) if is_rate(y) else None
    if rate is not None and not (0 < rate < 1):
        raise UserError(f"the no-offer arm '{log.control}' has a conversion rate of {rate:g} in this log "
                        f"({int(y.sum())} of {len(y):,}), so its spread cannot be measured; type in the baseline rate you expect")
    sd = None if rate is not None else float(np.std(y, ddof=1))
    if sd == 0:
        raise UserError(f"'{log.columns.value}' does not vary in the no-offer arm '{log.control}'; type in the spread you expect")
    factor = None
    if cuped:
        if cuped not in log.frame.columns:
            raise UserError(f"CUPED covariate '{cuped}' is not in the log")
        x = np.asarray(log.frame[cuped], dtype=float)[control]
        factor = cuped_factor(y, x)
    result = design(mde=mde, n=n, sd=sd, rate=rate, alpha=alpha, power=power,
                    arms=arms if arms is not None else len(log.treatments), ratio=ratio, correction=correction,
                    cuped_variance_factor=factor)
    if log.cost is None:
        return result
    cpi = {arm: planned_cpi(log, arm, result.n_per_arm, result.n_control, result.alpha_per_test) for arm in log.treatments}
    return replace(result, extra={"cpi": cpi})


def planned_cpi(log, arm: str, n_arm: int, n_control: int, alpha: float = 0.05) -> dict:
    """The readout's CPI of ``arm`` (Δcost / Δvalue; inverse-propensity weighted arm means when
    the log's propensities vary, as in the readout) and its delta-method SE if the next test had
    ``n_arm`` and ``n_control`` customers with the log's per-arm variances
    (:func:`core.diagnostics.readout.effect_ratio`, each arm's variances scaled from its size in
    the log to the planned size).  At the log's own sizes this is the readout's SE.
    """
    p = log.propensity
    treated, control = log.action == arm, log.action == log.control
    weighted = p is not None and any(np.ptp(p[rows]) > 1e-12 for rows in (treated, control))
    w = 1.0 / p if weighted else np.ones(log.n)
    result = effect_ratio(log.cost, log.value, treated, control, w, alpha,
                          variance_scale=(treated.sum() / n_arm, control.sum() / n_control))
    if result["denominator_effect"] == 0:
        return {"cpi": float("nan"), "se": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    ratio, se = float(result["ratio"]), result["se"]
    z = stats.norm.isf(alpha / 2)
    return {"cpi": ratio, "se": se, "ci_low": ratio - z * se, "ci_high": ratio + z * se}
