"""``design``: customers needed per arm for the next test, or the effect a given size detects."""

from __future__ import annotations

from ..design.power import design, design_from_log
from ..errors import UserError
from .common import add_engine_options, add_json_out, add_log_options, engine_of, read_log



def add_arguments(p) -> None:
    add_log_options(p)
    for option in ("--data", "--action", "--control"):
        p._option_string_actions[option].required = False
    p.add_argument("--baseline-mean", type=float, metavar="M", help="the outcome's mean without an offer (typed in)")
    p.add_argument("--baseline-sd", type=float, metavar="S", help="the outcome's standard deviation (typed in)")
    p.add_argument("--baseline-rate", type=float, metavar="P", help="the conversion rate without an offer (typed in)")
    p.add_argument("--mde", type=float, help="the smallest effect worth detecting (absolute: money, or a rate difference)")
    p.add_argument("--n", type=int, help="customers per treated arm (instead of --mde: the detectable effect is solved)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    p.add_argument("--arms", type=int, help="treated arms sharing one control (default 1, or the log's offers)")
    p.add_argument("--ratio", type=float, default=1.0, help="control size / treated arm size (default 1)")
    p.add_argument("--correction", default="none", help="none | bonferroni (α/arms per comparison); default none")
    p.add_argument("--cuped", metavar="COL", help="pre-period column of the log: reports CUPED's variance factor 1 − ρ²")
    add_json_out(p)
    add_engine_options(p)


def run(args) -> dict:
    common = dict(mde=args.mde, n=args.n, alpha=args.alpha, power=args.power, ratio=args.ratio, correction=args.correction)
    if args.data:
        if args.baseline_mean is not None or args.baseline_sd is not None or args.baseline_rate is not None:
            raise UserError("give either a log (--data …) or --baseline-sd / --baseline-rate, not both")
        if not (args.action and args.control and args.value):
            raise UserError("a log needs --action, --control and --value to measure the outcome's spread")
        engine = engine_of(args)
        log = engine.collect(read_log(engine, args, require_value=True), why="the next test is designed")
        return design_from_log(log, cuped=args.cuped, arms=args.arms, **common).to_dict()
    if args.cuped:
        raise UserError("--cuped needs a log (--data …) to measure the covariate's correlation")
    if args.baseline_rate is not None and args.baseline_sd is not None:
        raise UserError("give --baseline-sd (means) or --baseline-rate (conversion rates), not both")
    out = design(sd=args.baseline_sd, rate=args.baseline_rate, arms=args.arms or 1, **common).to_dict()
    if args.baseline_mean is not None:
        out["baseline_mean"] = args.baseline_mean
    return out
