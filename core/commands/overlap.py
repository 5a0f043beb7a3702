"""``overlap``: propensity overlap (ESS, clipping) and covariate balance (SMD)."""

from __future__ import annotations

from ..diagnostics.balance import balance_of
from ..diagnostics.overlap import ESTIMATED, check_clip, overlap_of, with_estimated_propensities
from .common import add_engine_options, add_json_out, add_log_options, engine_of, note, read_log



def add_arguments(p) -> None:
    add_log_options(p)
    p.add_argument("--clip", type=float, default=0.01, help="propensity clip ε for share_below_clip (default 0.01)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds when propensities are estimated (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the propensity model")
    p.add_argument("--check-logged", action="store_true", help="also estimate propensities and count rows that disagree with the logged ones")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    check_clip(args.clip)
    engine = engine_of(args)
    log = read_log(engine, args)
    logged = log.columns.propensity is not None
    if not logged or args.check_logged:
        if not logged:
            note("no --propensity given: estimating propensities with cross-fitted LightGBM")
        log = with_estimated_propensities(engine, log, args.folds, args.seed, progress=lambda f, msg: note(msg))
    sums = overlap_of(engine, log, args.clip, estimated=not logged, check_logged=bool(args.check_logged and logged))
    weights = log.columns.propensity if logged else ESTIMATED
    return {**sums.to_dict(), **balance_of(engine, log, weights).to_dict()}
