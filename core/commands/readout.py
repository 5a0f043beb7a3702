"""``readout``: per offer, the average effect on value (and cost), the CPI, and optionally the
CUPED-adjusted effect."""

from __future__ import annotations

from ..diagnostics.readout import readout_of
from .common import add_engine_options, add_json_out, add_log_options, engine_of, read_log



def add_arguments(p) -> None:
    add_log_options(p, value_required=True)
    p.add_argument("--cuped", metavar="COL", help="pre-period covariate for the CUPED-adjusted effect (optional)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 − confidence level of the intervals (default 0.05)")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    engine = engine_of(args)
    log = read_log(engine, args, require_value=True)
    plain = readout_of(engine, log, alpha=args.alpha)
    adjusted = readout_of(engine, log, alpha=args.alpha, cuped=args.cuped).to_dict()["arms"] if args.cuped else None
    outcomes_of_log = ("value", "cost", *(["value_long"] if log.columns.value_long else []))
    out: dict = {}
    for arm, outcomes in plain.to_dict()["arms"].items():
        entry: dict = {}
        for outcome in outcomes_of_log:
            if outcome not in outcomes:
                entry[outcome] = None
                continue
            entry[outcome] = dict(outcomes[outcome])
            cuped = None
            if adjusted is not None:
                row = adjusted[arm][outcome]
                cuped = {k: row[k] for k in ("effect", "se", "ci_low", "ci_high")}
                cuped.update(covariate=args.cuped, variance_reduction=row.get("variance_reduction"))
            entry[outcome]["cuped"] = cuped
        cpi = outcomes.get("cpi")
        entry["cpi"] = None if cpi is None else {k: cpi[k] for k in ("cpi", "se", "ci_low", "ci_high", "defined")}
        out[arm] = entry
    return out
