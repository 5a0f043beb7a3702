"""Sending a plan so that the next log can still be analysed: holdout, exploration, propensities.

Every customer falls in one of three buckets by a salted hash of their id: a permanent
**holdout** (share H, no offer), an **explore** bucket (share E) and the **plan** (the rest).
In the explore bucket the action is drawn from a distribution q over all K + 1 actions
(the offers and no offer): uniform, or — with a floor P — P/E on every action and the rest on the
plan's own action.  So each customer's randomized policy is

    π(a | i) = H·1[a = no offer] + E·q_i(a) + (1 − H − E)·1[a = plan_i]

and every row of the assignment carries π of the action it got, computed exactly (with a floor,
every action has π ≥ P).  The bucket and the draw depend only on (id, salt, the allocation row):
a grown audience leaves earlier customers where they were.

What exploration costs: the expected incremental value given up against the pure plan,
Σ_i [τ(i, plan_i) − Σ_a π(a | i)·τ(i, a)] (offers whose τ is unknown count as 0, making it an
upper bound, unless the predictions of every offer are given).  What it buys: the effective
sample size the next log has for evaluating "offer a for everyone", n² / Σ_i 1/π(a | i).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError, setting

BUCKETS = ("plan", "explore", "holdout")
_SCALE = float(16**13)


def stable_uniform(ids, salt: str, purpose: str) -> np.ndarray:
    """A number in [0, 1) per id from SHA-256 of (salt, id, purpose): the same id and salt give
    the same number on every run, whatever other ids are present."""
    return np.array([int(hashlib.sha256(f"{salt}\x1f{i}\x1f{purpose}".encode()).hexdigest()[:13], 16) / _SCALE
                     for i in ids])


@dataclass(frozen=True)
class Deployment:
    """The assignment (``id, action, propensity, bucket``) and what exploration costs and buys."""

    frame: pd.DataFrame = field(repr=False)
    actions: tuple[str, ...]
    holdout: float
    explore: float
    floor: float
    expected_value_loss: float
    loss_is_upper_bound: bool
    plan_value: float
    ess: dict

    @property
    def counts(self) -> dict[str, int]:
        counts = self.frame["action"].value_counts()
        return {a: int(counts.get(a, 0)) for a in self.actions}

    @property
    def buckets(self) -> dict[str, int]:
        counts = self.frame["bucket"].value_counts()
        return {b: int(counts.get(b, 0)) for b in BUCKETS}

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    def to_dict(self) -> dict:
        return {"n": len(self.frame), "counts": self.counts, "buckets": self.buckets,
                "min_propensity": float(self.frame["propensity"].min()) if len(self.frame) else None,
                "floor": self.floor, "holdout": self.holdout, "explore": self.explore,
                "expected_value_loss": self.expected_value_loss, "value_loss_is_upper_bound": self.loss_is_upper_bound,
                "plan_value": self.plan_value, "ess": self.ess}


def _check_shares(holdout: float, explore: float, min_propensity: float | None, n_actions: int) -> None:
    for name, share in ((setting("holdout"), holdout), (setting("explore"), explore)):
        if not (0 <= share < 1):
            raise UserError(f"{name} must be a share in [0, 1), got {share}")
    if holdout + explore >= 1:
        raise UserError(f"{setting('holdout')} {holdout} and {setting('explore')} {explore} add up to {holdout + explore:g}; "
                        "they must leave some customers for the plan (sum below 1)")
    if min_propensity is not None:
        if not (0 < min_propensity < 1):
            raise UserError(f"{setting('min_propensity')} must be between 0 and 1, got {min_propensity}")
        if explore * 1.0 < n_actions * min_propensity - 1e-12:
            raise UserError(f"{setting('min_propensity')} {min_propensity} cannot be met with {n_actions} actions: exploring "
                            f"{explore:g} of the customers gives each action at most {explore / n_actions:.4g}; raise "
                            f"{setting('explore')} to at least {n_actions * min_propensity:g} or lower the floor")


def deploy(allocation: pd.DataFrame, control: str, holdout: float = 0.05, explore: float = 0.10,
           min_propensity: float | None = None, salt: str = "", offers=None,
           scores: pd.DataFrame | None = None) -> Deployment:
    """Randomized assignment of a whole audience from a plan (see the module docstring).

    Parameters
    ----------
    allocation : DataFrame
        ``allocate``'s output: ``id``, ``action`` (the control label for no offer) and
        optionally ``tau_value`` (the plan's predicted effect).
    control : str
        The no-offer label.
    offers : list of str, optional
        Every offer that exploration may send (default: those the plan uses).
    scores : DataFrame, optional
        ``tau_value__<offer>`` for every offer, row-aligned with ``allocation``: makes the
        value given up exact instead of an upper bound.
    """
    if "id" not in allocation.columns:
        raise UserError("the allocation has no 'id' column; use allocate's output (id, action, …) so that every "
                        "customer's assignment is tied to their id")
    if "action" not in allocation.columns:
        raise UserError("the allocation has no 'action' column; use allocate's output (id, action, …)")
    ids = allocation["id"]
    if ids.isna().any():
        raise UserError(f"the allocation has {int(ids.isna().sum())} empty ids; every customer needs one")
    if ids.duplicated().any():
        raise UserError(f"the allocation has {int(ids.duplicated().sum())} duplicated ids (e.g. {ids[ids.duplicated()].iloc[0]!r}); "
                        "ids must be unique")
    plan = allocation["action"].astype(str).to_numpy()
    control = str(control)
    offers = sorted(set(map(str, offers or [])) | (set(plan) - {control}))
    actions = (control, *[o for o in offers if o != control])
    k = len(actions)
    _check_shares(holdout, explore, min_propensity, k)
    n = len(plan)
    index = {a: j for j, a in enumerate(actions)}
    plan_idx = np.array([index[a] for a in plan], dtype=int)

    # q: the explore distribution per row (uniform, or floor P/E everywhere plus the rest on the plan)
    q = np.full((n, k), 1.0 / k)
    if min_propensity is not None and explore > 0:
        floor_q = min_propensity / explore
        q = np.full((n, k), floor_q)
        q[np.arange(n), plan_idx] += 1.0 - k * floor_q
    pi = explore * q
    pi[:, index[control]] += holdout
    pi[np.arange(n), plan_idx] += 1.0 - holdout - explore

    id_text = ids.astype(str).to_numpy()
    u_bucket = stable_uniform(id_text, salt, "bucket")
    u_arm = stable_uniform(id_text, salt, "explore-arm")
    bucket = np.where(u_bucket < holdout, "holdout", np.where(u_bucket < holdout + explore, "explore", "plan"))
    drawn = np.minimum((u_arm[:, None] >= np.cumsum(q, axis=1)).sum(axis=1), k - 1)
    chosen = np.where(bucket == "holdout", index[control], np.where(bucket == "explore", drawn, plan_idx))
    frame = pd.DataFrame({"id": ids.to_numpy(), "action": np.array(actions, dtype=object)[chosen],
                          "propensity": pi[np.arange(n), chosen], "bucket": bucket})

    tau = np.zeros((n, k))
    exact = scores is not None
    if exact:
        missing = [f"tau_value__{a}" for a in actions[1:] if f"tau_value__{a}" not in scores.columns]
        if missing or len(scores) != n:
            raise UserError(f"the predictions must have {n:,} rows and columns {', '.join(missing) or 'tau_value__<offer>'}")
        for a in actions[1:]:
            tau[:, index[a]] = scores[f"tau_value__{a}"].to_numpy(dtype=float)
    elif "tau_value" in allocation.columns:
        tau[np.arange(n), plan_idx] = allocation["tau_value"].to_numpy(dtype=float)
    tau[:, index[control]] = 0.0
    plan_value = float(tau[np.arange(n), plan_idx].sum())
    loss = plan_value - float((pi * tau).sum())
    with np.errstate(divide="ignore"):
        ess = {a: float(n**2 / np.sum(1.0 / pi[:, j])) if (pi[:, j] > 0).all() else 0.0 for a, j in index.items()}
    floor = float(pi.min()) if n else 0.0
    return Deployment(frame, actions, float(holdout), float(explore), floor, loss, not exact, plan_value, ess)
