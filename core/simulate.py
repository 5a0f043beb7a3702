"""Synthetic multi-offer campaigns with known truth: the shipped sample and the test oracle.

One row per customer and send decision.  A customer buys within the 30-day horizon with a
probability that depends on their features and on the offer; the basket size depends on the
customer and the offer; the incentive is paid only when a buyer redeems it.  Therefore

    tau_value(x, a) = p_a(x) · E[basket_a | x] − p_0(x) · E[basket_0 | x]
    tau_cost(x, a)  = p_a(x) · r_a(x) · E[face value_a | x]              (no offer costs 0)

Offers help price-sensitive and lapsed customers, and *hurt* long-tenured customers who ignore
e-mail ("sleeping dogs": a promotion reminds them to unsubscribe).  The logging policy mixes a
uniform exploration bucket with a targeted rule, and the log records the probability of the
action it took.  The truth (potential outcomes, true effects, true propensities, bucket) goes
to a separate table, never into the log a model sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .errors import UserError, setting
from .io import write_table

CONTROL = "no_offer"
ARMS = (CONTROL, "pct10_off", "free_shipping", "coupon_20")
ARM_TITLES = {
    "no_offer": "No offer",
    "pct10_off": "10% off",
    "free_shipping": "Free shipping",
    "coupon_20": "$20 coupon",
}
LIFECYCLES = ("new", "active", "lapsed", "dormant")
START_DATE = np.datetime64("2026-03-02")
HORIZON_DAYS = 14
SHIPPING_FEE = 7.95
COUPON_FACE = 20.0
BASKET_SIGMA = 0.25
EXPLORATION_SHARE = 0.3


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Simulation:
    """A simulated campaign.

    Attributes
    ----------
    log : DataFrame
        What a marketer's system would log: features, offer, propensity, revenue, cost.
    truth : DataFrame
        ``customer_id``, ``bucket`` (``explore``/``target``), and for every arm ``L``:
        ``true_propensity__L``, ``true_tau_value__L``, ``true_tau_cost__L`` (0 for the
        control), expected potential outcomes ``mu_value__L``, ``mu_cost__L`` and realised
        potential outcomes ``y_value__L``, ``y_cost__L``.
    """

    log: pd.DataFrame
    truth: pd.DataFrame

    def to_dict(self) -> dict:
        return {"rows": int(len(self.log)), "arms": list(ARMS)}


def _customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    kind = rng.choice(4, size=n, p=[0.15, 0.45, 0.25, 0.15])  # new, active, lapsed, dormant
    tenure = np.where(kind == 0, rng.uniform(0, 3, n), rng.uniform(4, 96, n))
    days_since = np.select(
        [kind == 0, kind == 1, kind == 2],
        [rng.uniform(1, 45, n), rng.uniform(1, 90, n), rng.uniform(91, 270, n)],
        default=rng.uniform(271, 720, n),
    )
    lifecycle = np.select(
        [tenure <= 3, days_since <= 90, days_since <= 270], ["new", "active", "lapsed"], default="dormant"
    )
    orders = rng.poisson(np.select([kind == 0, kind == 1, kind == 2], [1.2, 6.0, 2.5], default=1.0)) + (kind != 0)
    aov = np.exp(rng.normal(np.log(55.0), 0.45, n))
    engagement = rng.beta(2.0, 3.0, n)
    channel = rng.choice(["web", "app", "store"], size=n, p=[0.45, 0.3, 0.25])
    region = rng.choice(["north", "south", "east", "west"], size=n, p=[0.3, 0.25, 0.25, 0.2])
    age = np.clip(rng.normal(41, 12, n), 18, 80)
    day = rng.integers(0, HORIZON_DAYS, n)
    return pd.DataFrame({
        "customer_id": np.arange(100001, 100001 + n),
        "send_date": (START_DATE + day).astype(str),
        "lifecycle": lifecycle,
        "tenure_months": np.round(tenure, 1),
        "orders_12m": orders.astype(np.int64),
        "avg_order_value": np.round(aov, 2),
        "days_since_last_order": np.round(days_since).astype(np.int64),
        "email_engagement": np.round(engagement, 3),
        "channel": channel,
        "region": region,
        "age": np.round(age).astype(np.int64),
    })


def _response_model(x: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Purchase probability, expected basket, redemption rate and face value per arm."""
    eng = x["email_engagement"].to_numpy()
    aov = x["avg_order_value"].to_numpy()
    tenure = x["tenure_months"].to_numpy()
    days = x["days_since_last_order"].to_numpy()
    orders = x["orders_12m"].to_numpy()
    online = (x["channel"] != "store").to_numpy()
    life = x["lifecycle"].to_numpy()

    base_logit = -2.0 + x["_habit"].to_numpy() + 1.6 * eng + 0.25 * np.log1p(orders) - 0.004 * days + 0.3 * (x["channel"] == "app").to_numpy()
    price_sensitive = _sigmoid(4.0 * (eng - 0.35) - (aov - 55.0) / 20.0)
    sleeping_dog = _sigmoid((tenure - 48.0) / 6.0) * _sigmoid((0.25 - eng) * 25.0)
    lapsed = (life == "lapsed").astype(float)
    dormant = (life == "dormant").astype(float)
    new = (life == "new").astype(float)
    small_basket = _sigmoid((50.0 - aov) / 12.0)

    lift = {
        CONTROL: np.zeros(len(x)),
        "pct10_off": 0.0 + 1.8 * price_sensitive - 2.5 * sleeping_dog,
        "free_shipping": -0.2 + 2.2 * online * small_basket + 0.3 * new - 2.5 * sleeping_dog,
        "coupon_20": 0.1 + 1.4 * lapsed + 2.0 * dormant + 0.8 * new + 0.5 * price_sensitive - 3.0 * sleeping_dog,
    }
    basket_mult = {CONTROL: 1.0, "pct10_off": 1.05, "free_shipping": 1.0, "coupon_20": 1.2}
    mean_basket_factor = np.exp(BASKET_SIGMA**2 / 2)
    model = {}
    for arm in ARMS:
        p = _sigmoid(base_logit + lift[arm])
        basket = aov * basket_mult[arm] * mean_basket_factor
        if arm == CONTROL:
            redeem, face = np.zeros(len(x)), np.zeros(len(x))
        elif arm == "pct10_off":
            redeem, face = np.full(len(x), 0.85), 0.10 * basket
        elif arm == "free_shipping":
            redeem, face = np.where(online, 0.9, 0.15), np.full(len(x), SHIPPING_FEE)
        else:
            redeem, face = 0.5 + 0.4 * eng, np.full(len(x), COUPON_FACE)
        model[arm] = {"p": p, "basket": basket, "redeem": redeem, "face": face}
    return model


def _logging_policy(x: pd.DataFrame, poor_overlap: bool) -> tuple[np.ndarray, float]:
    """Targeted probabilities (n × arms) and the exploration share."""
    eng = x["email_engagement"].to_numpy()
    aov = x["avg_order_value"].to_numpy()
    life = x["lifecycle"].to_numpy()
    online = (x["channel"] != "store").to_numpy()
    score = np.column_stack([
        1.2 * (life == "active") + 0.5 * (aov > 80),
        0.4 + 1.2 * eng,
        0.2 + 0.8 * online,
        1.6 * np.isin(life, ["lapsed", "dormant"]) + 0.4 * (life == "new"),
    ])
    temperature, floor, explore = (0.08, 0.0005, 0.02) if poor_overlap else (0.5, 0.02, EXPLORATION_SHARE)
    z = score / temperature
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = np.maximum(probs, floor)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, explore


def _pre_revenue(rng: np.random.Generator, p0: np.ndarray, aov: np.ndarray) -> np.ndarray:
    """Pre-period revenue: three earlier 30-day windows under no offer."""
    n = len(p0)
    pre_buys = rng.uniform(size=(n, 3)) < p0[:, None]
    pre_baskets = aov[:, None] * np.exp(rng.normal(0, BASKET_SIGMA, (n, 3)))
    return np.round((pre_buys * pre_baskets).sum(axis=1), 2)


def simulate(
    n: int = 50_000,
    seed: int = 0,
    *,
    srm_drop: Mapping[str, float] | None = None,
    poor_overlap: bool = False,
) -> Simulation:
    """Simulate a campaign log with ground truth.

    Parameters
    ----------
    n : int
        Customers before any SRM drop (≥ 100).
    seed : int
        Same seed, same data, to the byte.
    srm_drop : mapping of arm to share, optional
        Drop this share of the rows logged with each named arm after assignment: the
        classic logging bug behind a sample-ratio mismatch.  Logged propensities are left as
        they were, as a buggy pipeline would leave them.
    poor_overlap : bool
        A near-deterministic targeting rule with almost no exploration, so some arms are
        almost never tried for some customers.

    Returns
    -------
    Simulation
    """
    if not isinstance(n, (int, np.integer)) or n < 100:
        raise UserError(f"{setting('n')} must be a whole number ≥ 100, got {n!r}")
    srm_drop = dict(srm_drop or {})
    for arm, share in srm_drop.items():
        if arm not in ARMS:
            raise UserError(f"{setting('srm_drop')} arm '{arm}' is not a simulated arm; arms: {', '.join(ARMS)}")
        if not 0 < share < 1:
            raise UserError(f"{setting('srm_drop')} share for '{arm}' must be between 0 and 1 (exclusive), got {share}")

    rng = np.random.default_rng(seed)
    x = _customers(rng, n)
    # An unlogged buying habit: it drives both pre-period and campaign purchases, which is
    # what makes pre-period revenue a useful CUPED covariate.
    x["_habit"] = rng.normal(0.0, 0.5, n)
    model = _response_model(x)
    x = x.drop(columns="_habit")

    # Potential outcomes with common random numbers across arms: the same customer, the same
    # luck; only the offer differs.
    u_buy = rng.uniform(size=n)
    basket_noise = np.exp(rng.normal(-BASKET_SIGMA**2 / 2, BASKET_SIGMA, n))  # mean 1: E[basket] = m["basket"]
    u_redeem = rng.uniform(size=n)
    pre_revenue = _pre_revenue(rng, model[CONTROL]["p"], x["avg_order_value"].to_numpy())

    truth = {"customer_id": x["customer_id"].to_numpy()}
    y_value, y_cost = {}, {}
    for arm in ARMS:
        m = model[arm]
        buy = u_buy < m["p"]
        basket = m["basket"] * basket_noise
        redeemed = buy & (u_redeem < m["redeem"])
        face = 0.10 * basket if arm == "pct10_off" else m["face"]
        y_value[arm] = np.round(buy * basket, 2)
        y_cost[arm] = np.round(redeemed * face, 2)
        truth[f"mu_value__{arm}"] = m["p"] * m["basket"]
        truth[f"mu_cost__{arm}"] = m["p"] * m["redeem"] * m["face"]
    for arm in ARMS:
        truth[f"true_tau_value__{arm}"] = truth[f"mu_value__{arm}"] - truth[f"mu_value__{CONTROL}"]
        truth[f"true_tau_cost__{arm}"] = truth[f"mu_cost__{arm}"] - truth[f"mu_cost__{CONTROL}"]

    targeted, explore_share = _logging_policy(x, poor_overlap)
    propensities = explore_share / len(ARMS) + (1 - explore_share) * targeted
    explore = rng.uniform(size=n) < explore_share
    u_arm = rng.uniform(size=n)
    uniform_pick = np.minimum((u_arm * len(ARMS)).astype(int), len(ARMS) - 1)
    cum = np.cumsum(targeted, axis=1)
    targeted_pick = np.minimum((u_arm[:, None] > cum).sum(axis=1), len(ARMS) - 1)
    pick = np.where(explore, uniform_pick, targeted_pick)
    arms = np.array(ARMS, dtype=object)[pick]

    log = x.copy()
    log["pre_revenue"] = pre_revenue
    log["offer"] = arms
    log["propensity"] = np.round(propensities[np.arange(n), pick], 6)
    log["revenue"] = np.select([pick == k for k in range(len(ARMS))], [y_value[a] for a in ARMS])
    log["incentive_cost"] = np.select([pick == k for k in range(len(ARMS))], [y_cost[a] for a in ARMS])

    # Four decimals keep the shipped truth file small; effects are in currency units.
    truth = {k: (np.round(v, 4) if k.startswith(("mu_", "true_")) else v) for k, v in truth.items()}
    truth["bucket"] = np.where(explore, "explore", "target")
    for k, arm in enumerate(ARMS):
        truth[f"true_propensity__{arm}"] = np.round(propensities[:, k], 6)
        truth[f"y_value__{arm}"] = y_value[arm]
        truth[f"y_cost__{arm}"] = y_cost[arm]
    truth = pd.DataFrame(truth)

    if srm_drop:
        keep = np.ones(n, dtype=bool)
        drop_rng = np.random.default_rng([seed, 1])
        for arm, share in srm_drop.items():
            keep &= ~((arms == arm) & (drop_rng.uniform(size=n) < share))
        log, truth = log[keep].reset_index(drop=True), truth[keep].reset_index(drop=True)
    return Simulation(log=log, truth=truth)


def truth_path_for(path: str | Path) -> Path:
    """Where the truth table of a simulated log lives: ``PATH.truth.parquet``."""
    return Path(str(path) + ".truth.parquet")


def write_simulation(sim: Simulation, path: str | Path) -> dict:
    """Write the log (format by suffix) and its truth beside it; return the CLI's summary."""
    path = Path(path)
    write_table(sim.log, path)
    truth_path = truth_path_for(path)
    write_table(sim.truth, truth_path)
    return {**sim.to_dict(), "path": str(path), "truth_path": str(truth_path)}


def simulate_heterogeneity(n: int, seed: int = 0, strength: str = "strong") -> Simulation:
    """A two-arm randomised log whose effect is strongly or weakly heterogeneous (known truth).

    ``strong``: Friedman's surface plus a 4×4 chessboard interaction as the baseline and an
    effect that varies by ±10 with interactions and thresholds, little noise (sd 0.5): flexible
    trees pay off.
    ``weak``: a linear baseline, an effect between 0.2 and 0.3, heavy noise (sd 5): only
    regularised trees avoid fitting noise.  Six features ``x1..x6`` uniform on [0, 1]; arm
    ``treated`` vs ``control`` with probability ½ each; value ``y``; truth: ``true_tau_value__treated``.
    """
    if strength not in ("strong", "weak"):
        raise UserError(f"strength must be 'strong' or 'weak', got {strength!r}")
    rng = np.random.default_rng([seed, 11])
    x = rng.uniform(0, 1, size=(n, 6))
    treated = rng.uniform(size=n) < 0.5
    if strength == "strong":
        checker = np.sign(np.sin(4 * np.pi * x[:, 0]) * np.sin(4 * np.pi * x[:, 1]))  # a 4×4 chessboard
        mu0 = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * checker * x[:, 4]
        tau = 8 * ((x[:, 0] > 0.5) & (x[:, 1] > 0.5)) - 4 * x[:, 2] + 6 * np.sin(2 * np.pi * x[:, 3]) + 3 * checker
        noise = 0.5
    else:
        mu0 = 0.5 * x[:, 0]
        tau = 0.2 + 0.1 * x[:, 1]
        noise = 5.0
    y = mu0 + treated * tau + rng.normal(0, noise, n)
    log = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 7)])
    log["arm"] = np.where(treated, "treated", "control")
    log["y"] = y
    truth = pd.DataFrame({"true_tau_value__treated": tau, "mu_value__control": mu0})
    return Simulation(log=log, truth=truth)


COST_STRUCTURES = ("independent", "correlated", "heavy_tailed")


def simulate_cost_structure(n: int, seed: int = 0, structure: str = "independent") -> Simulation:
    """A two-arm randomised log (``offer`` vs ``no_offer``, ½ each) with value and cost effects
    that vary by customer in a known way, for ranking by value per cost.

    Features ``x1..x5`` uniform on [0, 1] and ``region`` (four levels).  Value: a baseline plus
    τ value(x) = 1 + 2·x2 − 1.5·x3 (from −0.5 to 3), noise sd 3.  The incentive is paid on
    redemption (half the treated customers redeem, paying 2·τ cost(x)); no offer costs 0.

    - ``independent``: τ cost(x) = 0.5 + 2·x4², unrelated to the value effect;
    - ``correlated``: τ cost(x) = 0.3 + 0.6·max(τ value(x), 0) + 0.4·x4 (a discount's cost grows
      with the purchases it causes);
    - ``heavy_tailed``: τ cost(x) = 0.3·exp(1.5·Φ⁻¹(x4)) (lognormal across customers) and the
      amount paid is further multiplied by lognormal noise (σ 1, mean 1).

    Truth: ``true_tau_value__offer``, ``true_tau_cost__offer``.
    """
    if structure not in COST_STRUCTURES:
        raise UserError(f"cost structure must be one of {', '.join(COST_STRUCTURES)}, got {structure!r}")
    rng = np.random.default_rng([seed, 23, COST_STRUCTURES.index(structure)])
    x = rng.uniform(0, 1, size=(n, 5))
    region = rng.choice(["north", "south", "east", "west"], size=n)
    treated = rng.uniform(size=n) < 0.5
    tau_value = 1.0 + 2.0 * x[:, 1] - 1.5 * x[:, 2] + 0.5 * (region == "north")
    if structure == "independent":
        tau_cost = 0.5 + 2.0 * x[:, 3] ** 2
    elif structure == "correlated":
        tau_cost = 0.3 + 0.6 * np.maximum(tau_value, 0.0) + 0.4 * x[:, 3]
    else:
        tau_cost = 0.3 * np.exp(1.5 * stats.norm.ppf(np.clip(x[:, 3], 1e-6, 1 - 1e-6)))
    mu0 = 10.0 + 3.0 * x[:, 0] + 2.0 * (region == "east")
    value = mu0 + treated * tau_value + rng.normal(0.0, 3.0, n)
    redeemed = rng.uniform(size=n) < 0.5
    paid = 2.0 * tau_cost * redeemed
    if structure == "heavy_tailed":
        paid = paid * np.exp(rng.normal(-0.5, 1.0, n))
    log = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 6)])
    log["region"] = region
    log["offer"] = np.where(treated, "offer", "no_offer")
    log["value"] = np.round(value, 4)
    log["cost"] = np.round(np.where(treated, paid, 0.0), 4)
    truth = pd.DataFrame({"true_tau_value__offer": tau_value, "true_tau_cost__offer": tau_cost})
    return Simulation(log=log, truth=truth)


@dataclass(frozen=True)
class LiveCampaign:
    """A simulated live campaign: the daily log, the model's predictions for its customers, the
    deployment file and the training log it is compared with (see :func:`simulate_live`)."""

    log: pd.DataFrame
    scores: pd.DataFrame
    plan: pd.DataFrame
    reference: pd.DataFrame


def simulate_live(days: int = 14, per_day: int = 5000, seed: int = 0, *, drift_day: int | None = None,
                  drift_feature: str = "email_engagement", drift_shift: float = 0.25, break_day: int | None = None,
                  break_offer: str = "coupon_20", holdout: float = 0.1, explore: float = 0.2,
                  start: str = "2026-11-02") -> LiveCampaign:
    """A deployed plan running for ``days`` days with known truth, for monitoring.

    Every day ``per_day`` new customers (the campaign simulator's population) are assigned: a
    ``holdout`` share gets no offer, an ``explore`` share a uniformly random arm, the rest the
    plan's arm (the offer with the largest positive true τ value − τ cost, else none); the
    propensity of the logged arm is exact.  ``scores`` holds the true effects as the model's
    predictions (a perfectly calibrated model).  Injected faults, from day ``drift_day`` and
    ``break_day`` (1 = the first day) on: ``drift_feature`` shifted by ``drift_shift`` (the
    customers really change, so predictions stay right), and the effect of ``break_offer`` on
    purchases and cost halved (predictions no longer right).  ``reference`` is a training log
    of the same population (:func:`simulate`).
    """
    if not isinstance(days, (int, np.integer)) or days < 1 or not isinstance(per_day, (int, np.integer)) or per_day < 100:
        raise UserError(f"days must be ≥ 1 and per_day ≥ 100, got {days!r} and {per_day!r}")
    if break_offer not in ARMS[1:]:
        raise UserError(f"break_offer must be one of {', '.join(ARMS[1:])}, got {break_offer!r}")
    frames, score_frames, plan_frames = [], [], []
    for day in range(1, days + 1):
        rng = np.random.default_rng([seed, 41, day])
        x = _customers(rng, per_day)
        x["customer_id"] = 10_000_000 + day * 1_000_000 + np.arange(per_day)
        x["send_date"] = str(np.datetime64(start) + (day - 1))
        if drift_day is not None and day >= drift_day:
            shifted = x[drift_feature] + drift_shift
            x[drift_feature] = np.round(np.clip(shifted, 0, 1) if drift_feature == "email_engagement" else shifted, 3)
        x["_habit"] = rng.normal(0.0, 0.5, per_day)
        model = _response_model(x)
        x = x.drop(columns="_habit")
        truth_value = {a: model[a]["p"] * model[a]["basket"] - model[CONTROL]["p"] * model[CONTROL]["basket"] for a in ARMS}
        truth_cost = {a: model[a]["p"] * model[a]["redeem"] * model[a]["face"] for a in ARMS}
        if break_day is not None and day >= break_day:  # the offer's effect on purchases halves
            m = model[break_offer]
            m["p"] = model[CONTROL]["p"] + 0.5 * (m["p"] - model[CONTROL]["p"])
        net = np.column_stack([truth_value[a] - truth_cost[a] for a in ARMS])
        net[:, 0] = 0.0
        plan = np.where(net.max(axis=1) > 0, net.argmax(axis=1), 0)
        u = rng.uniform(size=per_day)
        bucket = np.where(u < holdout, "holdout", np.where(u < holdout + explore, "explore", "plan"))
        pick = np.where(bucket == "holdout", 0, np.where(bucket == "explore", rng.integers(0, len(ARMS), per_day), plan))
        # P(logged arm): the holdout's no offer, exploration's uniform pick, the plan's arm
        propensity = holdout * (pick == 0) + explore / len(ARMS) + (1 - holdout - explore) * (pick == plan)

        def picked(key):  # each customer's value of model[arm][key] for the arm they got
            return np.column_stack([np.broadcast_to(model[a][key], per_day) for a in ARMS])[np.arange(per_day), pick]

        buy = rng.uniform(size=per_day) < picked("p")
        basket = picked("basket") * np.exp(rng.normal(-BASKET_SIGMA**2 / 2, BASKET_SIGMA, per_day))
        redeemed = buy & (rng.uniform(size=per_day) < picked("redeem"))
        face = np.where(pick == ARMS.index("pct10_off"), 0.10 * basket, picked("face"))
        log = x.copy()
        log["pre_revenue"] = _pre_revenue(rng, model[CONTROL]["p"], x["avg_order_value"].to_numpy())
        log["offer"] = np.array(ARMS, dtype=object)[pick]
        log["propensity"] = np.round(propensity, 6)
        log["bucket"] = bucket
        log["revenue"] = np.round(buy * basket, 2)
        log["incentive_cost"] = np.round(redeemed * face, 2)
        frames.append(log)
        score_frames.append(pd.DataFrame({"id": x["customer_id"], **{f"tau_value__{a}": truth_value[a] for a in ARMS[1:]},
                                          **{f"tau_cost__{a}": truth_cost[a] for a in ARMS[1:]}}))
        plan_frames.append(pd.DataFrame({"id": x["customer_id"], "action": log["offer"], "propensity": log["propensity"],
                                         "bucket": bucket}))
    reference = simulate(max(per_day, 5000), seed=seed).log
    return LiveCampaign(pd.concat(frames, ignore_index=True), pd.concat(score_frames, ignore_index=True),
                        pd.concat(plan_frames, ignore_index=True), reference)
