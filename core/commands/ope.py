"""``ope``: off-policy value and cost of a policy (IPS, SNIPS, DM, DR, SNDR, Switch-DR)."""

from __future__ import annotations

import numpy as np

from ..diagnostics.overlap import estimated_propensity_columns
from ..errors import UserError
from ..joins import POLICY_MESSAGES
from ..ope.compare import Q_COST, Q_VALUE, PolicySpec, evaluate_policy_of
from ..ope.estimators import ESTIMATORS, WEIGHTING_ONLY, check_settings, reward_models
from .common import add_engine_options, add_json_out, add_log_options, engine_of, note, read_log, warn

NAMED = ("no-offer", "logging", "random")


def add_arguments(p) -> None:
    add_log_options(p, value_required=True)
    p.add_argument("--policy", metavar="CSV", help="policy file: an action column or prob__<arm> columns (joined on id)")
    p.add_argument("--policy-name", metavar="NAME", help="treat-all:L | no-offer | logging | random")
    p.add_argument("--estimators", metavar="LIST", help="comma list of ips,snips,dm,dr,sndr,switch-dr (default all)")
    p.add_argument("--clip", type=float, help="floor propensities at this value before weighting (default: no clip)")
    p.add_argument("--switch-tau", type=float, default=float("inf"), help="Switch-DR: IPS correction only where w ≤ τ (default ∞)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 − confidence level (default 0.05)")
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the reward model (default 2)")
    p.add_argument("--exact-bootstrap", action="store_true",
                   help="draw every row's Poisson count in every resample even on large logs (by default, above 10^7 "
                   "rows × resamples the sums' normal limit is used: same mean and covariance, much faster)")
    p.add_argument("--seed", type=int, default=0)
    add_json_out(p)
    add_engine_options(p)


def _checked_options(args) -> list[str]:
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()] if args.estimators else list(ESTIMATORS)
    check_settings(estimators, args.alpha, args.bootstrap, args.clip)
    if bool(args.policy) == bool(args.policy_name):
        raise UserError("give either --policy CSV or --policy-name (treat-all:L, no-offer, logging, random)")
    name = args.policy_name
    if name and not (name in NAMED or name.startswith("treat-all:")):
        raise UserError(f"--policy-name '{name}' is not one of treat-all:L, no-offer, logging, random")
    return estimators


def _models(engine, log, args, estimators):
    """The log with what is fitted on this machine attached: estimated propensities (when none
    are logged) and the cross-fitted reward models (unless only weighting estimators run)."""
    need_q = not set(estimators) <= WEIGHTING_ONLY
    estimated = log.columns.propensity is None
    if not (estimated or need_q):
        return log
    local = engine.collect(log, why="the propensity and reward models are fitted")
    arrays = {}
    if estimated:
        note("no --propensity given: estimating propensities with cross-fitted LightGBM")
        arrays.update(estimated_propensity_columns(local, max(args.folds, 2), args.seed, matrix_columns=True))
    if need_q:
        note("fitting the cross-fitted reward model(s)")
        q_value, q_cost = reward_models(local, folds=args.folds, seed=args.seed)
        arrays.update({f"{Q_VALUE}{j}": q_value[:, j] for j in range(q_value.shape[1])})
        if q_cost is not None:
            arrays.update({f"{Q_COST}{j}": q_cost[:, j] for j in range(q_cost.shape[1])})
    return engine.attach(log, arrays)


def _policy(engine, log, args) -> tuple:
    """The log (with a policy file joined) and the policy's :class:`PolicySpec`."""
    name = args.policy_name
    if args.policy:
        table = engine.read_table(args.policy)
        probs = [c for c in table.columns if str(c).startswith("prob__")]
        if "action" in table.columns and not probs:
            return engine.join(log, table, ["action"], POLICY_MESSAGES, rename={"action": "__pa"}), PolicySpec("action", args.policy)
        if not probs:
            raise UserError("the policy file needs an 'action' column or prob__<arm> columns")
        unknown = [c[len("prob__"):] for c in probs if c[len("prob__"):] not in log.labels]
        if unknown:
            raise UserError(f"the policy file has probabilities for arm(s) {', '.join(map(repr, unknown))} not in the log")
        rename = {c: f"__pi__{list(log.labels).index(c[len('prob__'):])}" for c in probs}
        return engine.join(log, table, probs, POLICY_MESSAGES, rename=rename), PolicySpec("probs", args.policy)
    if name.startswith("treat-all:"):
        arm = name.split(":", 1)[1]
        if arm not in log.labels:
            raise UserError(f"treat-all arm '{arm}' is not in the log; arms: {', '.join(log.labels)}")
        return log, PolicySpec("arm", name, arm=list(log.labels).index(arm))
    if name == "no-offer":
        return log, PolicySpec("arm", name, arm=list(log.labels).index(log.control))
    return log, PolicySpec(name, name, estimated=log.columns.propensity is None)


def run(args) -> dict:
    estimators = _checked_options(args)
    engine = engine_of(args)
    log = read_log(engine, args, require_value=True)
    log, spec = _policy(engine, log, args)
    log = _models(engine, log, args, estimators)
    result = evaluate_policy_of(engine, log, spec, q=not set(estimators) <= WEIGHTING_ONLY, estimators=estimators,
                                clip=args.clip, tau=args.switch_tau, n_boot=args.bootstrap, alpha=args.alpha,
                                seed=args.seed, exact_limit=np.inf if args.exact_bootstrap else None)
    warn(result.warnings)
    out = {"n": result.n, "ess": result.ess, "max_weight": result.max_weight,
           "propensity_source": "logged" if log.columns.propensity else "estimated",
           "estimates": {k: v.to_dict() for k, v in result.value.items()}}
    if result.cost is not None:
        out["cost_estimates"] = {k: v.to_dict() for k, v in result.cost.items()}
    out.update(policy=spec.name, clip=args.clip, share_clipped=result.share_clipped,
               increments={k: v.to_dict() for k, v in result.value_increment.items()})
    if result.cost_increment is not None:
        out["cost_increments"] = {k: v.to_dict() for k, v in result.cost_increment.items()}
    out["warnings"] = result.warnings
    return out
